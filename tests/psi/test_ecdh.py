"""ECDH alignment: correctness, order, transcript privacy and refusal of bad points."""

from __future__ import annotations

import hashlib
import queue
import random
import re
import threading
from concurrent.futures import ThreadPoolExecutor

import gmpy2
import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import vfl.psi.ecdh as ecdh
from vfl.errors import DuplicateIDError, ProtocolError
from vfl.protocol.channel import InProcessNetwork
from vfl.psi import DEFAULT_ALIGNMENT, EcdhAlignment, MalformedPointError, get_alignment
from vfl.psi.ecdh import SUITE, TAG_BYTES, EcdhHello, EcdhPoints, EcdhTags, intersect_tags
from vfl.psi.hash_to_curve import P, encode_to_curve
from vfl.psi.keyed_hash import AlignmentTags


def method(**kw) -> EcdhAlignment:
    kw.setdefault("progress", False)
    return EcdhAlignment(**kw)


def check(pair, a_ids, b_ids, **kw):
    """Run ecdh and compare with a plain set intersection; return both results."""
    ra, rb = pair(a_ids, b_ids, method(**kw))
    shared = set(a_ids) & set(b_ids)
    got_a = [a_ids[i] for i in ra.positions]
    got_b = [b_ids[i] for i in rb.positions]
    assert set(got_a) == shared and len(got_a) == len(shared)
    assert got_a == got_b, "both sides must hold the shared rows in one order"
    assert (ra.peer_size, rb.peer_size) == (len(b_ids), len(a_ids))
    assert ra.positions.dtype == np.int64
    return ra, rb


def test_is_the_default():
    assert DEFAULT_ALIGNMENT == "ecdh"
    assert isinstance(get_alignment("ecdh"), EcdhAlignment)
    assert get_alignment("ecdh", progress=False, chunk_size=99).chunk_size == 99
    with pytest.raises(ValueError, match="available: ecdh, hash"):
        get_alignment("nope")


@pytest.mark.parametrize("a_ids, b_ids", [
    ([], []),
    ([], ["1", "2"]),
    (["1", "2"], []),
    (["1", "2", "3"], ["4", "5"]),              # disjoint
    (["x", "y", "z"], ["z", "x", "y"]),         # equal sets, other order
    (["only"], ["only"]),                       # one element, shared
    (["only"], ["other"]),                      # one element each, disjoint
    (["Zoë", "北京", "😀", "naïve", "a b"], ["😀", "北京", "zoe", "naïve"]),
], ids=["both-empty", "a-empty", "b-empty", "disjoint", "equal", "one-shared", "one-disjoint",
        "unicode"])
def test_matches_plain_intersection(pair, a_ids, b_ids):
    check(pair, a_ids, b_ids)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sets(st.integers(0, 60), max_size=40), st.sets(st.integers(0, 60), max_size=40),
       st.integers(1, 9), st.integers(1, 9))
def test_random_sets_and_chunk_sizes(pair, a, b, chunk_a, chunk_b):
    a_ids = [str(i) for i in a]
    b_ids = [str(i) for i in b]
    random.shuffle(a_ids)
    ra, rb = pair(a_ids, b_ids, method(chunk_size=chunk_a), method(chunk_size=chunk_b))
    assert [a_ids[i] for i in ra.positions] == [b_ids[i] for i in rb.positions]
    assert sorted(int(a_ids[i]) for i in ra.positions) == sorted(a & b)


def test_through_an_executor_with_small_chunks(pair):
    a_ids = [f"p{i}" for i in range(300)]
    b_ids = [f"p{i}" for i in range(150, 520)]
    with ThreadPoolExecutor(2) as pool:
        check(pair, a_ids, b_ids, executor=pool, chunk_size=16, inline_below=0)


@pytest.mark.slow
def test_through_the_process_pool(pair):
    a_ids = [f"p{i}" for i in range(6000)]
    b_ids = [f"p{i}" for i in range(3000, 9500)]
    check(pair, a_ids, b_ids, chunk_size=512, inline_below=0)


def test_order_is_pseudorandom_not_id_order(pair):
    ids = [f"{i:04d}" for i in range(60)]
    ra, _ = pair(ids, list(reversed(ids)), method())
    order = [ids[i] for i in ra.positions]
    assert sorted(order) == ids and order != ids and order != ids[::-1]


def test_duplicates_and_non_strings_are_refused():
    network = InProcessNetwork(["A", "B"], "s")
    with pytest.raises(DuplicateIDError, match="'7'"):
        method().run(["7", "8", "7"], network.endpoint("A"), "B", leader=False)
    with pytest.raises(TypeError, match="normalize_ids"):
        method().run(["7", 8], network.endpoint("A"), "B", leader=False)


def test_hash_alignment_still_available_and_hides_row_order(pair):
    a_ids, b_ids = [str(i) for i in range(30)], ["3", "2", "9", "77"]
    network = InProcessNetwork(["A", "B"], "hash", record=True)
    ra, rb = pair(a_ids, b_ids, get_alignment("hash"), network=network)
    assert [a_ids[i] for i in ra.positions] == [b_ids[i] for i in rb.positions]
    assert {a_ids[i] for i in ra.positions} == {"2", "3", "9"}
    tags = next(e.body.tags for e in network.received_by("B")
                if isinstance(e.body, AlignmentTags))
    chunks = [tags[i:i + 32] for i in range(0, len(tags), 32)]
    assert chunks == sorted(chunks)


# --- what B sees --------------------------------------------------------------


def test_transcript_cannot_be_matched_without_a_secret(pair, monkeypatch):
    a_ids = [f"+4479{i:08d}" for i in range(40)]            # phone numbers: guessable
    b_ids = a_ids[:10] + [f"+4479{i:08d}" for i in range(100, 130)]
    scalars = {}

    def scalar_for_thread():
        secret = X25519PrivateKey.generate().private_bytes_raw()
        scalars[threading.current_thread().name] = secret
        return secret

    monkeypatch.setattr(ecdh, "_new_scalar", scalar_for_thread)
    network = InProcessNetwork(["A", "B"], "transcript", record=True)
    pair(a_ids, b_ids, method(), network=network)

    received = network.received_by("B")
    points = b"".join(e.body.points for e in received if isinstance(e.body, EcdhPoints))
    tags = b"".join(e.body.tags for e in received if isinstance(e.body, EcdhTags))
    assert len(points) == 32 * len(a_ids) and len(tags) == TAG_BYTES * len(b_ids)
    sent_points = {points[i:i + 32] for i in range(0, len(points), 32)}
    sent_tags = {tags[i:i + TAG_BYTES] for i in range(0, len(tags), TAG_BYTES)}

    # B's dictionary attack: hash every candidate ID every way it can, and
    # blind the hashes with its own scalar; none of it matches what A sent.
    candidates = [f"+4479{i:08d}" for i in range(200)]
    hashed = encode_to_curve(candidates)
    curve_points = [hashed[i:i + 32] for i in range(0, len(hashed), 32)]

    def blinded(secret):
        key = X25519PrivateKey.from_private_bytes(secret)
        return {key.exchange(X25519PublicKey.from_public_bytes(p)) for p in curve_points}

    guesses = set(curve_points) | blinded(scalars["party-B"])
    guesses |= {hashlib.sha256(c.encode()).digest() for c in candidates}
    guesses |= {c.encode().ljust(32, b"\0") for c in candidates}
    assert not sent_points & guesses
    assert not sent_tags & {g[:TAG_BYTES] for g in guesses}

    # A's points do not come in A's row order (which could reflect e.g. a sort by date).
    key_a = X25519PrivateKey.from_private_bytes(scalars["party-A"])
    own = encode_to_curve(a_ids)
    in_row_order = b"".join(key_a.exchange(X25519PublicKey.from_public_bytes(own[i:i + 32]))
                            for i in range(0, len(own), 32))
    assert in_row_order != points and sorted(sent_points) == sorted(
        in_row_order[i:i + 32] for i in range(0, len(in_row_order), 32))

    # With A's scalar the same attack succeeds: the secret is what protects the IDs.
    assert sent_points == blinded(scalars["party-A"]) & sent_points
    assert len(blinded(scalars["party-A"]) & sent_points) == len(a_ids)
    assert scalars["party-A"] != scalars["party-B"]


# --- a peer that does not follow the protocol ----------------------------------


def _u(value: int) -> bytes:
    return value.to_bytes(32, "little")


def _twist_u() -> bytes:
    u = 2
    while gmpy2.legendre((u ** 3 + 486662 * u * u + u) % P, P) != -1:
        u += 1
    return _u(u)


@pytest.fixture
def against(run_all):
    """``against(fake)``: honest B against a scripted A; returns B's exception."""
    return lambda fake: _run_against(run_all, fake)


def _run_against(run_all, fake, b_ids=("1", "2", "3")):
    network = InProcessNetwork(["A", "B"], "malformed")
    with pytest.raises(ProtocolError) as info:
        run_all(network, {
            "A": fake,
            "B": lambda ep: method().run(list(b_ids), ep, "A", leader=True),
        })
    return info.value


@pytest.mark.parametrize("bad, reason", [
    (_u(0), "low-order"),
    (_u(1), "low-order|twist"),
    (_u(P - 1), "low-order|twist"),
    (_u(P), "canonical"),
    (_u(2**255 + 9), "canonical"),
    (_twist_u(), "twist"),
])
def test_malformed_points_are_refused(bad, reason, against):
    good = encode_to_curve(["a", "b"])

    def fake(ep):
        ep.send("B", EcdhHello(SUITE, 3, 8))
        ep.send("B", EcdhPoints(0, good[:32] + bad + good[32:]))

    error = against(fake)
    assert isinstance(error, MalformedPointError)
    message = str(error)
    assert "party B" in message and "A sent" in message and "EcdhPoints chunk 0" in message
    assert "point 1" in message
    assert re.search(reason, message)


@pytest.mark.parametrize("payload", [b"", b"\x00" * 31, b"\x09" * 65])
def test_points_of_wrong_length_are_refused(payload, against):
    def fake(ep):
        ep.send("B", EcdhHello(SUITE, 2, 8))
        ep.send("B", EcdhPoints(0, payload))

    error = against(fake)
    assert isinstance(error, MalformedPointError) and "A sent EcdhPoints chunk 0" in str(error)


def test_returned_values_of_wrong_length_are_refused(against):
    def fake(ep):
        ep.send("B", EcdhHello(SUITE, 1, 8))
        ep.send("B", EcdhPoints(0, encode_to_curve(["z"])))
        ep.send("B", EcdhTags(0, b"\x01" * 5))

    error = against(fake)
    assert isinstance(error, MalformedPointError) and "A sent EcdhTags chunk 0" in str(error)


def test_repeated_points_are_refused(against):
    point = encode_to_curve(["z"])

    def fake(ep):
        ep.send("B", EcdhHello(SUITE, 2, 8))
        ep.send("B", EcdhPoints(0, point + point))
        ep.send("B", EcdhTags(0, bytes(range(16)) + bytes(range(1, 17)) + bytes(range(2, 18))))

    error = against(fake)
    assert "repeated" in str(error)


@pytest.mark.parametrize("hello", [
    EcdhHello("some-other-suite", 1, 8),
    EcdhHello(SUITE, -1, 8),
    EcdhHello(SUITE, 1, 0),
])
def test_bad_hello_is_refused(hello, against):
    def fake(ep):
        ep.send("B", hello)

    error = against(fake)
    assert "A" in str(error) and ("suite" in str(error) or "EcdhHello" in str(error))


def test_intersect_tags_orders_by_tag():
    own = bytes([3] * 16) + bytes([1] * 16) + bytes([2] * 16)
    theirs = bytes([2] * 16) + bytes([9] * 16) + bytes([3] * 16)
    assert intersect_tags(own, theirs).tolist() == [2, 0]
    assert intersect_tags(b"", theirs).tolist() == []


@pytest.mark.parametrize("sizes", [(120, 120), (30, 200), (200, 5)])
def test_streams_through_a_transport_that_buffers_one_message(pair, sizes):
    """The chunk schedule never needs more than one message in flight per direction."""
    network = InProcessNetwork(["A", "B"], "bounded")
    network._queues = {key: queue.Queue(maxsize=1) for key in network._queues}
    a_ids = [str(i) for i in range(sizes[0])]
    b_ids = [str(i) for i in range(50, 50 + sizes[1])]
    with ThreadPoolExecutor(2) as pool:
        kw = {"executor": pool, "inline_below": 0, "progress": False}
        ra, rb = pair(a_ids, b_ids, EcdhAlignment(chunk_size=8, **kw),
                      EcdhAlignment(chunk_size=13, **kw), network=network)
    assert [a_ids[i] for i in ra.positions] == [b_ids[i] for i in rb.positions]
    assert len(ra) == len(set(a_ids) & set(b_ids))
