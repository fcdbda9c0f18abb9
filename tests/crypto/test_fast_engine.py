"""The fast engine computes exactly what phe and integer arithmetic compute."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import gmpy2
import phe
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vfl.crypto import backends
from vfl.crypto.ciphertext import EncryptedVector
from vfl.crypto.djn import H_S_PARAM
from vfl.crypto.encoding import FixedPointCodec
from vfl.crypto.fast_engine import FastDecryptor, FastEngine
from vfl.errors import EncodingOverflowError, InvalidCiphertextError

CODEC = FixedPointCodec()
LIMIT = 1 << CODEC.max_encoded_bits  # |encoded value| < LIMIT
encoded = st.integers(min_value=-(LIMIT - 1), max_value=LIMIT - 1)
edge = st.sampled_from([0, 1, -1, LIMIT - 1, -(LIMIT - 1), 1 << 41, -(1 << 41)])
values = st.one_of(encoded, edge)
vectors = st.lists(values, min_size=1, max_size=12)

SETTINGS = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


def signed(residues, n):
    return FixedPointCodec.to_signed(residues, n)


@SETTINGS
@given(vectors)
def test_encrypt_decrypts_to_plaintext_with_both_decryptors(fast, fast_decryptor, phe_decryptor,
                                                           keypair, xs):
    n = keypair[0].n
    c = fast.encrypt(xs)
    assert all(type(v) is int for v in c.ciphertexts)
    assert signed(fast_decryptor.decrypt(c), n) == xs
    assert signed(phe_decryptor.decrypt(c), n) == xs


@SETTINGS
@given(vectors)
def test_phe_ciphertexts_decrypt_with_fast_decryptor(phe_engine, fast_decryptor, keypair, xs):
    assert signed(fast_decryptor.decrypt(phe_engine.encrypt(xs)), keypair[0].n) == xs


@SETTINGS
@given(st.data())
def test_arithmetic_matches_phe_and_integers(fast, phe_engine, fast_decryptor, phe_decryptor,
                                             keypair, data):
    n = keypair[0].n
    xs = data.draw(vectors)
    m = len(xs)
    ys = data.draw(st.lists(values, min_size=m, max_size=m))
    ks = data.draw(st.lists(values, min_size=m, max_size=m))
    cx, cy = fast.encrypt(xs), fast.encrypt(ys)
    px, py = phe_engine.encrypt(xs), phe_engine.encrypt(ys)

    cases = [
        (fast.add(cx, cy), phe_engine.add(px, py), [x + y for x, y in zip(xs, ys)]),
        (fast.add_plain(cx, ys), phe_engine.add_plain(px, ys), [x + y for x, y in zip(xs, ys)]),
        (fast.mul_plain(cx, ks), phe_engine.mul_plain(px, ks), [x * k for x, k in zip(xs, ks)]),
        (fast.sum(cx), phe_engine.sum(px), [sum(xs)]),
        (fast.dot(cx, ks), phe_engine.dot(px, ks), [sum(x * k for x, k in zip(xs, ks))]),
        (fast.rerandomize(cx), phe_engine.rerandomize(px), xs),
    ]
    for ours, reference, exact in cases:
        assert signed(fast_decryptor.decrypt(ours), n) == exact
        assert signed(phe_decryptor.decrypt(ours), n) == exact
        assert signed(phe_decryptor.decrypt(reference), n) == exact


@SETTINGS
@given(st.data())
def test_matvec_t_matches_exact_products(fast, phe_engine, fast_decryptor, keypair, data):
    n = keypair[0].n
    m = data.draw(st.integers(1, 30))
    d = data.draw(st.integers(1, 4))
    sign = data.draw(st.sampled_from(["mixed", "positive", "negative"]))
    entry = {"mixed": values,
             "positive": st.integers(0, LIMIT - 1),
             "negative": st.integers(-(LIMIT - 1), 0)}[sign]
    matrix = data.draw(st.lists(st.lists(entry, min_size=d, max_size=d), min_size=m, max_size=m))
    xs = data.draw(st.lists(values, min_size=m, max_size=m))
    exact = [sum(matrix[i][j] * xs[i] for i in range(m)) for j in range(d)]
    c = fast.encrypt(xs)
    assert signed(fast_decryptor.decrypt(fast.matvec_t(matrix, c)), n) == exact
    assert signed(fast_decryptor.decrypt(phe_engine.matvec_t(matrix, c)), n) == exact


def test_scalars_are_taken_mod_n(fast, fast_decryptor, keypair):
    n = keypair[0].n
    c = fast.encrypt([3, -4])
    # n - 5 acts as -5; -(n - 2) acts as 2; n + 7 acts as 7.
    assert signed(fast_decryptor.decrypt(fast.mul_plain(c, [n - 5, n + 7])), n) == [-15, -28]
    assert signed(fast_decryptor.decrypt(fast.matvec_t([[n - 5], [-(n - 2)]], c)), n) == [-23]
    assert fast_decryptor.decrypt(fast.encrypt([n + 3])) == [3]


def test_sum_of_many_products_near_the_capacity(fast, fast_decryptor, keypair):
    n = keypair[0].n
    m = 200
    xs = [LIMIT - 1 if i % 3 else -(LIMIT - 1) for i in range(m)]
    ks = [LIMIT - 1] * m
    c = fast.encrypt(xs)
    expected = sum(x * k for x, k in zip(xs, ks))
    assert signed(fast_decryptor.decrypt(fast.dot(c, ks)), n) == [expected]
    CODEC.check_capacity(n, m)  # 512 bits hold 200 products of 104-bit values


def test_overflow_raises_instead_of_wrapping(fast, fast_decryptor, keypair):
    n = keypair[0].n
    with pytest.raises(EncodingOverflowError):
        # (K + 1)^2 m E^2 = 4 * 2^302 * 2^208 = 2^512 > n/3 (the exact bound, not a margin).
        CODEC.check_capacity(n, 1 << 302)
    # A result past n/3 lands in the middle third and is refused on decoding.
    big = n // 3 + 10
    c = fast.mul_plain(fast.encrypt([big // 2 + 1]), [2])
    with pytest.raises(EncodingOverflowError):
        signed(fast_decryptor.decrypt(c), n)
    c = fast.add(fast.encrypt([n // 3]), fast.encrypt([n // 3]))
    with pytest.raises(EncodingOverflowError):
        signed(fast_decryptor.decrypt(c), n)


def test_two_encryptions_of_the_same_value_differ(fast, fast_parallel):
    for engine in (fast, fast_parallel):
        a, b = engine.encrypt([0, 0, 7]), engine.encrypt([0, 0, 7])
        assert len(set(a.ciphertexts + b.ciphertexts)) == 6
        assert engine.rerandomize(a).ciphertexts != a.ciphertexts


@pytest.mark.parametrize("bad", [0, -1, "n2", "p", 1.5])
def test_invalid_ciphertexts_are_rejected(fast, keypair, bad):
    pub, priv = keypair
    good = fast.encrypt([1, 2, 3])
    value = {"n2": pub.nsquare, "p": priv.p * 12345}.get(bad, bad)
    vector = EncryptedVector(pub, (*good.ciphertexts[:1], value, *good.ciphertexts[2:]))
    with pytest.raises(InvalidCiphertextError, match=r"from A: .*1"):
        fast.validate(vector, sender="A", what="[[u_A]]", party="B")


def test_valid_and_foreign_key_vectors(fast, keypair):
    good = fast.encrypt([5, -6])
    fast.validate(good, sender="A", what="x")
    fast.validate(EncryptedVector(keypair[0], (gmpy2.mpz(good.ciphertexts[0]),)),
                  sender="A", what="x")
    other, _ = phe.generate_paillier_keypair(n_length=256)
    with pytest.raises(InvalidCiphertextError, match="different public key"):
        fast.validate(EncryptedVector(other, good.ciphertexts), sender="A", what="x")
    with pytest.raises(ValueError):
        fast.add(good, EncryptedVector(other, good.ciphertexts))


def test_missing_or_bad_h_s_is_refused(keypair):
    pub = keypair[0]
    with pytest.raises(ValueError, match="h_s"):
        FastEngine(pub, {}, parallel=False)
    for bad in (1, 0, pub.nsquare, pub.nsquare - 1, pub.n, "x"):
        with pytest.raises(ValueError, match="h_s"):
            FastEngine(pub, {H_S_PARAM: bad}, parallel=False)


def test_length_mismatches_raise(fast):
    c = fast.encrypt([1, 2])
    for call in (lambda: fast.add(c, c[:1]), lambda: fast.add_plain(c, [1]),
                 lambda: fast.mul_plain(c, [1]), lambda: fast.dot(c, [1, 2, 3]),
                 lambda: fast.matvec_t([[1]], c), lambda: fast.matvec_t([], c[:0]),
                 lambda: fast.matvec_t([[1, 2], [3]], c)):
        with pytest.raises(ValueError):
            call()


def test_serialisation_round_trip(fast, fast_decryptor, keypair):
    c = fast.encrypt([-(LIMIT - 1), 0, LIMIT - 1])
    data = c.to_bytes()
    assert len(data) == 3 * EncryptedVector.byte_width(keypair[0])
    back = EncryptedVector.from_bytes(keypair[0], data)
    fast.validate(back, sender="A", what="x")
    assert back == c


def test_parallel_engine_matches_inline(fast_parallel, keypair):
    """Process pool, background obfuscator pool, chunked kernels: same results."""
    pub, priv = keypair
    n = pub.n
    decryptor = FastDecryptor(priv)  # default process pool
    m, d = 300, 3
    xs = [(i * 7919 - 1000) * (1 << 60) for i in range(m)]
    matrix = [[(i * 31 + j * 17) % 101 - 50 for j in range(d)] for i in range(m)]
    fast_parallel.warm_up(40)
    c = fast_parallel.encrypt(xs)  # 40 warm, the rest on the workers
    assert signed(decryptor.decrypt(c), n) == xs
    exact = [sum(matrix[i][j] * xs[i] for i in range(m)) for j in range(d)]
    assert signed(decryptor.decrypt(fast_parallel.matvec_t(matrix, c)), n) == exact
    assert signed(decryptor.decrypt(fast_parallel.sum(c)), n) == [sum(xs)]
    ks = [row[0] for row in matrix]
    assert signed(decryptor.decrypt(fast_parallel.mul_plain(c, ks)), n) == [
        x * k for x, k in zip(xs, ks)]
    r = fast_parallel.rerandomize(c)
    assert signed(decryptor.decrypt(r), n) == xs
    big = EncryptedVector.concat([c] * 20)  # above the inline threshold for add/sum
    assert signed(decryptor.decrypt(fast_parallel.add(big, big)), n) == [2 * x for x in xs] * 20
    assert signed(decryptor.decrypt(fast_parallel.sum(big)), n) == [20 * sum(xs)]


def test_caller_supplied_executor(keypair, public_params, fast_decryptor):
    pub, _ = keypair
    with ThreadPoolExecutor(max_workers=2) as pool:
        engine = FastEngine(pub, public_params, executor=pool, pool_capacity=8)
        try:
            xs = list(range(-20, 20))
            c = engine.encrypt(xs)
            assert signed(fast_decryptor.decrypt(c), pub.n) == xs
            assert signed(fast_decryptor.decrypt(engine.dot(c, xs)), pub.n) == [
                sum(x * x for x in xs)]
        finally:
            engine.close()
            engine.close()  # idempotent


def test_registry():
    assert backends.DEFAULT_BACKEND == "fast"
    assert {"fast", "phe"} <= set(backends.available_backends())
    assert backends.get_backend("fast") == (FastEngine, FastDecryptor)


@pytest.mark.parametrize("k", [1, 2, 4])
def test_capacity_check_is_exact_for_the_encrypted_loss(fast, fast_decryptor, keypair, k):
    """The worst loss of K feature holders, computed under encryption as B computes it.

    With the key fixed (512 bits), a codec is chosen so that only a few rows
    fit; at the largest row count the check allows, the loss decrypts
    exactly; one row more, the check refuses, and the loss would indeed have
    left the decodable range.
    """
    n = keypair[0].n
    codec = FixedPointCodec(frac_bits=4, value_bits=n.bit_length() // 2 - 10)
    e, penalty = codec.max_encoded(), codec.max_encoded(2)
    m_max = (n // 3 - (k + 1) * penalty) // ((k + 1) ** 2 * e * e)
    assert 2 <= m_max < 10**4
    codec.check_capacity(n, m_max, holders=k)
    with pytest.raises(EncodingOverflowError, match=f"with {k} feature holder"):
        codec.check_capacity(n, m_max + 1, holders=k)

    def encrypted_worst_loss(m):
        # As in the vertical protocol: each A_k sends [[u_k]] and [[sum u_k^2 + pen]]
        # (every value at the encoding's limit); B computes [[2 v . U]] + sum v^2 + pen
        # with U the sum of all u_k, adds every A_k's part and every cross term
        # [[2 u_j . U_j]] (U_j the sum of the later u_k), which A_j computes.
        u_plain = [[e] * m for _ in range(k)]
        u = [fast.encrypt(x) for x in u_plain]
        parts = [fast.encrypt([sum(x * x for x in ux) + penalty]) for ux in u_plain]
        v = [e] * m
        suffix, requests = u[-1], []
        for j in range(k - 2, -1, -1):
            requests.append((j, suffix))
            suffix = fast.add(suffix, u[j])
        loss = fast.add_plain(fast.dot(suffix, [2 * x for x in v]),
                              [sum(x * x for x in v) + penalty])
        for part in parts:
            loss = fast.add(loss, part)
        for j, later in requests:
            loss = fast.add(loss, fast.dot(later, [2 * x for x in u_plain[j]]))
        return fast_decryptor.decrypt(loss)

    assert codec.to_signed(encrypted_worst_loss(m_max), n) == [codec.max_result(m_max, k)]
    with pytest.raises(EncodingOverflowError, match="middle third"):
        codec.to_signed(encrypted_worst_loss(m_max + 1), n)
