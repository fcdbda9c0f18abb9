"""Append a signed record of an in-process training run to the audit log.

Each party computes its own dataset fingerprint (over its aligned rows, in
training order) and model-part hash, checks them in the draft and signs with
its own Ed25519 key; the coordinator signs the record as a whole. In a
notebook or ``vfl simulate`` one process plays every party, so this module
does what the three organisations would each do for themselves.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from parties.vertical.data_party import DataParty
from parties.vertical.federation import Federation
from vfl.audit import (
    AuditLog,
    AuditRecord,
    load_signing_key,
    model_part_hash,
    public_key_hex,
    sign_record,
    table_fingerprint,
)
from vfl.errors import AuditKeyError

__all__ = ["check_audit_log", "load_party_keys", "record_run"]


def load_party_keys(folder: str | os.PathLike[str], names: list[str]
                    ) -> dict[str, Ed25519PrivateKey]:
    """Every party's signing key from ``folder/NAME.key`` (made by ``vfl audit keygen``)."""
    keys = {}
    for name in names:
        path = os.path.join(os.fspath(folder), f"{name}.key")
        if not os.path.exists(path):
            raise AuditKeyError(f"no signing key {path}; create it with 'vfl audit keygen "
                                f"--party {name} --out {os.fspath(folder)}'", party=name)
        keys[name] = load_signing_key(path)
    return keys


def check_audit_log(log_path: str | os.PathLike[str],
                    keys: Mapping[str, Ed25519PrivateKey]) -> None:
    """Before training: the log verifies, and its pinned keys are these parties' keys.

    So that a run whose record could not be appended is refused before any
    work, instead of leaving an unaudited model behind.

    Raises
    ------
    AuditLogError
        If the log fails verification (naming the first bad record).
    AuditKeyError
        If a party's key is not the one the log pins for it.
    """
    records = AuditLog(log_path).records()
    if not records:
        return
    pinned = records[-1].keys
    for name, key in keys.items():
        if name in pinned and pinned[name] != public_key_hex(key):
            raise AuditKeyError(f"{os.fspath(log_path)} pins another public key for {name} "
                                f"than {name}'s signing key; use the pinned key",
                                party=name)
    unknown = sorted(set(keys) - set(pinned))
    if unknown:
        raise AuditKeyError(f"{os.fspath(log_path)} pins no key for {', '.join(unknown)}; "
                            f"the log is signed by {', '.join(sorted(pinned))}")


def record_run(federation: Federation, log_path: str | os.PathLike[str],
               keys: Mapping[str, Ed25519PrivateKey], *, metrics: Mapping[str, float],
               config: Mapping[str, object],
               contributions: Mapping[str, float] | None = None) -> AuditRecord:
    """Draft, have every party sign, and append the record of the last fit.

    Parameters
    ----------
    federation : Federation
        Fitted.
    log_path : path-like
        The JSON Lines log (created on first use; the first record pins the
        public keys of `keys`).
    keys : mapping of party name to Ed25519 private key
        One per party, coordinator included.
    metrics, config, contributions
        What the record states about the run.
    """
    data_parties: list[DataParty[Any]] = [*federation.feature_holders, federation.label_holder]
    if federation.session_ is None:
        raise ValueError("the federation has not been trained: fit first")
    fingerprints, hashes = {}, {}
    for party in data_parties:
        if party.model_ is None or party.aligned_ids_ is None:
            raise ValueError(f"party {party.name} has not been trained: fit first")
        fingerprints[party.name] = table_fingerprint(party.aligned)
        hashes[party.name] = model_part_hash(party.model_)
    names = [federation.coordinator.name, *(p.name for p in data_parties)]
    missing = [n for n in names if n not in keys]
    if missing:
        raise AuditKeyError(f"no signing key for {', '.join(missing)}")
    log = AuditLog(log_path)
    first = not os.path.exists(log_path) or os.path.getsize(log_path) == 0
    draft = log.draft(session=federation.session_, fingerprints=fingerprints, config=config,
                      metrics=metrics, model_hashes=hashes, contributions=contributions,
                      keys={n: public_key_hex(keys[n]) for n in names} if first else None)
    signatures = [sign_record(draft, keys[p.name], party=p.name,
                              fingerprint=fingerprints[p.name], model_hash=hashes[p.name])
                  for p in data_parties]
    signatures.append(sign_record(draft, keys[federation.coordinator.name],
                                  party=federation.coordinator.name))
    return log.append(draft, signatures)
