"""``vfl align``: private alignment alone, all parties in-process, one CSV out per party."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from vfl.cli.common import feature_holder_names
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
    from vfl.data import read_party_csv
    from vfl.runtime.alignment import align_frames

    if args.chunk_size is not None and args.method != "ecdh":
        raise InputDataError(f"--chunk-size applies to --method ecdh only, not "
                             f"{args.method}; leave it out")
    parties = [LABEL_HOLDER, *feature_holder_names(len(args.party_a))]
    inputs = dict(zip(parties, [args.party_b, *args.party_a]))
    targets = {party: os.path.join(args.out, name)
               for party, name in output_names(args.party_b, args.party_a).items()}
    _check_targets(args.out, targets, inputs, force=args.force)

    frames = {party: read_party_csv(path, party=party, id_column=args.id_column, as_text=True)
              for party, path in inputs.items()}
    aligned = align_frames(frames[LABEL_HOLDER], {p: frames[p] for p in parties[1:]},
                           id_column=args.id_column, method=args.method,
                           chunk_size=args.chunk_size, progress=args.progress,
                           sources=inputs, label_holder_name=LABEL_HOLDER)
    size = len(aligned[LABEL_HOLDER])
    _write_all(args.out, {targets[p]: aligned[p] for p in parties})
    print(f"{size} IDs shared by {', '.join(parties)} ({args.method} alignment)")
    for party in parties:
        print(f"wrote {targets[party]} ({size} rows of {inputs[party]})", file=sys.stderr)
    return 0


def _check_targets(out_dir: str, targets: dict[str, str], inputs: dict[str, str], *,
                   force: bool) -> None:
    """Refuse, before any work, outputs that would replace an input or an earlier output."""
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise InputDataError(f"--out {out_dir} exists and is not a folder; choose another")
    sources = {os.path.realpath(path): party for party, path in inputs.items()}
    for party, target in targets.items():
        real = os.path.realpath(target)
        if real in sources:
            raise InputDataError(
                f"the output for party {party}, {target}, would overwrite the input file of "
                f"party {sources[real]}; choose another --out folder")
        if os.path.exists(target) and not force:
            raise InputDataError(
                f"{target} (output for party {party}) already exists; pass --force to replace "
                "it or choose another --out folder")


def _write_all(out_dir: str, frames: dict[str, pd.DataFrame]) -> None:
    """Write every frame as CSV, all or none: to temporary files first, then renamed."""
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as exc:
        raise InputDataError(f"cannot create --out folder {out_dir}: {exc}") from None
    umask = os.umask(0)
    os.umask(umask)
    mode = 0o666 & ~umask
    staged: list[tuple[str, str]] = []
    renamed: list[str] = []
    try:
        for target, frame in frames.items():
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".csv", dir=out_dir)
            staged.append((tmp, target))
            os.chmod(tmp, mode)  # mkstemp's 0600, widened as far as the umask allows
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
                frame.to_csv(handle, index=False)
                handle.flush()
                os.fsync(handle.fileno())
        # Renames within one folder do not fail for want of space: once every
        # file is staged, the outputs appear together.
        for tmp, target in staged:
            os.replace(tmp, target)
            renamed.append(target)
    except BaseException as exc:
        for tmp, _ in staged:
            if os.path.exists(tmp):
                os.unlink(tmp)
        if isinstance(exc, OSError):
            done = f"only {', '.join(renamed)} was written" if renamed else "nothing was written"
            raise InputDataError(f"cannot write the aligned files to {out_dir}: {exc}; "
                                 f"{done}") from None
        raise
