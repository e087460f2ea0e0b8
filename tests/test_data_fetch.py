"""`nas data fetch` against a local http.server serving tiny archives in the official formats (no network)."""

import functools
import gzip
import hashlib
import http.server
import io
import os
import stat
import subprocess
import sys
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest

from nas.cli import main
from nas.evaluate.data import load_dataset

ROOT = Path(__file__).resolve().parent.parent


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path):
    """A local HTTP server over tmp_path/served; yields (folder, base URL)."""
    served = tmp_path / "served"
    served.mkdir()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(served)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def idx_gz(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + np.array(array.shape, ">u4").tobytes()
    return gzip.compress(header + array.astype(np.uint8).tobytes())


def tar_gz(path: Path, members: dict[str, bytes]) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))


def tiny_cifar10(folder: Path) -> Path:
    """cifar-10-binary.tar.gz's layout with 10 records per batch: 1 label byte + 3,072 pixel bytes each."""
    rng = np.random.default_rng(0)
    batches = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
    members = {"cifar-10-batches-bin/batches.meta.txt": b"airplane\n"}
    for name in batches:
        records = [bytes([label]) + rng.integers(0, 256, 3072, dtype=np.uint8).tobytes() for label in range(10)]
        members[f"cifar-10-batches-bin/{name}"] = b"".join(records)
    tar_gz(folder / "cifar-10-binary.tar.gz", members)
    return folder / "cifar-10-binary.tar.gz"


def tiny_cifar100(folder: Path) -> Path:
    """cifar-100-binary.tar.gz's layout: 2 label bytes (coarse, fine) + 3,072 pixel bytes per record."""
    rng = np.random.default_rng(1)
    members = {}
    for name, copies in (("train.bin", 2), ("test.bin", 1)):
        records = [bytes([fine // 5, fine]) + rng.integers(0, 256, 3072, dtype=np.uint8).tobytes()
                   for fine in range(100) for _ in range(copies)]
        members[f"cifar-100-binary/{name}"] = b"".join(records)
    tar_gz(folder / "cifar-100-binary.tar.gz", members)
    return folder / "cifar-100-binary.tar.gz"


def tiny_fashion(folder: Path) -> dict[str, str]:
    rng = np.random.default_rng(2)
    for split, n in (("train", 40), ("t10k", 20)):
        (folder / f"{split}-images-idx3-ubyte.gz").write_bytes(idx_gz(rng.integers(0, 256, (n, 28, 28))))
        (folder / f"{split}-labels-idx1-ubyte.gz").write_bytes(idx_gz(np.arange(n) % 10))
    return {p.name: md5(p) for p in folder.glob("*-ubyte.gz")}


def use(monkeypatch, tmp_path, url: str, checksums: dict[str, str] | None = None) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("NAS_CACHE", str(cache))
    monkeypatch.setenv("NAS_DATA_URL", url)
    if checksums:
        monkeypatch.setenv("NAS_DATA_MD5", ",".join(f"{file}={digest}" for file, digest in checksums.items()))
    return cache / "data"


def test_fetch_cifar10_then_load_it(server, tmp_path, monkeypatch, capsys):
    served, url = server
    archive = tiny_cifar10(served)
    data_root = use(monkeypatch, tmp_path, url, {archive.name: md5(archive)})
    assert main(["data", "fetch", "cifar10"]) == 0
    assert capsys.readouterr().out.strip() == str(data_root / "cifar10")
    assert sorted(os.listdir(data_root)) == ["cifar10"]  # no temp folder, no archive left beside it
    assert (data_root / "cifar10" / "cifar-10-batches-bin" / "test_batch.bin").stat().st_size == 10 * 3073
    data = load_dataset("cifar10", measure_on="test")  # found in the cache without data_dir
    assert data.train_x.shape == (50, 3, 32, 32) and data.test_x.shape == (10, 3, 32, 32) and data.num_classes == 10
    assert main(["data", "fetch", "cifar10"]) == 0  # a second fetch finds it and downloads nothing
    assert "already in" in capsys.readouterr().err


def test_fetch_cifar100_into_a_chosen_dir_uses_fine_labels(server, tmp_path, monkeypatch):
    served, url = server
    archive = tiny_cifar100(served)
    use(monkeypatch, tmp_path, url, {archive.name: md5(archive)})
    assert main(["data", "fetch", "cifar100", "--dir", str(tmp_path / "mine")]) == 0
    data = load_dataset("cifar100", data_dir=str(tmp_path / "mine"), measure_on="test")
    assert data.num_classes == 100 and sorted(data.test_y.tolist()) == list(range(100)) and len(data.train_x) == 200


def test_fetch_fashion_mnist_full(server, tmp_path, monkeypatch):
    served, url = server
    data_root = use(monkeypatch, tmp_path, url, tiny_fashion(served))
    assert main(["data", "fetch", "fashion-mnist"]) == 0
    assert sorted(os.listdir(data_root / "fashion-mnist")) == sorted(p.name for p in served.iterdir())
    data = load_dataset("fashion-mnist-full", resolution=14, holdout=0.25)
    assert data.train_x.shape == (30, 3, 14, 14) and len(data.test_x) == 10


def test_fetched_files_get_nas_modes_whatever_the_archive_recorded(server, tmp_path, monkeypatch):
    served, url = server
    with tarfile.open(tiny_cifar100(served)) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
    with tarfile.open(served / "cifar-100-binary.tar.gz", "w:gz") as tar:  # the same files, recorded private
        folder = tarfile.TarInfo("cifar-100-binary")
        folder.type, folder.mode = tarfile.DIRTYPE, 0o700
        tar.addfile(folder)
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o600
            tar.addfile(info, io.BytesIO(data))
    data_root = use(monkeypatch, tmp_path, url, {"cifar-100-binary.tar.gz": md5(served / "cifar-100-binary.tar.gz")})
    assert main(["data", "fetch", "cifar100"]) == 0
    target = data_root / "cifar100"
    modes = {p.relative_to(target).as_posix(): stat.S_IMODE(p.stat().st_mode) for p in [target, *target.rglob("*")]}
    assert modes == {".": 0o755, "cifar-100-binary": 0o755, "cifar-100-binary/train.bin": 0o644,
                     "cifar-100-binary/test.bin": 0o644}


def fetch_in_a_process(tmp_path, url: str, *args: str, checksums: str = "") -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NAS_CACHE": str(tmp_path / "cache"), "NAS_DATA_URL": url,
           "NAS_DATA_MD5": checksums}
    return subprocess.run([sys.executable, "-m", "nas.cli", "data", "fetch", *args], capture_output=True, text=True,
                          env=env, timeout=120)


def test_a_checksum_mismatch_keeps_nothing(server, tmp_path):
    served, url = server
    tiny_cifar10(served)  # the published md5 is the real archive's, so this one can't match it
    done = fetch_in_a_process(tmp_path, url, "cifar10")
    assert done.returncode == 2
    error = [line for line in done.stderr.splitlines() if line.startswith("nas: error:")]
    assert len(error) == 1 and "Traceback" not in done.stderr
    assert "cifar-10-binary.tar.gz" in error[0] and "expected c32a1d4ab5d03f1284b67883e8d87530" in error[0]
    assert "downloading " + url in done.stderr  # not a terminal: plain progress lines
    assert list((tmp_path / "cache" / "data").iterdir()) == []  # no partial folder, no archive, no temp folder


def test_a_wrong_override_and_a_missing_file_keep_nothing(server, tmp_path):
    served, url = server
    checksums = tiny_fashion(served)
    checksums["t10k-labels-idx1-ubyte.gz"] = "0" * 32  # the last of four files: three are already down
    overrides = ",".join(f"{f}={m}" for f, m in checksums.items())
    done = fetch_in_a_process(tmp_path, url, "fashion-mnist", checksums=overrides)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 5  # 4 "downloading" lines, 1 error
    assert "t10k-labels-idx1-ubyte.gz" in done.stderr.splitlines()[-1] and "(NAS_DATA_MD5)" in done.stderr
    assert list((tmp_path / "cache" / "data").iterdir()) == []
    (served / "train-images-idx3-ubyte.gz").unlink()
    done = fetch_in_a_process(tmp_path, url, "fashion-mnist", "--dir", str(tmp_path / "mine"))
    assert done.returncode == 2 and "could not download" in done.stderr and "404" in done.stderr
    assert list((tmp_path / "mine").iterdir()) == []


def test_an_archive_that_escapes_its_folder_is_refused(server, tmp_path, monkeypatch):
    served, url = server
    tar_gz(served / "cifar-10-binary.tar.gz", {"../escaped.bin": b"x" * 3073})
    data_root = use(monkeypatch, tmp_path, url, {"cifar-10-binary.tar.gz": md5(served / "cifar-10-binary.tar.gz")})
    assert main(["data", "fetch", "cifar10"]) == 2
    assert list(data_root.iterdir()) == [] and not (tmp_path / "cache" / "escaped.bin").exists()
