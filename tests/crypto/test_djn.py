"""The DJN base h_s is derived from n by a public hash; any other h_s is refused."""

from __future__ import annotations

import secrets

import gmpy2
import phe
import pytest

import vfl.crypto.djn as djn
from vfl.crypto import backends, workers
from vfl.crypto.djn import (
    H_S_PARAM,
    InvalidPublicParameterError,
    check_h_s,
    derive_h,
    derive_h_s,
)
from vfl.crypto.fast_engine import FastEngine
from vfl.crypto.keys import generate_keypair
from vfl.crypto.phe_engine import PheEngine
from vfl.errors import MalformedMessageError


def _crt(a_p: int, p: int, a_q: int, q: int) -> int:
    return int(a_q + q * ((a_p - a_q) * gmpy2.invert(q, p) % p))


def test_every_party_derives_the_key_owners_h_s(keypair):
    pub, priv = keypair
    published = FastEngine.public_params_for(priv)[H_S_PARAM]   # the owner's CRT path
    assert published == derive_h_s(pub.n)                        # anyone's, from n alone
    assert published == FastEngine.public_params_for(priv)[H_S_PARAM]  # deterministic
    h = derive_h(pub.n)
    assert published == int(gmpy2.powmod(h, pub.n, pub.nsquare))
    # h = -y^2: -h is a square mod p and mod q.
    assert gmpy2.legendre(-h % priv.p, priv.p) == 1 and gmpy2.legendre(-h % priv.q, priv.q) == 1
    assert h not in (0, 1, pub.n - 1) and gmpy2.gcd(h, pub.n) == 1
    assert check_h_s({H_S_PARAM: published}, pub, sender="C") == published
    assert check_h_s({H_S_PARAM: gmpy2.mpz(published)}, pub) == published


def test_derivation_is_bound_to_n_and_to_its_domain_tag(keypair, monkeypatch):
    n = keypair[0].n
    other = generate_keypair(512, insecure=True)[0].n
    h = derive_h(n)
    assert h != derive_h(other)
    monkeypatch.setattr(djn, "H_DOMAIN_TAG", b"some-other-protocol/v1")
    assert derive_h(n) != h  # another tag, another h


@pytest.mark.parametrize("bad", [0, 3, 4, -15, True, 2.5, "n"])
def test_derive_refuses_what_is_not_a_modulus(bad):
    with pytest.raises(ValueError, match="Paillier modulus"):
        derive_h(bad)


def _key_with_order_3_element() -> tuple[phe.PaillierPublicKey, phe.PaillierPrivateKey, int]:
    """A key with 3 | p - 1, and an h of order exactly 3 in Z*_n (built with p and q)."""
    while True:
        pub, priv = generate_keypair(512, insecure=True)
        p, q = priv.p, priv.q
        if (p - 1) % 3:
            p, q = q, p
        if (p - 1) % 3 == 0:
            break
    while True:
        g = int(gmpy2.powmod(secrets.randbelow(p - 2) + 2, (p - 1) // 3, p))
        if g != 1:
            return pub, priv, _crt(g, p, 1, q)


def test_an_h_s_of_order_3_is_refused_naming_the_sender():
    pub, _, h3 = _key_with_order_3_element()
    n, n2 = pub.n, pub.nsquare
    h_s = int(gmpy2.powmod(h3, n, n2))
    # It passes every check that does not know the factorisation (the old ones)...
    assert 1 < h_s < n2 - 1 and gmpy2.gcd(h_s, n) == 1 and gmpy2.powmod(h_s, 2, n2) != 1
    assert gmpy2.powmod(h_s, 3, n2) == 1
    # ...and then every encryption of a value is one of 3 ciphertexts, readable without the key.
    spec = (n, h_s, djn.randomness_bits(n), 4)
    zeros = {int(o) for o in workers.obfuscators_without_table(spec, 30)}
    assert zeros <= {1, h_s, int(gmpy2.powmod(h_s, 2, n2))}
    # Refused now, by the check a receiver runs and by the constructor itself.
    for engine in (FastEngine, *([backends.get_backend("heu")[0]]
                                 if "heu" in backends.available_backends() else [])):
        with pytest.raises(InvalidPublicParameterError,
                           match=r"^party A1: public parameter h_s from C is not the DJN base"):
            engine.check_public_params(pub, {H_S_PARAM: h_s}, sender="C", party="A1")
    with pytest.raises(MalformedMessageError, match="h_s from the key owner"):
        FastEngine(pub, {H_S_PARAM: h_s}, parallel=False)


def test_a_randomly_drawn_h_s_of_an_older_version_is_refused(keypair):
    """What an older key owner sends: a valid base of large order, but not the derived one."""
    pub = keypair[0]
    y = secrets.randbelow(pub.n - 2) + 2
    h_s = int(gmpy2.powmod(-y * y % pub.n, pub.n, pub.nsquare))
    with pytest.raises(InvalidPublicParameterError, match="older version") as info:
        FastEngine.check_public_params(pub, {H_S_PARAM: h_s}, sender="C", party="B")
    assert isinstance(info.value, ValueError) and info.value.party == "B"


@pytest.mark.parametrize("params, reason", [
    ({}, "without the parameter 'h_s'"),
    ({H_S_PARAM: "12"}, "must be an integer"),
    ({H_S_PARAM: True}, "must be an integer"),
    ({H_S_PARAM: 1}, "not the DJN base"),
])
def test_missing_or_malformed_h_s_is_refused(keypair, params, reason):
    with pytest.raises(InvalidPublicParameterError, match=rf"^party B: .*from C.*{reason}"):
        FastEngine.check_public_params(keypair[0], params, sender="C", party="B")


def test_engines_without_parameters_accept_any(keypair):
    PheEngine.check_public_params(keypair[0], {}, sender="C")
    PheEngine.check_public_params(keypair[0], {H_S_PARAM: 5}, sender="C")


def test_derived_base_interoperates_with_phe(keypair, phe_decryptor, fast_decryptor):
    pub, priv = keypair
    engine = FastEngine(pub, {H_S_PARAM: derive_h_s(pub.n)}, parallel=False, pool_capacity=0)
    xs = [0, 1, 123456789, pub.n - 1]
    c = engine.encrypt(xs)
    assert phe_decryptor.decrypt(c) == xs
    assert fast_decryptor.decrypt(PheEngine(pub).encrypt(xs)) == xs
    assert priv.decrypt(phe.EncryptedNumber(pub, c.ciphertexts[2])) == 123456789
