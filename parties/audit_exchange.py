"""The signed audit record of a networked run: every party signs, every party keeps a copy.

When the parties are separate processes (``vfl party``), each one holds its
own copy of the log and its own signing key (the ``[audit]`` table of its
configuration). Every protocol family has a *leader* that drafts the record
and *followers* (:func:`roles_of`): vertical, the label holder B and the
feature holders and coordinator; horizontal, the server and the clients and
key holder; transfer, the target and the source. Over the endpoint the run
trained on:

1. before training, each follower tells the leader whether it audits and the
   leader answers (:class:`AuditPlan`); if the settings differ, the leader
   stops every party before any training, naming the parties without an
   ``[audit]`` table;
2. after training, each follower sends the leader an :class:`AuditClaim`:
   public key, its dataset fingerprint and model hash where it has data or a
   model (computed over its own rows and model), the head hash of its log copy;
3. the leader drafts the record on its own copy and sends it (:class:`AuditDraft`);
4. each party checks the draft (it follows its own copy, states its own
   fingerprint, model hash, key, session and configuration), signs it and
   sends the signature back (:class:`AuditSignature`);
5. the leader appends the signed record to its copy (which checks every
   signature) and sends it to every party (:class:`AuditRecordFinal`), which
   appends it to its own copy (checked again against that copy).

Every copy thus ends with the same record, byte for byte. Diverged copies are
refused at step 2 or 4, before anyone signs or writes; any failure stops
every party with an error naming the party that failed. The in-process path
(``vfl simulate``, ``vfl transfer``, notebooks) is :mod:`parties.audit`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from vfl.audit import (
    GENESIS_HASH,
    AuditLog,
    AuditRecord,
    PartySignature,
    load_signing_key,
    model_part_hash,
    public_key_hex,
    sign_record,
    table_fingerprint,
)
from vfl.audit.canonical import jsonable
from vfl.errors import (
    BrokenChainError,
    ConfigMismatchError,
    MalformedMessageError,
    ProtocolError,
    RecordMismatchError,
    SignatureError,
    TamperedRecordError,
)
from vfl.protocol.channel import Endpoint
from vfl.protocol.messages import (
    AuditClaim,
    AuditDraft,
    AuditPlan,
    AuditRecordFinal,
    AuditSignature,
)

__all__ = ["PartyAudit", "agree_auditing", "exchange_record", "open_audit", "roles_of"]


def roles_of(config) -> tuple[str, tuple[str, ...]]:
    """``(leader, followers)`` of the configuration's protocol family.

    Vertical: the label holder leads the feature holders and the coordinator;
    horizontal: the server leads the clients and the key holder; transfer:
    the target leads the source.
    """
    if config.kind == "horizontal":
        spec = config.horizontal
        return spec.server, (*spec.clients, spec.key_holder)
    if config.kind == "transfer":
        return config.transfer.target, (config.transfer.source,)
    return config.label_holder, (*config.feature_holders, config.coordinator)


#: Whether a claim must hold a fingerprint / a model hash: True, False, or None (optional).
_Expect = tuple[bool | None, bool | None]


def _expects(config, name: str) -> _Expect:
    """What party `name`'s claim must state: (dataset fingerprint, model hash)."""
    if config.kind == "horizontal":
        spec = config.horizontal
        if name in spec.clients:  # a client left out of the last rounds has no final model
            return True, None
        return (False, True) if name == spec.server else (False, False)
    if config.kind == "transfer":
        return True, True
    return (False, False) if name == config.coordinator else (True, True)


@dataclass(frozen=True)
class PartyAudit:
    """One party's side of the audit: its own log copy and its own signing key."""

    name: str
    log: AuditLog
    key: Ed25519PrivateKey

    @property
    def public_key(self) -> str:
        return public_key_hex(self.key)

    def head(self) -> AuditRecord | None:
        """The last record of this party's copy, after verifying the whole copy."""
        report = self.log.verify()
        report.raise_if_failed()
        return report.records[-1] if report.records else None


def open_audit(config) -> PartyAudit | None:
    """The audit side of a :class:`~vfl.party_config.PartyConfig`; None without ``[audit]``.

    Loads the key and verifies the log copy now, so that a wrong path, a key
    others can read or a damaged copy stops the party before training.

    Raises
    ------
    AuditKeyError
        If the key file is missing, readable by others or not an Ed25519 key.
    AuditLogError
        If the log copy does not verify.
    """
    if config.audit_log is None:
        return None
    audit = PartyAudit(config.name, AuditLog(config.audit_log),
                       load_signing_key(config.audit_key, party=config.name))
    audit.head()  # its errors name the file, the record and the line
    return audit


def agree_auditing(endpoint: Endpoint, config, audit: PartyAudit | None) -> None:
    """Before training: every follower tells the leader whether it audits; it checks and answers.

    (B is the leader of :func:`roles_of`.) Every party waits for B's answer,
    so a mismatch found by B stops every party at once with B's message (a
    :class:`~vfl.errors.PeerAbortedError` quoting it) before any training.

    Raises
    ------
    ConfigMismatchError
        At B, naming the parties with and without an ``[audit]`` table.
    """
    enabled = audit is not None
    b, others = roles_of(config)
    if config.name != b:
        endpoint.send(b, AuditPlan(enabled))
        if endpoint.receive(b, AuditPlan).enabled != enabled:  # B checked; a safeguard
            raise ConfigMismatchError(f"{b} answered that auditing is "
                                      f"{'off' if enabled else 'on'}, unlike this party",
                                      party=config.name)
        return
    settings = {name: endpoint.receive(name, AuditPlan).enabled for name in others}
    settings[config.name] = enabled
    if len(set(settings.values())) > 1:
        on = sorted(n for n, v in settings.items() if v)
        off = sorted(n for n, v in settings.items() if not v)
        raise ConfigMismatchError(
            f"auditing is configured at {', '.join(on)} but not at {', '.join(off)}: give "
            "every party an [audit] table in its configuration (log = its own copy of the "
            "audit log, key = its signing key from 'vfl audit keygen'), or none",
            party=config.name)
    for name in others:
        endpoint.send(name, AuditPlan(enabled))


def exchange_record(endpoint: Endpoint, config, party, audit: PartyAudit, *,
                    done_receiving: Callable[[], None] = lambda: None) -> AuditRecord:
    """After training: agree on, sign and append the run's record to every party's copy.

    Parameters
    ----------
    endpoint : Endpoint
        The endpoint the run trained on.
    config : PartyConfig
    party : the role object
        Trained: a vertical Coordinator, LabelHolder or FeatureHolder; a
        horizontal Server, Client or KeyHolder; a TransferSource or TransferTarget.
    audit : PartyAudit
    done_receiving : callable
        Called once this party awaits nothing more from its peers.

    Returns
    -------
    AuditRecord
        The record as appended to this party's copy.
    """
    claim = _own_claim(config, party, audit)
    if config.name == roles_of(config)[0]:
        record = _lead(endpoint, config, party, audit, claim)
        done_receiving()
        return record
    return _follow(endpoint, config, audit, claim, done_receiving)


# --- each party ---------------------------------------------------------------------


def _own_claim(config, party, audit: PartyAudit) -> AuditClaim:
    """What this party states: computed over its own aligned rows and model part."""
    head = audit.head()
    head_hash = head.hash if head is not None else None
    if config.role in ("coordinator", "key_holder"):
        return AuditClaim(audit.public_key, None, None, head_hash,
                          {"key_bits": config.key_bits, "backend": config.backend})
    if config.kind != "vertical":
        return _family_claim(config, party, audit, head_hash)
    if party.model_ is None or party.aligned_ids_ is None:
        raise ProtocolError("training ended without a model part; nothing to record",
                            party=config.name)
    aligned = party.aligned
    return AuditClaim(audit.public_key, table_fingerprint(aligned),
                      model_part_hash(party.model_), head_hash)


def _family_claim(config, party, audit: PartyAudit, head_hash: str | None) -> AuditClaim:
    """A horizontal or transfer party's claim (see :mod:`parties.audit` for the digests)."""
    from parties.audit import (
        client_fingerprint,
        global_model_hash,
        model_text_hash,
        overlap_fingerprint,
    )

    if config.role == "server":
        if party.weights_ is None:
            raise ProtocolError("training ended without a global model; nothing to record",
                                party=config.name)
        return AuditClaim(audit.public_key, None,
                          global_model_hash(party.features, party.weights_), head_hash)
    if config.role == "client":
        model = (None if party.weights_ is None
                 else global_model_hash(party.feature_names, party.weights_))
        return AuditClaim(audit.public_key, client_fingerprint(party), model, head_hash)
    if party.overlap_ is None or (config.role == "target" and party.phi_ is None):
        raise ProtocolError("training ended without a model; nothing to record",
                            party=config.name)
    return AuditClaim(audit.public_key, overlap_fingerprint(party),
                      model_text_hash(party.model_json()), head_hash)


def _record_config(config, settings: dict[str, Any]) -> dict[str, Any]:
    """The record's ``config``: training parameters, federation, C's key settings."""
    if config.kind == "horizontal":
        spec = config.horizontal
        return jsonable({**spec.config.to_dict(), "server": spec.server,
                         "key_holder": spec.key_holder, "clients": list(spec.clients),
                         "features": list(spec.features), "classes": list(spec.classes),
                         **settings}, "config")
    if config.kind == "transfer":
        from parties.audit import transfer_record_config

        spec = config.transfer
        return jsonable(transfer_record_config(spec.config, source=spec.source,
                                               target=spec.target, alignment=config.alignment),
                        "config")
    return jsonable({**config.training.to_dict(), "alignment": config.alignment,
                     "feature_holders": list(config.feature_holders), **settings}, "config")


def _check_draft(draft: AuditRecord, config, audit: PartyAudit, claim: AuditClaim) -> None:
    """Refuse to sign a draft that does not follow this party's copy or misstates the run."""
    head = audit.head()
    follows = ((head.index + 1, head.hash) if head is not None else (0, GENESIS_HASH))
    if (draft.index, draft.prev_hash) != follows:
        raise BrokenChainError(
            f"the draft from {roles_of(config)[0]} is record {draft.index} after hash "
            f"{draft.prev_hash[:16]}..., but this party's copy {audit.log.path} "
            + (f"ends at record {head.index} (hash {head.hash[:16]}...)" if head else "is empty")
            + ": the copies have diverged; restore every copy from one that verifies",
            index=draft.index, party=config.name)
    if draft.keys.get(config.name) != audit.public_key:
        raise RecordMismatchError(
            f"the draft pins key {draft.keys.get(config.name)!r} for this party, its key is "
            f"{audit.public_key} ({config.audit_key})", index=draft.index, party=config.name)
    if draft.session != config.run_id:
        raise RecordMismatchError(f"the draft is for session {draft.session!r}, this run is "
                                  f"{config.run_id!r}", index=draft.index, party=config.name)
    expected = _record_config(config, claim.settings)
    wrong = sorted(k for k, v in expected.items() if draft.config.get(k, ...) != v)
    if wrong:
        raise RecordMismatchError(
            "the draft states another configuration than this party ran: " + ", ".join(
                f"{k} {draft.config.get(k)!r} (here {expected[k]!r})" for k in wrong),
            index=draft.index, party=config.name)


def _follow(endpoint: Endpoint, config, audit: PartyAudit, claim: AuditClaim,
            done_receiving: Callable[[], None]) -> AuditRecord:
    """A follower: claim, check and sign the leader's draft, then append the signed record."""
    b = roles_of(config)[0]
    endpoint.send(b, claim)
    draft = AuditRecord.from_json(endpoint.receive(b, AuditDraft).record)
    _check_draft(draft, config, audit, claim)
    signature = sign_record(draft, audit.key, party=config.name,
                            fingerprint=claim.fingerprint, model_hash=claim.model_hash)
    endpoint.send(b, AuditSignature(signature.party, signature.public_key,
                                    signature.signature))
    final = AuditRecord.from_json(endpoint.receive(b, AuditRecordFinal).record)
    done_receiving()
    if final.hash != draft.hash:
        raise TamperedRecordError(f"{b} sent back a record other than the draft this party "
                                  "signed; it is not appended", index=final.index,
                                  party=config.name)
    return audit.log.append(final, final.signatures)


def _lead(endpoint: Endpoint, config, party, audit: PartyAudit,
          own: AuditClaim) -> AuditRecord:
    """The leader: collect the claims, draft, collect the signatures, append, hand out."""
    leader, followers = roles_of(config)
    others = list(followers)
    claims = {name: endpoint.receive(name, AuditClaim) for name in others}
    for name, claim in claims.items():
        _check_claim(config, name, claim)
        if claim.head_hash != own.head_hash:
            raise BrokenChainError(
                f"{name}'s copy of the audit log ends at "
                f"{_describe(claim.head_hash)}, this party's copy {audit.log.path} at "
                f"{_describe(own.head_hash)}: the copies have diverged; restore every copy "
                "from one that verifies (nothing was appended)", party=config.name)
    claims[config.name] = own
    head = audit.head()
    keys = {name: claim.public_key for name, claim in claims.items()}
    if head is not None and dict(head.keys) != keys:
        changed = sorted(set(head.keys) ^ set(keys)
                         | {n for n in keys if head.keys.get(n) not in (None, keys[n])})
        raise SignatureError(
            f"the log pins the keys of {', '.join(sorted(head.keys))}, but "
            f"{', '.join(changed)} now sign(s) with another key or are not pinned; use the "
            "pinned keys (changing keys is not supported over the network yet)",
            index=head.index + 1, party=config.name)
    fingerprints, model_hashes = {}, {}
    for name in (*followers, leader):
        fingerprint, model_hash = claims[name].fingerprint, claims[name].model_hash
        if fingerprint is not None:
            fingerprints[name] = fingerprint
        if model_hash is not None:
            model_hashes[name] = model_hash
    settings: dict[str, Any] = {}
    for name in followers:  # the key settings of the party that holds the key (C)
        if _expects(config, name) == (False, False):
            settings.update(claims[name].settings)
    record_config, metrics = _leader_summary(config, party, settings)
    draft = audit.log.draft(
        session=config.run_id, config=record_config,
        metrics=metrics, contributions={},
        fingerprints=fingerprints, model_hashes=model_hashes,
        keys=keys if head is None else None)
    text = draft.to_json()
    for name in others:
        endpoint.send(name, AuditDraft(text))
    signatures = [sign_record(draft, audit.key, party=config.name,
                              fingerprint=own.fingerprint, model_hash=own.model_hash)]
    for name in others:
        message = endpoint.receive(name, AuditSignature)
        if message.party != name:
            raise SignatureError(f"{name} sent a signature in the name of {message.party!r}",
                                 index=draft.index, party=config.name)
        signatures.append(PartySignature(message.party, message.public_key, message.signature))
    record = audit.log.append(draft, signatures)
    final = AuditRecordFinal(record.to_json())
    for name in others:
        endpoint.send(name, final)
    return record


def _check_claim(config, name: str, claim: AuditClaim) -> None:
    """Refuse a claim without what its role must state, or with what it cannot hold."""
    fingerprint, model_hash = _expects(config, name)
    if config.kind == "vertical":  # the vertical message, as it always was
        is_data_party = bool(fingerprint)
        if (claim.fingerprint is None) == is_data_party or \
                (claim.model_hash is None) == is_data_party:
            raise MalformedMessageError(
                f"{name} sent an AuditClaim " + ("without" if is_data_party else "with") +
                " a dataset fingerprint and model hash", party=config.name)
        return
    for what, expected, value in (("a dataset fingerprint", fingerprint, claim.fingerprint),
                                  ("a model hash", model_hash, claim.model_hash)):
        if expected is not None and (value is not None) != expected:
            raise MalformedMessageError(
                f"{name} sent an AuditClaim " + ("without " if expected else "with ") + what,
                party=config.name)


def _leader_summary(config, party, settings: dict[str, Any]
                    ) -> tuple[dict[str, Any], dict[str, float]]:
    """The record's ``config`` and ``metrics``, as the leader knows them."""
    record_config = _record_config(config, settings)
    if config.kind == "horizontal":
        from parties.audit import horizontal_summary, participation

        record_config["participation"] = participation(party.current.history)
        return record_config, horizontal_summary(party)
    if config.kind == "transfer":
        state = party.current
        return record_config, {"epochs": int(state.epoch),
                               "overlap_rows": len(party.overlap_)}
    history = party.history_[-1] if party.history_ else {}
    metrics = {"epochs": len(party.history_), "aligned_rows": party.aligned_rows_}
    for name, key in (("final_loss", "loss"), ("final_validation_loss", "validation_loss")):
        value = history.get(key)
        if value is not None and math.isfinite(value):
            metrics[name] = float(value)
    return record_config, metrics


def _describe(head_hash: str | None) -> str:
    return "nothing (it is empty)" if head_hash is None else f"hash {head_hash[:16]}..."

