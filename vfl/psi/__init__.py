"""Low layer: private alignment of the parties' IDs (C never sees an ID)."""

from vfl.psi.base import AlignmentMethod, AlignmentResult
from vfl.psi.ids import normalize_id, normalize_ids
from vfl.psi.keyed_hash import KeyedHashAlignment

__all__ = [
    "ALIGNMENT_METHODS",
    "AlignmentMethod",
    "AlignmentResult",
    "DEFAULT_ALIGNMENT",
    "KeyedHashAlignment",
    "get_alignment",
    "normalize_id",
    "normalize_ids",
]

#: Alignment methods by name (``method=``, ``--method``).
ALIGNMENT_METHODS: dict[str, type[AlignmentMethod]] = {
    KeyedHashAlignment.name: KeyedHashAlignment,
}

DEFAULT_ALIGNMENT = "hash"


def get_alignment(name: str) -> AlignmentMethod:
    """A fresh instance of the alignment method registered under `name`."""
    try:
        return ALIGNMENT_METHODS[name]()
    except KeyError:
        raise ValueError(f"unknown alignment method {name!r}; available: "
                         f"{', '.join(sorted(ALIGNMENT_METHODS))}") from None
