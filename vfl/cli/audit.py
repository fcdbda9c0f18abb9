"""``vfl audit``: check and read the signed audit log, and make a party's signing key."""

from __future__ import annotations

import argparse
import sys

__all__ = ["register", "run_keygen", "run_show", "run_verify"]

_SHORT = 8  # hex digits of a hash shown in the table


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "audit", help="verify or show the signed audit log of training runs; make signing keys",
        description="Every training run can append a record to an audit log: dataset "
                    "fingerprints, configuration, metrics, model hashes and contributions, "
                    "hash-chained and signed by every party (see docs/audit.md).")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    check = actions.add_parser(
        "verify", help="check the hash chain and every signature",
        description="Check every record's hash, its link to the record before, and every "
                    "party's signature. Exit 0 when the log is intact; exit 2 naming the first "
                    "record that fails.")
    check.add_argument("log", metavar="LOG", help="the audit log (JSON Lines)")
    check.add_argument("--keys", metavar="DIR|JSON",
                       help="trusted public keys: a folder of PARTY.pub files or a JSON file "
                            "{party: hex key or [keys]}; without it the log is checked against "
                            "the keys its own first record pins")
    check.add_argument("--expect-hash", metavar="HASH",
                       help="a record hash noted earlier that the log must still contain "
                            "(detects records cut off the end)")
    check.set_defaults(run=run_verify)

    show = actions.add_parser(
        "show", help="print the history as a table",
        description="Verify the log, then print one row per record. Records from the first "
                    "failing one on are not shown, and the exit status is then 2.")
    show.add_argument("log", metavar="LOG", help="the audit log (JSON Lines)")
    show.add_argument("--keys", metavar="DIR|JSON", help="trusted public keys, as for verify")
    show.set_defaults(run=run_show)

    keygen = actions.add_parser(
        "keygen", help="make a party's Ed25519 signing key pair",
        description="Write OUT/PARTY.key (private, mode 0600) and OUT/PARTY.pub (public, to give "
                    "to the other parties and verifiers). Existing files are never overwritten.")
    keygen.add_argument("--party", required=True, metavar="NAME", help="party name (A1, B, C)")
    keygen.add_argument("--out", required=True, metavar="DIR", help="folder for the key files")
    keygen.set_defaults(run=run_keygen)


def run_verify(args: argparse.Namespace) -> int:
    from vfl.audit import load_keyring, verify

    keyring = load_keyring(args.keys) if args.keys else None
    report = verify(args.log, keyring, expect_hash=args.expect_hash)
    if not report.ok:
        print(f"vfl audit verify: {args.log}: {report.summary()}", file=sys.stderr)
        return 2
    print(report.summary())
    print(f"head hash: {report.head_hash}")
    if keyring is None:
        print("keys: as pinned by the first record (pass --keys to check them against keys "
              "you trust)")
    return 0


def run_show(args: argparse.Namespace) -> int:
    from vfl.audit import load_keyring, verify

    keyring = load_keyring(args.keys) if args.keys else None
    report = verify(args.log, keyring)
    print(format_table(report.records))
    if not report.ok:
        print(f"vfl audit show: {args.log}: {report.summary()}; later records are not shown",
              file=sys.stderr)
        return 2
    return 0


def run_keygen(args: argparse.Namespace) -> int:
    from vfl.audit import generate_signing_key, public_key_fingerprint, save_signing_key
    from vfl.audit.keys import check_party_name

    try:
        check_party_name(args.party)
    except ValueError as exc:
        from vfl.errors import AuditKeyError
        raise AuditKeyError(f"{exc}; pass another --party") from None
    key = generate_signing_key()
    private_path, public_path = save_signing_key(key, args.out, args.party)
    print(f"party {args.party}: private key {private_path} (keep it secret), public key "
          f"{public_path} (give it to the other parties)")
    print(f"public key fingerprint: {public_key_fingerprint(key)}")
    return 0


def format_table(records) -> str:
    """The records as an aligned text table, one row each."""
    header = ["#", "time (UTC)", "session", "parties", "metrics", "contributions",
              "model hashes"]
    rows = [header]
    for record in records:
        rows.append([
            str(record.index),
            record.time.replace("T", " ").split(".")[0].rstrip("Z"),
            record.session[:12],
            ",".join(sorted(record.keys)),
            " ".join(f"{k}={_number(v)}" for k, v in sorted(record.metrics.items())) or "-",
            " ".join(f"{k}={_number(v)}" for k, v in sorted(record.contributions.items()))
            or "-",
            " ".join(f"{k}:{v[:_SHORT]}" for k, v in sorted(record.model_hashes.items())) or "-",
        ])
    widths = [max(len(row[k]) for row in rows) for k in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
             for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def _number(value: float) -> str:
    return f"{value:.4g}"
