"""The one exception type users see.

Every mistake a user can make (an unknown GPU, a bad flag, a run folder that would be
overwritten) raises :class:`BudgetError` with one line that says what is wrong and what to
do. The CLI prints that line and exits with code 2; notebooks show it as it is.
"""


class BudgetError(Exception):
    """A user-facing error: one line, what is wrong and what to do."""

    exit_code = 2
