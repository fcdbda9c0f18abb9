"""A party in its own process for the transport tests: answers each of COUNT
EpochStart messages from its peer with EpochStart(seed + 1), then waits for
an EpochEnd(stop=True) and exits.

Usage: python echo_peer.py CERT_DIR NAME LISTEN PEER PEER_ADDRESS COUNT
"""

from __future__ import annotations

import sys

from parties.vertical.messages import EpochEnd, EpochStart
from vfl.net import GrpcEndpoint, TlsFiles


def main(cert_dir: str, name: str, listen: str, peer: str, peer_address: str,
         count: str) -> int:
    with GrpcEndpoint(name, "s1", listen, {peer: peer_address},
                      tls=TlsFiles.in_directory(cert_dir, name), timeout=20) as endpoint:
        print(f"listening on {endpoint.address}", flush=True)
        for epoch in range(1, int(count) + 1):
            start = endpoint.receive(peer, EpochStart, epoch=epoch)
            endpoint.send(peer, EpochStart(start.batch_seed + 1), epoch=epoch)
        end = endpoint.receive(peer, EpochEnd, epoch=int(count) + 1)
        return 0 if end.stop else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
