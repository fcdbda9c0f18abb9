"""Messages and the transport seam between parties."""

from vfl.protocol.channel import DEFAULT_TIMEOUT_S, Endpoint, Envelope, InProcessNetwork

__all__ = ["DEFAULT_TIMEOUT_S", "Endpoint", "Envelope", "InProcessNetwork"]
