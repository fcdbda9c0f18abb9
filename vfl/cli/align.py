"""``vfl align``: private alignment alone, all parties in-process, one CSV out per party."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from vfl.cli.common import check_outputs, feature_holder_names, party_inputs, write_outputs
from vfl.cli.options import add_run_option
from vfl.errors import InputDataError
from vfl.psi.ecdh import DEFAULT_CHUNK_SIZE, MAX_CHUNK

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["output_names", "register", "run"]

LABEL_HOLDER = "B"


def _chunk_size(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if not 1 <= value <= MAX_CHUNK:
        raise argparse.ArgumentTypeError(f"chunk size must be between 1 and {MAX_CHUNK}, "
                                         f"got {value}")
    return value


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "align", help="align the parties' rows privately and write each party's shared rows",
        description="Find the IDs that the label holder (B) and every feature holder "
                    "(A1, A2, ...) share, with the parties running in one process exactly as "
                    "they would apart (the coordinator takes no part), and write each "
                    "party's rows of the intersection, with all its columns unchanged, to "
                    "its own CSV in DIR: B_<name>.csv for --party-b <name>.csv, "
                    "A1_<name>.csv for the first --party-a, and so on. Every file lists the "
                    "shared IDs in the same order, sorted by normalised ID, which reveals "
                    "no party's row order. Prints the number of shared IDs. Nothing is written "
                    "unless the alignment succeeds.")
    parser.add_argument("--party-a", action="append", required=True, metavar="CSV",
                        help="a feature holder's CSV file; repeat for several feature holders "
                             "(A1, A2, ... in the order given). Required")
    parser.add_argument("--party-b", required=True, metavar="CSV",
                        help="the label holder's CSV file. Required")
    parser.add_argument("--id-column", required=True, metavar="NAME",
                        help="column holding the IDs in every file; IDs match after one "
                             "normalisation (text, surrounding spaces stripped, Unicode NFC; "
                             "see docs/psi.md). Required")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="folder for the aligned CSV files, created if needed. Required")
    # The run setting `alignment`, by the flag this command has always had.
    add_run_option(parser, "alignment", flags=["--method"], dest="method",
                   help="ecdh: Diffie-Hellman PSI, nothing but the intersection and set "
                        "sizes is revealed; hash: keyed hashing, faster, but either side can "
                        "test guessed IDs offline (default: %(default)s)")
    add_run_option(parser, "executor")
    parser.add_argument("--chunk-size", type=_chunk_size, default=None, metavar="N",
                        help="IDs per message and per worker task, ecdh only "
                             f"(default: {DEFAULT_CHUNK_SIZE})")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True,
                        help="show a progress line on stderr for alignments that take more "
                             "than a second (default: %(default)s)")
    parser.add_argument("--force", action="store_true",
                        help="replace output files left in DIR by an earlier run (default: "
                             "refuse)")
    parser.set_defaults(run=run)


def output_names(party_b: str, party_a: list[str]) -> dict[str, str]:
    """File name in DIR of each party's aligned rows: ``<party>_<input stem>.csv``."""
    names = feature_holder_names(len(party_a))
    return {party: f"{party}_{Path(path).stem}.csv"
            for party, path in zip([LABEL_HOLDER, *names], [party_b, *party_a])}


def run(args: argparse.Namespace) -> int:
    from vfl.cluster import compute_on
    from vfl.data import read_party_csv
    from vfl.runtime.alignment import align_frames

    if args.chunk_size is not None and args.method != "ecdh":
        raise InputDataError(f"--chunk-size applies to --method ecdh only, not "
                             f"{args.method}; leave it out")
    inputs = party_inputs(args.party_b, args.party_a)
    parties = list(inputs)
    names = output_names(args.party_b, args.party_a)
    check_outputs(args.out, names.values(), inputs, force=args.force)

    frames = {party: read_party_csv(path, party=party, id_column=args.id_column, as_text=True)
              for party, path in inputs.items()}
    with compute_on(args.executor):
        aligned = align_frames(frames[LABEL_HOLDER], {p: frames[p] for p in parties[1:]},
                               id_column=args.id_column, method=args.method,
                               chunk_size=args.chunk_size, progress=args.progress,
                               sources=inputs, label_holder_name=LABEL_HOLDER)
    size = len(aligned[LABEL_HOLDER])
    write_outputs(args.out, {names[p]: _csv_writer(aligned[p]) for p in parties},
                  inputs, force=args.force)
    print(f"{size} IDs shared by {', '.join(parties)} ({args.method} alignment)")
    for party in parties:
        print(f"wrote {os.path.join(args.out, names[party])} ({size} rows of "
              f"{inputs[party]})", file=sys.stderr)
    return 0


def _csv_writer(frame: pd.DataFrame) -> Callable[[TextIO], None]:
    """Writes the frame's cells as they were read (text), no index."""
    return lambda handle: frame.to_csv(handle, index=False)
