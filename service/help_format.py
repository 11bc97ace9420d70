"""How `--help` reads: paragraphs rewrapped to the terminal, no `<type>` tags beside options."""

from __future__ import annotations

import inspect
from typing import Any

from typer.core import TyperArgument, TyperCommand, TyperGroup


def _paragraphs(text: str | None) -> str | None:
    """Docstring paragraphs as one line each, so the help renderer wraps them to the terminal's width
    (Typer's rich help keeps a docstring's single line breaks, which broke sentences mid-line). A
    paragraph starting with `\\b` keeps its lines, as in click."""
    if not text:
        return text
    return "\n\n".join(p if p.startswith("\b") else " ".join(p.split()) for p in inspect.cleandoc(text).split("\n\n"))


def _no_type(ctx: Any) -> None:
    return None


def _untagged(params: list[Any]) -> None:
    """No `<type>` column: a flag takes no value (Typer's rich help prints `<bool>` beside it), and
    an argument's name (its metavar, e.g. FILE) already says what it takes. Options that take a
    value name it with their metavar (URL, N, FILE)."""
    for param in params:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
        elif isinstance(param, TyperArgument):
            setattr(param, "display_type_rich", _no_type)  # noqa: B010 (this instance only; Typer has no setting)


class _CleanHelp:
    """Applied to a command at construction and to its `--help` option when it is made."""

    help: str | None
    params: list[Any]

    def _clean(self) -> None:
        self.help = _paragraphs(self.help)
        _untagged(self.params)

    def get_help_option(self, ctx: Any) -> Any:
        option = super().get_help_option(ctx)  # type: ignore[misc]
        if option is not None:
            _untagged([option])
        return option


class Command(_CleanHelp, TyperCommand):
    """A command whose help paragraphs rewrap and whose flags (`--help` too) show no type."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clean()


class Group(_CleanHelp, TyperGroup):
    """The top-level command group, with the same help rules as its commands."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clean()
