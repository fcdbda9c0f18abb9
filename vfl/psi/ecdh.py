"""Diffie-Hellman private set intersection on Curve25519 (the default alignment).

Protocol, between B and one feature holder A (it is symmetric; both run it):

1. Each side draws a fresh secret scalar (a for A, b for B) for this run and
   sends :class:`EcdhHello`: the suite, its number of IDs, its chunk size.
2. Each side hashes its IDs to curve points H(id) and sends [a]H(id) (A) or
   [b]H(id) (B) in chunks (:class:`EcdhPoints`), in an order drawn at random
   (in row order, the positions of the shared IDs would tell the peer how the
   sender's table is sorted: by date, by label...).
3. Each side multiplies every point it receives by its own scalar and sends
   the result back, chunk for chunk (:class:`EcdhTags`): A returns
   [a][b]H(y) for B's IDs y, B returns [b][a]H(x) for A's IDs x.
4. Scalar multiplication commutes, so [a][b]H(v) = [b][a]H(v): the IDs both
   hold are exactly the doubly blinded values both sides now know. Each side
   keeps its rows whose value the peer sent back and that it also computed
   for the peer's points, ordered by that value: the same order on both sides,
   pseudo-random, unrelated to either side's row order.

What each side learns: the intersection and the peer's set size. The
coordinator takes no part. A point [a]H(x) of an ID outside the intersection
is, under the decisional Diffie-Hellman assumption with H modelled as a
random oracle, indistinguishable from a random point to whoever lacks a: it
cannot be tested against a guessed ID (unlike keyed hashing, whose key lets
its holder hash any guess). The doubly blinded values of IDs outside the
intersection are likewise unlinkable to IDs without both scalars.

The group and the hash, and why they are sound
-----------------------------------------------
*Group*: the prime-order subgroup (order l = 2^252 + 27742...) of Curve25519,
used through X25519 (RFC 7748) from the ``cryptography`` package (OpenSSL).
X25519 works on u-coordinates only, so each group element is represented by
the pair {P, -P}; that is harmless here because [k](-P) = -[k]P has the same
u-coordinate, so commutativity holds on u-coordinates: X25519(a, X25519(b,
u)) = X25519(b, X25519(a, u)). Curve25519 offers about 128-bit security
against discrete logarithms, and its twist is secure too.

*Scalars*: each side draws 32 random bytes, and X25519 clamps them (clears
the three low bits and bit 255, sets bit 254): the scalar it multiplies by
is k = 2^254 + 8 k' with k' uniform in [0, 2^251). So k is *not* uniform
modulo the group order l ~ 2^252: as 8 is invertible mod l, k mod l is
uniform on a set of 2^251 residues, about half of Z_l, and never 0 (the
multiples of l between 2^254 and 2^255 are 4l to 7l, none a multiple of 8).
That is fine for this PSI, for two reasons. (i) k is a multiple of the
cofactor 8, so [k]P lies in the subgroup of order l for every curve point
P: the cofactor of H(id) is cleared by the first multiplication, as RFC
9380's ``encode_to_curve`` requires, every value a party sends lies in the
prime-order subgroup, and [k] acts on it as a secret automorphism; with H a
random oracle each blinded value [k]H(id) is a uniform element of that
subgroup. (ii) What protects the IDs is DDH in that subgroup with the
secret k mod l, and k mod l has 251 bits of min-entropy on a set holding
about half of Z_l: any event has at most l / 2^251 < 2 times the
probability it has for a uniform scalar, so an attack on clamped scalars is
an attack on uniform ones with at least half the advantage. Clamping costs
at most one bit of the ~126-bit security of Curve25519's discrete
logarithm, the same trade every X25519 key exchange makes.

*Hash to group*: RFC 9380's ``curve25519_XMD:SHA-512_ELL2_NU_`` encoding
(expand_message_xmd with SHA-512, then Elligator 2) under this library's own
domain-separation tag; see :mod:`vfl.psi.hash_to_curve`. Two properties
matter. (i) Nobody knows the discrete logarithm of H(id) or any relation
between the H of different IDs: a [r]G with r derived from the ID would be
fatal, because then [a]H(id) = [r]([a]G) for anyone who learns [a]G. (ii) The
point always lies on the curve, not its twist. Hashing straight to a random
u-coordinate, as some systems do, lands on the twist half of the time, and
blinding preserves which of the two a point is on: every blinded value would
leak one bit of its ID's hash, testable against guessed IDs. This
encoding is the "non-uniform" variant: it reaches about half the points. The
DH-PSI security argument only needs CDH/DDH to be hard on its outputs, and
the map's preimages are efficiently samplable, so an attacker against
Elligator 2 outputs yields one against random points at a loss of a factor
about 2. The uniform ("_RO_") variant would double the hashing cost and
needs full point addition, which X25519 does not offer.

Peers are checked: every point received must be a canonical u-coordinate
(< p, top bit clear), on the curve rather than the twist, and not of low
order; otherwise the run stops with :class:`MalformedPointError` naming the
sender, the message and the point.

Scale: the work is four X25519 multiplications per pair of IDs (two on each
side), about 37 microseconds each. IDs are hashed and multiplied in chunks
on an executor (the run's, :func:`vfl.crypto.executors.compute_executor`:
a party's cluster or the local process pool, unless another is given),
with a bounded number of chunks in flight, and sent as a stream of
messages, so memory stays proportional to the set sizes times 16 bytes,
plus the caller's IDs.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from typing import ClassVar, ParamSpec, TypeVar

import numpy as np

from vfl.crypto.executors import compute_executor, executor_workers, foreground
from vfl.errors import (
    ConfigMismatchError,
    DuplicateIDError,
    MalformedMessageError,
)
from vfl.protocol.channel import Endpoint
from vfl.protocol.wire import wire_message
from vfl.psi.base import AlignmentMethod, AlignmentResult
from vfl.psi.progress import Progress
from vfl.psi.x25519_ops import POINT_BYTES, PointError, blind_ids, blind_points

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "SUITE",
    "TAG_BYTES",
    "EcdhAlignment",
    "EcdhHello",
    "EcdhPoints",
    "EcdhTags",
    "MalformedPointError",
    "intersect_tags",
]

_P = ParamSpec("_P")
_T = TypeVar("_T")

#: Names the group, the hash to the group and the message layout; both sides
#: must run the same one.
SUITE = "ecdh-x25519-curve25519_XMD:SHA-512_ELL2_NU_-v1"

#: Bytes kept of each doubly blinded value. 128 bits: the chance that two
#: different IDs of sets of a billion each collide is below 2^-68.
TAG_BYTES = 16

#: IDs per message and per worker task unless the caller chooses otherwise.
DEFAULT_CHUNK_SIZE = 4096

#: Largest chunk (IDs per message) a party accepts from its peer.
MAX_CHUNK = 1 << 20

#: Largest set a party accepts its peer announcing (2^32 IDs).
MAX_COUNT = 1 << 32


# --- messages (A <-> B only; C takes no part) ----------------------------------


@wire_message
@dataclass(frozen=True)
class EcdhHello:
    """A <-> B: what the sender will stream.

    Attributes
    ----------
    suite : str
        :data:`SUITE`; a difference stops the run.
    count : int
        Number of IDs the sender holds (the protocol reveals it).
    chunk_size : int
        IDs per :class:`EcdhPoints` message (the last may hold fewer).
    """

    suite: str
    count: int
    chunk_size: int


@wire_message
@dataclass(frozen=True)
class EcdhPoints:
    """A <-> B: chunk `chunk` of the sender's IDs, hashed and blinded once.

    ``points`` holds 32-byte X25519 u-coordinates, concatenated, in an order
    the sender drew at random for this run (never its row order).
    """

    chunk: int
    points: bytes


@wire_message
@dataclass(frozen=True)
class EcdhTags:
    """A <-> B: the recipient's chunk `chunk`, blinded again by the sender.

    ``tags`` holds the first :data:`TAG_BYTES` bytes of each doubly blinded
    u-coordinate, concatenated, in the order of the recipient's chunk.
    """

    chunk: int
    tags: bytes


class MalformedPointError(MalformedMessageError):
    """A peer sent bytes that are not acceptable curve points."""


# --- the method ----------------------------------------------------------------


def _new_scalar() -> bytes:
    """A fresh X25519 secret (tests replace it to check the transcript)."""
    return os.urandom(32)


class _InlineExecutor(Executor):
    """Runs each task at submission, in the calling thread (small sets)."""

    def submit(self, fn: Callable[_P, _T], /, *args: _P.args,
               **kwargs: _P.kwargs) -> Future[_T]:
        future: Future[_T] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - delivered through the future, like a pool
            future.set_exception(exc)
        return future


class EcdhAlignment(AlignmentMethod):
    """Diffie-Hellman PSI on Curve25519 (see the module docstring).

    Parameters
    ----------
    executor : concurrent.futures.Executor, optional
        Where chunks are hashed and multiplied. Default: the run's executor
        (:func:`vfl.crypto.executors.compute_executor`): the party's cluster
        during a run with one (:func:`vfl.cluster.compute_on`; its workers
        then see the IDs and this party's secret scalar of the run), else
        the shared local process pool.
    chunk_size : int
        IDs per message and per task.
    progress : bool
        Show a progress line on stderr for alignments that take over a second.
    inline_below : int
        When both sets together hold fewer IDs, work in the calling thread:
        starting worker processes would cost more than it saves.
    """

    name: ClassVar[str] = "ecdh"

    def __init__(self, *, executor: Executor | None = None,
                 chunk_size: int = DEFAULT_CHUNK_SIZE,
                 progress: bool = True, inline_below: int = 16384) -> None:
        if not 1 <= chunk_size <= MAX_CHUNK:
            raise ValueError(f"chunk_size must be between 1 and {MAX_CHUNK}, got {chunk_size}")
        self.executor = executor
        self.chunk_size = chunk_size
        self.progress = progress
        self.inline_below = inline_below

    def run(self, ids: Sequence[str], endpoint: Endpoint, peer: str, *,
            leader: bool) -> AlignmentResult:
        """Align `ids` with `peer` (both sides run the same steps; `leader` is unused)."""
        me = endpoint.name
        ids = ids if isinstance(ids, (list, tuple)) else list(ids)
        _check_ids(ids, me)
        scalar = _new_scalar()
        endpoint.send(peer, EcdhHello(SUITE, len(ids), self.chunk_size))
        hello = endpoint.receive(peer, EcdhHello)
        _check_hello(hello, peer, me)

        if len(ids) + hello.count < self.inline_below:
            executor: Executor = _InlineExecutor()
            workers = 1
        else:
            executor = self.executor if self.executor is not None else compute_executor()
            workers = executor_workers(executor)
        progress = Progress(f"party {me}: ecdh alignment with {peer}", len(ids) + hello.count,
                            unit="points", enabled=self.progress)
        # IDs go out in a secret random order: in row order, the positions of
        # the shared IDs would tell the peer how this party's table is sorted
        # (by date, by label...).
        order = _secret_permutation(len(ids))
        try:
            # Foreground work: a background obfuscator refill on the same
            # workers (an engine warming up for training) waits for the end.
            with foreground():
                own_tags, peer_tags = _exchange(ids, order, scalar, hello, endpoint, peer,
                                                executor, self.chunk_size, workers, progress)
        finally:
            progress.close()
        sent = intersect_tags(own_tags, peer_tags, peer=peer, party=me)
        return AlignmentResult(order[sent], peer_size=hello.count)


def _secret_permutation(n: int) -> np.ndarray:
    """A uniformly random permutation of range(n) from the OS's random source."""
    keys = np.frombuffer(os.urandom(8 * n), dtype=np.uint64)
    return np.argsort(keys, kind="stable").astype(np.int64)


def _exchange(ids: Sequence[str], order: np.ndarray, scalar: bytes, hello: EcdhHello,
              endpoint: Endpoint, peer: str, executor: Executor, chunk_size: int,
              workers: int, progress: Progress) -> tuple[bytes, bytes]:
    """Stream both sets through both scalars; (own doubly blinded, peer's doubly blinded).

    Own IDs are sent in the given `order` (``ids[order[k]]`` is the k-th sent);
    the first result is in that order too.

    Every step s: send own chunk s, receive the peer's chunk s (and queue its
    multiplication), send back the peer's chunk s - lag, receive own chunk
    s - lag back. Both sides follow the same schedule, so each receive waits
    only for something the peer sends earlier in the same step; the tasks
    queued ahead keep the workers busy while this thread waits.
    """
    me = endpoint.name
    own_chunks = -(-len(ids) // chunk_size)
    peer_chunks = -(-hello.count // hello.chunk_size)
    lookahead = 2 * workers + 1   # own chunks being hashed and blinded ahead of need
    lag = workers + 1             # steps between receiving a peer chunk and returning it
    own_jobs: dict[int, Future[bytes]] = {}
    peer_jobs: dict[int, Future[bytes]] = {}
    next_own = 0
    own_tags: list[bytes] = []
    peer_tags: list[bytes] = []

    def peer_chunk_len(k: int) -> int:
        return min(hello.chunk_size, hello.count - k * hello.chunk_size)

    def own_chunk_len(k: int) -> int:
        return min(chunk_size, len(ids) - k * chunk_size)

    try:
        for step in range(max(own_chunks, peer_chunks) + lag):
            while next_own < own_chunks and len(own_jobs) < lookahead:
                rows = order[next_own * chunk_size:(next_own + 1) * chunk_size].tolist()
                own_jobs[next_own] = executor.submit(blind_ids, [ids[r] for r in rows], scalar)
                next_own += 1
            if step < own_chunks:
                endpoint.send(peer, EcdhPoints(step, own_jobs.pop(step).result()))
                progress.advance(own_chunk_len(step))
            if step < peer_chunks:
                message = endpoint.receive(peer, EcdhPoints)
                expected = peer_chunk_len(step)
                if message.chunk != step or len(message.points) != expected * POINT_BYTES:
                    raise MalformedPointError(
                        f"{peer} sent EcdhPoints chunk {message.chunk} of "
                        f"{len(message.points)} bytes; expected chunk {step} of {expected} "
                        f"points of {POINT_BYTES} bytes", party=me)
                peer_jobs[step] = executor.submit(blind_points, message.points, scalar,
                                                  TAG_BYTES)
            back = step - lag
            if 0 <= back < peer_chunks:
                try:
                    tags = peer_jobs.pop(back).result()
                except PointError as exc:
                    raise MalformedPointError(
                        f"{peer} sent a malformed point in EcdhPoints chunk {back} (point "
                        f"{exc.index}, ID position {back * hello.chunk_size + exc.index} of "
                        f"its set): {exc.reason}; it does not follow the ecdh protocol",
                        party=me) from None
                peer_tags.append(tags)
                endpoint.send(peer, EcdhTags(back, tags))
                progress.advance(len(tags) // TAG_BYTES)
            if 0 <= back < own_chunks:
                returned = endpoint.receive(peer, EcdhTags)
                expected = own_chunk_len(back)
                if returned.chunk != back or len(returned.tags) != expected * TAG_BYTES:
                    raise MalformedPointError(
                        f"{peer} sent EcdhTags chunk {returned.chunk} of {len(returned.tags)} "
                        f"bytes; expected chunk {back} of {expected} values of {TAG_BYTES} "
                        "bytes", party=me)
                own_tags.append(returned.tags)
    finally:
        for job in (*own_jobs.values(), *peer_jobs.values()):
            job.cancel()
    return b"".join(own_tags), b"".join(peer_tags)


def intersect_tags(own: bytes, theirs: bytes, *, peer: str = "peer",
                   party: str | None = None) -> np.ndarray:
    """Positions in `own` of the tags also in `theirs`, ordered by tag.

    Parameters
    ----------
    own : bytes
        This party's doubly blinded values, :data:`TAG_BYTES` each; the result
        indexes this sequence.
    theirs : bytes
        The peer's doubly blinded values, in any order.
    peer, party : str
        Names used in errors.

    Raises
    ------
    ProtocolError
        If either side holds a value twice: distinct IDs never collide, so the
        peer sent repeated points or returned repeated values.
    """
    n_own = len(own) // TAG_BYTES
    if n_own == 0 or not theirs:
        return np.empty(0, dtype=np.int64)
    # Two big-endian 64-bit words per tag: numeric order is byte order, so the
    # result's order is the tags' byte order on both sides, whatever their endianness.
    keys = np.concatenate([np.frombuffer(own, dtype=">u8"),
                           np.frombuffer(theirs, dtype=">u8")]).astype(np.uint64).reshape(-1, 2)
    order = np.lexsort((keys[:, 1], keys[:, 0]))
    ranked = keys[order]
    equal = np.flatnonzero((ranked[1:] == ranked[:-1]).all(axis=1))
    first, second = order[equal], order[equal + 1]
    first_own, second_own = first < n_own, second < n_own
    if np.any(first_own == second_own):
        where = "values it returned for our points" if np.any(first_own & second_own) \
            else "points it sent"
        raise MalformedMessageError(f"{peer} repeated {where} (distinct IDs never collide); "
                                    "it does not follow the ecdh protocol", party=party)
    return np.where(first_own, first, second).astype(np.int64)


def _check_ids(ids: Sequence[str], party: str) -> None:
    """Refuse non-string and repeated IDs (normalise with :func:`vfl.psi.normalize_ids`)."""
    for value in ids:
        if type(value) is not str:
            raise TypeError(f"party {party}: alignment needs normalised string IDs, got "
                            f"{type(value).__name__} {value!r}; use vfl.psi.normalize_ids")
    if len(set(ids)) != len(ids):
        dupes = [i for i, c in Counter(ids).items() if c > 1]
        raise DuplicateIDError(
            f"{len(dupes)} duplicated ID(s), e.g. {', '.join(repr(d) for d in dupes[:5])}; "
            "each ID must appear once (remove or merge the duplicate rows)", party=party)


def _check_hello(hello: EcdhHello, peer: str, party: str) -> None:
    if hello.suite != SUITE:
        raise ConfigMismatchError(f"{peer} runs ecdh suite {hello.suite!r}, this party runs "
                                  f"{SUITE!r}; install the same vfl version on both sides",
                                  party=party)
    if not (isinstance(hello.count, int) and 0 <= hello.count <= MAX_COUNT
            and isinstance(hello.chunk_size, int) and 1 <= hello.chunk_size <= MAX_CHUNK):
        raise MalformedMessageError(f"{peer} sent an invalid EcdhHello (count {hello.count!r}, "
                                    f"chunk size {hello.chunk_size!r})", party=party)

