"""Vertical federated learning: parties hold different columns of the same people.

The roles of ``PROTOCOL.md`` (feature holders A1..Ak, label holder B,
coordinator C), their saved states, the in-process federation and the
scikit-learn-style estimators.
"""

from parties.vertical.coordinator import Coordinator
from parties.vertical.estimators import (
    VerticalLinearRegression,
    VerticalLogisticRegression,
    VerticalPoissonRegression,
)
from parties.vertical.feature_holder import FeatureHolder
from parties.vertical.federation import Federation
from parties.vertical.label_holder import LabelHolder

__all__ = [
    "Coordinator",
    "FeatureHolder",
    "Federation",
    "LabelHolder",
    "VerticalLinearRegression",
    "VerticalLogisticRegression",
    "VerticalPoissonRegression",
]
