"""``vfl certs``: a federation CA and one TLS certificate per party."""

from __future__ import annotations

import argparse
import sys

from vfl.cli.common import DefaultsHelpFormatter
from vfl.errors import CertificateFileError

__all__ = ["register", "run"]


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "certs", help="create a certificate authority and one TLS certificate per party",
        description="Writes ca.crt and ca.key (the federation operator keeps ca.key) and "
                    "NAME.crt, NAME.key for each party (hand each party its own pair and "
                    "ca.crt). Private keys get mode 0600; existing files are never "
                    "overwritten. See docs/network.md.",
        formatter_class=DefaultsHelpFormatter)
    parser.add_argument("--out", required=True, metavar="DIR", help="folder to write into")
    parser.add_argument("--parties", required=True, metavar="NAMES",
                        help="comma-separated party names, e.g. A1,B,C")
    parser.add_argument("--days", type=_days, default=365,
                        help=f"validity of every certificate, 1 to {MAX_DAYS} days")
    parser.set_defaults(run=run)


#: A certificate valid for longer than a century is a typo (and beyond about
#: 2.9 million days the end date no longer fits a date).
MAX_DAYS = 36500


def _days(text: str) -> int:
    try:
        days = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of days, got {text!r}") from None
    if not 1 <= days <= MAX_DAYS:
        raise argparse.ArgumentTypeError(f"must be from 1 to {MAX_DAYS} days, got {days}")
    return days


def run(args: argparse.Namespace) -> int:
    from vfl.net.certs import create_federation_certificates

    names = [name.strip() for name in args.parties.split(",") if name.strip()]
    try:
        written = create_federation_certificates(args.out, names, days=args.days)
    except (FileExistsError, ValueError) as exc:
        raise CertificateFileError(f"{exc}") from None
    print(f"wrote the CA {written.ca_cert} (keep {written.ca_key} with the federation "
          "operator, offline)", file=sys.stderr)
    for name, (cert, key) in written.parties.items():
        print(f"party {name}: {cert} and {key} (give only to {name}, with "
              f"{written.ca_cert.name})", file=sys.stderr)
    return 0
