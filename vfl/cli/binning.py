"""``vfl binning``: federated binning with WOE and IV, parties in-process, one file per party."""

from __future__ import annotations

import argparse
import sys

from vfl.cli.common import (
    add_data_options,
    add_force_option,
    check_outputs,
    dumps,
    party_inputs,
    write_outputs,
)

__all__ = ["output_names", "register", "run"]


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative number, got {text}")
    return value


def register(commands: argparse._SubParsersAction) -> None:
    from parties.binning.config import DEFAULT_MIN_BIN_ROWS, BinningConfig
    from vfl.cli.options import add_run_option
    from vfl.risk.binning import BINNING_METHODS

    defaults = BinningConfig()
    parser = commands.add_parser(
        "binning", help="bin every party's columns and compute their WOE and IV (B's labels "
                        "travel only encrypted)",
        description="Align the parties privately, bin each party's columns, and compute every "
                    "column's weight of evidence (WOE) and information value (IV) against "
                    "the label holder's labels without any party seeing another's data "
                    "(docs/binning.md). Writes DIR/binning_<party>.json per party: per column "
                    "its edges (in its owner's file only), rows and events per bin, WOE and "
                    "IV. The label holder's file lists the feature holders' columns under "
                    "anonymous names (A1#0, ...), without edges. Nothing is written unless "
                    "the run succeeds.")
    add_data_options(parser, label=True)
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="folder for the binning files, created if needed. Required")
    parser.add_argument("--method", default=defaults.method, choices=BINNING_METHODS,
                        help="quantile or equal-width bins, or ChiMerge: adjacent quantile "
                             "bins merged by their event counts (default: %(default)s)")
    parser.add_argument("--bins", type=_positive_int, default=defaults.bins, metavar="K",
                        help="value bins per column at most (default: %(default)s)")
    parser.add_argument("--prebins", type=_positive_int, default=defaults.prebins,
                        metavar="K", help="ChiMerge's starting quantile bins (default: "
                                          "%(default)s)")
    parser.add_argument("--min-bin-rows", type=_positive_int, default=DEFAULT_MIN_BIN_ROWS,
                        metavar="N",
                        help="fewest rows of any bin; smaller bins are merged by their owner "
                             "before anything about them is revealed (default: %(default)s)")
    select = parser.add_mutually_exclusive_group()
    select.add_argument("--select-iv", type=_non_negative, default=None, metavar="T",
                        help="mark as selected the columns with IV at least T")
    select.add_argument("--select-top", type=_positive_int, default=None, metavar="K",
                        help="mark as selected the K columns of highest IV, across parties")
    group = parser.add_argument_group("run settings")
    for name in ("key_bits", "insecure_key", "backend", "insecure_plaintext", "alignment"):
        add_run_option(group, name)
    add_force_option(parser, "binning files")
    parser.add_argument("--quiet", action="store_true", help="print only errors")
    parser.set_defaults(run=run)


def output_names(parties: list[str]) -> dict[str, str]:
    """Each party's file in DIR."""
    return {party: f"binning_{party}.json" for party in parties}


def run(args: argparse.Namespace) -> int:
    from parties.binning import (
        BinningConfig,
        BinningCoordinator,
        BinningFeatureHolder,
        BinningLabelHolder,
        run_binning,
    )
    from vfl.runtime.config import RunConfig

    inputs = party_inputs(args.party_b, args.party_a)
    names = output_names(list(inputs))
    check_outputs(args.out, names.values(), inputs, force=args.force)
    config = BinningConfig(method=args.method, bins=args.bins, min_bin_rows=args.min_bin_rows,
                           prebins=args.prebins, select_iv=args.select_iv,
                           select_top=args.select_top)
    # The run settings (key size and its opt-out, engine) are checked before any file is read.
    RunConfig(key_bits=args.key_bits, insecure_key=args.insecure_key, backend=args.backend,
              insecure_plaintext=args.insecure_plaintext, alignment=args.alignment)
    coordinator = BinningCoordinator(key_bits=args.key_bits, insecure_key=args.insecure_key,
                                     backend=args.backend)
    parties = list(inputs)
    b = BinningLabelHolder.from_csv(inputs["B"], id_column=args.id_column,
                                    label_column=args.label_column)
    holders = [BinningFeatureHolder.from_csv(inputs[p], id_column=args.id_column, name=p,
                                             label_column=args.label_column)
               for p in parties[1:]]
    run_binning(b, holders, coordinator, config, alignment=args.alignment)
    write_outputs(args.out, {names[p.name]: dumps(p.report()) for p in (b, *holders)},
                  inputs, force=args.force)
    if not args.quiet:
        print(f"{b.aligned_rows_} rows shared by {', '.join(parties)}; {config.method} bins, "
              f"at least {config.min_bin_rows} rows each")
        print(f"{'column':<24} {'owner':<6} {'bins':>4} {'IV':>9}  selected")
        for feature in sorted(b.result_ or [], key=lambda f: -f.iv):
            print(f"{feature.name:<24} {feature.owner:<6} {len(feature.counts):>4} "
                  f"{feature.iv:>9.4f}  {'yes' if feature.selected else 'no'}")
        for party in parties:
            print(f"wrote {args.out}/{names[party]}", file=sys.stderr)
    return 0
