"""User errors: the one exception family for problems a user can fix, and how a command reports them.

Every user error (bad hyperparameter, tuning file, flag, AWS setting, missing file) is a
`UserError`; its message is one sentence with the value received, what is allowed and the fix.
The job writes it to `output/failure` (contract.run_job); every command line prints it on one line
and exits with `USER_ERROR_EXIT` (`cli`). Everything else is an internal error, with its traceback.
"""

from __future__ import annotations

import difflib
import functools
import sys
from collections.abc import Callable, Iterable
from typing import Any, ParamSpec

USER_ERROR_EXIT = 2  # exit code of a job or command stopped by a user error

_P = ParamSpec("_P")


class UserError(Exception):
    """A problem the user can fix (bad hyperparameter, missing file); its message is the reason."""


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """' (did you mean X?)' for the closest choice, or ''."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_count(name: str, value: Any, *, optional: bool = False, minimum: int = 1) -> None:
    """UserError unless `value` is a whole number >= `minimum` (a count of jobs, hosts, seconds ...).

    None is accepted if `optional`."""
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise UserError(f"{name} must be a whole number >= {minimum}, got {value!r}")


def cli(main: Callable[_P, int]) -> Callable[_P, int]:
    """A command's main function whose user errors are printed as `error: <reason>` (one line) and exit 2."""

    @functools.wraps(main)
    def guarded(*args: _P.args, **kwargs: _P.kwargs) -> int:
        try:
            return main(*args, **kwargs)
        except UserError as error:
            print(f"error: {error}", file=sys.stderr, flush=True)
            return USER_ERROR_EXIT

    return guarded
