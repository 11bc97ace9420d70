"""Which instrument, and which of its items, each code the outcome trend reads belongs to (under one config).

The codes are the definitions' (service/instruments): each instrument's panel (a local one named after the
instrument where it has no code), total, safety items and the C-SSRS triage category, in the systems the
mappers write them with (LOINC, or `<local_code_system_base>/instrument`). They are what the trend searches
for and how it recognises an Observation, whoever wrote it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache

from service.instruments import DEFINITIONS
from service.instruments.model import LOCAL_SYSTEM, Coding, Item
from service.mappers import codes
from service.mappers.config import MappingConfig

Token = tuple[str, str]
"""(system, code)"""


@dataclass(frozen=True)
class CodeIndex:
    """Which instrument (and item) each code the trend reads belongs to, under one config's systems."""

    panels: Mapping[Token, str]
    totals: Mapping[Token, str]
    items: Mapping[Token, tuple[tuple[str, Item], ...]]
    triage: Token

    def tokens(self, instruments: Iterable[str]) -> list[Token]:
        """The codes to search for these instruments: panels, totals, safety items, the triage."""
        wanted = set(instruments)
        out = [t for t, i in self.panels.items() if i in wanted]
        out += [t for t, i in self.totals.items() if i in wanted]
        out += [t for t, owners in self.items.items() if any(i in wanted for i, _ in owners)]
        if any(DEFINITIONS[i].triage is not None for i in wanted):
            out.append(self.triage)
        return list(dict.fromkeys(out))


def token(coding: Coding, config: MappingConfig, system_path: str = LOCAL_SYSTEM) -> Token:
    """(system, code) of a definition's code as the mappers write it (LOINC, or the local system)."""
    system = codes.local_system(config.local_code_system_base, system_path) if coding.local else codes.LOINC
    return system, coding.code


@lru_cache(maxsize=16)
def code_index(config: MappingConfig) -> CodeIndex:
    """The codes of every definition's panel, total, safety items and triage, under this config."""
    panels: dict[Token, str] = {}
    totals: dict[Token, str] = {}
    items: dict[Token, list[tuple[str, Item]]] = {}
    triage_token: Token | None = None
    for defn in DEFINITIONS.values():
        panel = defn.panel if defn.panel is not None else Coding(defn.id, defn.title, local=True)
        panels[token(panel, config)] = defn.id
        if defn.total is not None:
            totals[token(defn.total.coding, config)] = defn.id
        for rule in defn.safety.rules:
            item = defn.item(rule.link_id)
            items.setdefault(token(item.coding, config), []).append((defn.id, item))
        if defn.triage is not None:
            triage_token = token(defn.triage.coding, config)
    assert triage_token is not None  # the C-SSRS definitions have one
    return CodeIndex(panels, totals, {t: tuple(owners) for t, owners in items.items()}, triage_token)
