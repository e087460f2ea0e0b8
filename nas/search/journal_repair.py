"""A journal (one JSON record per line, appended) whose last record was cut by a crash or a full disk.

Appending after a cut line would glue the next record to it, and the file would not parse again. So before
anything is appended, :func:`set_aside_torn_tail` moves a torn last record (no final newline, or not valid
JSON) into a backup file beside the journal and warns in one line. Used by the Optuna backend's
``study.journal`` and the Ray backend's JSONL journal; the caller holds whatever lock its writers take.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from ..io import write_bytes


def torn_tail_start(data: bytes) -> int | None:
    """Where the torn last record of ``data`` starts, or None when the last record is whole."""
    if not data:
        return None
    if not data.endswith(b"\n"):
        return data.rfind(b"\n") + 1
    start = data.rfind(b"\n", 0, len(data) - 1) + 1
    try:
        json.loads(data[start:])
    except ValueError:  # json.JSONDecodeError and UnicodeDecodeError are both ValueErrors
        return start
    return None


def set_aside_torn_tail(path: Path, warn: Callable[[str], None] | None = None) -> Path | None:
    """Move a torn last record of the journal ``path`` into ``<path>.torn-<time>`` and cut it from the journal;
    returns the backup's path, or None when the journal was whole (or absent)."""
    if not path.exists():
        return None
    data = path.read_bytes()
    start = torn_tail_start(data)
    if start is None:
        return None
    backup = path.with_name(f"{path.name}.torn-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
    write_bytes(backup, data[start:])
    os.truncate(path, start)
    (warn or _stderr)(f"nas: warning: {path} ended in a cut record ({len(data) - start} bytes); "
                      f"set aside in {backup.name}, the run goes on from the records before it")
    return backup


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)
