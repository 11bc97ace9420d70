"""The code review's findings stay fixed: one FHIR client factory, one owner per vocabulary, no web app in the CLI.

Each test reads the source tree, so a second copy of a vocabulary or a second client construction
fails here before it reaches a review.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted([*(ROOT / "service").rglob("*.py"), *(ROOT / "schemas").rglob("*.py")])


def _where(pattern: str) -> list[str]:
    regex = re.compile(pattern)
    return sorted(str(path.relative_to(ROOT)) for path in SOURCES if regex.search(path.read_text(encoding="utf-8")))


def test_the_fhir_client_is_constructed_in_one_place() -> None:
    assert _where(r"\bFhirClient\(") == ["service/fhir_client.py"]
    assert _where(r"\bbuild_http_client\(") == ["service/fhir_client.py"]


def test_each_vocabulary_is_spelled_once() -> None:
    assert _where(r'"application/fhir\+json"') == ["service/media.py"]
    assert _where(r'"entered-in-error"') == ["service/mappers/codes.py"]
    assert _where(r"\[A-Za-z0-9\._-\]\{1,64\}|A-Za-z0-9\._-") == ["schemas/common.py"]
    assert _where(r'"infusion-sessions"') == ["schemas/kinds.py"]
    assert _where(r'"vital_signs",\s*"monitoring_scores"') == []  # iterate schemas.kinds.CHILD_LISTS
    assert _where(r'"vital_signs":\s*VITAL_SIGN|"vital_signs":\s*"vital_sign"') == ["schemas/kinds.py"]
    assert _where(r"typer\.Exit\([0-9]") == []  # exit codes by name (service/exit_codes.py)


def test_the_batch_cli_does_not_import_the_web_app() -> None:
    for path in (ROOT / "service" / "batch").glob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"^\s*from service\.(app|routes|http_edge)\b|^\s*import fastapi", text, re.M), path.name


def test_redaction_keeps_no_list_of_phi_fields_of_its_own() -> None:
    redact = (ROOT / "service" / "sync" / "redact.py").read_text(encoding="utf-8")
    for field in ("mrn", "family", "birth_date", "note", "description", "stop_reason", "visit_id"):
        assert f'"{field}"' not in redact and f".{field}" not in redact, field
