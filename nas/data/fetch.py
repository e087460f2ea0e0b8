"""``nas data fetch NAME``: download a data set's official files, check their checksums, unpack atomically.

Everything happens in a temp folder beside the target; only a download whose every file matches its
checksum and whose archive holds the files the loader needs is renamed into place. Any failure
(network, checksum, a broken archive, Ctrl-C) removes the temp folder: nothing is left behind.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from ..errors import UserError
from ..folders import check_output_folder
from ..io import FILE_MODE
from .sources import Source, base_url, data_root, expected_md5, locate, source

CHUNK = 1 << 20
FOLDER_MODE = 0o755


def fetch(name: str, root: str | os.PathLike | None = None, progress: bool | None = None) -> Path:
    """Download data set ``name`` into ``root/name`` (root: the nas data cache) and return that folder.

    ``progress``: a tqdm bar (default when stderr is a terminal), else plain lines.
    """
    src = source(name)
    root = check_output_folder("--dir", Path(root).expanduser() if root else data_root())
    target = root / src.name
    if target.exists():
        return _already_there(src, target)
    root.mkdir(parents=True, exist_ok=True)
    expected = expected_md5(src)
    overridden = expected != src.md5
    show_bar = sys.stderr.isatty() if progress is None else progress
    work = Path(tempfile.mkdtemp(prefix=f".fetch-{src.name}-", dir=root))
    try:
        staging = work / src.name
        staging.mkdir(mode=FOLDER_MODE)
        for file, md5 in expected.items():
            url = base_url(src) + file
            got = _download(url, work / file, show_bar)
            if got != md5:
                where = "NAS_DATA_MD5" if overridden else src.published
                raise UserError(f"{src.name}: {file} from {url} has md5 {got}, expected {md5} ({where}); "
                                f"nothing was kept")
            _unpack(work / file, staging, src)
        locate(src, staging)  # the download holds what the loader reads, or it is not kept
        os.chmod(staging, FOLDER_MODE)
        try:
            os.rename(staging, target)
        except OSError:  # another fetch finished first
            return _already_there(src, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{src.name}: ready in {target}", file=sys.stderr)
    return target


def _already_there(src: Source, target: Path) -> Path:
    try:
        locate(src, target)
    except UserError:
        raise UserError(f"{target} exists but does not hold {src.name}'s files; remove it or choose another --dir") \
            from None
    print(f"{src.name}: already in {target}", file=sys.stderr)
    return target


def _download(url: str, path: Path, show_bar: bool) -> str:
    """Stream ``url`` into ``path``; return the md5 of what arrived."""
    from tqdm import tqdm

    digest = hashlib.md5()
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(path, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            if not show_bar:
                size = f" ({total / 1e6:.1f} MB)" if total else ""
                print(f"downloading {url}{size}", file=sys.stderr)
            with tqdm(total=total, unit="B", unit_scale=True, desc=path.name, disable=not show_bar) as bar:
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = f"HTTP {exc.code} {exc.reason}" if isinstance(exc, urllib.error.HTTPError) else \
            getattr(exc, "reason", None) or exc
        raise UserError(f"could not download {url}: {reason}; nothing was kept") from None
    return digest.hexdigest()


def _unpack(path: Path, staging: Path, src: Source) -> None:
    """A .tar.gz is extracted into ``staging``; a single file (Fashion-MNIST's .gz) is moved there as it is.
    Files get nas.io's FILE_MODE and folders FOLDER_MODE, whatever modes the archive recorded."""
    if not path.name.endswith(".tar.gz"):
        os.chmod(path, FILE_MODE)
        path.rename(staging / path.name)
        return
    try:
        with tarfile.open(path, "r:gz") as tar:
            if hasattr(tarfile, "data_filter"):  # refuses absolute paths, '..' and links that leave the folder
                tar.extractall(staging, filter="data")
            else:
                tar.extractall(staging, members=_plain_members(tar, path))
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise UserError(f"{src.name}: {path.name} is not a readable tar.gz archive ({exc}); nothing was kept") \
            from None
    path.unlink()
    _set_modes(staging)


def _set_modes(folder: Path) -> None:
    """FOLDER_MODE on every folder below ``folder``, FILE_MODE on every file (links are left alone)."""
    for parent, folders, files in os.walk(folder):  # top-down: a folder's mode is set before it is entered
        for names, mode in ((folders, FOLDER_MODE), (files, FILE_MODE)):
            for name in names:
                path = os.path.join(parent, name)
                if not os.path.islink(path):
                    os.chmod(path, mode)


def _plain_members(tar: tarfile.TarFile, path: Path):
    for member in tar.getmembers():
        if not (member.isfile() or member.isdir()) or member.name.startswith("/") or ".." in Path(member.name).parts:
            raise UserError(f"{path.name}: refusing archive member {member.name!r}; nothing was kept")
        yield member
