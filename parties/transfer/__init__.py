"""Federated transfer learning (``docs/transfer.md``): a labelled source A helps a target B.

>>> from parties.transfer import TransferSource, TransferTarget, FederatedTransferLearning
>>> model = FederatedTransferLearning(hidden=(32,), epochs=20)          # doctest: +SKIP
>>> model.fit(TransferSource(frame_a, id_column="ID", label_column="y"),
...           TransferTarget(frame_b, id_column="ID"))                  # doctest: +SKIP
>>> model.predict_proba()                                               # doctest: +SKIP
"""

from parties.transfer.config import TransferConfig
from parties.transfer.estimator import FederatedTransferLearning
from parties.transfer.federation import run_transfer
from parties.transfer.network import DenseNetwork
from parties.transfer.source import TransferSource
from parties.transfer.target import TransferTarget

__all__ = [
    "DenseNetwork",
    "FederatedTransferLearning",
    "TransferConfig",
    "TransferSource",
    "TransferTarget",
    "run_transfer",
]
