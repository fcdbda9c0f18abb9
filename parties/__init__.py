"""The three roles of vertical federated learning, an in-process runner, and estimators.

>>> from parties import Coordinator, FeatureHolder, LabelHolder, Federation  # doctest: +SKIP
>>> from parties import VerticalLinearRegression                            # doctest: +SKIP
"""

from parties.coordinator import Coordinator
from parties.estimators import VerticalLinearRegression, VerticalLogisticRegression
from parties.federation import Federation
from parties.feature_holder import FeatureHolder
from parties.label_holder import LabelHolder

__all__ = [
    "Coordinator",
    "FeatureHolder",
    "Federation",
    "LabelHolder",
    "VerticalLinearRegression",
    "VerticalLogisticRegression",
]
