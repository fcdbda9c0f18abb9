"""The data's own fixed-point scale: parties and reference round the data alike."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from federation_checks import federated_params, joined

from parties import Coordinator, FeatureHolder, Federation, LabelHolder
from vfl.crypto.encoding import DATA_FRAC_BITS, FixedPointCodec
from vfl.errors import EncodingOverflowError
from vfl.reference import train_centralized
from vfl.training import TrainingConfig


def test_quantized_data_encode_exactly_and_decode_at_the_products_scale():
    codec = FixedPointCodec()
    assert codec.data_frac_bits == DATA_FRAC_BITS <= codec.frac_bits
    x = np.random.default_rng(0).normal(size=(50, 4)) * 3
    q = codec.quantize_data(x)
    assert np.max(np.abs(q - x)) <= 2.0 ** -(DATA_FRAC_BITS + 1)
    encoded = codec.encode_data(q)
    assert np.array_equal(np.array(encoded, dtype=np.float64), np.ldexp(q, DATA_FRAC_BITS))
    assert codec.encode_data(x) == encoded  # rounding twice changes nothing
    # A gradient sum_i x_i d_i carries 2^(frac_bits + data_frac_bits).
    d = codec.encode(np.linspace(-2, 2, 50))
    sums = [sum(e[j] * r for e, r in zip(encoded, d)) for j in range(4)]
    np.testing.assert_allclose(codec.decode(sums, scale_power=1, data_factors=1),
                               q.T @ codec.decode(d), rtol=0, atol=1e-12)
    with pytest.raises(EncodingOverflowError, match="features has magnitude"):
        codec.encode_data(np.array([[2.0**64]]))


def test_data_frac_bits_is_checked_and_follows_small_frac_bits():
    assert FixedPointCodec(frac_bits=8).data_frac_bits == 8
    assert FixedPointCodec(frac_bits=40, data_frac_bits=12).data_frac_bits == 12
    for bad in (0, 44):
        with pytest.raises(ValueError, match="data_frac_bits must be in"):
            FixedPointCodec(frac_bits=40, data_frac_bits=bad)


def test_parties_adopt_the_coordinators_data_scale_and_match_the_reference(frames):
    """With a coarse data scale (8 bits) the federation equals the reference rounded the
    same way, and not the reference rounded at the default scale: the parties really
    trained on the coarse grid."""
    a_frame, b_frame = frames
    config = TrainingConfig(epochs=3, learning_rate=0.1)
    codec = FixedPointCodec(data_frac_bits=8)
    c = Coordinator(key_bits=512, insecure_key=True, codec=codec)  # small test key
    a = FeatureHolder(a_frame, id_column="patient_id", seed=31)
    b = LabelHolder(b_frame, id_column="patient_id", label_column="progression", seed=32)
    fed = Federation(c, b, a, config=config).fit()
    x, y = joined(a, b, a_frame, b_frame)

    def reference(bits):
        return train_centralized(
            x, y, config, initial_weights=np.r_[a.initial_weights_, b.initial_weights_],
            initial_intercept=b.initial_intercept_, batch_seeds=b.batch_seeds_,
            split_seed=b.split_seed_, data_frac_bits=bits)

    got = federated_params([a], b)
    coarse, fine = reference(8), reference(DATA_FRAC_BITS)
    np.testing.assert_allclose(got, np.r_[coarse.weights, coarse.intercept], rtol=1e-6,
                               atol=1e-9)
    np.testing.assert_allclose(fed.history_["loss"].to_numpy(), coarse.history, rtol=1e-6)
    assert np.max(np.abs(got - np.r_[fine.weights, fine.intercept])) > 1e-5


def test_raw_columns_below_a_unit_deviation_are_named_in_a_warning(frames, coordinator):
    """Standardised columns get 2^data_frac_bits grid steps per deviation; a raw one
    that gets fewer is named (the integer columns, on the grid, are not)."""
    from vfl.errors import DataPrecisionWarning

    a_frame, b_frame = frames
    a_frame = a_frame.copy()
    a_frame["bmi"] = a_frame["bmi"] / 1000  # deviation ~0.004
    config = TrainingConfig(epochs=1, learning_rate=1e-5, standardize=False)
    a = FeatureHolder(a_frame, id_column="patient_id")
    b = LabelHolder(b_frame, id_column="patient_id", label_column="progression")
    with pytest.warns(DataPrecisionWarning, match=r"party A1: standardize is off and "
                                                  r"column\(s\) bmi vary little"):
        Federation(coordinator, b, a, config=config).fit()
    a = FeatureHolder(a_frame, id_column="patient_id")
    b = LabelHolder(b_frame, id_column="patient_id", label_column="progression")
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataPrecisionWarning)
        Federation(Coordinator(key_bits=512, insecure_key=True), b, a,
                   config=TrainingConfig(epochs=1, learning_rate=0.1)).fit()
