#!/usr/bin/env python3
"""One horizontal round, packed vs one value per ciphertext: seconds and bytes per client.

Same key, same data, same engine, K clients: every client encrypts its
update vector (the model's parameters plus its loss and row count), S adds
the K vectors, masks and re-randomises the sum, C decrypts it, S unmasks
and unpacks. Both modes use the same fixed-point slot (``vfl.crypto.packing``):
"packed" fills a plaintext with as many slots as fit, "single" puts one
slot per plaintext, so the ratio is packing's alone. "warm" is "packed"
in the steady state of a run: each party's encryptions of zero are made
before its timed step (untimed), as its background pool makes them while
it waits for the round's other steps; "packed" and "single" compute them
inside the step (cold).

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

Flower (optional ``bench`` extra, ``flwr[simulation]``): when ``flwr`` imports,
the same K clients and model sizes run through Flower's simulation engine
(Ray) after ours, in the same process: one round of plain FedAvg and one of
SecAgg+ (``SecAggPlusWorkflow`` with ``num_shares=3, reconstruction_threshold=2,
max_weight=9000`` as in Flower's secure-aggregation example, and its defaults:
clipping range 8, quantization range 2**22, modulus 2**32; the client runs
``secaggplus_mod``). The "model" is one float64 array of ``params`` values and
the local step adds a constant, so the round is the aggregation protocol.
Seconds: the fit workflow's wall time, median of ``--flower-rounds`` rounds
after one warm-up round (Flower's in-memory grid polls every 0.1 s; every
client shares this machine's cores, ``--client-cpus`` each). Bytes per
client: the protobuf size of every reply Message a client sends in the round
(``message_to_proto(msg).ByteSize()``, metadata included, no gRPC framing),
summed per client, the time spent sizing subtracted. Without flwr, one line
says the section is skipped.

Whole commands (``--whole``, K clients, ``--whole-rounds`` rounds): ``vfl
horizontal`` as a user types it (K client CSV files, 100 rows each: a
logistic model with 999 features for ~1,000 parameters, an MLP with 100
features and 971 hidden units for ~100,000), against Flower's simulation
(``run_simulation``, Ray started included) running the same number of
SecAgg+ rounds of the same size, each as a fresh process: wall seconds and
the peak memory of its whole process tree (PSS, summed over the processes,
sampled every 50 ms from ``/proc``; Linux only), with Python's compiled-module
cache on as in a user's installation.

Usage::

    python scripts/bench_horizontal.py                    # K = 10; 1,000 and 100,000
    python scripts/bench_horizontal.py --whole --no-rounds   # whole commands only
    python scripts/bench_horizontal.py --params 1000 --key-bits 1024 --insecure-key
    python scripts/bench_horizontal.py --quick           # seconds: 512-bit, 200 params
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from parties.horizontal.update import TALLY_VALUE_BITS, UpdateLayout
from vfl.crypto import EncryptedVector, draw_masks, generate_keypair, get_backend, unmask
from vfl.crypto.packing import PackingLayout


def _load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def measure(engine, decryptor, layout: PackingLayout | UpdateLayout, params: int,
            clients: int, sample: int | None, rng: np.random.Generator, *,
            warm: bool = False) -> dict[str, float]:
    """One round in one mode; times scaled by count/sample when sampling.

    `layout`: the protocol's (the update packed, its loss and row count in a
    ciphertext of their own; its ``parameters`` are replaced by `params`), or
    one slot per plaintext for every value.

    `warm`: each client's and S's encryptions of zero are made (untimed) before
    its timed step, as a party's background pool makes them while it waits
    for the round's other steps (a client during the aggregation and the
    decryption, S during the clients' training); cold: computed in the step.
    """
    count = params + 2
    use = count if sample is None else min(sample, count)
    scale = count / use
    updates = [rng.normal(scale=0.01, size=use) * 500 for _ in range(clients)]
    for u in updates:
        u[-1] = 500.0  # the row count slot, say
    if isinstance(layout, UpdateLayout):
        protocol = UpdateLayout(layout.values, layout.tally, use - 2)
        frac_bits, ciphertexts = layout.values.frac_bits, protocol.plaintexts

        def pack(u: np.ndarray) -> list[int]:
            return protocol.pack(u[:-2], u[-2], u[-1])

        def unpack(plain: list[int]) -> np.ndarray:
            update, loss, rows = protocol.unpack(plain, summands=clients)
            return np.concatenate([update, [loss, rows]])
    else:
        single, frac_bits, ciphertexts = layout, layout.frac_bits, layout.plaintexts_for(count)

        def pack(u: np.ndarray) -> list[int]:
            return single.pack(u)

        def unpack(plain: list[int]) -> np.ndarray:
            return single.unpack(plain, use, summands=clients)
    client_seconds, vectors = [], []
    for u in updates:
        plaintexts = pack(u)
        if warm:
            engine.warm_up(len(plaintexts))
        start = time.perf_counter()
        vectors.append(engine.encrypt(plaintexts))
        client_seconds.append(time.perf_counter() - start)
    if warm:
        engine.warm_up(len(vectors[0]))
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
    sums = unpack(unmask(plain, masks, engine.n))
    unpack_seconds = time.perf_counter() - start
    expected = np.sum([np.rint(np.ldexp(u, frac_bits)) for u in updates], axis=0)
    assert np.array_equal(np.ldexp(sums, frac_bits), expected), "wrong sum"
    client = float(np.mean(client_seconds)) * scale
    return {"ciphertexts": ciphertexts,
            "bytes": ciphertexts * EncryptedVector.byte_width(engine.public_key),
            "client_s": client, "server_s": server_seconds * scale, "c_s": c_seconds * scale,
            "unpack_s": unpack_seconds * scale,
            "round_s": client + (server_seconds + c_seconds + unpack_seconds) * scale,
            "extrapolated": scale > 1, "warm": warm}


SECAGG: dict[str, Any] = {"num_shares": 3, "reconstruction_threshold": 2,
                          "max_weight": 9000.0}
FLOWER_SKIP = "# Flower: skipped (flwr is not installed; pip install -e '.[bench]')"


def flower_rounds(params_list: list[int], clients: int, rounds: int, client_cpus: float,
                  seed: int) -> dict[tuple[int, str], dict[str, float]]:
    """FedAvg and SecAgg+ rounds in Flower's simulation engine, per model size.

    Returns ``{(params, "fedavg" | "secagg+"): {"round_s", "bytes", "bytes_min",
    "bytes_max"}}``: the median round after one warm-up round, and the bytes every
    client sent in the last round. Raises ImportError when flwr is missing.
    """
    from flwr.app.message_type import MessageType
    from flwr.client import NumPyClient
    from flwr.client.mod import secaggplus_mod
    from flwr.clientapp import ClientApp
    from flwr.common import ndarrays_to_parameters
    from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS
    from flwr.common.serde import message_to_proto
    from flwr.server import LegacyContext, ServerApp, ServerConfig
    from flwr.server.strategy import FedAvg
    from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow
    from flwr.simulation import run_simulation

    class Client(NumPyClient):
        def fit(self, parameters: list[np.ndarray], config: Any) -> Any:
            return [p + 1e-3 for p in parameters], 500, {}

    def secagg_if_asked(msg: Any, ctxt: Any, call_next: Any) -> Any:
        # secaggplus_mod takes every TRAIN message; plain FedAvg rounds bypass it.
        if (msg.metadata.message_type == MessageType.TRAIN
                and RECORD_KEY_CONFIGS in msg.content.config_records):
            return secaggplus_mod(msg, ctxt, call_next)
        return call_next(msg, ctxt)

    client_app = ClientApp(client_fn=lambda context: Client().to_client(),
                           mods=[secagg_if_asked])
    server_app = ServerApp()
    results: dict[tuple[int, str], dict[str, float]] = {}

    class Timed:
        """A fit workflow that records its round's seconds and per-client bytes."""

        def __init__(self, inner: Any) -> None:
            self.inner = inner
            self.seconds: list[float] = []
            self.sent: dict[int, int] = {}
            self.sizing = 0.0

        def __call__(self, grid: Any, context: Any) -> None:
            self.sent, self.sizing = {}, 0.0
            start = time.perf_counter()
            self.inner(grid, context)
            self.seconds.append(time.perf_counter() - start - self.sizing)

    @server_app.main()
    def _main(grid: Any, context: Any) -> None:
        send_and_receive = grid.send_and_receive
        timed: list[Timed] = []

        def counting(messages: Any, timeout: float | None = None) -> Any:
            replies = list(send_and_receive(messages, timeout=timeout))
            start = time.perf_counter()
            for reply in replies:
                node = reply.metadata.src_node_id
                timed[0].sent[node] = (timed[0].sent.get(node, 0)
                                       + message_to_proto(reply).ByteSize())
            timed[0].sizing += time.perf_counter() - start
            return replies

        grid.send_and_receive = counting
        rng = np.random.default_rng(seed)
        for params in params_list:
            for name in ("fedavg", "secagg+"):
                initial = ndarrays_to_parameters([rng.normal(scale=0.01, size=params)])
                strategy = FedAvg(fraction_fit=1.0, fraction_evaluate=0.0,
                                  min_fit_clients=clients, min_available_clients=clients,
                                  initial_parameters=initial)
                legacy = LegacyContext(context=context,
                                       config=ServerConfig(num_rounds=1 + rounds),
                                       strategy=strategy)
                inner = SecAggPlusWorkflow(**SECAGG) if name == "secagg+" else None
                timed[:] = [Timed(inner or DefaultWorkflow().fit_workflow)]
                DefaultWorkflow(fit_workflow=timed[0])(grid, legacy)
                sent = list(timed[0].sent.values())
                assert len(sent) == clients, f"{len(sent)} of {clients} clients answered"
                results[(params, name)] = {
                    "round_s": statistics.median(timed[0].seconds[1:]),
                    "bytes": float(np.mean(sent)), "bytes_min": min(sent),
                    "bytes_max": max(sent)}

    logging.getLogger("flwr").setLevel(logging.WARNING)
    run_simulation(server_app=server_app, client_app=client_app, num_supernodes=clients,
                   backend_config={"client_resources": {"num_cpus": client_cpus,
                                                        "num_gpus": 0.0},
                                   "init_args": {"log_to_driver": False,
                                                 "logging_level": logging.ERROR}})
    missing = [(p, n) for p in params_list for n in ("fedavg", "secagg+")
               if (p, n) not in results]
    if missing:
        raise RuntimeError(f"Flower's simulation did not finish {missing}")
    return results


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x"


def side_by_side(ours: dict[tuple[int, str], dict[str, Any]],
                 flower: dict[tuple[int, str], dict[str, float]], params_list: list[int],
                 key_bits: int) -> None:
    """Print ours and Flower's rounds per size, the ratios and the issue's targets."""
    print(f"# side by side, {key_bits}-bit key for ours; Flower SecAgg+ {SECAGG}")
    print(f"{'params':>8} {'approach':<16} {'round s':>9} {'bytes/client':>13}")
    for params in params_list:
        rows = [("ours packed", ours[(params, "packed")]),
                ("ours warm", ours[(params, "warm")]),
                ("ours single", ours[(params, "single")]),
                ("Flower FedAvg", flower[(params, "fedavg")]),
                ("Flower SecAgg+", flower[(params, "secagg+")])]
        for name, r in rows:
            mark = " (extrapolated)" if r.get("extrapolated") else ""
            print(f"{params:>8} {name:<16} {r['round_s']:>9.3f} {r['bytes']:>13,.0f}{mark}")
        packed, secagg = ours[(params, "packed")], flower[(params, "secagg+")]
        fedavg, single = flower[(params, "fedavg")], ours[(params, "single")]
        warm = ours[(params, "warm")]
        print(f"{params:>8} ratios: packed/SecAgg+ time "
              f"{_ratio(packed['round_s'], secagg['round_s'])} (warm "
              f"{_ratio(warm['round_s'], secagg['round_s'])}) bytes "
              f"{_ratio(packed['bytes'], secagg['bytes'])}; packed/FedAvg time "
              f"{_ratio(packed['round_s'], fedavg['round_s'])} bytes "
              f"{_ratio(packed['bytes'], fedavg['bytes'])}")
        targets = [("packing >= 20x fewer bytes than single",
                    single["bytes"] >= 20 * packed["bytes"])]
        if params <= 1000:
            targets += [("round faster than SecAgg+", packed["round_s"] < secagg["round_s"]),
                        ("warm round faster than SecAgg+",
                         warm["round_s"] < secagg["round_s"])]
        else:
            targets += [("round within 3x SecAgg+", packed["round_s"] <= 3 * secagg["round_s"]),
                        ("warm round within 3x SecAgg+",
                         warm["round_s"] <= 3 * secagg["round_s"]),
                        ("bytes within 1.5x SecAgg+", packed["bytes"] <= 1.5 * secagg["bytes"])]
        print(f"{params:>8} targets: " + "; ".join(
            f"{name} {'met' if ok else 'MISSED'}" for name, ok in targets))


def _client_files(folder: Path, params: int, clients: int, seed: int) -> list[str]:
    """K client CSV files of 100 rows with a 0/1 label ``y``, and the model options that
    give about `params` parameters (a logistic model, or an MLP above 10,000)."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    if params <= 10_000:
        features, options = params - 1, ["--model", "logistic"]
    else:
        features = 100
        hidden = max(1, round((params - 2) / (features + 3)))
        options = ["--model", "mlp", "--hidden-units", str(hidden)]
    coef = rng.normal(size=features)
    paths = []
    for k in range(clients):
        x = rng.normal(size=(100, features))
        frame = pd.DataFrame(x, columns=[f"x{j}" for j in range(features)])
        frame["y"] = (x @ coef + rng.normal(size=100) > 0).astype(int)
        path = folder / f"C{k + 1}.csv"
        frame.to_csv(path, index=False)
        paths += ["--client", str(path)]
    return paths + options


def whole_commands(params_list: list[int], clients: int, rounds: int, seed: int,
                   flower: bool, precision: list[str]) -> None:
    """``vfl horizontal`` and Flower's SecAgg+ simulation as whole processes."""
    from bench_engine import measured

    print(f"# whole commands, K = {clients}, {rounds} rounds, fresh processes; load average "
          f"{_load()}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for params in params_list:
            inputs = _client_files(folder, params, clients, seed)
            command = [sys.executable, "-m", "vfl", "horizontal", *inputs, "--label-column",
                       "y", "--rounds", str(rounds), "--algorithm", "fedavg",
                       "--learning-rate", "0.1", "--seed", str(seed), *precision, "--out",
                       str(folder / f"out{params}"), "--force", "--quiet"]
            ours = measured(command, cwd=Path(__file__).resolve().parents[1])
            if ours["rc"] != 0:
                raise RuntimeError(f"vfl horizontal failed:\n{ours['output']}")
            line = (f"{params:>8} vfl horizontal {' '.join(precision) or '(defaults)'}: "
                    f"{ours['seconds']:.2f} s, peak PSS {ours['pss'] / 2**20:.0f} MB "
                    f"(RSS sum {ours['rss'] / 2**20:.0f} MB); load {_load()}")
            print(line)
            if not flower:
                continue
            theirs = measured([sys.executable, __file__, "--flower-whole", str(params),
                               "--clients", str(clients), "--whole-rounds", str(rounds)])
            if theirs["rc"] != 0:
                print(f"{params:>8} Flower SecAgg+ simulation failed:\n{theirs['output']}")
                continue
            print(f"{params:>8} Flower SecAgg+ simulation: {theirs['seconds']:.2f} s, peak PSS "
                  f"{theirs['pss'] / 2**20:.0f} MB (RSS sum {theirs['rss'] / 2**20:.0f} MB); "
                  f"load {_load()}")
            print(f"{params:>8} whole command ours / Flower SecAgg+: time "
                  f"{_ratio(ours['seconds'], theirs['seconds'])}, peak memory "
                  f"{_ratio(ours['pss'], theirs['pss'])}")


def flower_whole(params: int, clients: int, rounds: int) -> None:
    """`rounds` SecAgg+ rounds of a `params`-value model in Flower's simulation, then exit
    (timed from outside as a whole process)."""
    from flwr.client import NumPyClient
    from flwr.client.mod import secaggplus_mod
    from flwr.clientapp import ClientApp
    from flwr.common import ndarrays_to_parameters
    from flwr.server import LegacyContext, ServerApp, ServerConfig
    from flwr.server.strategy import FedAvg
    from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow
    from flwr.simulation import run_simulation

    class Client(NumPyClient):
        def fit(self, parameters: list[np.ndarray], config: Any) -> Any:
            return [p + 1e-3 for p in parameters], 500, {}

    client_app = ClientApp(client_fn=lambda context: Client().to_client(),
                           mods=[secaggplus_mod])
    server_app = ServerApp()

    @server_app.main()
    def _main(grid: Any, context: Any) -> None:
        initial = ndarrays_to_parameters([np.zeros(params)])
        strategy = FedAvg(fraction_fit=1.0, fraction_evaluate=0.0, min_fit_clients=clients,
                          min_available_clients=clients, initial_parameters=initial)
        legacy = LegacyContext(context=context, config=ServerConfig(num_rounds=rounds),
                               strategy=strategy)
        DefaultWorkflow(fit_workflow=SecAggPlusWorkflow(**SECAGG))(grid, legacy)

    logging.getLogger("flwr").setLevel(logging.WARNING)
    run_simulation(server_app=server_app, client_app=client_app, num_supernodes=clients,
                   backend_config={"client_resources": {"num_cpus": 1.0, "num_gpus": 0.0},
                                   "init_args": {"log_to_driver": False,
                                                 "logging_level": logging.ERROR}})


def rounds_section(args: argparse.Namespace) -> None:
    """One round of each mode, ours then Flower's, side by side."""
    public, private = generate_keypair(args.key_bits, insecure=args.insecure_key)
    engine_class, decryptor_class = get_backend(args.backend)
    engine = engine_class(public, engine_class.public_params_for(private))
    decryptor = decryptor_class(private)
    rng = np.random.default_rng(args.seed)
    def slots(value_bits: int) -> PackingLayout:
        return PackingLayout.for_modulus(public.n, frac_bits=args.frac_bits,
                                         value_bits=value_bits, max_summands=args.clients)

    values = slots(args.value_bits)
    packed = UpdateLayout(values, slots(TALLY_VALUE_BITS), 0)
    # One value per plaintext, every slot as wide as the widest the protocol uses.
    widest = max(values.slot_bits, packed.tally.slot_bits)
    single = PackingLayout(args.frac_bits, max(args.value_bits, TALLY_VALUE_BITS),
                           args.clients, widest)
    print(f"# {args.key_bits}-bit key, {args.backend} engine, K = {args.clients}, update slot "
          f"{values.slot_bits} bits, {values.slots_per_plaintext} values per ciphertext (the "
          f"loss and row count in one more); {os.cpu_count()} CPUs, load average at start "
          f"{_load()}")
    ours: dict[tuple[int, str], dict[str, Any]] = {}
    try:
        measure(engine, decryptor, packed, 200, 2, None, rng)  # warm the pools up
        print(f"{'params':>8} {'mode':>7} {'cts/client':>10} {'bytes/client':>13} "
              f"{'client s':>9} {'S s':>8} {'C s':>8} {'unpack s':>9} {'round s':>8}")
        for params in args.params:
            for name, layout, sample, warm in (
                    ("packed", packed, None, False), ("warm", packed, None, True),
                    ("single", single, args.single_sample or None, False)):
                r = measure(engine, decryptor, layout, params, args.clients, sample, rng,
                            warm=warm)
                ours[(params, name)] = r
                mark = " (extrapolated)" if r["extrapolated"] else ""
                print(f"{params:>8} {name:>7} {r['ciphertexts']:>10} {r['bytes']:>13,} "
                      f"{r['client_s']:>9.3f} {r['server_s']:>8.3f} {r['c_s']:>8.3f} "
                      f"{r['unpack_s']:>9.3f} {r['round_s']:>8.3f}{mark}")
            one, many = ours[(params, "single")], ours[(params, "packed")]
            print(f"{params:>8} {'ratio':>7} single/packed: bytes "
                  f"{one['bytes'] / many['bytes']:.1f}x, round time "
                  f"{one['round_s'] / many['round_s']:.1f}x")
    finally:
        engine.close()
        decryptor.close()
    print(f"# load average after ours: {_load()}")

    if args.no_flower:
        print("# Flower: skipped (--no-flower)")
    else:
        try:
            import flwr
        except ImportError:
            print(FLOWER_SKIP)
        else:
            print(f"# Flower {flwr.__version__}, simulation engine (Ray), {args.clients} "
                  f"supernodes, {args.client_cpus:g} CPU per client actor, median of "
                  f"{args.flower_rounds} round(s) after a warm-up; load average {_load()}")
            flower = flower_rounds(args.params, args.clients, args.flower_rounds,
                                   args.client_cpus, args.seed)
            for (params, name), r in sorted(flower.items()):
                print(f"{params:>8} {name:>8} round {r['round_s']:.3f} s, bytes/client "
                      f"{r['bytes']:,.0f} (min {r['bytes_min']:,.0f}, max {r['bytes_max']:,.0f})")
            side_by_side(ours, flower, args.params, args.key_bits)


def main(argv: list[str] | None = None) -> None:
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
    parser.add_argument("--no-flower", action="store_true", help="skip the Flower section")
    parser.add_argument("--flower-rounds", type=int, default=3,
                        help="Flower rounds measured after the warm-up (median reported)")
    parser.add_argument("--client-cpus", type=float, default=1.0,
                        help="CPUs Ray reserves per Flower client actor")
    parser.add_argument("--whole", action="store_true",
                        help="also time whole commands: vfl horizontal against Flower's "
                             "SecAgg+ simulation, each a fresh process, with peak memory")
    parser.add_argument("--whole-rounds", type=int, default=3,
                        help="rounds of each whole command (default: 3)")
    parser.add_argument("--whole-precision", default="",
                        help="extra precision options for the whole vfl horizontal command, "
                             "e.g. '--frac-bits 22 --value-bits 9'")
    parser.add_argument("--no-rounds", action="store_true",
                        help="skip the per-round section (with --whole: whole commands only)")
    parser.add_argument("--flower-whole", type=int, metavar="PARAMS",
                        help=argparse.SUPPRESS)  # the Flower process of --whole
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 512-bit insecure key, 200 parameters, one "
                             "measured Flower round")
    args = parser.parse_args(argv)
    if args.flower_whole:
        flower_whole(args.flower_whole, args.clients, args.whole_rounds)
        return
    if args.quick:
        args.key_bits, args.insecure_key, args.params = 512, True, [200]
        args.single_sample, args.flower_rounds = 200, 1

    if not args.no_rounds:
        rounds_section(args)
    if args.whole:
        try:
            import flwr  # noqa: F401
            flower = not args.no_flower
        except ImportError:
            print(FLOWER_SKIP)
            flower = False
        whole_commands(args.params, args.clients, args.whole_rounds, args.seed, flower,
                       args.whole_precision.split())
    print(f"# load average at the end: {_load()}")


if __name__ == "__main__":
    main()
