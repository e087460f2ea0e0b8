"""What a search leaves in its run directory, from backend-neutral trial records.

trials.csv, best.yaml, pareto/*.yaml, pareto.png and report.md, each written whole or not at all.
A record is a dict: number, state, decisions and the RECORD_KEYS that run_candidate measured (a Ray
record also has its trial_id). ``accuracy`` is the evaluator's score: held-out accuracy when it trains,
the proxy score for ``evaluator=zero_cost:NAME``.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from ..errors import UserError
from ..io import save_figure, write_text
from ..spec import loads, replace, save
from ..units import human
from .candidate import skips_hopeless
from .preflight import proxy_resolution

RECORD_KEYS = ("params", "flops", "mac", "cost", "accuracy", "reward", "seconds", "spec_hash", "spec_yaml", "note",
               "cached", "proxy_score", "curve", "pruned_epoch", "skipped")
CSV_COLUMNS = ("stage", "number", "seed", "state", "params", "flops", "mac", "cost", "accuracy", "reward", "seconds",
               "spec_hash", "cached", "note", "decisions")


def completed(records: list[dict]) -> list[dict]:
    return [r for r in records if r["state"] == "complete" and r.get("reward") is not None]


def best_record(records: list[dict]) -> dict | None:
    done = completed(records)
    return max(done, key=lambda r: (r["reward"], -r["number"])) if done else None


def pareto_front(records: list[dict]) -> list[dict]:
    """Completed trials no other trial beats on both accuracy (higher) and cost (lower); one per architecture."""
    done = {}
    for r in completed(records):
        done.setdefault(r["spec_hash"], r)
    points = sorted(done.values(), key=lambda r: (r["cost"], -r["accuracy"]))
    front, best_acc = [], float("-inf")
    for r in points:
        if r["accuracy"] > best_acc:
            front.append(r)
            best_acc = r["accuracy"]
    return front


def write_trials_csv(run_dir: Path, records: list[dict], final_records: list[dict] = ()) -> None:
    """Both stages: the search's trials (stage "search"), then the final selection's (stage "final", with seed)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    ordered = sorted(records, key=lambda r: r["number"]) + sorted(final_records, key=lambda r: r["number"])
    for r in ordered:
        row = {k: r.get(k) for k in CSV_COLUMNS}
        row["stage"] = r.get("stage", "search")
        row["decisions"] = json.dumps(r.get("decisions", {}), sort_keys=True)
        writer.writerow(row)
    write_text(run_dir / "trials.csv", buffer.getvalue())


def trial_spec(record: dict, name: str):
    return replace(loads(record["spec_yaml"], source=f"trial {record['number']}"), name=name)


def write_pareto(run_dir: Path, records: list[dict], run_name: str) -> list[dict]:
    front = pareto_front(records)
    folder = run_dir / "pareto"
    folder.mkdir(exist_ok=True)
    keep = set()
    for r in front:
        path = folder / f"trial-{r['number']:04d}.yaml"
        save(trial_spec(r, f"{run_name}-trial{r['number']}"), path)
        keep.add(path.name)
    for stale in folder.glob("trial-*.yaml"):
        if stale.name not in keep:
            stale.unlink()
    return front


def plot_pareto(run_dir: Path, records: list[dict], front: list[dict], best: dict | None, target: float,
                objective: str) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    done = completed(records)
    if not done:
        return
    fig = Figure(figsize=(6.4, 4.4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.scatter([r["cost"] for r in done], [r["accuracy"] for r in done], s=18, alpha=0.6, label="trials")
    ax.plot([r["cost"] for r in front], [r["accuracy"] for r in front], "-o", color="C3", ms=4, label="Pareto front")
    if best:
        ax.scatter([best["cost"]], [best["accuracy"]], marker="*", s=220, color="C2", zorder=5, label="best reward")
    ax.axvline(target, ls="--", color="grey", lw=1, label=f"target {human(target)}")
    units = {"flops": "FLOPs (multiply-adds)", "latency": "latency (ms)", "energy": "energy (J/image)"}
    unit = units.get(objective, objective)
    ax.set_xscale("log")
    ax.set_xlabel(unit)
    ax.set_ylabel("proxy accuracy (held-out)")
    ax.set_title("Search: accuracy vs cost")
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, run_dir / "pareto.png", dpi=110)


def pruning_line(records: list[dict], config) -> str:
    """How many trials stopped, and when: after which epoch (the pruner), untrained as hopeless (skip_hopeless),
    or untrained otherwise (a hard limit, the hybrid evaluator's screen)."""
    at: dict[str, int] = {}
    for r in records:
        if r["state"] != "pruned":
            continue
        epoch = r.get("pruned_epoch") or (len(r["curve"]) if r.get("curve") else None)
        label = f"after epoch {epoch}" if epoch else "skipped untrained" if r.get("skipped") else "rejected untrained"
        at[label] = at.get(label, 0) + 1
    how = (f"the pruner ({config.pruner}) compares the reward at each epoch before the last"
           + ("; a candidate whose reward could not beat the best so far even at accuracy 1 is skipped untrained"
              if skips_hopeless(config) else ""))
    if not at:
        return f"pruning: no trial was stopped ({how})."
    return (f"pruning: {sum(at.values())} trials stopped: "
            + ", ".join(f"{n} {label}" for label, n in sorted(at.items())) + f" ({how}).")


def side_text(config) -> str:
    """' at N px', the side the proxy trains at; '' for a scale grid, whose candidates each train at their own
    scaled side (its config names the grid, not a space)."""
    try:
        return f" at {proxy_resolution(config)} px"
    except UserError:
        return ""


def images_text(config) -> str:
    """' on N of its training images' where train_images cuts the training split; '' where it does not."""
    return f" on {config.train_images:,} of its training images" if config.train_images else ""


def write_report(run_dir: Path, records: list[dict], best: dict | None, front: list[dict], config,
                 final_lines: list[str] = ()) -> str:
    counts = {}
    for r in records:
        counts[r["state"]] = counts.get(r["state"], 0) + 1
    seconds = sum(r.get("seconds") or 0 for r in records)
    lines = [f"# Search report: {run_dir.name}", "",
             f"space `{config.space}`, objective {config.objective}, target {human(config.cost_target())}, "
             f"reward {config.reward} (w = {config.w}), sampler {config.sampler}, evaluator {config.evaluator}, "
             f"data set {config.dataset}{side_text(config)}{images_text(config)}, {config.train.epochs} epochs per "
             "candidate.", "",
             "trials: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
             + f"; {seconds:.0f} s evaluating.", "",
             pruning_line(records, config), ""]
    if config.objective == "latency":  # a latency figure means nothing without where and how it was taken
        how = "predicted from the per-device latency table" if config.latency == "predicted" else "measured"
        lines += [f"latency: {how}, on {config.latency_device} with {config.latency_threads} torch thread(s), "
                  "batch 1, at each candidate's own resolution.", ""]
    if best:
        lines += [f"**best** (trial {best['number']}): reward {best['reward']:.4f}, accuracy {best['accuracy']:.4f}, "
                  f"{human(best['flops'])} FLOPs (multiply-adds), {best['params']:,} params"
                  + (" (by proxy reward; best.yaml is the final selection's winner, below)" if final_lines
                     else " -> best.yaml"), ""]
    else:
        lines += ["no trial completed, so there is no best.yaml yet.", ""]
    if front:
        lines += ["Pareto front (accuracy vs cost) -> pareto/:", "",
                  "| trial | accuracy | cost | FLOPs | params | reward |", "|---|---|---|---|---|---|"]
        lines += [f"| {r['number']} | {r['accuracy']:.4f} | {r['cost']:.4g} | {human(r['flops'])} | {r['params']:,} "
                  f"| {r['reward']:.4f} |" for r in front]
    lines += ["", *final_lines] if final_lines else []
    text = "\n".join(lines) + "\n"
    write_text(run_dir / "report.md", text)
    return text


def write_all(run_dir: Path, records: list[dict], config, final_records: list[dict] = (),
              final_best: dict | None = None, final_lines: list[str] = ()) -> dict | None:
    """Every output of a run; returns the best record (or None). With a final selection (nas.search.final):
    its trials join trials.csv, its winner ``final_best`` is best.yaml and ``final_lines`` join the report."""
    write_trials_csv(run_dir, records, final_records)
    best = best_record(records)
    chosen = final_best or best
    if chosen:
        save(trial_spec(chosen, f"{run_dir.name}-best"), run_dir / "best.yaml")
    front = write_pareto(run_dir, records, run_dir.name)
    star = {**chosen, "accuracy": chosen.get("proxy_accuracy", chosen["accuracy"])} if chosen else None  # a proxy point
    plot_pareto(run_dir, records, front, star, config.cost_target(), config.objective)
    write_report(run_dir, records, best, front, config, list(final_lines))
    return chosen
