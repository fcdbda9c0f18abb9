"""Noticing at once that a peer's process has gone, instead of after the timeout.

A party waiting for B's next message cannot tell a B that is computing from a
B that was killed; it waits `timeout` seconds. Worse, a party waiting for
A1, who itself waits for the dead B, times out on A1 and blames A1. When a
process dies, its listening port closes and connecting to it is refused at
once: :class:`PeerWatch` probes each peer's address with a bare TCP connect
and, once a peer that was up refuses connections several times in a row,
makes every pending and later receive of the party raise
:class:`~vfl.errors.PeerAbortedError` naming that peer; a send that is being
retried to any peer stops with the same error
(:meth:`GrpcEndpoint.peer_stopped <vfl.net.grpc_endpoint.GrpcEndpoint.peer_stopped>`).

Only a refused connection counts (the peer's machine is up but nothing
listens): a slow or unreachable network still falls to the timeout, so the
watch never stops a party that is merely waiting.

A peer that may leave (:meth:`GrpcEndpoint.allow_leaving
<vfl.net.grpc_endpoint.GrpcEndpoint.allow_leaving>`) ends only its own link
when it stops; it is not probed while it is away, and is watched afresh once
the party readmits a new process of it
(:meth:`~vfl.net.grpc_endpoint.GrpcEndpoint.readmit`).
"""

from __future__ import annotations

import logging
import threading

from vfl.net.grpc_endpoint import GrpcEndpoint
from vfl.net.probe import accepts, stopped_reason

__all__ = ["PeerWatch"]

log = logging.getLogger(__name__)


class PeerWatch:
    """Probe the peers of a :class:`GrpcEndpoint` in a background thread.

    Parameters
    ----------
    endpoint : GrpcEndpoint
    interval : float
        Seconds between two probes of a peer.
    misses : int
        Consecutive refused connections, after the peer was seen up, that
        make it gone.

    Use as a context manager around the party's run; :meth:`disarm` once the
    party needs nothing more from its peers (after its last epoch: peers that
    finished exit normally).
    """

    def __init__(self, endpoint: GrpcEndpoint, *, interval: float = 0.5,
                 misses: int = 3) -> None:
        self.endpoint = endpoint
        self.interval = interval
        self.misses = misses
        self.gone: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"vfl-{endpoint.name}-peer-watch")

    def __enter__(self) -> PeerWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.disarm()

    def disarm(self) -> None:
        """Stop probing (idempotent)."""
        self._stop.set()

    def _run(self) -> None:
        watched = dict(self.endpoint.peers)
        seen = dict.fromkeys(watched, False)
        refused = dict.fromkeys(watched, 0)
        while not self._stop.wait(self.interval):
            for peer, address in list(watched.items()):
                if self.endpoint.has_left(peer):
                    # Away: watched again, from scratch, once readmitted.
                    seen[peer], refused[peer] = False, 0
                    continue
                up = accepts(address, self.interval)
                if up is None:
                    continue  # no answer either way: leave it to the timeout
                if up:
                    seen[peer], refused[peer] = True, 0
                    continue
                refused[peer] += 1
                # Seen up by a probe, or by a message to or from it.
                seen[peer] = seen[peer] or self.endpoint.was_up(peer)
                if seen[peer] and refused[peer] >= self.misses and not self._stop.is_set():
                    if self.endpoint.may_leave(peer):
                        # Only its link ends; the others are still watched.
                        reason = self.endpoint.stopped_reason(peer)
                        log.warning("%s left: %s", peer, reason)
                        self.endpoint.peer_stopped(peer, reason)
                        continue
                    self._fail(peer, address)
                    return

    def _fail(self, peer: str, address: str) -> None:
        self.gone = peer
        reason = stopped_reason(address)
        log.warning("%s stopped: %s", peer, reason)
        # Every receive raises PeerAbortedError naming `peer`, as after its own
        # abort notice, and a send being retried stops at once.
        self.endpoint.peer_stopped(peer, reason)
