"""Keyed-hash alignment: correct, and a peer's repeated tags are refused."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from vfl.errors import DuplicateIDError, MalformedMessageError, ProtocolError
from vfl.protocol.channel import InProcessNetwork
from vfl.psi import get_alignment
from vfl.psi.keyed_hash import AlignmentKey, AlignmentTags

WIDTH = 32


def test_matches_plain_intersection(pair):
    a_ids, b_ids = ["1", "2", "3", "4"], ["4", "9", "2"]
    ra, rb = pair(a_ids, b_ids, get_alignment("hash"))
    assert sorted(a_ids[i] for i in ra.positions) == ["2", "4"]
    assert [a_ids[i] for i in ra.positions] == [b_ids[i] for i in rb.positions]
    assert (ra.peer_size, rb.peer_size) == (3, 4)


def _against(run_all, tags: bytes, width: int = WIDTH) -> ProtocolError:
    """Honest B against an A that agrees the key, then sends `tags`; B's error."""

    def fake(ep):
        ep.send("B", AlignmentKey(X25519PrivateKey.generate().public_key().public_bytes_raw()))
        ep.receive("B", AlignmentKey)
        ep.send("B", AlignmentTags(tags, width))

    network = InProcessNetwork(["A", "B"], "keyed-hash-malformed")
    with pytest.raises(ProtocolError) as info:
        run_all(network, {
            "A": fake,
            "B": lambda ep: get_alignment("hash").run(["1", "2", "3"], ep, "A", leader=True),
        })
    return info.value


def _tag(i: int) -> bytes:
    return bytes([i]) * WIDTH


@pytest.mark.parametrize("tags, repeats", [
    (_tag(1) + _tag(1), 1),                        # adjacent
    (_tag(1) + _tag(2) + _tag(1), 1),              # apart
    (_tag(7) * 5, 4),                              # one tag five times
    (_tag(1) + _tag(2) + _tag(2) + _tag(1), 2),    # two of them
])
def test_repeated_tags_are_refused_naming_the_peer(run_all, tags, repeats):
    error = _against(run_all, tags)
    assert isinstance(error, MalformedMessageError)
    assert str(error).startswith(f"party B: A sent {repeats} repeated alignment tag(s)")


def test_malformed_tags_are_still_refused(run_all):
    error = _against(run_all, _tag(1) + b"\x00", WIDTH)
    assert isinstance(error, MalformedMessageError) and "A sent malformed alignment tags" in str(
        error)


def test_own_duplicate_ids_are_refused_before_any_tag_is_sent(run_all):
    network = InProcessNetwork(["A", "B"], "keyed-hash-dupes", record=True)
    method = get_alignment("hash")
    with pytest.raises(DuplicateIDError, match=r"party B: 1 duplicated ID\(s\), e.g. '2'"):
        run_all(network, {
            "A": lambda ep: method.run(["1", "2"], ep, "B", leader=False),
            "B": lambda ep: method.run(["1", "2", "2"], ep, "A", leader=True),
        }, prefer="B")
    assert not any(isinstance(e.body, AlignmentTags) and e.sender == "B"
                   for e in network.transcript)
