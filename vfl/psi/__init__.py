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

__all__ = [
    "ALIGNMENT_METHODS",
    "AlignmentMethod",
    "AlignmentResult",
    "DEFAULT_ALIGNMENT",
    "EcdhAlignment",
    "KeyedHashAlignment",
    "MalformedPointError",
    "align_frames",
    "get_alignment",
    "normalize_id",
    "normalize_ids",
]

#: Alignment methods by name (``method=``, ``--method``).
ALIGNMENT_METHODS: dict[str, type[AlignmentMethod]] = {
    EcdhAlignment.name: EcdhAlignment,
    KeyedHashAlignment.name: KeyedHashAlignment,
}

#: Diffie-Hellman PSI: the keyed hash lets either key holder test guessed IDs.
DEFAULT_ALIGNMENT = "ecdh"


def get_alignment(name: str, **options: object) -> AlignmentMethod:
    """A fresh instance of the alignment method registered under `name`.

    `options` go to its constructor, e.g. ``get_alignment("ecdh", progress=False)``.
    """
    try:
        cls = ALIGNMENT_METHODS[name]
    except KeyError:
        raise ValueError(f"unknown alignment method {name!r}; available: "
                         f"{', '.join(sorted(ALIGNMENT_METHODS))}") from None
    return cls(**options)


# Last: vfl.psi.align needs the registry above.
from vfl.psi.align import align_frames  # noqa: E402
