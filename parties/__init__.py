"""The three roles of vertical federated learning, and an in-process runner.

>>> from parties import Coordinator, FeatureHolder, LabelHolder, Federation  # doctest: +SKIP
"""

from parties.coordinator import Coordinator
from parties.federation import Federation
from parties.feature_holder import FeatureHolder
from parties.label_holder import LabelHolder

__all__ = ["Coordinator", "FeatureHolder", "Federation", "LabelHolder"]
