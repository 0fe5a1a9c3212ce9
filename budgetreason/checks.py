"""Argument checks that run before any model, data or evaluation work starts.

A mistake in an argument should cost a second, not the minutes of planning, loading and a
baseline evaluation that come before the place where the value is first used. Each check
raises :class:`~budgetreason.errors.BudgetError` with one line naming the option.
"""

from __future__ import annotations

from pathlib import Path

from budgetreason.errors import BudgetError


def output_folder(path: str | Path, flag: str = "--output") -> Path:
    """`path` can be (or become) a folder: it is not a file, and no file stands where a parent folder would go."""
    p = Path(path).expanduser()
    for q in (p, *p.parents):
        if q.exists():
            if not q.is_dir():
                where = "" if q == p else f" ({q} is a file)"
                raise BudgetError(f"{flag} {path}: is a file, not a folder{where}; choose a folder path.")
            break
    return p


def output_file(path: str | Path, flag: str = "--output") -> Path:
    """`path` can be written as a file: it is not a folder, and its parent is (or can become) a folder."""
    p = Path(path).expanduser()
    if p.is_dir():
        raise BudgetError(f"{flag} {path}: is a folder; give a file name such as {p / 'out.json'}.")
    output_folder(p.parent, flag)
    return p


def at_least(value: int | float | None, minimum: int | float, flag: str) -> None:
    """`value` (when given) is at least `minimum`."""
    if value is not None and value < minimum:
        raise BudgetError(f"{flag} must be at least {minimum}, got {value}.")


def int_list(text: str, flag: str, minimum: int = 1) -> list[int]:
    """``"8,64,256"`` → [8, 64, 256]; anything else is one line naming the option."""
    parts = [x.strip() for x in text.split(",") if x.strip()]
    try:
        values = [int(x) for x in parts]
    except ValueError:
        raise BudgetError(f"{flag} takes a comma list of whole numbers such as 8,64,256, got '{text}'.") from None
    if not values:
        raise BudgetError(f"{flag} is empty; give a comma list of whole numbers such as 8,64,256.")
    small = [v for v in values if v < minimum]
    if small:
        raise BudgetError(f"{flag} values must be at least {minimum}, got {small[0]}.")
    return values
