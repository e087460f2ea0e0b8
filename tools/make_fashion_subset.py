"""Make the Fashion-MNIST subset shipped inside nas (nas/data/fashion_mnist_subset.npz) and its notice.

    python tools/make_fashion_subset.py [--source /usr/share/datasets/fashion-mnist] [--seed 0]

Reads the official IDX files (Debian's dataset-fashion-mnist package puts them in the default --source;
`nas data fetch fashion-mnist` puts them in ~/.cache/nas/data/fashion-mnist), draws a stratified random
subset (the same number of images of every class, each class's draw sorted by original index), and
writes it as a compressed .npz whose bytes depend only on the input and the seed: fixed zip timestamps,
so re-running the script reproduces the sha256 recorded in nas/data/catalog.py.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import zipfile
from pathlib import Path

import numpy as np

from nas.data.formats import read_idx
from nas.data.sources import data_file
from nas.io import write_bytes, write_text

PACKAGE_DATA = Path(__file__).resolve().parent.parent / "nas" / "data"
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest zip timestamp: the same bytes on every run


def stratified_indices(labels: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    picks = [np.sort(rng.choice(np.flatnonzero(labels == c), per_class, replace=False)) for c in range(10)]
    return np.concatenate(picks)


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """What np.savez_compressed writes, minus its wall-clock timestamps."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, array in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=ZIP_EPOCH)
            info.external_attr = 0o644 << 16
            archive.writestr(info, member.getvalue(), compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
    return buffer.getvalue()


def notice(args, counts: dict[str, np.ndarray], size: int, sha256: str) -> str:
    table = "\n".join(f"| {c} | {name} | {counts['train'][c]} | {counts['test'][c]} |" for c, name in enumerate(CLASSES))
    return f"""# Fashion-MNIST subset shipped with nas

`fashion_mnist_subset.npz` ({size:,} bytes, sha256 `{sha256}`) is a stratified subset of
Fashion-MNIST, loaded by `dataset=fashion-mnist` (the loader refuses the file unless its sha256 matches).

## Licence

Fashion-MNIST: Copyright (c) 2017 Zalando SE, https://tech.zalando.com
(https://github.com/zalandoresearch/fashion-mnist), released under the MIT licence:

Permission is hereby granted, free of charge, to any person obtaining a copy of this software and
associated documentation files (the "Software"), to deal in the Software without restriction, including
without limitation the rights to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is furnished to do so, subject to the
following conditions:

The above copyright notice and this permission notice shall be included in all copies or substantial
portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING BUT NOT
LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO
EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER
IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE
USE OR OTHER DEALINGS IN THE SOFTWARE.

## How it was made

`python tools/make_fashion_subset.py --seed {args.seed} --train-per-class {args.train_per_class} \\
--test-per-class {args.test_per_class}` on the official IDX files (as packaged by Debian's
`dataset-fashion-mnist`, which re-gzips them without a stored file name, so their md5s differ from the
published ones while the IDX content is Zalando's). Per class, it draws
{args.train_per_class} images at random from the official training split and {args.test_per_class} from
the official test split (numpy `default_rng({args.seed})`), keeps each class's draw in original order, and
stores them uint8 in a zip with fixed timestamps, so re-running the script gives the same bytes.

| array | shape | content |
|---|---|---|
| `train_x`, `train_y` | {args.train_per_class * 10} x 28 x 28, {args.train_per_class * 10} | from the official training split |
| `test_x`, `test_y` | {args.test_per_class * 10} x 28 x 28, {args.test_per_class * 10} | from the official test split |
| `train_index`, `test_index` | | each image's index in its official split |

The search holds out a stratified part of `train_x` (the `holdout` fraction, 20 % by default: 800 + 200
per class) to measure accuracy; `test_x` is the untouched official test slice.

| label | class | train | test |
|---|---|---|---|
{table}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default="/usr/share/datasets/fashion-mnist", help="folder of the official IDX files")
    parser.add_argument("--out", type=Path, default=PACKAGE_DATA / "fashion_mnist_subset.npz")
    parser.add_argument("--train-per-class", type=int, default=1000)
    parser.add_argument("--test-per-class", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    def read(name):
        path = data_file(Path(args.source), name)
        if path is None:
            raise SystemExit(f"{name}(.gz) not in {args.source}; `apt-get install dataset-fashion-mnist` or "
                             f"`nas data fetch fashion-mnist` and pass --source")
        return read_idx(path)

    rng = np.random.default_rng(args.seed)
    train_x, train_y = read("train-images-idx3-ubyte"), read("train-labels-idx1-ubyte")
    test_x, test_y = read("t10k-images-idx3-ubyte"), read("t10k-labels-idx1-ubyte")
    train_index = stratified_indices(train_y, args.train_per_class, rng)
    test_index = stratified_indices(test_y, args.test_per_class, rng)
    data = npz_bytes({"train_x": train_x[train_index], "train_y": train_y[train_index],
                      "test_x": test_x[test_index], "test_y": test_y[test_index],
                      "train_index": train_index.astype(np.uint16), "test_index": test_index.astype(np.uint16)})
    sha256 = hashlib.sha256(data).hexdigest()
    write_bytes(args.out, data)
    counts = {"train": np.bincount(train_y[train_index], minlength=10),
              "test": np.bincount(test_y[test_index], minlength=10)}
    write_text(args.out.with_name("FASHION_MNIST_SUBSET.md"), notice(args, counts, len(data), sha256))
    print(f"{args.out}: {len(data):,} bytes, sha256 {sha256}")
    print(f"train per class {counts['train'].tolist()}, test per class {counts['test'].tolist()}")


if __name__ == "__main__":
    main()
