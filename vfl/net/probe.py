"""Whether a peer's process is still there: a bare TCP connect to its address.

When a process dies its listening port closes, and connecting to it is
refused at once; a slow or unreachable network gives no answer either way.
Only a refusal is evidence that the peer has stopped.
"""

from __future__ import annotations

import socket
import time

__all__ = ["accepts", "refuses_steadily", "stopped_reason"]


def accepts(address: str, timeout: float) -> bool | None:
    """True if `address` accepts a TCP connection, False if refused, None if unknown."""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            return True
    except ConnectionRefusedError:
        return False
    except (OSError, ValueError):
        return None


def refuses_steadily(address: str, *, within: float = 2.0, probes: int = 3,
                     interval: float = 0.15) -> bool:
    """Whether `address` comes to refuse `probes` connections in a row within `within` s.

    One refusal could be a listener between two sockets; a dead process
    refuses every time. A dying one may still accept for a moment: the
    kernel can close its other connections before its listening socket, so
    an acceptance does not end the wait, only the time limit does.
    """
    deadline = time.monotonic() + within
    refused = 0
    while True:
        if accepts(address, max(interval, 0.1)) is False:
            refused += 1
            if refused >= probes:
                return True
        else:
            refused = 0
        if time.monotonic() + interval > deadline:
            return False
        time.sleep(interval)


def stopped_reason(address: str) -> str:
    """The reason every party gives for a peer whose port refuses connections."""
    return (f"its address {address} refuses connections, its process has stopped; "
            "restart it (and this party) to resume from the last checkpoint")
