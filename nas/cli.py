"""The `nas` command. Each sub-command parses its arguments, calls one function and prints; no logic here."""

from __future__ import annotations

import argparse
import json
import sys

from .errors import UserError


def _info(args) -> int:
    from .info import info_dict, info_table
    from .zoo import load_spec

    spec = load_spec(args.spec)
    if args.resolution is not None and args.resolution < 1:
        raise UserError(f"--resolution: got {args.resolution}; allowed: a positive image side in pixels")
    if args.json:
        print(json.dumps(info_dict(spec, args.resolution)))
    else:
        print(info_table(spec, args.resolution))
    return 0


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit status 2, like every other user error
        raise UserError(f"{self.prog}: {message}")


def make_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="nas", description="Neural-architecture search and compound scaling for efficient CNNs.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    info = sub.add_parser("info", help="params, FLOPs (multiply-adds), MAC and a per-stage table of a spec")
    info.add_argument("spec", help="a zoo name (efficientnet-b0) or a path to a YAML spec")
    info.add_argument("--json", action="store_true", help="print one JSON object")
    info.add_argument("--resolution", type=int, help="count at this input resolution instead of the spec's")
    info.set_defaults(run=_info)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = make_parser().parse_args(argv)
        return args.run(args)
    except UserError as exc:
        print(f"nas: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("nas: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
