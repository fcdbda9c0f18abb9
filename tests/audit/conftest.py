"""Fixtures for the audit log tests: three parties' keys and a log of a few signed runs."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest

from vfl.audit import AuditLog, AuditRecord, generate_signing_key, public_key_hex, sign_record

PARTIES = ("A1", "B", "C")
RUNS = 4


def fake_hash(text: str) -> str:
    """A stand-in 64-hex digest (the log does not care what was hashed)."""
    return hashlib.sha256(text.encode()).hexdigest()


def run_fields(k: int) -> dict:
    """The content of training run `k`, different for every run."""
    return {"session": f"session-{k:02d}-{fake_hash(str(k))[:20]}",
            "fingerprints": {"A1": fake_hash(f"data A1 {k}"), "B": fake_hash(f"data B {k}")},
            "config": {"epochs": 10 + k, "learning_rate": 0.1, "batch_size": None, "l2": 0.01},
            "metrics": {"r2": 0.4 + k / 100, "rmse": 55.5 - k},
            "model_hashes": {"A1": fake_hash(f"model A1 {k}"), "B": fake_hash(f"model B {k}")},
            "contributions": {"A1": 0.1 + k / 1000, "B": 0.3} if k % 2 else {}}


@pytest.fixture
def party_keys():
    return {party: generate_signing_key() for party in PARTIES}


@pytest.fixture
def append_run(party_keys) -> Callable[..., AuditRecord]:
    """append_run(log, k): draft run k, have every party sign it, append it."""

    def append(log: AuditLog, k: int, keys=None, signers=None) -> AuditRecord:
        public = {p: public_key_hex(key) for p, key in party_keys.items()}
        draft = log.draft(**run_fields(k), keys=keys or (public if k == 0 else None))
        signers = signers or party_keys
        return log.append(draft, [sign_record(draft, key, party=p) for p, key in signers.items()])

    return append


@pytest.fixture
def log_path(tmp_path, append_run):
    """A log of RUNS signed records."""
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    for k in range(RUNS):
        append_run(log, k)
    return path


@pytest.fixture
def fields() -> Callable[[int], dict]:
    """run_fields, for tests that draft by hand."""
    return run_fields
