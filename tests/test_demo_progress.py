"""What the demo's long steps show: a bar on a terminal, plain lines in a log or a pipe."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from devtools.progress import TerminalProgress


def test_on_a_terminal_a_step_shows_a_bar_that_ends_full() -> None:
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=100)
    with (
        TerminalProgress(live=True, console=console) as progress,
        progress.step("Seeding the source (bench): data rows", total=2_020_000) as step,
    ):
        step.set(1_010_000)
        assert progress.bars is not None
        progress.bars.refresh()
        halfway = screen.getvalue()
    assert "Seeding the source (bench): data rows" in halfway
    assert " 50%" in halfway
    assert "━" in halfway
    assert "100%" in screen.getvalue()


def test_without_a_terminal_each_step_is_a_plain_line_with_its_duration(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with (
        TerminalProgress(live=False) as progress,
        progress.step("Starting both nodes", total=2) as step,
    ):
        step.advance()
        progress.print("[source] identity: appliance-old")
    output = capsys.readouterr().out
    lines = output.splitlines()
    assert lines[0] == "Starting both nodes ..."
    assert lines[1] == "[source] identity: appliance-old"
    assert lines[2].startswith("Starting both nodes: done in ")
    assert "\x1b[" not in output
