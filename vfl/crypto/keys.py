"""Paillier key generation with the library's key-size policy.

Keys are ``phe``'s own ``PaillierPublicKey`` / ``PaillierPrivateKey`` objects
(g = n + 1), so users can inspect and reuse them with ``phe``.
"""

from __future__ import annotations

import phe

from vfl.errors import ConfigError, InsecureKeyError

__all__ = [
    "DEFAULT_KEY_BITS",
    "MAX_KEY_BITS",
    "MIN_SECURE_KEY_BITS",
    "check_key_bits",
    "generate_keypair",
]

#: 2048-bit moduli give about 112-bit security (NIST SP 800-57); 3072 gives 128.
MIN_SECURE_KEY_BITS = 2048
DEFAULT_KEY_BITS = 2048
#: Largest modulus the engines support: 8192-bit primes take minutes to find and
#: every operation costs ~60x a 2048-bit one (the wire refuses moduli above 16384).
MAX_KEY_BITS = 8192


def check_key_bits(key_bits: int, *, insecure: bool = False, party: str | None = None) -> None:
    """Refuse key sizes below 2048 bits unless the caller says it is insecure.

    Parameters
    ----------
    key_bits : int
        Bit length of the modulus n.
    insecure : bool
        Set to True only in tests and experiments: allows small keys that
        anyone can factor.
    party : str, optional
        Party named in the error message.

    Raises
    ------
    TypeError
        If `key_bits` is not an int.
    InsecureKeyError
        If `key_bits` < 2048 and `insecure` is False.
    ConfigError
        If `key_bits` is outside what the engines support: odd, below 128 (too
        small for Paillier to work at all) or above :data:`MAX_KEY_BITS`.
    """
    if not isinstance(key_bits, int) or isinstance(key_bits, bool):
        raise TypeError(f"key_bits must be an int, got {type(key_bits).__name__}")
    if key_bits < 128 or key_bits % 2 or key_bits > MAX_KEY_BITS:
        raise ConfigError(f"key_bits must be an even number from 128 to {MAX_KEY_BITS}, got "
                          f"{key_bits} (2048 or 3072 for real use)", party=party)
    if key_bits < MIN_SECURE_KEY_BITS and not insecure:
        raise InsecureKeyError(
            f"a {key_bits}-bit Paillier key can be factored; use at least "
            f"{MIN_SECURE_KEY_BITS} bits, or pass insecure=True (CLI: --insecure-key) "
            "for tests only",
            party=party,
        )


def generate_keypair(
    key_bits: int = DEFAULT_KEY_BITS, *, insecure: bool = False
) -> tuple[phe.PaillierPublicKey, phe.PaillierPrivateKey]:
    """Generate a Paillier key pair after checking the key-size policy.

    Parameters
    ----------
    key_bits : int
        Bit length of n; 2048 (default) or more unless `insecure`.
    insecure : bool
        Allow keys below 2048 bits (tests only).

    Returns
    -------
    (phe.PaillierPublicKey, phe.PaillierPrivateKey)
    """
    check_key_bits(key_bits, insecure=insecure, party="C")
    keypair: tuple[phe.PaillierPublicKey, phe.PaillierPrivateKey] = \
        phe.generate_paillier_keypair(n_length=key_bits)
    return keypair
