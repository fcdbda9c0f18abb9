"""Low layer: private alignment of the parties' IDs (C never sees an ID).

Two methods: ``ecdh`` (the default), Diffie-Hellman PSI on Curve25519, where
neither side can test guessed IDs against what it receives; and ``hash``,
HMAC tags under a shared key, faster but open to dictionary attacks by either
key holder. See ``docs/psi.md``.
"""

from vfl.psi.base import AlignmentMethod, AlignmentResult
from vfl.psi.ecdh import EcdhAlignment, MalformedPointError
from vfl.psi.ids import normalize_id, normalize_ids
from vfl.psi.keyed_hash import KeyedHashAlignment
from vfl.psi.methods import ALIGNMENT_METHODS, DEFAULT_ALIGNMENT, get_alignment

__all__ = [
    "ALIGNMENT_METHODS",
    "DEFAULT_ALIGNMENT",
    "AlignmentMethod",
    "AlignmentResult",
    "EcdhAlignment",
    "KeyedHashAlignment",
    "MalformedPointError",
    "get_alignment",
    "normalize_id",
    "normalize_ids",
]
