"""What ``nas scale`` writes: family.csv, the family's specs and plot; grid.csv and its plot. All through nas.io."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

from ..io import new_figure, save_figure, write_text
from ..spec import save
from .compound import best_result, constraint_product, is_finite_number
from .family import FamilyRow

_FAMILY_CSV = ("scaling", "phi", "name", "depth_multiplier", "width_multiplier", "resolution", "params",
               "flops_multiply_adds", "flops_ratio", "expected_ratio", "drift", "file")


def write_family(rows: list[FamilyRow], out_dir, base_name: str | None = None) -> list[Path]:
    """Write ``<name>.yaml`` per member, ``family.csv`` and ``family.png`` into ``out_dir``; return the paths.

    Every file is written whole or not at all. ``base_name`` titles the plot (default: the first
    member's name without its ``-phi<k>``).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    records = []
    for row in rows:
        path = out_dir / f"{row.name}.yaml"
        save(row.spec, path)
        written.append(path)
        records.append({"scaling": row.scaling, "phi": row.phi, "name": row.name,
                        "depth_multiplier": row.depth_multiplier,
                        "width_multiplier": row.width_multiplier, "resolution": row.resolution,
                        "params": row.params, "flops_multiply_adds": row.flops,
                        "flops_ratio": f"{row.flops_ratio:.6g}", "expected_ratio": f"{row.expected_ratio:.6g}",
                        "drift": f"{row.drift:.6g}", "file": path.name})
    written.append(_write_csv(out_dir / "family.csv", _FAMILY_CSV, records))
    if base_name is None and rows:
        base_name = re.sub(r"-phi\d+$", "", rows[0].name)
    compound = [row for row in rows if row.scaling == "compound"]  # the plot is of phi; single ones match FLOPs
    written.append(plot_family(compound, out_dir / "family.png", base_name or "base"))
    return written


def plot_family(rows: list[FamilyRow], path, base_name: str) -> Path:
    """FLOPs (multiply-adds) and params against phi, log scale, with the ideal FLOPs growth dashed."""
    figure, (ax,) = new_figure(1, (6.0, 4.0))
    phis = [row.phi for row in rows]
    ax.plot(phis, [row.flops for row in rows], "o-", label="FLOPs (multiply-adds)")
    if rows:
        base_flops = rows[0].flops / rows[0].flops_ratio
        ax.plot(phis, [base_flops * row.expected_ratio for row in rows], "--", color="grey",
                label="ideal FLOPs: base x (alpha beta^2 gamma^2)^phi")
    ax.plot(phis, [row.params for row in rows], "s-", label="params")
    ax.set_yscale("log")
    ax.set_xlabel("phi (compound coefficient)")
    ax.set_ylabel("count")
    ax.set_xticks(phis)
    ax.set_title(f"Compound scaling of {base_name}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    return save_figure(figure, path)


# --------------------------------------------------------------------------------------------
# The grid search's results
# --------------------------------------------------------------------------------------------

_GRID_CSV = ("alpha", "beta", "gamma", "product", "flops_multiply_adds", "accuracy", "state")


def write_grid(results: list[dict], out_dir) -> list[Path]:
    """Write ``grid.csv`` and ``grid.png`` from dicts {alpha, beta, gamma, flops, accuracy, state}.

    ``product`` is alpha*beta^2*gamma^2; keys beyond the known ones become extra columns (sorted).
    A missing or None accuracy (a failed or pruned candidate) is an empty cell and a grey cross.
    """
    out_dir = Path(out_dir)
    extra = sorted({key for r in results for key in r} - {"alpha", "beta", "gamma", "flops", "accuracy", "state"})
    records = []
    for r in results:
        record = {"alpha": r["alpha"], "beta": r["beta"], "gamma": r["gamma"],
                  "product": f"{constraint_product(r['alpha'], r['beta'], r['gamma']):.6g}",
                  "flops_multiply_adds": _cell(r.get("flops")), "accuracy": _cell(r.get("accuracy")),
                  "state": _cell(r.get("state"))}
        record.update({key: _cell(r.get(key)) for key in extra})
        records.append(record)
    csv_path = _write_csv(out_dir / "grid.csv", _GRID_CSV + tuple(extra), records)
    return [csv_path, plot_grid(results, out_dir / "grid.png")]


def plot_grid(results: list[dict], path) -> Path:
    """Left: accuracy of each candidate (labelled alpha/beta/gamma). Right: alpha against beta coloured by
    accuracy (gamma follows from the constraint). The best candidate is starred in both."""
    figure, (left, right) = new_figure(2, (13.0, 4.8))
    best = best_result(results)
    scored = [(i, r) for i, r in enumerate(results) if is_finite_number(r.get("accuracy"))]
    failed = [r for r in results if not is_finite_number(r.get("accuracy"))]
    left.plot([i for i, _ in scored], [r["accuracy"] for _, r in scored], "o", label="accuracy")
    if best is not None:
        left.plot([results.index(best)], [best["accuracy"]], "*", markersize=14, color="tab:red", label="best")
    left.set_xticks(range(len(results)))
    left.set_xticklabels([f"{r['alpha']:g}/{r['beta']:g}/{r['gamma']:g}" for r in results], rotation=90,
                         fontsize="x-small")
    left.set_xlabel("candidate alpha/beta/gamma")
    left.set_ylabel("accuracy at phi = 1")
    left.set_title(f"{len(scored)} scored, {len(failed)} failed or pruned")
    left.grid(True, alpha=0.3)
    left.legend(fontsize="small")
    if scored:
        points = right.scatter([r["alpha"] for _, r in scored], [r["beta"] for _, r in scored],
                               c=[r["accuracy"] for _, r in scored], cmap="viridis", s=60)
        figure.colorbar(points, ax=right, label="accuracy")
    if failed:
        right.plot([r["alpha"] for r in failed], [r["beta"] for r in failed], "x", color="grey",
                   label="failed or pruned")
    if best is not None:
        right.plot([best["alpha"]], [best["beta"]], "*", markersize=16, color="tab:red",
                   label=f"best: {best['alpha']:g}, {best['beta']:g}, {best['gamma']:g}")
    right.set_xlabel("alpha (depth)")
    right.set_ylabel("beta (width)")
    right.set_title("gamma (resolution) follows from alpha beta^2 gamma^2 ~ 2")
    right.grid(True, alpha=0.3)
    if failed or best is not None:
        right.legend(fontsize="small")
    figure.tight_layout()
    return save_figure(figure, path)


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------

def _cell(value):
    return "" if value is None else value


def _write_csv(path: Path, columns, records: list[dict]) -> Path:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    write_text(path, buffer.getvalue())
    return path
