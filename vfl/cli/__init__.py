"""The ``vfl`` command: one sub-command per module in this package."""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence

from vfl import __version__
from vfl.errors import VFLError

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``vfl`` with every sub-command."""
    from vfl.cli import (
        align,
        audit,
        binning,
        certs,
        horizontal,
        party,
        predict,
        simulate,
        stability,
        transfer,
    )

    parser = argparse.ArgumentParser(
        prog="vfl",
        description="Federated learning with Paillier encryption. Vertical: feature holders "
                    "(A1..Ak), a label holder (B) and a coordinator (C) train one linear or "
                    "logistic model without showing each other their data (simulate, "
                    "predict, align, party). Horizontal: clients with the same columns train "
                    "one model through a server that sees only an encrypted, masked sum "
                    "(horizontal). Transfer: a labelled source and a target with other "
                    "columns and few shared rows learn representations that carry the labels "
                    "to all the target's rows (transfer).")
    parser.add_argument("--version", action="version", version=f"vfl {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (simulate, predict, align, audit, certs, party, horizontal, transfer, binning,
                   stability):
        module.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``vfl``; returns the exit status (0 success, 2 bad input or protocol error)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    previous = warnings.showwarning

    def one_line(message: Warning | str, category: type[Warning], *_: object,
                 **__: object) -> None:
        # A user reads one line in the command's own words, not a source location.
        print(f"vfl {args.command}: warning: {message}", file=sys.stderr)

    warnings.showwarning = one_line
    try:
        return int(args.run(args) or 0)
    except VFLError as exc:
        print(f"vfl {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"vfl {args.command}: interrupted; nothing was written", file=sys.stderr)
        return 130
    finally:
        warnings.showwarning = previous


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
