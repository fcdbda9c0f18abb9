"""Keyed-hash alignment: HMAC-SHA256 under a key only A and B hold.

A and B agree a key with an ephemeral X25519 exchange (HKDF-SHA256 bound to
the session), tag every ID with HMAC-SHA256 under it, swap the tags and
intersect. The shared rows are ordered by tag, which both sides compute
identically and which says nothing about the IDs' own order.

Weakness, by design of the method: whoever holds the key can tag any guessed
ID offline. Phone numbers, national IDs or e-mail addresses fall to a
dictionary quickly, so a curious B learns which of A's non-shared IDs are in
any list it can enumerate. Use the ECDH method when that matters.

Checks, as in ECDH: this party's own IDs must be distinct
(:class:`~vfl.errors.DuplicateIDError`), and the peer's tags must have the
agreed width and never repeat (distinct IDs never share a tag); otherwise
the run stops with :class:`~vfl.errors.MalformedMessageError` naming the peer.
"""

from __future__ import annotations

import hashlib
import hmac
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from vfl.errors import DuplicateIDError, MalformedMessageError
from vfl.protocol.channel import Endpoint
from vfl.protocol.wire import wire_message
from vfl.psi.base import AlignmentMethod, AlignmentResult

__all__ = ["AlignmentKey", "AlignmentTags", "KeyedHashAlignment"]

_TAG_BYTES = 32


@wire_message
@dataclass(frozen=True)
class AlignmentKey:
    """A <-> B: an X25519 public key for agreeing the keyed-hash key."""

    public_key: bytes


@wire_message
@dataclass(frozen=True)
class AlignmentTags:
    """A <-> B: one tag per ID, concatenated (``width`` bytes each).

    Keyed-hash tags: HMAC-SHA256 under the agreed key, sorted by tag so the
    order says nothing about the sender's rows.
    """

    tags: bytes
    width: int


class KeyedHashAlignment(AlignmentMethod):
    """HMAC-SHA256 tags under an X25519-agreed key (see module docstring)."""

    name = "hash"

    def run(self, ids: Sequence[str], endpoint: Endpoint, peer: str, *,
            leader: bool) -> AlignmentResult:
        secret = X25519PrivateKey.generate()
        endpoint.send(peer, AlignmentKey(secret.public_key().public_bytes_raw()))
        theirs = endpoint.receive(peer, AlignmentKey)
        try:
            peer_key = X25519PublicKey.from_public_bytes(theirs.public_key)
            shared = secret.exchange(peer_key)
        except ValueError as exc:
            raise MalformedMessageError(f"{peer} sent an invalid X25519 key: {exc}",
                                        party=endpoint.name) from None
        # Both sides derive the same key; the order of the two public keys is
        # fixed by role so the derivation does not depend on who is who.
        mine = secret.public_key().public_bytes_raw()
        pair = mine + theirs.public_key if leader else theirs.public_key + mine
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=endpoint.session.encode(),
                   info=b"vfl keyed-hash alignment v1" + pair).derive(shared)

        tags = [hmac.new(key, i.encode("utf-8"), hashlib.sha256).digest() for i in ids]
        if len(set(tags)) != len(tags):
            # Refused here, as ecdh does, rather than by the peer as repeated tags.
            dupes = [i for i, c in Counter(ids).items() if c > 1]
            raise DuplicateIDError(
                f"{len(dupes)} duplicated ID(s), e.g. {', '.join(repr(d) for d in dupes[:5])}; "
                "each ID must appear once (remove or merge the duplicate rows)",
                party=endpoint.name)
        # Sent sorted, not in row order: the positions of the shared tags
        # would tell the peer how this party's table is sorted (by date, by label...).
        endpoint.send(peer, AlignmentTags(b"".join(sorted(tags)), _TAG_BYTES))
        received = endpoint.receive(peer, AlignmentTags)
        if received.width != _TAG_BYTES or len(received.tags) % _TAG_BYTES:
            raise MalformedMessageError(f"{peer} sent malformed alignment tags "
                                        f"({len(received.tags)} bytes of width {received.width})",
                                        party=endpoint.name)
        peer_list = [received.tags[i:i + _TAG_BYTES]
                     for i in range(0, len(received.tags), _TAG_BYTES)]
        peer_tags = set(peer_list)
        if len(peer_tags) != len(peer_list):
            # Distinct IDs never share an HMAC-SHA256 tag, and each party's IDs
            # are distinct: a repeat means the peer does not follow the protocol.
            raise MalformedMessageError(
                f"{peer} sent {len(peer_list) - len(peer_tags)} repeated alignment tag(s) "
                "(distinct IDs never share a tag); it does not follow the keyed-hash protocol",
                party=endpoint.name)
        index = {tag: row for row, tag in enumerate(tags)}
        shared_tags = sorted(index.keys() & peer_tags)
        return AlignmentResult(np.array([index[t] for t in shared_tags], dtype=np.int64),
                               peer_size=len(received.tags) // _TAG_BYTES)
