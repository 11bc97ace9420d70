"""Every command's `--help` reads cleanly at 80 and 200 columns: no `<type>` tags, no sentence broken mid-line."""

from __future__ import annotations

import re
from typing import Any

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from service.cli import app

GROUP: Any = get_command(app)
COMMANDS = ["", *GROUP.commands]
TYPE_TAG = re.compile(r"<[a-z][\w \[\]|,.]*>")
BOX = "│╭╮╰╯─"


def _help(command: str, columns: int) -> str:
    args = [command, "--help"] if command else ["--help"]
    result = CliRunner().invoke(app, args, env={"COLUMNS": str(columns), "TERM": "dumb", "NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    return result.output


def _description(output: str) -> list[list[str]]:
    """The help text between the usage line and the first panel, as blocks of lines (blank lines part them)."""
    lines = output.split("╭", 1)[0].split("\n")
    body = lines[next(i for i, line in enumerate(lines) if line.strip().startswith("Usage:")) + 1 :]
    blocks: list[list[str]] = [[]]
    for line in body:
        if line.strip():
            blocks[-1].append(line.strip())
        elif blocks[-1]:
            blocks.append([])
    return [b for b in blocks if b]


def _premature_breaks(lines: list[str], width: int) -> list[str]:
    """Lines that end although the next line's first word would have fitted after them: the text was
    broken where its source was, not where the terminal's width ends."""
    return [
        f"{line!r} / {after!r}"
        for line, after in zip(lines, lines[1:], strict=False)
        if len(line) + 1 + len(after.split()[0]) <= width
    ]


def _words(text: str) -> list[str]:
    return text.split()


@pytest.mark.parametrize("columns", [80, 200])
@pytest.mark.parametrize("command", COMMANDS)
def test_help_has_no_type_tags_and_no_sentence_broken_mid_line(command: str, columns: int) -> None:
    output = _help(command, columns)
    assert not TYPE_TAG.findall(output), output

    # The command's own paragraphs: each printed whole, rewrapped to the width (a margin of 1 each side).
    blocks = _description(output)
    for block in blocks:
        assert not _premature_breaks(block, columns - 2), output
    click_command = GROUP.commands[command] if command else GROUP
    paragraphs = [_words(p) for p in (click_command.help or "").split("\n\n")]
    assert [_words(" ".join(block)) for block in blocks] == paragraphs, output

    # No word folded over two lines anywhere, panels included: every word of every option's help, and
    # of every command's summary in the group's panel, is printed whole.
    printed = set(_words(re.sub(f"[{BOX}]", " ", output)))
    helps = [p.help or "" for p in click_command.params]
    if not command:
        helps += [c.help.split("\n\n")[0] for c in GROUP.commands.values()]
    for text in helps:
        broken = [w for w in _words(text) if w not in printed]
        assert not broken, f"{broken} not printed whole: {output}"
