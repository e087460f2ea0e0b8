"""The `nas` command. Each sub-command parses its arguments, calls one function and prints; no logic here."""

from __future__ import annotations

import argparse
import errno
import json
import sys

from . import __version__
from .errors import Interrupted, UserError
from .settings import GRID_KEYS, KEYS, help_lines
from .settings.recipe import TRAIN_RUN_KEYS


def _info(args) -> int:
    from .info import info_dict, info_table
    from .zoo import load_spec

    spec = load_spec(args.spec)
    if args.resolution is not None and args.resolution < 1:
        raise UserError(f"--resolution: got {args.resolution}; allowed: a positive image side in pixels")
    measured = {}
    if args.latency:
        from .evaluate.latency import latency_report
        from .evaluate.latency_table import predict_latency

        measured.update(latency_report(spec, args.device, args.batch, args.resolution, threads=args.threads))
        measured["latency_predicted_ms"] = predict_latency(spec, args.device, args.threads, args.batch, args.resolution)
    if args.energy:
        from .evaluate.energy import energy_report

        measured.update(energy_report(spec, args.batch, args.resolution, device="cuda"))
    if args.json:
        print(json.dumps({**info_dict(spec, args.resolution), **measured}))
    else:
        print(info_table(spec, args.resolution, measured))
    return 0


def _search(args) -> int:
    from .search import run_search

    result = run_search(args.pairs, progress=not args.quiet)
    print(f"run directory: {result.run_dir}")
    if result.best:
        b = result.best
        evaluator = result.config.evaluator  # a zero-cost proxy scores, in its own units; it measures no accuracy
        score = f"{evaluator} score {b['accuracy']:.4g}" if evaluator.startswith("zero_cost") else \
            f"accuracy {b['accuracy']:.4f}"
        chosen_by = (f"search trial {b['number']}, final reward {b['reward']:.4f}, mean {score}"
                     if b.get("stage") == "final" else f"trial {b['number']}, reward {b['reward']:.4f}, {score}")
        print(f"best: {chosen_by}, "
              f"{b['flops'] / 1e6:.1f}M FLOPs (multiply-adds), {b['params']:,} params "
              f"-> {result.run_dir / 'best.yaml'}")
    else:
        print("no trial completed; see report.md")
    return 0


def _export(args) -> int:
    from .search.export import export

    for path in export(args.run_dir, args.output, args.trial, args.pareto):
        print(path)
    return 0


def _scale(args) -> int:
    from .scale_run import ScaleRequest, run_scale

    request = ScaleRequest(args.phi, base=args.base, alpha=args.alpha, beta=args.beta, gamma=args.gamma,
                           preset=args.preset, out=args.out, pairs=tuple(args.pairs), compare=args.compare,
                           train=None if args.train is None else tuple(args.train))
    result = run_scale(request, progress=not args.quiet)
    print(result.report())
    for warning in result.warnings:
        print(f"nas: warning: {warning}", file=sys.stderr)
    return 0


def _latency_build(args) -> int:
    from .evaluate.latency_table import build_table
    from .zoo import load_spec

    if args.space and args.specs:
        raise UserError("nas latency build: got both --space and specs; allowed: one of them")
    if not args.space and not args.specs:
        raise UserError("nas latency build: nothing to build for; allowed: --space NAME or one or more specs")
    table, timed = build_table(args.space, [load_spec(s) for s in args.specs], args.device, args.threads,
                               args.samples, args.resolution, progress=not args.quiet)
    fitting = len(table.fit_networks())
    overhead = ("not fitted yet (no network of 1M+ parameters timed)" if table.ms_per_mparam is None
                else f"{table.ms_per_mparam:.3f} ms per million params, fitted on {fitting} network(s)")
    print(f"latency table for {table.fingerprint}: {len(table.entries)} entries ({timed} timed now), "
          f"per-network overhead {overhead} -> {table.path}")
    return 0


def _add_latency_parser(sub) -> None:
    latency = sub.add_parser("latency", help="the latency table that predicts a spec's latency on this device")
    actions = latency.add_subparsers(dest="action", required=True, parser_class=_Parser)
    build = actions.add_parser(
        "build", help="time the blocks of a space's samples or of given specs into this device's table",
        description="nas latency build [--space S | SPEC ...] [--device cpu|cuda] [--threads N]; entries already "
                    "in the table are kept, missing ones are timed (a search times them on demand too)")
    build.add_argument("specs", nargs="*", metavar="SPEC", help="zoo names or YAML specs")
    build.add_argument("--space", help="a search space: its blocks as they occur in --samples random samples")
    build.add_argument("--samples", type=int, default=20, help="samples of --space (default 20)")
    build.add_argument("--device", default="cpu", help="cpu or cuda")
    build.add_argument("--threads", type=int, default=1, help="torch threads on CPU (default 1)")
    build.add_argument("--resolution", type=int, help="at this input resolution instead of each spec's")
    build.add_argument("--quiet", action="store_true", help="no progress bar")
    build.set_defaults(run=_latency_build)


def _add_scale_parser(sub) -> None:
    scale = sub.add_parser(
        "scale", help="compound-scale a base spec into a family (EfficientNet's phi)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="nas scale --phi 1..7 [--base SPEC|RUN_DIR] [--alpha A --beta B --gamma G | "
                    "--preset efficientnet] [--out DIR] [key=value ...] [--compare single] "
                    "[--train [key=value ...]]",
        epilog="keys of the grid (key=DEFAULT):\n" + help_lines(GRID_KEYS) + "\n\nand the search's evaluation and "
               "execution keys (epochs, dataset, resolution, evaluator, seed, workers, backend, ...; see "
               "nas search --help),\nwhich a run directory's base inherits from that run.\n\n--train's keys are "
               "nas train's (see nas train --help); they follow --train, after every other argument.")
    # Values are kept as text and checked by nas.scale, so every mistake reads the same way.
    scale.add_argument("--phi", required=True, help="compound coefficients: a range 1..7, a list 1,3,5 or one value")
    scale.add_argument("--base", help="a zoo name, a YAML spec or a run directory (default: the newest run's "
                                      "best.yaml)")
    scale.add_argument("--alpha", help="depth coefficient (>= 1); with --beta and --gamma, skips the grid search")
    scale.add_argument("--beta", help="width coefficient (>= 1)")
    scale.add_argument("--gamma", help="resolution coefficient (>= 1)")
    scale.add_argument("--preset", help="efficientnet: the official B1-B7 width, depth and resolution")
    scale.add_argument("--out", help="folder for the family and the grid (default runs/<base>-scale-<time>); "
                                     "an earlier one resumes its grid")
    scale.add_argument("--compare", metavar="single", help="single: also members scaled in width, depth or "
                                                           "resolution alone, at each member's FLOPs (Figure 8)")
    scale.add_argument("--train", nargs="*", metavar="key=value", help="then train every member with nas train's "
                                                                       "recipe (these keys; put them last)")
    scale.add_argument("--quiet", action="store_true", help="no progress bar")
    scale.add_argument("pairs", nargs="*", metavar="key=value")
    scale.set_defaults(run=_scale)


def _data_fetch(args) -> int:
    from .data import fetch

    print(fetch(args.name, args.dir))
    return 0


def _add_data_parser(sub) -> None:
    data = sub.add_parser("data", help="data sets: fetch the official archives",
                          description="nas data fetch fashion-mnist|cifar10|cifar100 [--dir D]: download, check the "
                                      "published checksums, unpack into D/NAME (default: the nas cache, "
                                      "$NAS_CACHE/data or ~/.cache/nas/data)")
    action = data.add_subparsers(dest="action", required=True, parser_class=_Parser)
    fetch = action.add_parser("fetch", help="download a data set's official archives into the cache")
    fetch.add_argument("name", help="fashion-mnist, cifar10 or cifar100")
    fetch.add_argument("--dir", help="folder to put NAME/ in (default: the nas cache); pass it later as data_dir=")
    fetch.set_defaults(run=_data_fetch)


def _train(args) -> int:
    from .train_family import train

    print(train(args.source, args.pairs, progress=not args.quiet).report())
    return 0


def _add_train_parser(sub) -> None:
    train = sub.add_parser(
        "train", help="train one spec with the full recipe (SGD/AdamW, cosine, EMA, checkpoints)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="nas train SPEC|RUN_DIR|TRAIN_DIR|FAMILY_DIR [key=value ...]\n\nAn earlier out= folder (or "
                    "TRAIN_DIR) resumes from its last finished epoch. FAMILY_DIR (from nas scale): every member,\n"
                    "then family_accuracy.csv and a plot of accuracy against FLOPs.",
        epilog="keys (key=DEFAULT):\n" + help_lines(TRAIN_RUN_KEYS))
    train.add_argument("source", metavar="SPEC", help="a zoo name, a YAML spec, a search run directory (its "
                                                      "best.yaml), an earlier nas train folder or a nas scale "
                                                      "family folder")
    train.add_argument("--quiet", action="store_true", help="no progress output")
    train.add_argument("pairs", nargs="*", metavar="key=value")
    train.set_defaults(run=_train)


def _weights_import(args) -> int:
    from .weights import import_weights

    print(import_weights(args.source, args.spec, args.output))
    return 0


def _add_weights_parser(sub) -> None:
    weights = sub.add_parser("weights", help="bring weights from another implementation (timm, torchvision)")
    action = weights.add_subparsers(dest="action", required=True, parser_class=_Parser)
    imports = action.add_parser(
        "import", help="a foreign state_dict -> a state_dict for SPEC, paired tensor by tensor in order",
        description="nas weights import SRC.pt SPEC -o OUT.pt: pairs SRC's tensors with SPEC's model by position, "
                    "checks every shape and names the first mismatch; see docs/weights.md")
    imports.add_argument("source", metavar="SRC.pt", help="torch.save(model.state_dict(), 'SRC.pt') of the other model")
    imports.add_argument("spec", metavar="SPEC", help="a zoo name or a YAML spec of the same architecture")
    imports.add_argument("-o", "--output", required=True, metavar="OUT.pt", help="where the state_dict goes")
    imports.set_defaults(run=_weights_import)


def _refused_by_the_system(exc: OSError) -> bool:
    """A path the user named that the system won't let nas write (permissions, a read-only mount): the
    last resort for what the up-front checks (nas.folders) could not foresee. Never a bug in nas."""
    return exc.filename is not None and exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS)


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit status 2, like every other user error
        raise UserError(message if self.prog == "nas" else f"{self.prog}: {message}")  # not "nas: error: nas: ..."


def make_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="nas", description="Neural-architecture search and compound scaling for efficient CNNs.")
    parser.add_argument("--version", action="version", version=f"nas {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    info = sub.add_parser("info", help="params, FLOPs (multiply-adds), MAC and a per-stage table of a spec")
    info.add_argument("spec", help="a zoo name (efficientnet-b0) or a path to a YAML spec")
    info.add_argument("--json", action="store_true", help="print one JSON object")
    info.add_argument("--resolution", type=int, help="count at this input resolution instead of the spec's")
    info.add_argument("--latency", action="store_true", help="measure median latency and images/s")
    info.add_argument("--energy", action="store_true", help="measure energy per image (NVIDIA GPUs, NVML)")
    info.add_argument("--device", default="cpu", help="cpu or cuda, for --latency")
    info.add_argument("--batch", type=int, default=1, help="batch size for --latency / --energy")
    info.add_argument("--threads", type=int, default=1, help="torch threads for --latency on CPU (default 1)")
    info.set_defaults(run=_info)

    search = sub.add_parser("search", help="search a space for an efficient base architecture",
                            formatter_class=argparse.RawDescriptionHelpFormatter,
                            description="nas search [experiment=NAME] [key=value ...]\n\nSettings: defaults < the "
                                        "space's proxy_training (on its own data set) < experiments/NAME.yaml < "
                                        "key=value; a run directory (out=) resumes with its own.",
                            epilog="keys (key=DEFAULT):\n" + help_lines(KEYS))
    search.add_argument("pairs", nargs="*", metavar="key=value")
    search.add_argument("--quiet", action="store_true", help="no progress bar")
    search.set_defaults(run=_search)

    export = sub.add_parser("export", help="write a run's trial specs as YAML")
    export.add_argument("run_dir", metavar="RUN", help="a run directory")
    which = export.add_mutually_exclusive_group()
    which.add_argument("--trial", type=int, help="this trial's spec (default: the best trial)")
    which.add_argument("--pareto", action="store_true", help="every spec on the Pareto front")
    export.add_argument("-o", "--output", default=".", help="folder to write to")
    export.set_defaults(run=_export)
    _add_scale_parser(sub)
    _add_data_parser(sub)
    _add_train_parser(sub)
    _add_weights_parser(sub)
    _add_latency_parser(sub)
    return parser


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line, with key=value pairs allowed on both sides of an option (`nas search trials=8 --quiet
    epochs=2`): argparse alone takes one run of positionals and calls the pairs after an option unrecognized."""
    parser = make_parser()
    args, extra = parser.parse_known_args(argv)
    pairs = [a for a in extra if "=" in a and not a.startswith("-")]
    if extra != pairs or not hasattr(args, "pairs"):
        if extra:
            parser.error("unrecognized arguments: " + " ".join(extra))
        return args
    args.pairs = [*args.pairs, *pairs]
    return args


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_arguments(argv)
        return args.run(args)
    except UserError as exc:
        print(f"nas: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `nas info ... | head`
        sys.stderr.close()
        return 0
    except Interrupted as exc:  # a search stopped by SIGINT / SIGTERM: its trials are queued again
        print(f"nas: {exc}", file=sys.stderr)
        return exc.exit_status
    except OSError as exc:
        if not _refused_by_the_system(exc):
            raise  # anything else is a bug in nas: keep its traceback
        print(f"nas: error: {exc.filename}: {exc.strerror}; allowed: a path you may read and write", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:  # outside a run's own handling (or Ray's SIGTERM, which carries 143)
        print("nas: interrupted", file=sys.stderr)
        return getattr(exc, "exit_status", 130)


if __name__ == "__main__":
    sys.exit(main())
