"""What a transport offers for clients that come back: the rejoin side of an endpoint.

Over the network (:class:`~vfl.net.GrpcEndpoint`) a client whose process
stopped leaves the run (its link ends), and a new process of it, with the
same certificate, can come back: its messages wait apart until the server
readmits it, which starts a new link (sequence numbers from 0). In-process
no client leaves, so the in-process endpoint offers none of this and the
roles skip the rejoin steps there.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, runtime_checkable

from vfl.protocol.channel import Endpoint

__all__ = ["Readmitting", "readmitting"]


@runtime_checkable
class Readmitting(Protocol):
    """An endpoint that readmits peers that left and came back."""

    def returning(self) -> list[str]:
        """Peers that left and whose new process has called since (not yet readmitted)."""

    def wait_for_return(self, peers: Iterable[str], timeout: float) -> list[str]:
        """Wait up to `timeout` seconds until one of `peers` is returning; those that are."""

    def readmit(self, peer: str) -> list[str]:
        """Start a new link to `peer`, sequence numbers from 0; the steps of its new
        process's messages that wait on it."""

    def peer_stopped(self, peer: str, reason: str) -> None:
        """End the link to `peer` (it left again)."""


def readmitting(endpoint: Endpoint) -> Readmitting | None:
    """The endpoint's rejoin side, or None where peers never leave (in-process)."""
    return endpoint if isinstance(endpoint, Readmitting) else None
