"""`nas train FAMILY_DIR`: train every member of a `nas scale` family with one recipe; accuracy against FLOPs.

Each member trains into ``FAMILY_DIR/train/<member>/`` exactly as `nas train <member>.yaml` would, so a
killed family resumes member by member (a finished member is not trained again, a half-trained one
continues from its last epoch). Then ``family_accuracy.csv`` and ``family_accuracy.png`` (held-out
top-1 against FLOPs, EfficientNet's Figure 1) go into FAMILY_DIR.

Resolution: a proxy data set is far smaller than the specs' 224 pixels, so each member trains at the
data set's resolution (or ``resolution=``) times its own resolution growth, member.resolution /
reference, rounded, as the scaling grid does. The reference is the base's resolution when the folder
kept it (``base.yaml``, written by `nas scale --train` or `--compare`, or the grid's ``grid/base.yaml``),
else the smallest member's. FLOPs and params are the members' own, at
their own resolution (family.csv).

An optional ``scaling`` column of family.csv (compound, width, depth, resolution: members scaled one way
only, at matched FLOPs, as in EfficientNet's Figure 8) is carried over and drawn as one line per value;
without it every member is "compound".
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .errors import UserError
from .io import new_figure, save_figure, write_text
from .spec import load

FAMILY_CSV = "family.csv"
COLUMNS = ("scaling", "phi", "name", "resolution", "train_resolution", "params", "flops_multiply_adds", "epochs",
           "top1", "ema_top1", "folder")


def is_family_folder(path: Path) -> bool:
    return path.is_dir() and (path / FAMILY_CSV).exists()


@dataclass
class FamilyTrainResult:
    family_dir: Path
    rows: list[dict]

    def report(self) -> str:
        lines = [f"{'phi':>3}  {'member':<28} {'train px':>8} {'FLOPs':>12} {'top-1':>7} {'EMA':>7}"]
        lines += [f"{row['phi']:>3}  {row['name']:<28} {row['train_resolution']:>8} "
                  f"{int(row['flops_multiply_adds']):>12,} {row['top1']:>7.4f} {row['ema_top1']:>7.4f}"
                  for row in self.rows]
        lines.append(f"-> {self.family_dir / 'family_accuracy.csv'}, {self.family_dir / 'family_accuracy.png'}")
        return "\n".join(lines)


def _members(family_dir: Path) -> list[dict]:
    with open(family_dir / FAMILY_CSV, newline="") as fh:
        members = list(csv.DictReader(fh))
    missing = [m["file"] for m in members if not (family_dir / m["file"]).exists()]
    if not members or missing:
        raise UserError(f"family: {family_dir} lists {', '.join(missing) or 'no members'} in {FAMILY_CSV} but "
                        f"the files are not there; allowed: a folder written by nas scale")
    return members


def _reference_resolution(family_dir: Path, members: list[dict]) -> int:
    for base in (family_dir / "base.yaml", family_dir / "grid" / "base.yaml"):
        if base.exists():
            return load(base).resolution
    return min(int(m["resolution"]) for m in members)


def _data_resolution(pairs: list[str]) -> int:
    from .evaluate.data import load_dataset
    from .settings import DEFAULT_DATASET
    from .train_run import parse_keys

    given = parse_keys(pairs)
    if given.get("resolution"):
        return given["resolution"]
    return load_dataset(given.get("dataset", DEFAULT_DATASET), seed=given.get("seed", 0),
                        data_dir=given.get("data_dir")).resolution


def check_family_recipe(pairs: list[str]) -> None:
    """The recipe's key=value checked, before anything is trained; one line for the first mistake."""
    from .train_run import parse_keys

    if "out" in parse_keys(pairs):
        raise UserError("out: a family trains into FAMILY_DIR/train/<member>/; allowed: no out= with a family")


def train_family(family_dir: Path, pairs: list[str], progress: bool = True,
                 say: Callable[[str], None] = print) -> FamilyTrainResult:
    """Train every member listed in FAMILY_DIR/family.csv with the recipe in ``pairs`` (nas.settings.recipe's keys)."""
    from .train_run import run_train

    check_family_recipe(pairs)
    members = _members(family_dir)
    base_pixels, reference = _data_resolution(pairs), _reference_resolution(family_dir, members)
    rows = []
    for number, member in enumerate(members, 1):
        pixels = max(8, round(base_pixels * int(member["resolution"]) / reference))
        say(f"member {number}/{len(members)}: {member['name']} at {pixels}x{pixels}")
        own = [p for p in pairs if not p.startswith("resolution=")]
        result = run_train(str(family_dir / member["file"]), [*own, f"resolution={pixels}",
                                                              f"out={family_dir / 'train' / member['name']}"],
                           progress=progress, say=say)
        last = result.history[-1]
        rows.append({"scaling": member.get("scaling") or "compound", "phi": int(member["phi"]),
                     "name": member["name"], "resolution": int(member["resolution"]),
                     "train_resolution": pixels, "params": int(member["params"]),
                     "flops_multiply_adds": int(member["flops_multiply_adds"]), "epochs": last["epoch"],
                     "top1": last["top1"], "ema_top1": last["ema_top1"],
                     "folder": str(result.out_dir.relative_to(family_dir))})
        _write_table(family_dir / "family_accuracy.csv", rows)  # what is done so far, after every member
    _plot(family_dir / "family_accuracy.png", rows, family_dir.name)
    return FamilyTrainResult(family_dir, rows)


def _write_table(path: Path, rows: list[dict]) -> None:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, text.getvalue())


def _plot(path: Path, rows: list[dict], title: str) -> None:
    figure, (axes,) = new_figure(1, (6, 4))
    for scaling in dict.fromkeys(row["scaling"] for row in rows):  # one line per way of scaling, in order
        line = sorted((r for r in rows if r["scaling"] == scaling), key=lambda r: r["flops_multiply_adds"])
        flops = [row["flops_multiply_adds"] for row in line]
        drawn = axes.plot(flops, [row["top1"] for row in line], "o-", label=f"{scaling}: raw weights")
        axes.plot(flops, [row["ema_top1"] for row in line], "s--", color=drawn[0].get_color(), alpha=0.6,
                  label=f"{scaling}: EMA of weights")
    for row in (r for r in rows if r["scaling"] == "compound"):
        axes.annotate(f"phi={row['phi']}", (row["flops_multiply_adds"], row["top1"]), textcoords="offset points",
                      xytext=(4, -12), fontsize=8)
    axes.set(xscale="log", xlabel="FLOPs (multiply-adds, at the member's own resolution)", ylabel="held-out top-1",
             title=f"{title}: accuracy against FLOPs")
    axes.legend()
    figure.tight_layout()
    save_figure(figure, path)


def train(source: str, pairs: list[str], progress: bool = True, say: Callable[[str], None] = print):
    """`nas train SOURCE`: every member of a `nas scale` family folder, or one spec (train_run.run_train)."""
    from .train_run import run_train

    if is_family_folder(Path(source)):
        return train_family(Path(source), pairs, progress, say)
    return run_train(source, pairs, progress, say)
