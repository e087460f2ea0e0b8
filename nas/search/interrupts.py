"""SIGINT and SIGTERM during a search: stop the running trials where it is safe, so they go back to the queue.

While :func:`raised_on_signals` is active, a signal raises :class:`nas.errors.Interrupted` in the main thread
at once, unless the main thread is inside a :func:`deferred` block (a write to the study's storage, claiming a
trial): then it is raised when the block ends, so no record is cut and no trial is left half-claimed. Worker
threads (``workers=`` > 1) cannot receive signals: they call :func:`check` at safe points (each reported epoch,
before claiming a trial) and stop there.

Whoever runs trials through :func:`nas.search.run.run_trials` gets this: it stops the backend, lets the backend's
``recover_interrupted`` put this process's unfinished trials back in the queue, writes the outputs and raises
Interrupted again for the CLI (exit 130 / 143).
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from ..errors import Interrupted

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class _State:
    signum: int | None = None     # the first signal received while active
    depth = 0                     # nesting of deferred() blocks in the main thread
    pending = False               # a signal arrived inside a deferred() block


_state = _State()


def check() -> None:
    """Raise Interrupted if a signal asked to stop (any thread; a worker thread's safe point)."""
    if _state.signum is not None:
        raise Interrupted(_state.signum)


def _on_signal(signum, frame) -> None:
    if _state.signum is None:
        _state.signum = signum
    if _state.depth > 0:
        _state.pending = True
        return
    raise Interrupted(_state.signum)


@contextmanager
def deferred() -> Iterator[None]:
    """A block a signal must not cut in the main thread (elsewhere a no-op: signals reach only the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _state.depth += 1
    try:
        yield
    finally:
        _state.depth -= 1
        if _state.depth == 0 and _state.pending:
            _state.pending = False
            raise Interrupted(_state.signum or signal.SIGINT)


@contextmanager
def raised_on_signals() -> Iterator[None]:
    """SIGINT and SIGTERM raise Interrupted while the block runs (installed only from the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, _on_signal) for s in SIGNALS}
    _state.signum, _state.depth, _state.pending = None, 0, False
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        _state.signum, _state.depth, _state.pending = None, 0, False


POLL_SECONDS = 1.0


def wait_while(busy: Callable[[], list], describe: Callable[[list], str], say: Callable[[str], None]) -> None:
    """Poll ``busy()`` until it returns nothing, saying once ``describe(what it returned)``: how a process sharing a
    run waits for the others' trials. A signal stops it like any other wait here (Interrupted)."""
    told = False
    while found := busy():
        if not told:
            say(describe(found) + " (Ctrl-C stops waiting; the same command resumes)")
            told = True
        time.sleep(POLL_SECONDS)
