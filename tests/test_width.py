"""Help and catalog tables stay readable at 80 columns and at the default outside a terminal.

Outside a terminal (a pipe, as here) rich used to fall back to 80 columns; the CLI now uses
COLUMNS when set, else cli.main.PIPE_COLUMNS. Every option name of every command and every
catalog model id and GPU key must appear whole on one line, and no line may exceed the width.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

WIDTHS = {"80": "80", "pipe default": None}


def cli(*args: str, columns: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    if columns:
        env["COLUMNS"] = columns
    r = subprocess.run([sys.executable, "-m", "cli.main", *args], capture_output=True, text=True, env=env, cwd=ROOT,
                       timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout


def _width(columns: str | None) -> int:
    from cli.main import PIPE_COLUMNS

    return int(columns) if columns else PIPE_COLUMNS


def _options() -> dict[str, list[str]]:
    """Every command's option names, from the Click command Typer builds."""
    import typer.main

    from cli.main import app

    group = typer.main.get_command(app)
    return {name: [o for p in cmd.params for o in (*p.opts, *p.secondary_opts) if o.startswith("-")]
            for name, cmd in group.commands.items()}


@pytest.mark.parametrize("columns", WIDTHS.values(), ids=WIDTHS.keys())
def test_every_help_names_every_option_whole(columns, monkeypatch):
    """In-process through Typer's CliRunner (sixteen fresh interpreters per width would take minutes)."""
    from typer.testing import CliRunner

    from cli.main import _configure_output, app

    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.setattr(app, "rich_markup_mode", app.rich_markup_mode)  # restored after the test
    if columns:
        monkeypatch.setenv("COLUMNS", columns)
    width = _width(columns)
    assert _configure_output() == width  # what main() does before the app runs: stdout is not a terminal here
    assert os.environ["COLUMNS"] == str(width)
    runner = CliRunner()
    for command, options in _options().items():
        r = runner.invoke(app, [command, "--help"], env={"COLUMNS": str(width)})
        assert r.exit_code == 0, r.output
        lines = r.output.splitlines()
        assert max(map(len, lines)) <= width, (command, max(lines, key=len))
        words = {w.strip("│[]()") for line in lines for w in line.replace(",", " ").split()}
        missing = [o for o in options if o not in words]
        assert not missing, (command, missing)


def test_pipe_default_reaches_typer_help():
    """The real console script outside a terminal, COLUMNS unset: help is laid out at PIPE_COLUMNS."""
    from cli.main import PIPE_COLUMNS

    lines = cli("train", "--help", columns=None).splitlines()
    assert max(map(len, lines)) == PIPE_COLUMNS


@pytest.mark.parametrize("columns", WIDTHS.values(), ids=WIDTHS.keys())
def test_catalog_tables_keep_ids_whole(columns):
    width = _width(columns)
    models = json.loads(cli("models", "--json", columns=columns))
    gpus = json.loads(cli("gpus", "--json", columns=columns))
    for command, ids, extra in (("models", [m["id"] for m in models], []),
                                ("gpus", [g["key"] for g in gpus], [g["name"] for g in gpus])):
        text = cli(command, columns=columns)
        lines = text.splitlines()
        assert max(map(len, lines)) <= width, (command, max(lines, key=len))
        assert "…" not in text, command
        for name in ids + extra:  # whole, on one line, in a cell of its own
            assert any(f"│ {name} " in line for line in lines), (command, name)
    assert "params" in cli("models", columns=columns) and "GiB" in cli("gpus", columns=columns)
