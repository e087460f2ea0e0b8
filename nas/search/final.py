"""The final selection: the search's best few candidates trained again, longer and under several seeds,
before one of them is called best.

A proxy training is short and noisy: near the top, neighbours swap. So the top ``final_top_k`` distinct
candidates by proxy reward are re-trained for ``final_epochs`` (default 3x the search's epochs) under
``final_seeds`` seeds; a candidate's final reward is reward(mean accuracy over its seeds, cost), and the
best final reward is best.yaml.

A latency search that predicted its costs (latency=predicted, the default) has its finalists timed
end to end before they train, and their final rewards use that measurement: a search that minimises a
predicted latency picks, among near-equal candidates, the ones whose prediction errs low, so the
winner's own prediction is the least trustworthy (bench/flops_vs_latency). Each finalist is measured
once, and a resumed stage keeps the figure its earlier trainings recorded.

The stage is a second Optuna study ("nas-final") in the run's journal, each (candidate, seed) pair an
enqueued trial, so a killed run resumes it like the search: finished pairs are kept, an interrupted one
is set aside and queued again (optuna_backend.recover_interrupted_trials). It runs in this process
whatever the backend (with backend=ray too: it is a handful of trainings).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import optuna
from optuna.trial import TrialState

from .. import reward as reward_fns
from ..errors import Interrupted
from ..spec import loads
from . import interrupts, optuna_backend, outputs
from .candidate import Context, run_candidate
from .config import SearchConfig
from .outputs import completed

FINAL_STUDY = "nas-final"
SEED_RANGE = (0, 2**31 - 1)


def final_epochs(config: SearchConfig) -> int:
    return config.final_epochs if config.final_epochs is not None else 3 * config.train.epochs


def final_seeds(config: SearchConfig) -> list[int]:
    return [config.seed + i for i in range(config.final_seeds)]


def top_candidates(search_records: list[dict], k: int) -> list[dict]:
    """The k completed search trials with the best proxy rewards, one per architecture (its best trial)."""
    best_first = sorted(completed(search_records), key=lambda r: (-r["reward"], r["number"]))
    picks: dict[str, dict] = {}
    for record in best_first:
        if len(picks) == k:
            break
        picks.setdefault(record["spec_hash"], record)
    return list(picks.values())


def open_final_study(run_dir: Path) -> optuna.Study:
    return optuna.create_study(study_name=FINAL_STUDY, storage=optuna_backend._storage(run_dir),
                               direction="maximize", load_if_exists=True)


def _pair(trial: optuna.trial.FrozenTrial) -> tuple[str, int] | None:
    params = trial.params or trial.system_attrs.get("fixed_params") or {}
    # the candidate is queued as a user attribute; a pair an earlier nas queued has it among the params
    candidate = trial.user_attrs.get("candidate", params.get("candidate"))
    return (candidate, int(params["seed"])) if candidate is not None and "seed" in params else None


def enqueue_missing(study: optuna.Study, picks: list[dict], seeds: list[int], epochs: int) -> int:
    """Queue every (candidate, seed) pair that has no trial of ``epochs`` yet (an interrupted one counts as
    none: recover_interrupted_trials queued it again; a trial of another final_epochs counts as none, and
    a queued one is ``epochs``'s). Returns how many trials wait to run."""
    present = {_pair(t) for t in study.get_trials(deepcopy=False)
               if not t.user_attrs.get("interrupted") and t.user_attrs.get("epochs", epochs) == epochs}
    for pick in picks:
        for seed in seeds:
            if (pick["spec_hash"], seed) not in present:
                # Not a parameter: Optuna fixes a parameter's choices at its first trial, and the finalists of a
                # run change as its search grows (a resume with more trials, processes sharing the run).
                study.enqueue_trial({"seed": seed}, user_attrs={"candidate": pick["spec_hash"]})
    return len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))


def run_final(config: SearchConfig, run_dir: Path, search_records: list[dict],
              evaluator_for: Callable[[int, int], Callable], say: Callable[[str], None] = print) -> list[dict]:
    """Run (or resume) the final stage; returns its records. ``evaluator_for(seed, epochs)`` gives the
    evaluator ``(spec, report) -> Evaluation`` of one seed."""
    picks = top_candidates(search_records, config.final_top_k)
    if not picks:
        return []
    study = open_final_study(run_dir)
    epochs = final_epochs(config)
    with optuna_backend.claim_lock(run_dir):  # processes sharing the run queue each pair once
        optuna_backend.recover_interrupted_trials(study, requeue=False)  # enqueue_missing queues them again
        waiting = enqueue_missing(study, picks, final_seeds(config), epochs)
    if waiting:
        say(f"final selection: {len(picks)} candidates x {config.final_seeds} seeds, {epochs} epochs; "
            f"{waiting} trainings to run")
    specs = {p["spec_hash"]: loads(p["spec_yaml"], source=f"trial {p['number']}") for p in picks}
    proxy = {r["spec_hash"]: r for r in reversed(completed(search_records))}
    options = sorted(proxy)
    shared = Context(config, lambda choose: None, lambda spec, report: None)  # one cache of measured costs:
    if config.objective in ("latency", "energy"):                             # the search's are not measured again
        for key, record in proxy.items():
            shared.measured[shared.measured_key(key)] = record["cost"]
    if measures_finalists(config):  # ... except a predicted latency: each finalist is timed once
        for key, cost in finalist_latencies(config, picks, specs, records(run_dir)).items():
            shared.measured[shared.measured_key(key)] = cost

    def evaluate(trial: optuna.Trial) -> float:
        trial.set_user_attr("worker", optuna_backend.WORKER)
        trial.set_user_attr("epochs", epochs)
        # an enqueued pair's, fixed, not sampled (a pair an earlier nas queued has its candidate as a parameter)
        key = trial.user_attrs.get("candidate") or trial.suggest_categorical("candidate", options)
        seed = trial.suggest_int("seed", *SEED_RANGE)
        trial.set_user_attr("search_trial", proxy[key]["number"])
        spec = specs[key] if key in specs else loads(proxy[key]["spec_yaml"], source=f"trial {proxy[key]['number']}")
        # its own cache of evaluations (every seed trains), the shared one of measured costs
        ctx = Context(config, lambda choose: spec, evaluator_for(seed, epochs), measured=shared.measured,
                      lock=shared.lock)
        io = optuna_backend._OptunaIO(study, trial, prune=False, epochs=epochs, final=True)  # each pair trains
        return run_candidate(ctx, io).reward

    study.sampler = optuna.samplers.RandomSampler(seed=config.seed)  # every trial is an enqueued pair
    # ask / tell rather than study.optimize: Optuna records a trial cut by Ctrl-C as failed, and a failed pair
    # is never queued again. Here Interrupted passes through untold, like a search trial (optuna_backend.
    # run_trial): the trial stays RUNNING and is set aside below, and the resumed run queues and trains it.
    interrupted = None
    with interrupts.raised_on_signals():
        try:
            for done in range(1, waiting + 1):
                with optuna_backend.claim_lock(run_dir), interrupts.deferred():
                    if not study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
                        break  # another process sharing the run took the rest
                    trial = study.ask()
                try:
                    value, state = evaluate(trial), None
                    outcome = (f"search trial {trial.user_attrs['search_trial']}, seed {trial.params['seed']}, "
                               f"reward {value:.4f}")
                except Exception as exc:  # recorded as failed; the other pairs go on
                    trial.set_user_attr("note", f"{type(exc).__name__}: {exc}"[:300])
                    value, state, outcome = None, TrialState.FAIL, f"failed ({type(exc).__name__})"
                with interrupts.deferred():  # a finished training is stored whole before a signal stops the run
                    study.tell(trial, value, state=state)
                say(f"final training {done}/{waiting}: {outcome}")
            wait_for_other_trainings(study, say)
        except Interrupted as exc:
            interrupted = exc
        finally:
            if interrupted:
                with interrupts.deferred(), optuna_backend.claim_lock(run_dir):  # this process's training is set
                    optuna_backend.recover_interrupted_trials(study, requeue=False)  # aside; a resume queues it
    if interrupted:
        raise Interrupted(interrupted.signum, f"the running final training is set aside; "
                                              f"the same command resumes {run_dir} and trains it again")
    return records(run_dir)


def wait_for_other_trainings(study: optuna.Study, say: Callable[[str], None]) -> None:
    """Return once no other live process sharing the run is training a pair: the winner is then picked from every
    pair, the same in every process (as nas.search.run.wait_for_other_processes does for the search)."""
    interrupts.wait_while(
        lambda: [t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)) if optuna_backend.held(t)],
        lambda found: f"waiting for {len(found)} final training(s) other processes are running, so the winner is "
                      "picked from every pair", say)


def measures_finalists(config: SearchConfig) -> bool:
    """Whether the final stage times its candidates instead of keeping the search's predicted latency."""
    return config.objective == "latency" and config.latency == "predicted"


def finalist_latencies(config: SearchConfig, picks: list[dict], specs: dict, final_records: list[dict]) -> dict:
    """Spec hash -> measured latency (ms) of each finalist: what its earlier final trainings recorded, or a
    measurement now (median of repeats on the search's latency device and threads)."""
    from ..evaluate.latency import latency_report

    recorded = recorded_costs(final_records)
    return {pick["spec_hash"]: recorded.get(pick["spec_hash"]) or latency_report(
                specs[pick["spec_hash"]], config.latency_device, threads=config.latency_threads)["latency_ms"]
            for pick in picks}


def recorded_costs(final_records: list[dict]) -> dict[str, float]:
    """Spec hash -> the cost its final trainings were rewarded with (the search's, or a finalist's measured
    latency)."""
    return {r["spec_hash"]: r["cost"] for r in final_records if r.get("cost") is not None}


def records(run_dir: Path) -> list[dict]:
    """The final stage's trial records (optuna_backend.to_record, with stage, seed and the search trial)."""
    if not (run_dir / optuna_backend.STORAGE_FILE).exists():
        return []
    try:
        study = optuna.load_study(study_name=FINAL_STUDY, storage=optuna_backend._storage(run_dir))
    except KeyError:  # no final stage yet
        return []
    out = []
    for trial in study.get_trials(deepcopy=False):
        record = optuna_backend.to_record(trial)
        pair = _pair(trial)
        record.update(stage="final", seed=pair[1] if pair else None, epochs=trial.user_attrs.get("epochs"),
                      search_trial=trial.user_attrs.get("search_trial"))
        out.append(record)
    return out


def summarise(config: SearchConfig, search_records: list[dict], final_records: list[dict]) -> list[dict]:
    """Per candidate of the final stage, best proxy reward first: its search record, accuracy per seed,
    final reward = reward(mean accuracy, cost) and seed spread (max - min accuracy)."""
    rows, recorded = [], recorded_costs(final_records)
    for pick in top_candidates(search_records, config.final_top_k):
        done = {r["seed"]: r["accuracy"] for r in final_records
                if r["state"] == "complete" and r.get("spec_hash") == pick["spec_hash"]
                and r.get("epochs") == final_epochs(config) and r["seed"] in final_seeds(config)}
        if not done:
            continue
        mean = sum(done.values()) / len(done)
        cost = recorded.get(pick["spec_hash"], pick["cost"])
        final = reward_fns.reward(mean, cost, config.cost_target(), config.reward, config.w,
                                  config.w_below, config.w_above)
        rows.append({"search": pick, "accuracies": dict(sorted(done.items())), "accuracy": mean, "cost": cost,
                     "final_reward": final, "spread": max(done.values()) - min(done.values())})
    return rows


def winner(summary: list[dict]) -> dict | None:
    """The best final reward; a tie goes to the better proxy reward (the summary's order)."""
    return max(summary, key=lambda row: row["final_reward"]) if summary else None  # max keeps the first of equals


def lead(summary: list[dict]) -> tuple[dict, dict, float] | None:
    """The winner, the runner-up by final reward, and the mean accuracy the runner-up lacks at its own cost to
    tie (the reward is proportional to accuracy at a fixed cost: it needs its accuracy times the rewards'
    ratio). None with fewer than two candidates or a runner-up without reward."""
    best = winner(summary)
    others = [row for row in summary if row is not best]
    if best is None or not others:
        return None
    runner_up = max(others, key=lambda row: row["final_reward"])  # a tie: the better proxy reward
    if runner_up["final_reward"] <= 0:
        return None
    return best, runner_up, runner_up["accuracy"] * (best["final_reward"] / runner_up["final_reward"] - 1)


def lead_line(summary: list[dict]) -> str | None:
    """The winner's lead weighed against both candidates' seed spreads: a lead smaller than a spread is one
    that other seeds could undo."""
    found = lead(summary)
    if found is None:
        return None
    best, runner_up, lacking = found
    if lacking <= 0:
        return (f"the winner's lead: none; the runner-up (search trial {runner_up['search']['number']}) ties it "
                "and lost on its proxy reward.")
    text = (f"the winner's lead: the runner-up (search trial {runner_up['search']['number']}) lacks "
            f"{lacking:.4f} mean accuracy at its cost to tie")
    if min(len(best["accuracies"]), len(runner_up["accuracies"])) < 2:
        return text + "; with one seed each there is no seed spread to weigh it against."
    spreads = f"{best['spread']:.4f} and {runner_up['spread']:.4f}"
    if lacking < max(best["spread"], runner_up["spread"]):
        return text + f", less than their seed spreads ({spreads}): other seeds could reorder them."
    return text + f", more than their seed spreads ({spreads})."


def kendall_tau(xs: list[float], ys: list[float]) -> float | None:
    """Kendall's tau-b of two rankings (ties in either count as neither agreeing nor disagreeing);
    None for fewer than two pairs or a constant list."""
    concordant = discordant = ties_x = ties_y = 0
    for i in range(len(xs)):
        for j in range(i + 1, len(xs)):
            dx, dy = xs[i] - xs[j], ys[i] - ys[j]
            if dx == 0 and dy == 0:
                continue
            if dx == 0:
                ties_x += 1
            elif dy == 0:
                ties_y += 1
            elif (dx > 0) == (dy > 0):
                concordant += 1
            else:
                discordant += 1
    denominator = ((concordant + discordant + ties_x) * (concordant + discordant + ties_y)) ** 0.5
    return (concordant - discordant) / denominator if denominator else None


def evaluator_factory(config: SearchConfig, injected: Callable | None) -> Callable[[int, int], Callable]:
    """``(seed, epochs) -> evaluator``: the configured data set trained by the proxy's recipe with that seed
    and length; or, when a caller injected its own evaluator into the search, that one for every seed."""
    if injected is not None:
        return lambda seed, epochs: injected
    from ..evaluate.evaluators import TrainEvaluator
    from .evaluation import configured_data

    loaded: list = []  # loaded when the first training asks (a finished stage loads nothing)

    def evaluator_for(seed: int, epochs: int) -> Callable:
        if not loaded:
            loaded.append(configured_data(config))
        return TrainEvaluator(loaded[0], replace(config.train_settings(), seed=seed, epochs=epochs))
    return evaluator_for


def report_lines(config: SearchConfig, summary: list[dict], final_records: list[dict]) -> list[str]:
    """The report's final-selection section: each candidate, the fidelity (Kendall tau of proxy against final
    rewards) and the winner's seed spread."""
    lines = ["## Final selection", "",
             f"the {config.final_top_k} best distinct candidates by proxy reward, trained {final_epochs(config)} "
             f"epochs under seeds {', '.join(map(str, final_seeds(config)))}; final reward = reward(mean accuracy "
             "over the seeds, cost).", ""]
    failed = sum(r["state"] == "failed" for r in final_records)
    if not summary:
        return [*lines, "no final training has finished yet; best.yaml is the best by proxy reward.", ""]
    measured = measures_finalists(config)
    if measured:
        lines += [f"latency in this stage: measured end to end on {config.latency_device} with "
                  f"{config.latency_threads} torch thread(s), once per candidate; the search's was predicted.", ""]
    cost_header = " predicted latency (ms) | measured latency (ms) |" if measured else ""
    lines += ["| search trial | proxy reward |" + cost_header
              + " accuracy per seed | mean accuracy | final reward | seed spread |",
              "|---|---|" + ("---|---|" if measured else "") + "---|---|---|---|"]
    lines += [f"| {row['search']['number']} | {row['search']['reward']:.4f} | "
              + (f"{row['search']['cost']:.3f} | {row['cost']:.3f} | " if measured else "")
              + ", ".join(f"{a:.4f}" for a in row["accuracies"].values())
              + f" | {row['accuracy']:.4f} | {row['final_reward']:.4f} | {row['spread']:.4f} |" for row in summary]
    tau = kendall_tau([row["search"]["reward"] for row in summary], [row["final_reward"] for row in summary])
    best = winner(summary)
    assert best is not None
    lines += ["", f"fidelity: Kendall tau between proxy and final rewards {'n/a' if tau is None else f'{tau:.2f}'} "
                  f"over {len(summary)} candidates; the winner's seed spread (max - min accuracy) "
                  f"{best['spread']:.4f}." + (f" {failed} final trainings failed." if failed else "")]
    margin = lead_line(summary)
    lines += ["", margin] if margin else []
    lines += ["", f"**best** (final selection): search trial {best['search']['number']}, final reward "
                  f"{best['final_reward']:.4f}, mean accuracy {best['accuracy']:.4f} -> best.yaml", ""]
    return lines


def write_outputs(run_dir: Path, config: SearchConfig, search_records: list[dict],
                  final_records: list[dict]) -> dict | None:
    """The run's outputs with the final stage in them; returns the best record (the final winner's search
    record with its final accuracy and reward, the search's best when no final training finished)."""
    summary = summarise(config, search_records, final_records)
    best = winner(summary)
    chosen = None
    if best:
        chosen = {**best["search"], "accuracy": best["accuracy"], "reward": best["final_reward"], "cost": best["cost"],
                  "proxy_reward": best["search"]["reward"], "proxy_accuracy": best["search"]["accuracy"],
                  "seed_spread": best["spread"], "stage": "final"}
    return outputs.write_all(run_dir, search_records, config, final_records, chosen,
                             report_lines(config, summary, final_records))
