"""The first epoch starts as warm as the later ones (issue 13).

Later epochs find their encryptions of zero made in the background during
the previous epoch's waits; the first epoch's are made while the parties
prepare, so a data party's first encryption of its scores takes every
obfuscator from the pool instead of computing them cold.
"""

from __future__ import annotations

from parties import FeatureHolder, Federation, LabelHolder
from vfl.crypto.fast_engine import FastEngine
from vfl.training import TrainingConfig


def test_the_first_epochs_encryptions_are_made_before_it(frames, coordinator, monkeypatch):
    events: list[tuple[str, int, int]] = []
    warm_up, encrypt = FastEngine.warm_up, FastEngine.encrypt

    def recording_warm_up(self, count):
        warm_up(self, count)
        events.append(("warm_up", count, len(self.pool)))

    def recording_encrypt(self, plaintexts):
        ready = len(self.pool)
        events.append(("encrypt", len(plaintexts), min(ready, len(plaintexts))))
        return encrypt(self, plaintexts)

    monkeypatch.setattr(FastEngine, "warm_up", recording_warm_up)
    monkeypatch.setattr(FastEngine, "encrypt", recording_encrypt)
    a_frame, b_frame = frames
    a = FeatureHolder(a_frame, id_column="patient_id", seed=31)
    b = LabelHolder(b_frame, id_column="patient_id", label_column="progression", seed=32)
    Federation(coordinator, b, a, config=TrainingConfig(epochs=1, learning_rate=0.1)).fit()

    rows = a.aligned_rows_
    warm = [e for e in events if e[0] == "warm_up"]
    # A warms its scores (one per row); B its residual's re-randomisation.
    assert sorted(count for _, count, _ in warm) == [rows, rows]
    assert all(ready >= count for _, count, ready in warm)
    scores = next(e for e in events if e[0] == "encrypt" and e[1] == rows)
    assert events.index(scores) > events.index(warm[0])
    assert scores[2] == rows  # every obfuscator of the first scores was ready
