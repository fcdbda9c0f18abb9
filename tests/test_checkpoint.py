"""Checkpoint files: exact round trips, the last two kept, damage and foreign runs refused."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vfl.checkpoint import CheckpointStore, agree_resume_epoch
from vfl.errors import CheckpointError

IDENTITY = {"role": "feature_holder", "config": {"epochs": 5, "learning_rate": 0.1},
            "data_fingerprint": "ab" * 32}


def store(folder, run_id="run-1", party="A1"):
    made = CheckpointStore(folder, party=party, run_id=run_id)
    made.scan(IDENTITY)
    return made


def test_states_round_trip_exactly_and_only_the_last_two_are_kept(tmp_path):
    saving = store(tmp_path)
    rng = np.random.default_rng(0)
    weights = rng.normal(size=7) / 3
    for epoch in range(4):
        saving.save(epoch, {"epoch": epoch, "theta": weights * epoch,
                            "rng": rng.bit_generator.state})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["A1-epoch-000002.json",
                                                          "A1-epoch-000003.json"]
    reading = CheckpointStore(tmp_path, party="A1", run_id="run-1")
    assert reading.scan(IDENTITY) == [2, 3]
    state = reading.load(3)
    assert np.array_equal(np.array(state["theta"]), weights * 3)  # every bit
    restored = np.random.default_rng()
    restored.bit_generator.state = state["rng"]
    assert restored.integers(0, 2**63) == rng.integers(0, 2**63)
    assert reading.load(None) is None


def test_a_damaged_file_is_named_and_the_previous_one_stays_usable(tmp_path):
    saving = store(tmp_path)
    for epoch in (1, 2):
        saving.save(epoch, {"theta": [0.5 * epoch]})
    damaged = tmp_path / "A1-epoch-000002.json"
    damaged.write_text(damaged.read_text().replace("1.0", "1.5"))
    reading = CheckpointStore(tmp_path, party="A1", run_id="run-1")
    assert reading.scan(IDENTITY) == [1]
    assert reading.load(1) == {"theta": [0.5]}
    with pytest.raises(CheckpointError, match="A1-epoch-000002.json is damaged"):
        reading.load(2)


def test_a_truncated_file_is_named(tmp_path):
    store(tmp_path).save(1, {"theta": [1.0]})
    path = tmp_path / "A1-epoch-000001.json"
    path.write_bytes(path.read_bytes()[:40])
    reading = CheckpointStore(tmp_path, party="A1", run_id="run-1")
    assert reading.scan(IDENTITY) == []
    assert "not JSON" in reading.damaged[1] and str(path) in reading.damaged[1]


def test_a_checkpoint_of_another_run_is_refused(tmp_path):
    store(tmp_path, run_id="run-1").save(1, {"theta": [1.0]})
    with pytest.raises(CheckpointError, match="belongs to run 'run-1', not to this run 'run-2'"):
        CheckpointStore(tmp_path, party="A1", run_id="run-2").scan(IDENTITY)


@pytest.mark.parametrize("change, words", [
    ({"config": {"epochs": 5, "learning_rate": 0.2}}, "learning_rate 0.1 -> 0.2"),
    ({"data_fingerprint": "cd" * 32}, "data_fingerprint changed"),
])
def test_a_checkpoint_of_other_settings_or_data_is_refused(tmp_path, change, words):
    store(tmp_path).save(1, {"theta": [1.0]})
    with pytest.raises(CheckpointError, match=words) as error:
        CheckpointStore(tmp_path, party="A1", run_id="run-1").scan({**IDENTITY, **change})
    assert "A1-epoch-000001.json" in str(error.value)


def test_files_are_complete_json_with_a_digest(tmp_path):
    path = store(tmp_path).save(0, {"theta": [0.25]})
    record = json.loads(path.read_text())
    assert record["format"] == "vfl-checkpoint/1" and len(record["sha256"]) == 64
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp")]


@pytest.mark.parametrize("holdings, expected", [
    ({"B": [3, 4], "A1": [3, 4], "C": [3, 4]}, 4),
    ({"B": [3, 4], "A1": [4, 5], "C": [3, 4]}, 4),   # one epoch apart
    ({"B": [2, 3], "A1": [3, 4], "C": [3, 4]}, 3),
    ({"B": [], "A1": [], "C": []}, None),
    ({"B": [0], "A1": [], "C": [0]}, None),          # died before epoch 1: start afresh
])
def test_the_resume_epoch_is_the_latest_every_party_holds(holdings, expected):
    assert agree_resume_epoch(holdings) == expected


def test_no_common_epoch_is_an_error_listing_every_party():
    with pytest.raises(CheckpointError, match="A1: 5, 6; C: none"):
        agree_resume_epoch({"B": [3, 4], "A1": [5, 6], "C": []}, party="B")
