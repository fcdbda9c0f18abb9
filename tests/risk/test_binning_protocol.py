"""Federated binning (docs/binning.md) against a centralized computation, and its transcript."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from parties.binning import (
    BinningConfig,
    BinningCoordinator,
    BinningFeatureHolder,
    BinningLabelHolder,
    run_binning,
)
from parties.binning.messages import (
    BinningPlan,
    BinSums,
    BinWoe,
    DecryptedEventSums,
    EncryptedLabels,
    MaskedEventSums,
)
from vfl.crypto import EncryptedVector
from vfl.errors import ConfigError, ConfigMismatchError, InvalidLabelError
from vfl.protocol.channel import Envelope, InProcessNetwork
from vfl.protocol.messages import PublicKeyMessage
from vfl.protocol.wire import decode_envelope, encode_envelope
from vfl.psi.ecdh import EcdhHello, EcdhPoints, EcdhTags
from vfl.psi.federation import AlignmentHello, AlignmentSelection
from vfl.risk import woe_table
from vfl.runtime.inprocess import run_parties
from vfl.runtime.session import Session

KEY_BITS = 512  # small and insecure: fast tests
FATE_DATA = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "fate"
needs_fate = pytest.mark.skipif(not (FATE_DATA / "breast_hetero_guest.csv").exists(),
                                reason=f"FATE example data not found at {FATE_DATA}")
ALIGNMENT = {AlignmentHello, AlignmentSelection, EcdhHello, EcdhPoints, EcdhTags}


def synthetic(n: int = 400, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(A1's frame, A2's frame, B's frame): missing values, an outlier cluster, extra rows."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n + 30, 5))
    y = (x[:, 0] - x[:, 3] + rng.normal(size=n + 30) > 0).astype(int)
    ids = [f"customer-{i:04d}" for i in range(n + 30)]
    a0 = x[:, 0].copy()
    a0[rng.random(n + 30) < 0.1] = np.nan  # enough missing values for a bin of their own
    a1 = x[:, 1].copy()
    a1[:7] = 40.0 + np.arange(7)  # 7 outliers: a bin of their own below the minimum
    a1[7:10] = np.nan  # three missing values: too few for a bin of their own
    frame_a1 = pd.DataFrame({"id": ids[:n + 10], "a0": a0[:n + 10], "a1": a1[:n + 10]})
    frame_a2 = pd.DataFrame({"id": ids[5:], "c": np.round(x[5:, 2], 1)})
    frame_b = pd.DataFrame({"id": ids[:n], "y": y[:n], "b0": x[:n, 3], "b1": x[:n, 4]})
    return frame_a1.sample(frac=1, random_state=1), frame_a2, frame_b


def run(config: BinningConfig, frames=None, *, record: bool = True):
    a1_frame, a2_frame, b_frame = frames or synthetic()
    a1 = BinningFeatureHolder(a1_frame, id_column="id", name="A1", label_column="y")
    a2 = BinningFeatureHolder(a2_frame, id_column="id", name="A2")
    b = BinningLabelHolder(b_frame, id_column="id", label_column="y")
    c = BinningCoordinator(key_bits=KEY_BITS, insecure_key=True)
    network = run_binning(b, [a1, a2], c, config, record=record)
    joined = b_frame.merge(a1_frame, on="id").merge(a2_frame, on="id")
    return network, a1, a2, b, c, joined


def central(joined: pd.DataFrame, column: str, bins) -> tuple[np.ndarray, np.ndarray]:
    """Rows and events per bin on the joined data, computed centrally."""
    index = bins.assign(joined[column].to_numpy(dtype=float))
    y = joined["y"].to_numpy()
    counts = np.bincount(index, minlength=bins.n_bins)
    events = np.array([int(y[index == k].sum()) for k in range(bins.n_bins)])
    return counts, events


@pytest.mark.parametrize("method", ["quantile", "equal-width", "chimerge"])
def test_woe_and_iv_equal_the_centralized_computation(method):
    config = BinningConfig(method=method, bins=5, min_bin_rows=20, prebins=12)
    _, a1, a2, b, _, joined = run(config, record=False)
    seen_by_b = {f.name: f for f in b.result_}
    for party in (a1, a2, b):
        for feature in party.result_ if party is not b else b.result_[:2]:
            counts, events = central(joined, feature.name, party.bins_[feature.name])
            table = woe_table(counts, events)
            assert feature.counts == tuple(counts)
            np.testing.assert_allclose(feature.woe, table.woe, rtol=1e-9, atol=0)
            assert feature.iv == pytest.approx(table.iv, rel=1e-9)
            assert min(counts) >= config.min_bin_rows
            if party is not b:
                # B holds the same column, anonymous, with its event counts and no edges.
                twins = [f for f in seen_by_b.values() if f.owner == party.name
                         and f.counts == tuple(counts) and f.events == tuple(events)]
                assert len(twins) >= 1 and twins[0].edges is None
                assert twins[0].iv == pytest.approx(table.iv, rel=1e-9)
                assert feature.events is None  # A is not told its bins' event counts
    assert {f.name for f in b.result_} == {"b0", "b1", "A1#0", "A1#1", "A2#0"}


def test_missing_values_have_their_own_bin_or_join_the_largest():
    _, a1, _, _, _, joined = run(BinningConfig(bins=4, min_bin_rows=20), record=False)
    a0, a1_bins = a1.bins_["a0"], a1.bins_["a1"]
    assert a0.missing_apart and a1.result_[0].counts[-1] == joined["a0"].isna().sum()
    assert not a1_bins.missing_apart and a1_bins.missing_bin is not None


def test_feature_holder_receives_only_ciphertexts_of_labels():
    network, _, _, b, _, _ = run(BinningConfig(bins=5))
    for name in ("A1", "A2"):
        received = network.received_by(name)
        assert {type(e.body) for e in received} <= {PublicKeyMessage, *ALIGNMENT, BinningPlan,
                                                   EncryptedLabels, BinWoe}
        labels = [e.body for e in received if isinstance(e.body, EncryptedLabels)]
        assert len(labels) == 1 and isinstance(labels[0].labels, EncryptedVector)
        assert len(labels[0].labels) == b.aligned_rows_
        assert not set(labels[0].labels.ciphertexts) & {0, 1}
    # Each feature holder got its own encryption of the labels.
    first, second = (next(e.body for e in network.received_by(n)
                          if isinstance(e.body, EncryptedLabels)) for n in ("A1", "A2"))
    assert not set(first.labels.ciphertexts) & set(second.labels.ciphertexts)


def test_b_decrypts_per_bin_counts_and_nothing_finer():
    config = BinningConfig(bins=5, min_bin_rows=20)
    network, a1, _, b, c, joined = run(config)
    sums = next(e.body for e in network.received_by("B")
                if isinstance(e.body, BinSums) and e.sender == "A1")
    decrypted = [e.body for e in network.received_by("B")
                 if isinstance(e.body, DecryptedEventSums)]
    # One value per bin of A1's columns, as many as A1's bins, each bin above the minimum.
    assert len(decrypted[0].values) == sum(sums.bins) == sum(f.n_bins for f in a1.bins_.values())
    assert min(sums.counts) >= config.min_bin_rows
    # What B learns: exactly the centralized per-bin event counts of A1's columns.
    expected = sorted(tuple(central(joined, n, a1.bins_[n])[1]) for n in a1.bins_)
    learned = sorted(f.events for f in b.result_ if f.owner == "A1")
    assert learned == expected
    # C sees only values masked uniformly in Z_n: none of them is a count.
    assert len(c.decrypted_) == sum(len(m.values) for m in decrypted) == sum(
        len(e.body.counts) for e in network.transcript if isinstance(e.body, BinSums))
    assert all(v > 10 * b.aligned_rows_ for v in c.decrypted_)
    masked = [e.body for e in network.transcript if isinstance(e.body, MaskedEventSums)]
    assert [e.recipient for e in network.transcript
            if isinstance(e.body, MaskedEventSums)] == ["C", "C"] and len(masked) == 2


def test_a_bin_below_the_minimum_is_merged_never_revealed():
    # a1's seven outliers form a top bin of 7 rows with 10 equal-width bins.
    strict, _, _, _, _, _ = run(BinningConfig(method="equal-width", bins=10, min_bin_rows=20))
    loose, _, _, _, _, _ = run(BinningConfig(method="equal-width", bins=10, min_bin_rows=5))

    def sent_counts(network):
        return [c for e in network.transcript if isinstance(e.body, BinSums)
                for c in e.body.counts]

    assert min(sent_counts(strict)) >= 20
    assert 7 in sent_counts(loose)  # the same data with a lower minimum shows the small bin


def test_feature_selection_by_iv_across_parties():
    _, a1, a2, b, _, _ = run(BinningConfig(bins=5, select_top=2), record=False)
    ivs = sorted((f.iv for f in b.result_), reverse=True)
    kept = [f for f in b.result_ if f.selected]
    assert len(kept) == 2 and sorted(f.iv for f in kept) == sorted(ivs[:2])
    # Each owner learns its own columns' verdicts, matching B's.
    for party in (a1, a2):
        for feature in party.result_:
            twin = next(f for f in b.result_ if f.owner == party.name
                        and f.iv == pytest.approx(feature.iv, rel=1e-12))
            assert twin.selected == feature.selected
    _, _, _, b, _, _ = run(BinningConfig(bins=5, select_iv=0.1), record=False)
    assert all(f.selected == (f.iv >= 0.1) for f in b.result_)


def test_every_message_crosses_the_wire_codec():
    network, *_ = run(BinningConfig(method="chimerge", bins=4, prebins=8))
    kinds = set()
    for envelope in network.transcript:
        kinds.add(type(envelope.body))
        decoded = decode_envelope(encode_envelope(envelope))
        assert isinstance(decoded, Envelope) and decoded.body == envelope.body
    assert {BinningPlan, EncryptedLabels, BinSums, MaskedEventSums, DecryptedEventSums,
            BinWoe} <= kinds


def test_parties_configured_differently_stop():
    a1_frame, _, b_frame = synthetic()
    a = BinningFeatureHolder(a1_frame, id_column="id")
    b = BinningLabelHolder(b_frame, id_column="id", label_column="y")
    c = BinningCoordinator(key_bits=KEY_BITS, insecure_key=True)
    b.begin_run(BinningConfig(bins=5), feature_holders=["A1"])
    a.begin_run(BinningConfig(bins=7))  # started apart, with other settings
    c.begin_run(BinningConfig(bins=5), feature_holders=["A1"])
    network = InProcessNetwork(["B", "A1", "C"], "mismatch")
    tasks = {p.name: (lambda role: lambda ep: Session(role, ep).run())(p) for p in (a, b, c)}
    with pytest.raises(ConfigMismatchError, match="bins=7"):
        run_parties(network, tasks, prefer="A1")


def test_labels_must_be_binary_and_both_classes_present():
    _, _, b_frame = synthetic()
    with pytest.raises(InvalidLabelError, match="0/1"):
        BinningLabelHolder(b_frame.assign(y=b_frame["y"] * 3 + 1), id_column="id",
                           label_column="y")
    with pytest.raises(InvalidLabelError, match="one class"):
        BinningLabelHolder(b_frame.assign(y=1), id_column="id", label_column="y")


def test_too_few_shared_rows_for_one_bin_stop_before_any_label_leaves_b():
    a1_frame, _, b_frame = synthetic()
    a = BinningFeatureHolder(a1_frame, id_column="id")
    b = BinningLabelHolder(b_frame, id_column="id", label_column="y")
    c = BinningCoordinator(key_bits=KEY_BITS, insecure_key=True)
    with pytest.raises(ConfigError, match="fewer than the minimum"):
        run_binning(b, a, c, BinningConfig(min_bin_rows=1000))


def test_settings_are_checked():
    with pytest.raises(ConfigError, match="method"):
        BinningConfig(method="tree")
    with pytest.raises(ConfigError, match="not both"):
        BinningConfig(select_iv=0.1, select_top=3)
    with pytest.raises(ConfigError, match="prebins"):
        BinningConfig(method="chimerge", bins=10, prebins=5)


@needs_fate
@pytest.mark.parametrize("method", ["quantile", "chimerge"])
def test_fate_breast_equals_central_and_optbinning(method):
    guest = pd.read_csv(FATE_DATA / "breast_hetero_guest.csv", dtype={"id": str})
    host = pd.read_csv(FATE_DATA / "breast_hetero_host.csv", dtype={"id": str})
    config = BinningConfig(method=method, bins=5, min_bin_rows=20)
    a = BinningFeatureHolder(host, id_column="id", label_column="y")
    b = BinningLabelHolder(guest, id_column="id", label_column="y")
    run_binning(b, a, BinningCoordinator(key_bits=KEY_BITS, insecure_key=True), config)
    joined = guest.merge(host, on="id", suffixes=("_b", ""))
    assert b.aligned_rows_ == len(joined) == 569
    try:
        from optbinning import OptimalBinning
    except ImportError:
        OptimalBinning = None
    compared = 0
    for feature in a.result_:
        bins = a.bins_[feature.name]
        counts, events = central(joined, feature.name, bins)
        table = woe_table(counts, events)
        np.testing.assert_allclose(feature.woe, table.woe, rtol=1e-9, atol=0)
        assert feature.iv == pytest.approx(table.iv, rel=1e-9)
        if OptimalBinning is None or (table.events == 0).any() or (
                table.non_events == 0).any():
            continue  # optbinning refuses splits that leave a bin of one class
        reference = OptimalBinning(name=feature.name, dtype="numerical",
                                   user_splits=list(bins.edges),
                                   user_splits_fixed=[True] * len(bins.edges),
                                   min_prebin_size=1e-9, monotonic_trend=None)
        reference.fit(joined[feature.name].to_numpy(), joined["y"].to_numpy())
        built = reference.binning_table.build()
        compared += 1
        their_woe = built["WoE"].to_numpy()[:bins.n_bins].astype(float)
        # optbinning's WOE has the opposite sign (non-events over events).
        np.testing.assert_allclose(feature.woe, -their_woe, rtol=1e-9, atol=1e-12)
        assert feature.iv == pytest.approx(float(built.loc["Totals", "IV"]), rel=1e-9)
    assert OptimalBinning is None or compared >= 10
