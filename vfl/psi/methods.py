"""The alignment methods by name: what ``method=`` and ``--method`` choose from."""

from __future__ import annotations

from vfl.psi.base import AlignmentMethod
from vfl.psi.ecdh import EcdhAlignment
from vfl.psi.keyed_hash import KeyedHashAlignment

__all__ = ["ALIGNMENT_METHODS", "DEFAULT_ALIGNMENT", "get_alignment"]

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
