"""Checkpoint files: exact round trips, the last two kept; damaged, foreign, old files refused."""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from typing import ClassVar

import numpy as np
import pytest

from vfl.errors import CheckpointError
from vfl.runtime.checkpoint import CheckpointStore, agree_resume_epoch
from vfl.runtime.state import GeneratorState, RoleState

IDENTITY = {"role": "feature_holder", "config": {"epochs": 5, "learning_rate": 0.1},
            "data_fingerprint": "ab" * 32}


@dataclass
class Weights(RoleState):
    LAYOUT: ClassVar[str] = "test.weights/1"

    theta: np.ndarray
    rng: GeneratorState | None = None


def weights(values, epoch=1, rng=None) -> Weights:
    return Weights(epoch=epoch, stopped=False, theta=np.asarray(values, dtype=float), rng=rng)


def store(folder, run_id="run-1", party="A1", state_type=Weights):
    made = CheckpointStore(folder, party=party, run_id=run_id, state_type=state_type)
    made.scan(IDENTITY)
    return made


def reader(folder, run_id="run-1", party="A1", state_type=Weights):
    return CheckpointStore(folder, party=party, run_id=run_id, state_type=state_type)


def test_states_round_trip_exactly_and_only_the_last_two_are_kept(tmp_path):
    saving = store(tmp_path)
    rng = np.random.default_rng(0)
    values = rng.normal(size=7) / 3
    for epoch in range(4):
        saving.save(epoch, weights(values * epoch, epoch, GeneratorState.of(rng)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["A1-epoch-000002.json",
                                                          "A1-epoch-000003.json"]
    reading = reader(tmp_path)
    assert reading.scan(IDENTITY) == [2, 3]
    state = reading.load(3)
    assert isinstance(state, Weights) and state.epoch == 3
    assert np.array_equal(state.theta, values * 3)  # every bit
    restored = state.rng.generator()
    assert restored.integers(0, 2**63) == rng.integers(0, 2**63)
    assert reading.load(None) is None


def test_a_damaged_file_is_named_and_the_previous_one_stays_usable(tmp_path):
    saving = store(tmp_path)
    for epoch in (1, 2):
        saving.save(epoch, weights([0.5 * epoch], epoch))
    damaged = tmp_path / "A1-epoch-000002.json"
    damaged.write_text(damaged.read_text().replace("1.0", "1.5"))
    reading = reader(tmp_path)
    assert reading.scan(IDENTITY) == [1]
    assert reading.load(1).theta.tolist() == [0.5]
    with pytest.raises(CheckpointError, match=r"A1-epoch-000002\.json is damaged"):
        reading.load(2)


def test_a_truncated_file_is_named(tmp_path):
    store(tmp_path).save(1, weights([1.0]))
    path = tmp_path / "A1-epoch-000001.json"
    path.write_bytes(path.read_bytes()[:40])
    reading = reader(tmp_path)
    assert reading.scan(IDENTITY) == []
    assert "not JSON" in reading.damaged[1] and str(path) in reading.damaged[1]


def test_a_checkpoint_of_another_run_is_refused(tmp_path):
    store(tmp_path, run_id="run-1").save(1, weights([1.0]))
    with pytest.raises(CheckpointError, match="belongs to run 'run-1', not to this run 'run-2'"):
        reader(tmp_path, run_id="run-2").scan(IDENTITY)


@pytest.mark.parametrize("change, words", [
    ({"config": {"epochs": 5, "learning_rate": 0.2}}, "learning_rate 0.1 -> 0.2"),
    ({"data_fingerprint": "cd" * 32}, "data_fingerprint changed"),
])
def test_a_checkpoint_of_other_settings_or_data_is_refused(tmp_path, change, words):
    store(tmp_path).save(1, weights([1.0]))
    with pytest.raises(CheckpointError, match=words) as error:
        reader(tmp_path).scan({**IDENTITY, **change})
    assert "A1-epoch-000001.json" in str(error.value)


def test_files_are_complete_json_with_a_digest(tmp_path):
    path = store(tmp_path).save(0, weights([0.25], 0))
    record = json.loads(path.read_text())
    assert record["format"] == "vfl-checkpoint/2" and len(record["sha256"]) == 64
    assert record["layout"] == "test.weights/1"
    assert record["state"] == {"epoch": 0, "stopped": False, "theta": [0.25], "rng": None}
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


# --- typed states --------------------------------------------------------------------


def test_an_old_layout_checkpoint_is_refused_by_name_not_skipped(tmp_path):
    """A vfl-checkpoint/1 file (loose dict state) is intact but unusable: say so."""
    old = {"format": "vfl-checkpoint/1", "party": "A1", "run_id": "run-1", "epoch": 3,
           "identity": IDENTITY, "state": {"epoch": 3, "stop": False, "theta": [1.0]},
           "sha256": "00" * 32}
    path = tmp_path / "A1-epoch-000003.json"
    path.write_text(json.dumps(old))
    with pytest.raises(CheckpointError, match="older layout vfl-checkpoint/1") as error:
        reader(tmp_path).scan(IDENTITY)
    assert str(path) in str(error.value) and "new run" in str(error.value)


def test_a_checkpoint_of_another_state_layout_is_refused(tmp_path):
    @dataclass
    class Other(RoleState):
        LAYOUT: ClassVar[str] = "test.other/1"
        theta: np.ndarray

    store(tmp_path).save(1, weights([1.0]))
    with pytest.raises(CheckpointError, match=r"layout 'test\.weights/1'.*'test\.other/1'"):
        reader(tmp_path, state_type=Other).scan(IDENTITY)


def test_a_store_refuses_a_state_of_another_type(tmp_path):
    @dataclass
    class Other(RoleState):
        LAYOUT: ClassVar[str] = "test.other/1"

    with pytest.raises(TypeError, match="keeps Weights, not Other"):
        store(tmp_path).save(1, Other(epoch=1, stopped=False))


def test_a_state_with_a_missing_field_is_refused_by_name(tmp_path):
    path = store(tmp_path).save(1, weights([1.0]))
    record = json.loads(path.read_text())
    del record["state"]["theta"], record["sha256"]
    from vfl.runtime.checkpoint import _digest

    record["sha256"] = _digest(record)
    path.write_text(json.dumps(record))
    with pytest.raises(CheckpointError, match="differs in theta"):
        reader(tmp_path).scan(IDENTITY)


def _role_states():
    """One state of each vertical role, every field away from its default."""
    from parties.vertical.state import (
        CoordinatorState,
        EpochRecord,
        FeatureHolderState,
        LabelHolderState,
    )
    from vfl.optim import OptimizerState
    from vfl.training import StoppingState

    rng = np.random.default_rng(11)
    rng.normal(size=3)
    vector = rng.normal(size=4) / 7
    optimizer = OptimizerState(vector * 2, vector ** 2, 9)
    return [
        FeatureHolderState(epoch=4, stopped=True, theta=vector, best=vector * 3,
                           initial_weights=vector / 5, optimizer=optimizer),
        LabelHolderState(epoch=4, stopped=False, theta=vector, bias=-0.1 / 3,
                         best_theta=vector + 1e-17, best_bias=2 / 3, initial_weights=-vector,
                         initial_intercept=1 / 7, split_seed=2**62 + 5,
                         batch_seeds=[2**63 - 2, 1, 7], history=[
                             EpochRecord(1, 0.5 / 3, None), EpochRecord(2, 0.1 / 7, 0.3 / 11)],
                         optimizer=optimizer, rng=GeneratorState.of(rng)),
        CoordinatorState(epoch=4, stopped=True, n_rows=321, split_seed=2**62 + 5,
                         losses=[1 / 3, 1 / 7], validation_losses=[2 / 3],
                         stopping=StoppingState(1 / 7, 2 / 3, 2)),
    ]


def _same(a, b) -> bool:
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    if hasattr(a, "__dataclass_fields__"):
        return type(a) is type(b) and all(_same(getattr(a, f.name), getattr(b, f.name))
                                          for f in fields(a))
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(map(_same, a, b))
    return type(a) is type(b) and a == b


@pytest.mark.parametrize("state", _role_states(), ids=lambda s: type(s).__name__)
def test_each_role_state_round_trips_exactly(tmp_path, state):
    store(tmp_path, state_type=type(state)).save(state.epoch, state)
    reading = reader(tmp_path, state_type=type(state))
    assert reading.scan(IDENTITY) == [state.epoch]
    assert _same(reading.load(state.epoch), state)
