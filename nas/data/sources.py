"""The data sets that can be downloaded: their official files, published checksums, and where nas looks for them.

A fetched set lives in ``<data root>/<name>/`` with the archive's own layout (CIFAR-10's
``cifar-10-batches-bin/`` folder, Fashion-MNIST's four ``.gz`` files), so a copy the user already
unpacked elsewhere is found too: point ``data_dir`` at it.

Environment:
- ``NAS_CACHE``: the cache folder (default ``~/.cache/nas``); data sets go in its ``data/`` folder.
- ``NAS_DATA_URL``: a base URL to download from instead of the official one (a mirror; tests use a local server).
- ``NAS_DATA_MD5``: ``file=md5,file=md5`` checksums to expect instead of the published ones (for a mirror
  that repacks; tests use it because tiny archives can't match the real checksums).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError, did_you_mean


@dataclass(frozen=True)
class Source:
    name: str
    base_url: str
    md5: dict[str, str]        # downloaded file -> its published md5
    published: str             # where those checksums are published
    folder: str                # the archive's folder holding the data files ("" when none)
    needed: tuple[str, ...]    # data files the loader reads (each may also be gzipped: name + ".gz")
    system_dirs: tuple[str, ...] = ()  # where an operating-system package may have put them


SOURCES = {
    "fashion-mnist": Source(
        "fashion-mnist", "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        {"train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
         "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
         "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
         "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310"},
        "https://github.com/zalandoresearch/fashion-mnist (README)", "",
        ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
        ("/usr/share/datasets/fashion-mnist",)),
    "cifar10": Source(
        "cifar10", "https://www.cs.toronto.edu/~kriz/",
        {"cifar-10-binary.tar.gz": "c32a1d4ab5d03f1284b67883e8d87530"},
        "https://www.cs.toronto.edu/~kriz/cifar.html", "cifar-10-batches-bin",
        tuple(f"data_batch_{i}.bin" for i in range(1, 6)) + ("test_batch.bin",)),
    "cifar100": Source(
        "cifar100", "https://www.cs.toronto.edu/~kriz/",
        {"cifar-100-binary.tar.gz": "03b5dce01913d631647c71ecec9e9cb8"},
        "https://www.cs.toronto.edu/~kriz/cifar.html", "cifar-100-binary", ("train.bin", "test.bin")),
}


def source(name: str) -> Source:
    if name not in SOURCES:
        raise UserError(f"data set: got {name!r}; allowed: {', '.join(SOURCES)}{did_you_mean(name, SOURCES)}")
    return SOURCES[name]


def data_root() -> Path:
    """Where fetched data sets go: ``$NAS_CACHE/data``, by default ``~/.cache/nas/data``."""
    return Path(os.environ.get("NAS_CACHE") or Path.home() / ".cache" / "nas").expanduser() / "data"


def base_url(src: Source) -> str:
    url = os.environ.get("NAS_DATA_URL") or src.base_url
    return url if url.endswith("/") else url + "/"


def expected_md5(src: Source) -> dict[str, str]:
    """The published checksums, with any ``NAS_DATA_MD5=file=md5,...`` overrides applied."""
    md5 = dict(src.md5)
    for item in filter(None, (os.environ.get("NAS_DATA_MD5") or "").split(",")):
        file, sep, digest = item.strip().partition("=")
        if not sep or file not in md5 or len(digest) != 32:
            raise UserError(f"NAS_DATA_MD5: got {item!r}; allowed: FILE=MD5 (32 hex digits) with FILE one of "
                            + ", ".join(md5))
        md5[file] = digest.lower()
    return md5


def candidate_dirs(src: Source, data_dir: str | os.PathLike | None) -> list[Path]:
    """Every folder that may hold the set, first match wins: data_dir (and its <name>/), the cache, system dirs."""
    roots = [Path(data_dir).expanduser(), Path(data_dir).expanduser() / src.name] if data_dir else []
    roots += [data_root() / src.name] + [Path(d) for d in src.system_dirs]
    found = []
    for root in roots:
        found += [root / src.folder, root] if src.folder else [root]
    return found


def data_file(folder: Path, name: str) -> Path | None:
    for path in (folder / name, folder / f"{name}.gz"):
        if path.is_file():
            return path
    return None


def locate(src: Source, data_dir: str | os.PathLike | None) -> dict[str, Path]:
    """The needed files (plain or gzipped) from the first folder that holds them all; else one UserError line."""
    looked = candidate_dirs(src, data_dir)
    for folder in looked:
        files = {name: data_file(folder, name) for name in src.needed}
        if all(files.values()):
            return files
    raise UserError(f"dataset: {src.name} not found (looked for {src.needed[0]} in "
                    f"{', '.join(str(p) for p in looked)}); run `nas data fetch {src.name}` or set data_dir=")
