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


SHORT_VALUE = 80  # characters of a received value quoted in a message (a 50 MB value must not be echoed)


def shorten(value: Any, limit: int = SHORT_VALUE) -> str:
    """`repr(value)` cut to about `limit` characters, saying how long it was: messages quote values with it."""
    try:
        text = repr(value)
    except (ValueError, RecursionError):  # e.g. an int of more than 4,300 digits, a deeply nested list
        text = f"<{type(value).__name__}>"
    if len(text) <= limit:
        return text
    return f"{text[:limit - 20]}... ({len(text):,} characters)"


class JobError(Exception):
    """A job failure whose cause is known and said in the message (diverged, stalled, an env runner's error).

    Not the user's typo, so not a UserError; the job writes the message as the first line of
    output/failure, without a traceback in front of it, and exits 1.
    """


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """' (did you mean X?)' for the closest choice, or ''."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_count(name: str, value: Any, *, optional: bool = False, minimum: int = 1, maximum: int | None = None) -> None:
    """UserError unless `value` is a whole number >= `minimum` (and <= `maximum`): a count of jobs, hosts, seconds ...

    None is accepted if `optional`."""
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise UserError(f"{name} must be a whole number >= {minimum}, got {shorten(value)}")
    if maximum is not None and value > maximum:
        raise UserError(f"{name} must be at most {maximum:,}, got {shorten(value)}")


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
