"""Fixtures of the transfer tests."""

from __future__ import annotations

import pandas as pd
import pytest
from transfer_frames import make_frames


@pytest.fixture
def frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    return make_frames()
