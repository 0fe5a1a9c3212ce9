"""Generate docs/cli.md from the Typer app: ``python -m cli.reference > docs/cli.md`` (a test keeps it current)."""

from __future__ import annotations

import typer
from typer import _click as click  # typer 0.29 vendors click; its parameters are not click's classes


def markdown() -> str:
    from cli.main import app

    root = typer.main.get_command(app)
    ctx = click.Context(root, info_name="budgetreason")
    lines = ["# CLI reference", "", "Generated from the Typer app by `python -m cli.reference`; "
             "`budgetreason COMMAND --help` shows the same.", "",
             "Global options: `--verbose/-v` (full tracebacks), `--version`.", ""]
    for name in root.list_commands(ctx):
        cmd = root.get_command(ctx, name)
        lines += [f"## `budgetreason {name}`", "", (cmd.help or "").strip(), ""]
        args = [p for p in cmd.params if p.param_type_name == "argument"]
        if args:
            lines.append("Arguments: " + ", ".join(f"`{a.name.upper()}`" for a in args))
            lines.append("")
        lines += ["| option | default | meaning |", "|---|---|---|"]
        for p in cmd.params:
            if p.param_type_name != "option" or p.name == "help":
                continue
            flags = ", ".join(f"`{o}`" for o in p.opts + p.secondary_opts)
            default = "" if p.default is None or p.default is False or callable(p.default) else f"`{p.default}`"
            if p.required:
                default = "required"
            lines.append(f"| {flags} | {default} | {(p.help or '').replace('|', '/')} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown())
