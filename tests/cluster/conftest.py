"""The local pool's answers, computed once, that every cluster must reproduce."""

from __future__ import annotations

import numpy as np
import pytest
from cluster_runs import align, fit_weights


@pytest.fixture(scope="session")
def local_weights() -> np.ndarray:
    """The weights of :func:`cluster_runs.fit_weights` on the local pool."""
    return fit_weights("local")


@pytest.fixture(scope="session")
def local_alignment() -> list[str]:
    return align("local")
