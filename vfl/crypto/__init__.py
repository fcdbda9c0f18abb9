"""Low layer: Paillier engines, fixed-point encoding and masks.

Ordinary users never need this package: the parties in :mod:`parties` and
the CLI use it for them. Everything here assumes its caller knows what a
ciphertext, a mask and an encoding scale are.
"""

from vfl.crypto.backends import DEFAULT_BACKEND, available_backends, get_backend
from vfl.crypto.ciphertext import EncryptedVector
from vfl.crypto.encoding import FixedPointCodec
from vfl.crypto.engine import PaillierDecryptor, PaillierEngine, validate_ciphertexts
from vfl.crypto.keys import DEFAULT_KEY_BITS, MIN_SECURE_KEY_BITS, check_key_bits, generate_keypair
from vfl.crypto.masks import SHARE_MODULUS_BITS, draw_masks, expand_masks, unmask

__all__ = [
    "DEFAULT_BACKEND",
    "DEFAULT_KEY_BITS",
    "MIN_SECURE_KEY_BITS",
    "SHARE_MODULUS_BITS",
    "EncryptedVector",
    "FixedPointCodec",
    "PaillierDecryptor",
    "PaillierEngine",
    "available_backends",
    "check_key_bits",
    "draw_masks",
    "expand_masks",
    "generate_keypair",
    "get_backend",
    "unmask",
    "validate_ciphertexts",
]
