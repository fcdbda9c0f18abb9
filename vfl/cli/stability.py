"""``vfl stability``: population stability (PSI) of one party's columns, or of B's scores.

Run by each party on its own files, alone: PSI compares one party's training
rows with its new rows column by column, so no other party and no
encryption is involved. For the model's score, B runs it on two prediction
files of ``vfl predict`` (the training rows' and the new rows') with
``--columns probability``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from vfl.cli.common import add_force_option, check_outputs, dumps, write_outputs

__all__ = ["STABILITY_FORMAT", "register", "run"]

STABILITY_FORMAT = "vfl-stability/1"


def _bins(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer of 2 or more, got {text!r}") \
            from None
    if value < 2:
        raise argparse.ArgumentTypeError(f"expected an integer of 2 or more, got {value}")
    return value


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "stability", help="population stability index (PSI) of a party's columns between "
                          "its training rows and new rows",
        description="Compare one party's training rows (--expected) with its new rows "
                    "(--actual), column by column: the population stability index over the "
                    "training rows' deciles (missing values in a bin of their own), or over "
                    "a column's WOE bins from the party's binning file. Each party runs it "
                    "on its own files; for the model's score, B runs it on two prediction "
                    "files of 'vfl predict' with --columns probability. Below 0.1 reads as "
                    "stable, 0.1 to 0.25 as a shift, above 0.25 as a major shift. Writes "
                    "OUT (JSON); nothing is written on bad input.")
    parser.add_argument("--expected", required=True, metavar="CSV",
                        help="the training rows (ID and columns). Required")
    parser.add_argument("--actual", required=True, metavar="CSV",
                        help="the new rows, same columns. Required")
    parser.add_argument("--id-column", required=True, metavar="NAME",
                        help="column holding the IDs in both files (not compared). Required")
    parser.add_argument("--columns", default=None, metavar="NAMES",
                        help="comma-separated columns to compare (default: every column but "
                             "the ID and --label-column)")
    parser.add_argument("--label-column", default=None, metavar="NAME",
                        help="a label column to leave out (B's files)")
    parser.add_argument("--bins", type=_bins, default=10, metavar="K",
                        help="quantile bins of the training rows (default: %(default)s)")
    parser.add_argument("--binning", default=None, metavar="JSON",
                        help="this party's binning_<party>.json of 'vfl binning': use each "
                             "of its columns' WOE bins instead of quantiles")
    parser.add_argument("--out", required=True, metavar="JSON",
                        help="the stability report to write. Required")
    add_force_option(parser, "an existing report")
    parser.add_argument("--quiet", action="store_true", help="print only errors")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from vfl.risk import Bins, population_stability

    inputs = {"expected": args.expected, "actual": args.actual}
    out_dir, out_name = os.path.split(os.path.abspath(args.out))
    check_outputs(out_dir, [out_name], list(inputs.values()), force=args.force)
    frames = {role: _read(path, args.id_column) for role, path in inputs.items()}
    columns = _columns(args, frames)
    edges = _binning_edges(args.binning, columns) if args.binning else {}
    results: list[dict[str, Any]] = []
    for name in columns:
        expected, actual = (_numeric(frames[r], name, inputs[r]) for r in ("expected", "actual"))
        if np.isnan(expected).all():
            raise _error(f"column {name!r} of {args.expected} has no value: nothing to compare "
                         "against; leave it out with --columns")
        stability = population_stability(expected, actual, bins=args.bins,
                                          edges=edges.get(name))
        bins: Bins = stability.bins
        results.append({"name": name, "psi": stability.psi, "status": stability.status,
                        "edges": list(bins.edges), "missing_bin": bins.missing_bin,
                        "expected_counts": stability.expected.tolist(),
                        "actual_counts": stability.actual.tolist()})
    report = {"format": STABILITY_FORMAT, "expected": args.expected, "actual": args.actual,
              "expected_rows": len(frames["expected"]), "actual_rows": len(frames["actual"]),
              "bins": "binning file" if args.binning else args.bins, "columns": results}
    write_outputs(out_dir, {out_name: dumps(report)}, list(inputs.values()), force=args.force)
    if not args.quiet:
        print(f"{'column':<24} {'PSI':>8}  status")
        for row in sorted(results, key=lambda r: -r["psi"]):
            print(f"{row['name']:<24} {row['psi']:>8.4f}  {row['status']}")
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


def _error(message: str) -> Exception:
    from vfl.errors import InputDataError

    return InputDataError(message)


def _read(path: str, id_column: str) -> Any:
    from vfl.data import read_party_csv

    # One party's own files: messages name the file, no party.
    return read_party_csv(path, party="", id_column=id_column)


def _columns(args: argparse.Namespace, frames: dict[str, Any]) -> list[str]:
    expected, actual = frames["expected"], frames["actual"]
    skip = {args.id_column, args.label_column}
    if args.columns is None:
        columns = [str(c) for c in expected.columns if c not in skip]
    else:
        columns = [c.strip() for c in args.columns.split(",") if c.strip()]
        missing = [c for c in columns if c not in expected.columns]
        if missing:
            raise _error(f"{args.expected} has no column {', '.join(map(repr, missing))}; "
                         "check --columns")
    absent = [c for c in columns if c not in actual.columns]
    if absent:
        raise _error(f"{args.actual} has no column {', '.join(map(repr, absent))}, which "
                     f"{args.expected} has; compare the same columns")
    if not columns:
        raise _error(f"{args.expected} has no column to compare besides the ID")
    return columns


def _numeric(frame: Any, name: str, path: str) -> Any:
    import numpy as np
    import pandas as pd

    raw = frame[name]
    values = pd.to_numeric(raw, errors="coerce")
    bad = values.isna() & raw.notna()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise _error(f"column {name!r} of {path} is not numeric: row {row + 1} holds "
                     f"{raw.iloc[row]!r}; leave it out with --columns")
    array = values.to_numpy(dtype=np.float64)
    if np.isinf(array).any():
        raise _error(f"column {name!r} of {path} holds infinite values")
    return array


def _binning_edges(path: str, columns: list[str]) -> dict[str, Any]:
    """Each column's bins from a binning file's own columns (those with edges)."""
    from vfl.risk import Bins

    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
        features = {f["name"]: f for f in data["features"] if f.get("edges") is not None}
        bins = {name: Bins(tuple(float(e) for e in features[name]["edges"]),
                           features[name]["missing_bin"])
                for name in columns if name in features}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise _error(f"cannot read the binning file {path}: {exc}") from None
    unknown = [c for c in columns if c not in bins]
    if unknown:
        raise _error(f"the binning file {path} has no bins of {', '.join(map(repr, unknown))} "
                     "(only its owner's columns have edges); leave them out with --columns")
    return bins
