"""Certificates and loopback endpoints for the network transport tests."""

from __future__ import annotations

import socket
import warnings
from collections.abc import Iterator

import pytest

from vfl.net import GrpcEndpoint, TlsFiles, create_federation_certificates

PARTIES = ("A1", "B", "C")


def free_address() -> str:
    """A loopback address with a port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


@pytest.fixture(name="free_address")
def free_address_fixture():
    """:func:`free_address`, for tests that start endpoints themselves."""
    return free_address


@pytest.fixture(scope="session")
def certs(tmp_path_factory):
    """The federation's certificates (A1, B, C) in one folder."""
    folder = tmp_path_factory.mktemp("certs")
    create_federation_certificates(folder, PARTIES)
    return folder


@pytest.fixture(scope="session")
def other_certs(tmp_path_factory):
    """Certificates for the same party names from another, unrelated CA."""
    folder = tmp_path_factory.mktemp("other-certs")
    create_federation_certificates(folder, PARTIES, ca_name="someone else's CA")
    return folder


@pytest.fixture
def federation(certs) -> Iterator:
    """A factory of connected endpoints: ``federation(timeout=..., insecure=...)``."""
    made: list[GrpcEndpoint] = []

    def make(names=PARTIES, *, session="s1", timeout=5.0, connect_timeout=1.0,
             insecure=False, **options) -> dict[str, GrpcEndpoint]:
        addresses = {n: free_address() for n in names}
        endpoints = {}
        for name in names:
            tls = None if insecure else TlsFiles.in_directory(certs, name)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                endpoints[name] = GrpcEndpoint(
                    name, session, addresses[name],
                    {p: a for p, a in addresses.items() if p != name}, tls=tls,
                    insecure=insecure, timeout=timeout, connect_timeout=connect_timeout,
                    **options)
            made.append(endpoints[name])
        return endpoints

    yield make
    for endpoint in made:
        endpoint.close(grace=0)
