"""Checks of the folders and files a user names for nas to write into or read settings from.

Each turns a careless path (a file where a folder belongs, a folder below a file, a read-only run
folder, a YAML list where settings belong) into one UserError naming the path and what is allowed,
before anything is written, instead of an OSError in the middle of a run.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import yaml

from .errors import UserError


def check_output_folder(key: str, value: str | os.PathLike, allowed: str = "a folder you can write to") -> Path:
    """``value`` as a folder nas may create or write into: not a file, not below a file, writable."""
    path = Path(value)
    if path.exists() and not path.is_dir():
        raise UserError(f"{key}: got {str(value)!r}, a file; allowed: {allowed}")
    _check_can_create_in(key, value, path, allowed)
    return path


def _nearest_existing(path: Path) -> Path:
    """``path`` or the nearest of its parents that exists: where the missing folders would be made."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path("/")


def _check_can_create_in(key: str, value: str | os.PathLike, folder: Path, allowed: str) -> None:
    """``folder`` (``value`` itself, or the folder a file ``value`` goes in) can be written into, or made in its
    nearest existing folder; where ``value`` is new, something can be made there."""
    existing = _nearest_existing(folder)
    if not existing.is_dir():
        raise UserError(f"{key}: got {str(value)!r}, below the file {str(existing)!r}; allowed: {allowed}")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"{key}: cannot write in {str(existing)!r} (permission denied); allowed: {allowed}")
    if not Path(value).exists():
        # os.access answers for the permission bits only: a pseudo file system (/proc) or a read-only mount says
        # yes to root and then refuses the mkdir. Making (and removing) a folder there is the one sure answer.
        try:
            os.rmdir(tempfile.mkdtemp(prefix=".nas-probe-", dir=existing))
        except OSError as exc:
            raise UserError(f"{key}: cannot make anything in {str(existing)!r} ({exc.strerror}); "
                            f"allowed: {allowed}") from None


def check_writable_files(key: str, folder: Path) -> None:
    """Every file directly in ``folder`` (a run being resumed) can be rewritten; else name the first that can't."""
    for entry in sorted(folder.iterdir()) if folder.is_dir() else ():
        if entry.is_file() and not os.access(entry, os.W_OK):
            raise UserError(f"{key}: {str(entry)!r} is read-only; allowed: a run folder whose files you can write "
                            "(chmod u+w), or another folder")


def read_settings_file(path: Path, key: str, allowed: str) -> dict[str, Any]:
    """A YAML file of ``key: value`` settings (a run's config.yaml); empty is {}. UserError for anything else."""
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError:
        raise UserError(f"{key}: {path} is not valid YAML; allowed: {allowed}") from None
    except OSError as exc:
        raise UserError(f"{key}: cannot read {path} ({exc.strerror}); allowed: {allowed}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"{key}: {path} holds a YAML {type(data).__name__}, not settings; allowed: {allowed}")
    return data


def check_output_file(key: str, value: str | os.PathLike, allowed: str) -> Path:
    """``value`` as a file nas may (re)write: not a folder, in a folder nas may write into."""
    path = Path(value)
    if path.is_dir():
        raise UserError(f"{key}: got {str(value)!r}, a folder; allowed: {allowed}")
    _check_can_create_in(key, value, path.parent, allowed)  # the file is written into its folder
    if path.exists() and not os.access(path, os.W_OK):
        raise UserError(f"{key}: {str(value)!r} is read-only; allowed: {allowed}")
    return path
