"""The exceptions nas raises on purpose, and the one did-you-mean helper.

A user's mistake becomes a ``UserError``: the CLI prints it as one line and exits with status 2.
``Rejected`` is how an evaluator or the search says "this candidate is not worth finishing"; it lives
here (not beside the torch evaluators) so the torch-free search layer can catch it.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def did_you_mean(word, options: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest option, or an empty string."""
    close = difflib.get_close_matches(str(word), [str(option) for option in options], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


class UserError(ValueError):
    """A mistake in what the user gave us (a file, a key, a value); never a bug in nas."""


class SpecError(UserError):
    """An architecture spec that is malformed or cannot be built.

    The message always names the field, the value given and what is allowed, e.g.
    ``stages[2].kernel: got 4; allowed: an odd integer from 1 to 11``.
    """

    def __init__(self, field: str, value, allowed: str):
        self.field, self.value, self.allowed = field, value, allowed
        super().__init__(f"{field}: got {value!r}; allowed: {allowed}")


class Rejected(Exception):
    """The candidate is not worth evaluating further (pruned, over a hard limit); the message says why."""


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived during a search: the running trials go back to the queue and the run resumes
    them. A BaseException (like KeyboardInterrupt) so that no ``except Exception`` (a backend recording a
    failed trial) takes it for the trial's own error; the CLI exits with ``exit_status`` (130, 143)."""

    def __init__(self, signum: int, message: str = ""):
        self.signum, self.message = signum, message
        super().__init__(signum, message)

    @property
    def exit_status(self) -> int:
        return 128 + self.signum

    def __str__(self) -> str:
        import signal

        return f"interrupted ({signal.Signals(self.signum).name})" + (f": {self.message}" if self.message else "")
