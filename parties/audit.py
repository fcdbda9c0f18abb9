"""Append a signed record of an in-process training run to the audit log.

Each party computes its own dataset fingerprint (over its aligned rows, in
training order) and model-part hash, checks them in the draft and signs with
its own Ed25519 key; the coordinator signs the record as a whole. In a
notebook or ``vfl simulate`` one process plays every party, so this module
does what the three organisations would each do for themselves.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from parties.vertical.data_party import DataParty
from parties.vertical.federation import Federation
from vfl.audit import (
    AuditLog,
    AuditRecord,
    dataset_fingerprint,
    load_signing_key,
    model_part_hash,
    public_key_hex,
    sign_record,
    table_fingerprint,
)
from vfl.audit.canonical import canonical_json, sha256_hex
from vfl.errors import AuditKeyError

__all__ = [
    "check_audit_log",
    "client_fingerprint",
    "global_model_hash",
    "horizontal_summary",
    "load_party_keys",
    "model_text_hash",
    "overlap_fingerprint",
    "participation",
    "record_claims",
    "record_horizontal",
    "record_run",
    "record_transfer",
    "transfer_record_config",
]

#: Format tag of :func:`global_model_hash`.
GLOBAL_MODEL_FORMAT = "vfl-horizontal-global-model/1"


def client_fingerprint(client: Any) -> str:
    """A horizontal client's dataset fingerprint: all its own rows, in file order.

    A client's file has no ID column, so the IDs are the row positions
    ``"0"``, ``"1"``, ...; the values are its raw (unstandardised) features in
    the federation's column order, and its labels.
    """
    rows = len(client.labels)
    return dataset_fingerprint([str(i) for i in range(rows)], list(client.feature_names),
                               client.raw_features, client.labels)


def global_model_hash(features: Sequence[str], weights: Any) -> str:
    """SHA-256 of a horizontal run's global model, as the server and every client hold it.

    The canonical JSON of ``{"format": "vfl-horizontal-global-model/1",
    "features": [...], "weights": [[...], ...]}`` with the weights as trained
    (standardised units, one row per feature then the intercept row, one
    column per output), so the server's hash and each client's are equal.
    """
    matrix = np.asarray(weights, dtype=np.float64)
    document = {"format": GLOBAL_MODEL_FORMAT, "features": [str(f) for f in features],
                "weights": [[float(v) for v in row] for row in matrix.reshape(len(matrix), -1)]}
    return sha256_hex(canonical_json(document).encode("ascii"))


def overlap_fingerprint(party: Any) -> str:
    """A transfer party's dataset fingerprint: its overlap rows, in the agreed order."""
    if party.overlap_ is None:
        raise ValueError(f"party {party.name} has not been aligned: fit first")
    return table_fingerprint(party.table.take(np.asarray(party.overlap_)))


def model_text_hash(text: str) -> str:
    """SHA-256 of a model file's text (UTF-8): ``sha256sum model_NAME.json`` gives it."""
    return sha256_hex(text.encode("utf-8"))


def transfer_record_config(config: Any, *, source: str, target: str,
                           alignment: str) -> dict[str, Any]:
    """The ``config`` of a transfer run's record: TransferConfig, names, alignment."""
    return {**config.to_dict(), "source": source, "target": target, "alignment": alignment}


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


def record_claims(log_path: str | os.PathLike[str], keys: Mapping[str, Ed25519PrivateKey], *,
                  session: str, fingerprints: Mapping[str, str],
                  model_hashes: Mapping[str, str], config: Mapping[str, object],
                  metrics: Mapping[str, float]) -> AuditRecord:
    """Draft, have every party of `keys` sign its own claims, and append (any family).

    Each party signs stating its own fingerprint and model hash (where it has
    them), as each would over the network; the parties are `keys`' names.
    """
    log = AuditLog(log_path)
    first = not os.path.exists(log_path) or os.path.getsize(log_path) == 0
    draft = log.draft(session=session, fingerprints=fingerprints, config=config,
                      metrics=metrics, model_hashes=model_hashes, contributions={},
                      keys={n: public_key_hex(k) for n, k in keys.items()} if first else None)
    signatures = [sign_record(draft, key, party=name, fingerprint=fingerprints.get(name),
                              model_hash=model_hashes.get(name))
                  for name, key in keys.items()]
    return log.append(draft, signatures)


def record_transfer(source: Any, target: Any, config: Any,
                    log_path: str | os.PathLike[str], keys: Mapping[str, Ed25519PrivateKey],
                    *, session: str, alignment: str) -> AuditRecord:
    """The record of an in-process transfer run, signed by source and target.

    As over the network: each party's fingerprint of its overlap rows, the
    SHA-256 of its model file text, the run's configuration; metrics the
    epochs, the overlap size and (known to both here) the final loss.
    """
    parties = (source, target)
    missing = [p.name for p in parties if p.name not in keys]
    if missing:
        raise AuditKeyError(f"no signing key for {', '.join(missing)}")
    metrics: dict[str, float] = {"epochs": int(target.current.epoch),
                                 "overlap_rows": len(target.overlap_)}
    losses = [h["loss"] for h in source.history_]
    if losses and np.isfinite(losses[-1]):
        metrics["final_loss"] = float(losses[-1])
    return record_claims(
        log_path, {p.name: keys[p.name] for p in parties}, session=session,
        fingerprints={p.name: overlap_fingerprint(p) for p in parties},
        model_hashes={p.name: model_text_hash(p.model_json()) for p in parties},
        config=transfer_record_config(config, source=source.name, target=target.name,
                                      alignment=alignment),
        metrics=metrics)


def participation(history: Sequence[Any]) -> list[dict[str, Any]]:
    """Who took part in each horizontal round: the clients whose updates are in its sum
    (``participants``) and those sampled whose updates did not arrive (``dropped``)."""
    return [{"round": int(r.round), "participants": list(r.participants),
             "dropped": list(r.dropped)} for r in history]


def horizontal_summary(server: Any) -> dict[str, float]:
    """The record's metrics of a horizontal run: rounds and the last decrypted loss."""
    history = server.current.history
    metrics: dict[str, float] = {"rounds": len(history)}
    losses = [r.loss for r in history if r.loss is not None and np.isfinite(r.loss)]
    if losses:
        metrics["final_loss"] = float(losses[-1])
    return metrics


def record_horizontal(federation: Any, log_path: str | os.PathLike[str],
                      keys: Mapping[str, Ed25519PrivateKey]) -> AuditRecord:
    """The record of an in-process horizontal run (:class:`HorizontalFederation`).

    Signed by the server S, the key holder C and every client, as over the
    network: each client's fingerprint of its own rows, the global model's
    hash at S and at each client that received it, the run's configuration
    with each round's participants and dropouts.
    """
    server, clients = federation.server_, federation.client_roles_
    if server is None or server.weights_ is None:
        raise ValueError("the federation has not been trained: fit first")
    names = ["S", "C", *clients]
    missing = [n for n in names if n not in keys]
    if missing:
        raise AuditKeyError(f"no signing key for {', '.join(missing)}")
    hashes = {"S": global_model_hash(server.features, server.weights_)}
    for name, client in clients.items():
        if client.weights_ is not None:
            hashes[name] = global_model_hash(client.feature_names, client.weights_)
    config = {**federation.config.to_dict(), "server": "S", "key_holder": "C",
              "clients": list(clients), "features": list(federation.features),
              "classes": list(federation.classes), "key_bits": federation.key_bits,
              "backend": federation.backend,
              "participation": participation(server.current.history)}
    assert federation.network_ is not None
    return record_claims(log_path, {n: keys[n] for n in names},
                         session=federation.network_.session,
                         fingerprints={n: client_fingerprint(c) for n, c in clients.items()},
                         model_hashes=hashes, config=config,
                         metrics=horizontal_summary(server))
