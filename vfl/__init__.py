"""Vertical federated learning with Paillier homomorphic encryption.

The top layer is :mod:`parties` (``FeatureHolder``, ``LabelHolder``,
``Coordinator``) and the ``vfl`` command; :mod:`vfl.crypto` and
:mod:`vfl.psi` hold the low-level primitives they are built on.
"""

__version__ = "0.2.0"
