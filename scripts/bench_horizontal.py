#!/usr/bin/env python3
"""One horizontal round, packed vs one value per ciphertext: seconds and bytes per client.

Same key, same data, same engine, K clients: every client encrypts its
update vector (the model's parameters plus its loss and row count), S adds
the K vectors, masks and re-randomises the sum, C decrypts it, S unmasks
and unpacks. Both modes use the same fixed-point slot (``vfl.crypto.packing``):
"packed" fills a plaintext with as many slots as fit, "single" puts one
slot per plaintext, so the ratio is packing's alone.

Reported per mode and model size:

* bytes each client sends (its ciphertexts, exactly ``count * 2 * bits(n) / 8``; the
  global model it receives, 8 bytes per parameter, is the same in both modes
  and not counted);
* a client's seconds (pack + encrypt), S's (add, mask, re-randomise), C's
  (decrypt), S's unpacking, and the round: one client (clients run in
  parallel on their own machines) plus S plus C plus S.

Clients are measured one after another in this process. The fast engine
precomputes encryption randomness in background worker processes; on a busy
machine that competes with the measurement. The load average is printed.
With ``--single-sample N`` (default 2,000), the one-value-per-ciphertext mode
encrypts and decrypts only N values per client and scales the times
linearly (marked "extrapolated"): at 100,000 parameters the full run takes
hours on two cores. Bytes are always exact.

Flower is not installed here and is not measured: the issue quotes flwr 1.42's
SecAgg+ at 1.06 s and 807,711 bytes per client per round at 100,000 parameters
(plain FedAvg 0.21 s); compare on the same machine before citing a ratio.

Usage::

    python scripts/bench_horizontal.py                    # K = 10; 1,000 and 100,000
    python scripts/bench_horizontal.py --params 1000 --key-bits 1024 --insecure-key
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from vfl.crypto import EncryptedVector, draw_masks, generate_keypair, get_backend, unmask
from vfl.crypto.packing import PackingLayout


def _load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def measure(engine, decryptor, layout: PackingLayout, params: int, clients: int,
            sample: int | None, rng: np.random.Generator) -> dict[str, float]:
    """One round in one mode; times scaled by count/sample when sampling."""
    count = params + 2
    use = count if sample is None else min(sample, count)
    scale = count / use
    updates = [rng.normal(scale=0.01, size=use) * 500 for _ in range(clients)]
    for u in updates:
        u[-1] = 500.0  # the row count slot, say
    client_seconds, vectors = [], []
    for u in updates:
        start = time.perf_counter()
        vectors.append(engine.encrypt(layout.pack(u)))
        client_seconds.append(time.perf_counter() - start)
    start = time.perf_counter()
    total = vectors[0]
    for v in vectors[1:]:
        total = engine.add(total, v)
    masks = draw_masks(engine.n, len(total))
    masked = engine.rerandomize(engine.add_plain(total, masks))
    server_seconds = time.perf_counter() - start
    start = time.perf_counter()
    plain = decryptor.decrypt(masked)
    c_seconds = time.perf_counter() - start
    start = time.perf_counter()
    sums = layout.unpack(unmask(plain, masks, engine.n), use, summands=clients)
    unpack_seconds = time.perf_counter() - start
    expected = np.sum([np.rint(np.ldexp(u, layout.frac_bits)) for u in updates], axis=0)
    assert np.array_equal(np.ldexp(sums, layout.frac_bits), expected), "wrong sum"
    ciphertexts = layout.plaintexts_for(count)
    client = float(np.mean(client_seconds)) * scale
    return {"ciphertexts": ciphertexts,
            "bytes": ciphertexts * EncryptedVector.byte_width(engine.public_key),
            "client_s": client, "server_s": server_seconds * scale, "c_s": c_seconds * scale,
            "unpack_s": unpack_seconds * scale,
            "round_s": client + (server_seconds + c_seconds + unpack_seconds) * scale,
            "extrapolated": scale > 1}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--params", type=int, nargs="+", default=[1000, 100_000])
    parser.add_argument("--key-bits", type=int, default=2048)
    parser.add_argument("--insecure-key", action="store_true")
    parser.add_argument("--backend", default="fast")
    parser.add_argument("--frac-bits", type=int, default=32)
    parser.add_argument("--value-bits", type=int, default=32)
    parser.add_argument("--single-sample", type=int, default=2000,
                        help="values per client actually encrypted in the single mode "
                             "(0: all)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    public, private = generate_keypair(args.key_bits, insecure=args.insecure_key)
    engine_class, decryptor_class = get_backend(args.backend)
    engine = engine_class(public, engine_class.public_params_for(private))
    decryptor = decryptor_class(private)
    rng = np.random.default_rng(args.seed)
    packed = PackingLayout.for_modulus(public.n, frac_bits=args.frac_bits,
                                       value_bits=args.value_bits, max_summands=args.clients)
    single = PackingLayout(args.frac_bits, args.value_bits, args.clients, packed.slot_bits)
    print(f"# {args.key_bits}-bit key, {args.backend} engine, K = {args.clients}, slot "
          f"{packed.slot_bits} bits, {packed.slots_per_plaintext} values per ciphertext; "
          f"load average {_load()}")
    try:
        measure(engine, decryptor, packed, 200, 2, None, rng)  # warm the pools up
        print(f"{'params':>8} {'mode':>7} {'cts/client':>10} {'bytes/client':>13} "
              f"{'client s':>9} {'S s':>8} {'C s':>8} {'unpack s':>9} {'round s':>8}")
        for params in args.params:
            rows = {}
            for name, layout, sample in (("packed", packed, None),
                                         ("single", single, args.single_sample or None)):
                r = measure(engine, decryptor, layout, params, args.clients, sample, rng)
                rows[name] = r
                mark = " (extrapolated)" if r["extrapolated"] else ""
                print(f"{params:>8} {name:>7} {r['ciphertexts']:>10} {r['bytes']:>13,} "
                      f"{r['client_s']:>9.3f} {r['server_s']:>8.3f} {r['c_s']:>8.3f} "
                      f"{r['unpack_s']:>9.3f} {r['round_s']:>8.3f}{mark}")
            print(f"{params:>8} {'ratio':>7} single/packed: bytes "
                  f"{rows['single']['bytes'] / rows['packed']['bytes']:.1f}x, round time "
                  f"{rows['single']['round_s'] / rows['packed']['round_s']:.1f}x")
    finally:
        engine.close()
        decryptor.close()
    print(f"# load average after: {_load()}")


if __name__ == "__main__":
    main()
