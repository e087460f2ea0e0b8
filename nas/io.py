"""Every file nas writes goes through here: whole or not at all, mode 0644.

A temp file in the target's folder, fsync, then ``os.replace``: a crash, a kill -9 or a full disk
leaves either the old file or the new one, never half of one. One file mode for everything (specs,
CSVs, reports, plots, caches) so a run folder can be shared and read by others.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:  # matplotlib is imported only where a figure is made: importing nas.io stays light
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

FILE_MODE = 0o644
TEMP_SUFFIX = ".tmp"
LOCK_SUFFIX = ".lock"  # updating(path) locks path + LOCK_SUFFIX
_HOST = socket.gethostname().replace(".", "_")  # no dots: the temp name is split on them
_WRITER = f"{_HOST}-{os.getpid()}"


def write_with(path: str | os.PathLike, write: Callable[[IO], object], binary: bool = False) -> Path:
    """Call ``write(file_object)`` on a temp file beside ``path``, then move it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # the writer's host and pid in the name: remove_stale_temporaries can tell a dead writer's leftover
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{_WRITER}.", suffix=TEMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb" if binary else "w", encoding=None if binary else "utf-8") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, FILE_MODE)  # mkstemp makes 0600
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def remove_stale_temporaries(folder: str | os.PathLike, recursive: bool = True) -> list[Path]:
    """Delete the temp files in ``folder`` (and below) that a writer killed mid-write (kill -9, power loss)
    left behind: those whose writer ran on this host and is gone. A live writer's (another process sharing
    the folder) and another host's are kept. Returns what was deleted."""
    removed = []
    folder = Path(folder)
    for tmp in (folder.rglob if recursive else folder.glob)(f".*{TEMP_SUFFIX}"):
        host, _, pid = tmp.name[:-len(TEMP_SUFFIX)].rsplit(".", 2)[-2].rpartition("-")
        if host == _HOST and pid.isdigit() and not process_alive(int(pid)):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def process_alive(pid: int) -> bool:
    """Whether a process with this pid runs on this machine (someone else's counts: it is alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def write_text(path: str | os.PathLike, text: str) -> Path:
    return write_with(path, lambda fh: fh.write(text))


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return write_with(path, lambda fh: fh.write(data), binary=True)


def new_figure(columns: int, size: tuple[float, float]) -> tuple[Figure, list[Axes]]:
    """A matplotlib Figure of one row of ``columns`` axes on the Agg canvas, without pyplot (no global state,
    no display needed); save it with :func:`save_figure`."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=size)
    FigureCanvasAgg(figure)
    return figure, list(figure.subplots(1, columns, squeeze=False)[0])


def save_figure(figure, path: str | os.PathLike, dpi: int = 120) -> Path:
    """A matplotlib figure as a PNG, written like every other file."""
    return write_with(path, lambda fh: figure.savefig(fh, format="png", dpi=dpi), binary=True)


@contextlib.contextmanager
def updating(path: str | os.PathLike) -> Iterator[None]:
    """Held around a read-merge-write of ``path`` that several processes share (a cache): an exclusive
    flock on a ``.lock`` file beside it, so no writer replaces the file between another's read and
    write. The kernel drops it when its holder dies."""
    with held(Path(str(path) + LOCK_SUFFIX)):
        yield


@contextlib.contextmanager
def held(lock: str | os.PathLike, wait: bool = True, shared: bool = False) -> Iterator[None]:
    """An exclusive flock on the file ``lock`` (made if missing), dropped by the kernel when its holder dies.
    ``wait=False``: BlockingIOError at once when another holds it. ``shared=True``: a shared flock instead, which
    any number hold together while none holds it exclusively. (Locks are per open file: one process taking the
    same lock twice conflicts with itself.)"""
    fd = os.open(create_appendable(lock), os.O_RDONLY)  # flock needs no write access: another user's file locks
    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | (0 if wait else fcntl.LOCK_NB))
        yield
    finally:
        os.close(fd)  # closing the file drops its lock


def kept_beside(entry: Path, name: str) -> bool:
    """Whether ``entry`` is what this module keeps beside a file called ``name`` while writing or updating it:
    its temp files (a write in flight, or a killed writer's leftover) and its lock (:func:`updating`)."""
    return entry.name == name + LOCK_SUFFIX or (entry.name.startswith(f".{name}.")
                                                and entry.name.endswith(TEMP_SUFFIX))


def create_appendable(path: str | os.PathLike) -> Path:
    """An empty file at mode 0644 unless ``path`` exists, for files another library appends to (Optuna's
    journal), which would otherwise follow the umask. Exclusive creation: a file others already write
    into is never replaced."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return path
    try:
        os.fchmod(fd, FILE_MODE)  # os.open's mode is masked by the umask
    finally:
        os.close(fd)
    return path
