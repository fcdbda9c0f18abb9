"""Shared fixtures: small (insecure) keys and the bundled data split in two."""

from __future__ import annotations

import pandas as pd
import pytest

from parties import Coordinator, FeatureHolder, LabelHolder
from vfl.datasets import DIABETES_FEATURE_HOLDER_COLUMNS, load_diabetes, split_vertically

#: Small keys keep unit tests fast; they are factorable, hence the flag.
TEST_KEY_BITS = 512


@pytest.fixture
def coordinator() -> Coordinator:
    return Coordinator(key_bits=TEST_KEY_BITS, insecure_key=True)


@pytest.fixture
def frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    """(A's frame, B's frame) of the diabetes data, partly overlapping, shuffled."""
    return split_vertically(load_diabetes(), id_column="patient_id", label_column="progression",
                            feature_holder_columns=DIABETES_FEATURE_HOLDER_COLUMNS, seed=1)


@pytest.fixture
def parties(frames) -> tuple[FeatureHolder, LabelHolder]:
    a_frame, b_frame = frames
    return (FeatureHolder(a_frame, id_column="patient_id", label_column="progression", seed=11),
            LabelHolder(b_frame, id_column="patient_id", label_column="progression", seed=12))
