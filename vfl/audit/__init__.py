"""A tamper-evident audit log of training runs that every party signs.

Each training run appends one record: the session, each party's dataset
fingerprint and model-part hash, the configuration, the final metrics and the
contributions. Records are hash-chained and signed by every party with its
own Ed25519 key, so no single party can rewrite the history unnoticed. See
``docs/audit.md`` for the trust model and its limits.

Typical use at the end of a run (each party computes its own fingerprint and
model hash and signs with its own key, possibly in its own process)::

    from vfl.audit import AuditLog, model_part_hash, sign_record, table_fingerprint

    log = AuditLog("audit.jsonl")
    draft = log.draft(session=session, config=config, metrics=metrics,
                      fingerprints={"A1": fp_a, "B": fp_b},
                      model_hashes={"A1": mh_a, "B": mh_b},
                      contributions={}, keys=public_keys)   # keys: first record only
    signatures = [sign_record(draft, key_a, party="A1", fingerprint=fp_a, model_hash=mh_a),
                  sign_record(draft, key_b, party="B", fingerprint=fp_b, model_hash=mh_b),
                  sign_record(draft, key_c, party="C")]
    log.append(draft, signatures)
    verify("audit.jsonl").ok
"""

from vfl.audit.fingerprint import dataset_fingerprint, model_part_hash, table_fingerprint
from vfl.audit.keys import (
    Keyring,
    generate_signing_key,
    load_keyring,
    load_public_key,
    load_signing_key,
    public_key_fingerprint,
    public_key_from_hex,
    public_key_hex,
    save_signing_key,
)
from vfl.audit.log import AuditLog
from vfl.audit.record import GENESIS_HASH, RECORD_FORMAT, AuditRecord, PartySignature, sign_record
from vfl.audit.verify import VerificationReport, verify

__all__ = [
    "GENESIS_HASH",
    "RECORD_FORMAT",
    "AuditLog",
    "AuditRecord",
    "Keyring",
    "PartySignature",
    "VerificationReport",
    "dataset_fingerprint",
    "generate_signing_key",
    "load_keyring",
    "load_public_key",
    "load_signing_key",
    "model_part_hash",
    "public_key_fingerprint",
    "public_key_from_hex",
    "public_key_hex",
    "save_signing_key",
    "sign_record",
    "table_fingerprint",
    "verify",
]
