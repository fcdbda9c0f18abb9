"""Options and steps that several sub-commands share."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Mapping

from vfl.errors import InputDataError

__all__ = ["add_data_options", "dumps", "feature_holder_names", "write_outputs"]


def add_data_options(parser: argparse.ArgumentParser, *, label: bool) -> None:
    """--party-a (repeatable), --party-b, --id-column and maybe --label-column."""
    parser.add_argument("--party-a", action="append", required=True, metavar="CSV",
                        help="feature holder's CSV file (ID and feature columns); repeat it "
                             "once per feature holder (A1, A2, ... in the order given)")
    parser.add_argument("--party-b", required=True, metavar="CSV",
                        help="label holder's CSV file (ID, label and feature columns)")
    parser.add_argument("--id-column", required=True, metavar="NAME",
                        help="column holding the IDs in every file")
    if label:
        parser.add_argument("--label-column", required=True, metavar="NAME",
                            help="label column in the label holder's file")


def feature_holder_names(count: int) -> list[str]:
    """A1, A2, ... for the given number of feature holders."""
    return [f"A{k}" for k in range(1, count + 1)]


def write_outputs(out_dir: str, files: Mapping[str, str], inputs: list[str]) -> None:
    """Write every output file atomically into `out_dir`, created only now.

    Raises
    ------
    InputDataError
        If an output would overwrite one of the input files.
    """
    from vfl.files import atomic_write_text

    targets = {os.path.realpath(os.path.join(out_dir, name)) for name in files}
    clash = targets & {os.path.realpath(p) for p in inputs}
    if clash:
        raise InputDataError(f"output would overwrite input file {sorted(clash)[0]}; choose "
                             "another --out folder")
    os.makedirs(out_dir, exist_ok=True)
    for name, text in files.items():
        atomic_write_text(os.path.join(out_dir, name), text)


def dumps(data: object) -> str:
    """JSON text of a report, stable and readable."""
    return json.dumps(data, indent=2, allow_nan=False) + "\n"
