"""The optional HEU engine agrees with phe; the crypto benchmark smoke-runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from vfl.crypto import backends
from vfl.crypto.encoding import FixedPointCodec

ROOT = Path(__file__).resolve().parents[2]


def test_unknown_backend_lists_the_available_ones():
    with pytest.raises(ValueError, match=r"available: .*fast.*phe"):
        backends.get_backend("nope")


def test_heu_engine_shares_keys_and_ciphertexts_with_phe(keypair, public_params, fast,
                                                        phe_decryptor):
    pytest.importorskip("heu")
    from vfl.crypto.heu_engine import HeuDecryptor, HeuEngine

    assert backends.get_backend("heu") == (HeuEngine, HeuDecryptor)
    pub, priv = keypair
    n = pub.n
    engine, decryptor = HeuEngine(pub, public_params), HeuDecryptor(priv)
    xs = [0, 5, -7, (1 << 100) - 1, -(1 << 100)]
    ks = [3, -2, 1 << 41, -(1 << 41), 0]
    c = engine.encrypt(xs)
    assert FixedPointCodec.to_signed(phe_decryptor.decrypt(c), n) == xs
    assert FixedPointCodec.to_signed(decryptor.decrypt(fast.encrypt(xs)), n) == xs
    checks = [
        (engine.add(c, c), [2 * x for x in xs]),
        (engine.add_plain(c, ks), [x + k for x, k in zip(xs, ks)]),
        (engine.mul_plain(c, ks), [x * k for x, k in zip(xs, ks)]),
        (engine.sum(c), [sum(xs)]),
        (engine.dot(c, ks), [sum(x * k for x, k in zip(xs, ks))]),
        (engine.matvec_t([[k, 1] for k in ks], c), [sum(x * k for x, k in zip(xs, ks)), sum(xs)]),
        (engine.rerandomize(c), xs),
    ]
    for vector, exact in checks:
        assert FixedPointCodec.to_signed(phe_decryptor.decrypt(vector), n) == exact


@pytest.mark.slow
def test_bench_crypto_quick_runs():
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench_crypto.py"), "--quick"],
                         capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "| encrypt (pool cold) |" in out.stdout
