"""Shared keys and engines for the crypto tests: small insecure keys, made once."""

from __future__ import annotations

import pytest

from vfl.crypto.fast_engine import FastDecryptor, FastEngine
from vfl.crypto.keys import generate_keypair
from vfl.crypto.phe_engine import PheDecryptor, PheEngine


@pytest.fixture(scope="session")
def keypair():
    """A 512-bit key: factorable, fast, enough room for 2**104 encodings."""
    return generate_keypair(512, insecure=True)


@pytest.fixture(scope="session")
def public_params(keypair):
    return FastEngine.public_params_for(keypair[1])


@pytest.fixture(scope="session")
def fast(keypair, public_params):
    """Fast engine running inline (no processes): property tests stay quick."""
    engine = FastEngine(keypair[0], public_params, parallel=False, pool_capacity=0)
    yield engine
    engine.close()


@pytest.fixture(scope="session")
def fast_parallel(keypair, public_params):
    """Fast engine on the shared process pool, with the background pool on."""
    engine = FastEngine(keypair[0], public_params, pool_capacity=64)
    yield engine
    engine.close()


@pytest.fixture(scope="session")
def phe_engine(keypair):
    return PheEngine(keypair[0])


@pytest.fixture(scope="session")
def fast_decryptor(keypair):
    return FastDecryptor(keypair[1], parallel=False)


@pytest.fixture(scope="session")
def phe_decryptor(keypair):
    return PheDecryptor(keypair[1])
