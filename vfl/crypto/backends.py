"""Registry of Paillier engines, selected by name (``backend=``, ``--backend``).

* ``fast`` (default): :mod:`vfl.crypto.fast_engine`, DJN encryption with a
  fixed-base table and a background obfuscator pool, bucket
  multi-exponentiation, CRT decryption, worker processes.
* ``phe``: :mod:`vfl.crypto.phe_engine`, the slow reference on ``phe``.
* ``plain``: :mod:`vfl.crypto.plain_engine`, no encryption at all (debugging
  only; refused unless every party sets ``insecure_plaintext``).
* ``heu``: :mod:`vfl.crypto.heu_engine`, SecretFlow HEU's ZPaillier, only
  when ``sf-heu`` is installed (``pip install vfl[bench]``), for comparisons.
"""

from __future__ import annotations

from vfl.crypto.engine import PaillierDecryptor, PaillierEngine
from vfl.crypto.fast_engine import FastDecryptor, FastEngine
from vfl.crypto.phe_engine import PheDecryptor, PheEngine
from vfl.crypto.plain_engine import PlainDecryptor, PlainEngine

__all__ = ["DEFAULT_BACKEND", "available_backends", "get_backend"]

_BACKENDS: dict[str, tuple[type[PaillierEngine], type[PaillierDecryptor]]] = {
    "fast": (FastEngine, FastDecryptor),
    "phe": (PheEngine, PheDecryptor),
    "plain": (PlainEngine, PlainDecryptor),
}

try:  # optional: needs the sf-heu wheel
    from vfl.crypto.heu_engine import HeuDecryptor, HeuEngine
except ImportError:  # pragma: no cover - depends on the environment
    pass
else:
    _BACKENDS["heu"] = (HeuEngine, HeuDecryptor)

DEFAULT_BACKEND = "fast"


def available_backends() -> list[str]:
    """Names of the engines that can run here, sorted."""
    return sorted(_BACKENDS)


def get_backend(name: str) -> tuple[type[PaillierEngine], type[PaillierDecryptor]]:
    """Engine and decryptor classes registered under `name`.

    Raises
    ------
    ValueError
        If no engine has that name (the message lists the ones that exist).
    """
    try:
        return _BACKENDS[name]
    except KeyError:
        hint = " (install sf-heu: pip install 'vfl[bench]')" if name == "heu" else ""
        raise ValueError(
            f"unknown Paillier backend {name!r}; available: {', '.join(available_backends())}"
            + hint
        ) from None
