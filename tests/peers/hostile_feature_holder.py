"""``vfl party`` as a feature holder that breaks the protocol on purpose (for tests).

Usage: python hostile_feature_holder.py FAULT --config A1.toml

FAULT names what it sends wrong:
- ``short-scores``: its encrypted partial scores lack the last row's;
- ``extra-loss``: its encrypted loss part has two ciphertexts, not one.
Everything else is the real party code over the real transport.
"""

from __future__ import annotations

import sys
from dataclasses import replace

from parties.vertical.feature_holder import FeatureHolder
from vfl.cli import main
from vfl.crypto import EncryptedVector
from vfl.protocol.channel import Endpoint

_real_send = Endpoint.send


def _tamper(fault: str):
    def send(self, recipient, body, **at):
        name = type(body).__name__
        if name == "EncryptedPartialScores" and fault == "short-scores":
            body = replace(body, scores=body.scores[:-1])
        elif name == "EncryptedPartialScores" and fault == "extra-loss":
            body = replace(body, loss_part=EncryptedVector.concat([body.loss_part] * 2))
        return _real_send(self, recipient, body, **at)
    return send


if __name__ == "__main__":
    fault, *argv = sys.argv[1:]
    Endpoint.send = _tamper(fault)  # type: ignore[method-assign]
    assert FeatureHolder  # the real role, unchanged
    sys.exit(main(["party", *argv]))
