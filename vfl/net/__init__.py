"""Parties on separate machines: a gRPC endpoint with mutual TLS, and its certificates.

:class:`GrpcEndpoint` is an :class:`~vfl.protocol.channel.Endpoint` like the
in-process one, so the same party code runs over either. See
``docs/network.md`` for the trust model and how to create certificates.
"""

from vfl.net.certs import create_federation_certificates, issue_party_certificate
from vfl.net.grpc_endpoint import GrpcEndpoint, InsecureTransportWarning, LinkTraffic
from vfl.net.tls import TlsFiles

__all__ = [
    "GrpcEndpoint",
    "InsecureTransportWarning",
    "LinkTraffic",
    "TlsFiles",
    "create_federation_certificates",
    "issue_party_certificate",
]
