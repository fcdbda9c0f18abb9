"""The roles of federated learning, one subpackage per kind of federation.

:mod:`parties.vertical` holds the vertical roles (feature holders, label
holder, coordinator), the in-process federation and the estimators; they are
re-exported here:

>>> from parties import Coordinator, FeatureHolder, LabelHolder, Federation  # doctest: +SKIP
>>> from parties import VerticalLinearRegression                            # doctest: +SKIP
"""

from parties.vertical import (
    Coordinator,
    FeatureHolder,
    Federation,
    LabelHolder,
    VerticalLinearRegression,
    VerticalLogisticRegression,
    VerticalPoissonRegression,
)

__all__ = [
    "Coordinator",
    "FeatureHolder",
    "Federation",
    "LabelHolder",
    "VerticalLinearRegression",
    "VerticalLogisticRegression",
    "VerticalPoissonRegression",
]
