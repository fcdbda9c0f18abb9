"""``vfl party --config party.toml``: run one party of a federation on this machine.

Vertical (A, B or C), horizontal (client, server, key holder), transfer
(source, target) or binning (A, B or C with ``[federation] kind = "binning"``):
the role in the file picks the protocol.

The party listens on its own address, talks to its peers over gRPC with
mutual TLS, saves a checkpoint after every epoch and, restarted after a
crash with the same configuration, resumes with the others from the last
epoch every party completed.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
import warnings

from vfl.cli.common import add_force_option, check_outputs, dumps, write_outputs

__all__ = ["register", "run", "run_party"]

_EPILOG = """\
The configuration file (TOML; relative paths are relative to it):

  role = "feature_holder"        # coordinator | label_holder | feature_holder
  name = "A1"                    # the name on this party's certificate
  run_id = "study-7"             # the same at every party; names the run
  listen = "0.0.0.0:50051"       # host:port this party listens on
  output = "out"                 # result: model_NAME.json (C: losses_NAME.json)
  checkpoints = "out/checkpoints"  # default: OUTPUT/checkpoints
  timeout = 1800                 # seconds to wait for a peer's next message
  connect_timeout = 60           # seconds to retry a peer that cannot be reached
  insecure_transport = false     # true: no TLS at all (a trusted test machine only)
  # seed = 1                     # tests only: makes the secret initial weights predictable

  [peers]                        # every party this one talks to
  B = "lab.example.org:50052"
  C = "operator.example.org:50053"

  [tls]                          # from 'vfl certs'; or ca = / cert = / key = paths
  dir = "certs"

  [data]                         # data parties only
  file = "A1.csv"
  id_column = "patient_id"
  label_column = "progression"   # B: the label; A: its name, refused in A's file
  features = ["age", "bmi"]      # optional; default every other column
  # B only, optional (docs/poisson.md): weight_column = "w", class_weight = "balanced",
  # exposure_column = "years" (model = "poisson")

  [federation]                   # identical at every party
  label_holder = "B"
  coordinator = "C"
  feature_holders = ["A1"]       # in this order everywhere
  alignment = "ecdh"

  [training]                     # TrainingConfig fields, identical at every party
  epochs = 10
  learning_rate = 0.1
  batch_size = 64                # or "full"

  [keys]                         # coordinator only
  key_bits = 2048
  insecure_key = false           # true: allow keys below 2048 bits (tests only)
  backend = "fast"

  [compute]                      # optional, any role: where this party's heavy work runs
  executor = "local"             # or "dask://HOST:PORT", "ray://HOST:PORT", "ray:auto"
                                 # (its own cluster; decryption stays here; docs/cluster.md)

  [audit]                        # optional; at every party or at none
  log = "audit.jsonl"            # this party's own copy of the signed audit log
  key = "keys/A1.key"            # its signing key, from 'vfl audit keygen --party A1'

Renamed settings (the old names still work): [keys] bits -> key_bits,
[keys] insecure -> insecure_key, insecure -> insecure_transport.

With [audit], after training every party signs a record of the run (its
dataset fingerprint and model hash, the configuration, the final losses) and
appends it to its own copy; the copies stay identical. See docs/audit.md.

Horizontal roles (client | server | key_holder) and transfer roles (source |
target) use the same file with their own tables: [federation] kind =
"horizontal" with server, key_holder, clients, features (classes for softmax)
and a [horizontal] table of HorizontalConfig fields (key holder: [keys];
client: [data] file, label_column); or kind = "transfer" with source, target,
alignment and a [transfer] table of TransferConfig fields ([data] file,
id_column, label_column). No [training] there; [audit] as above (the server,
resp. the target, drafts the record). Results: server
model_S.json + history_S.json, clients and key holder summary_NAME.json,
source model + history, target model + predictions_NAME.csv.

Federated binning (docs/binning.md) runs on the vertical roles' files with
[federation] kind = "binning" and a [binning] table of BinningConfig fields
(method, bins, min_bin_rows, prebins, select_iv or select_top; identical at
every party) instead of [training]; no seed, no [audit]. Results: each data
party binning_NAME.json (as 'vfl binning' writes it), C summary_C.json.

Start the parties in any order; each waits for the others (up to
connect_timeout). If a party dies, the others stop within `timeout` with an
error naming it; start all of them again with the same files and training
resumes. A horizontal client is the exception (without [audit]): the run goes
on without it, and started again alone with the same file it is readmitted at
the next round and takes part from the one after. Examples:
examples/three-parties. Details: docs/network.md.
"""


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "party", help="run one party of a federation (vertical, horizontal or transfer) over "
                      "the network",
        description="Run one role of the federation on this machine: listen on the "
                    "configured address, connect to the peers over gRPC with mutual TLS, "
                    "align, train, checkpoint every epoch (resuming after a crash) and "
                    "write this party's result; with an [audit] table, also sign the "
                    "run's record with the other parties and append it to this party's "
                    "copy of the audit log.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, metavar="TOML",
                        help="this party's configuration file")
    parser.add_argument("--quiet", action="store_true", help="print only warnings and errors")
    add_force_option(parser, "this party's result files in its output folder")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from vfl.cluster import compute_on
    from vfl.party_config import load_party_config

    config = load_party_config(args.config)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"vfl party {config.name}: %(message)s"))
    root = logging.getLogger("vfl")
    root.addHandler(handler)
    root.setLevel(logging.WARNING if args.quiet else logging.INFO)
    # A SIGTERM (a supervisor stopping the party) unwinds like an error, so the
    # peers are told at once instead of waiting for their timeout.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        with compute_on(config.executor):  # [compute]: this party's own cluster, if any
            run_party(config, quiet=args.quiet, force=args.force)
    finally:
        root.removeHandler(handler)
    return 0


def run_party(config, *, quiet: bool = False, capture=None, force: bool = False) -> object:
    """Run the party a :class:`~vfl.party_config.PartyConfig` describes; return it.

    Parameters
    ----------
    config : PartyConfig
    quiet : bool
        Print only warnings and errors.
    capture : callable, optional
        The transport's capture hook (see :class:`vfl.net.GrpcEndpoint`).
    force : bool
        Replace result files an earlier run left in the output folder.
    """
    from parties.audit_exchange import agree_auditing, exchange_record, open_audit
    from vfl.errors import PeerAbortedError
    from vfl.net.liveness import PeerWatch
    from vfl.runtime.checkpoint import CheckpointStore

    say = (lambda *_: None) if quiet else logging.getLogger("vfl.party").info
    started = time.perf_counter()
    # The endpoint first, so that a party that cannot start (a bad column, a
    # damaged audit log copy, a bad key) tells its peers at once and they stop
    # with its reason instead of waiting for it until their timeouts.
    endpoint = _open_endpoint(config, capture)
    try:
        party = _build_party(config, quiet)
        store = CheckpointStore(config.checkpoints, party=config.name, run_id=config.run_id,
                                state_type=party.state_type)
        # Before any training work: a bad key, a damaged log copy or an earlier
        # run's result files stop here.
        audit = open_audit(config)
        check_outputs(str(config.output), _result_names(config), _inputs(config), force=force)
    except BaseException as exc:
        _stop_at_start(endpoint, config, exc)
        raise
    if config.kind == "horizontal" and config.role != "client" and audit is None:
        # A client that stops is a dropout: left out of the rounds, the run goes on
        # (with [audit], every party must sign at the end, so it cannot).
        endpoint.allow_leaving(config.horizontal.clients)
    if config.kind == "binning" and config.role != "coordinator":
        # C's part ends with its last decryption, while B still sends A its WOE: C
        # may exit then (a receive from C after it left still fails).
        endpoint.allow_leaving([config.coordinator])
    say(f"{config.role.replace('_', ' ')} listening on {endpoint.address}, run "
        f"{config.run_id!r}, peers " + ", ".join(f"{p} at {a}" for p, a in config.peers.items()))
    watch = PeerWatch(endpoint)
    traffic: list[dict] = []

    def after_epoch(epoch: int, state) -> None:
        traffic.append(_traffic_at(endpoint, epoch, time.perf_counter() - started))
        # Peers that have finished exit normally; from here on nothing is
        # awaited from the coordinator, so its exit must not stop anyone.
        # With an audit, every party stays until the record is exchanged.
        if (state.stopped or epoch >= config.epochs) and audit is None:
            watch.disarm()

    store.on_state = after_epoch
    record = None
    try:
        with watch:
            agree_auditing(endpoint, config, audit)
            _run_role(config, party, endpoint, store)
            if audit is not None:
                record = exchange_record(endpoint, config, party, audit,
                                         done_receiving=watch.disarm)
    except BaseException as exc:
        # Tell the peers that this party stops (as GrpcEndpoint's with-block
        # does), unless a peer's process is gone: every survivor notices that
        # by itself, and an abort notice would wait for peers that have
        # already stopped.
        if watch.gone is None and not isinstance(exc, PeerAbortedError):
            endpoint.abort(f"{type(exc).__name__}: {exc}")
        else:
            # Except that a survivor noticing late could name this party instead.
            endpoint.pass_on_stopped_peer()
        raise
    finally:
        endpoint.close()
    elapsed = time.perf_counter() - started
    written = _write_result(config, party, traffic, force=force)
    if record is not None:
        say(f"audit record {record.index} appended to {config.audit_log} "
            f"(hash {record.hash[:16]}...)")
    say(f"done in {elapsed:.1f} s; wrote {written}")
    return party


def _stop_at_start(endpoint, config, exc: BaseException) -> None:
    """Tell the peers that this party cannot start, and why; then close its endpoint.

    Peers that run already stop at once with this reason; one that is not
    listening yet gets it when it starts, within ``connect_timeout`` (the time
    it would wait for this party anyway). Interrupted or terminated, the party
    waits no longer than for any other abort notice.
    """
    import threading

    reason = f"{type(exc).__name__}: {exc}"
    if not isinstance(exc, Exception):  # KeyboardInterrupt, SystemExit (SIGTERM)
        try:
            endpoint.abort(reason)
        finally:
            endpoint.close(grace=0)
        return
    # Said only if the notice takes a while: some peer is not listening yet.
    waiting = threading.Timer(1.0, logging.getLogger("vfl.party").warning, args=(
        "cannot start (%s); telling %s, waiting up to %g s for any that is not listening "
        "yet", reason, ", ".join(config.peers), config.connect_timeout))
    waiting.daemon = True
    waiting.start()
    try:
        endpoint.abort(reason, wait=config.connect_timeout)
    finally:
        waiting.cancel()
        endpoint.close(grace=0)


def _build_party(config, quiet: bool):
    """The role object the configuration names, with its data (read only)."""
    from vfl.progress import EpochProgress

    if config.kind == "horizontal":
        return _build_horizontal(config)
    if config.kind == "transfer":
        return _build_transfer(config)
    if config.kind == "binning":
        return _build_binning(config)
    from parties import Coordinator, FeatureHolder, LabelHolder

    if config.role == "coordinator":
        return Coordinator(key_bits=config.key_bits, insecure_key=config.insecure_key,
                           backend=config.backend,
                           insecure_plaintext=config.insecure_plaintext, name=config.name)
    data = {"id_column": config.id_column, "label_column": config.label_column,
            "name": config.name, "feature_columns": config.features, "seed": config.seed}
    party: LabelHolder | FeatureHolder
    if config.role == "label_holder":
        party = LabelHolder.from_csv(config.data_file, weight_column=config.weight_column,
                                     class_weight=config.class_weight,
                                     exposure_column=config.exposure_column, **data)
        if not quiet:
            party.progress = EpochProgress(config.training.epochs)
    else:
        party = FeatureHolder.from_csv(config.data_file, **data)
    party.insecure_plaintext = config.insecure_plaintext
    return party


def _build_horizontal(config):
    """Server, key holder or client, wired as :class:`HorizontalFederation` wires them."""
    from parties.horizontal import Client, HorizontalClient, KeyHolder, Server

    spec = config.horizontal
    if config.role == "server":
        return Server(spec.config, spec.clients, spec.features, classes=spec.classes,
                      key_holder=spec.key_holder, name=config.name,
                      round_timeout=spec.round_timeout)
    if config.role == "key_holder":
        return KeyHolder(spec.config, spec.clients, server=spec.server,
                         key_bits=config.key_bits, insecure_key=config.insecure_key,
                         backend=config.backend, name=config.name)
    # The columns are the federation's, in its order: the model's order.
    table = HorizontalClient.from_csv(config.data_file, label_column=config.label_column,
                                      name=config.name, feature_columns=list(spec.features))
    return Client(config.name, table.features, table.labels, spec.config,
                  feature_names=spec.features, clients=spec.clients, server=spec.server,
                  key_holder=spec.key_holder)


def _build_transfer(config):
    """Source or target, set up for the run as :func:`run_transfer` sets them up."""
    from parties.transfer import TransferSource, TransferTarget

    spec = config.transfer
    kind, peer = ((TransferSource, spec.target) if config.role == "source"
                  else (TransferTarget, spec.source))
    party = kind.from_csv(config.data_file, id_column=config.id_column,
                          label_column=config.label_column, name=config.name,
                          seed=config.seed)
    party.begin_run(spec.config, peer=peer, alignment=config.alignment, parallel=True)
    return party


def _build_binning(config):
    """A binning role, set up for the run as :func:`~parties.binning.run_binning` sets
    them up (each with its own copy of the shared settings)."""
    from parties.binning import BinningCoordinator, BinningFeatureHolder, BinningLabelHolder
    from vfl.data import read_party_csv

    if config.role == "coordinator":
        party = BinningCoordinator(key_bits=config.key_bits, insecure_key=config.insecure_key,
                                   backend=config.backend, name=config.name)
        party.begin_run(config.binning, label_holder=config.label_holder,
                        feature_holders=config.feature_holders)
        return party
    frame = read_party_csv(config.data_file, party=config.name, id_column=config.id_column)
    if config.features is not None:
        from vfl.errors import MissingColumnError

        absent = [c for c in config.features if c not in frame.columns]
        if absent:
            raise MissingColumnError(f"{config.data_file} has no column {absent[0]!r} that "
                                     f"[data] features names", party=config.name)
        # The label stays where it is: at a feature holder, BinningTable refuses it.
        keep = [config.id_column, *([config.label_column] if config.label_column
                                    in frame.columns else []), *config.features]
        frame = frame[keep]
    if config.role == "label_holder":
        b = BinningLabelHolder(frame, id_column=config.id_column,
                               label_column=config.label_column, name=config.name,
                               source=str(config.data_file))
        b.begin_run(config.binning, feature_holders=config.feature_holders,
                    alignment=config.alignment, coordinator=config.coordinator)
        return b
    a = BinningFeatureHolder(frame, id_column=config.id_column, name=config.name,
                             label_column=config.label_column, source=str(config.data_file))
    a.begin_run(config.binning, alignment=config.alignment, label_holder=config.label_holder,
                coordinator=config.coordinator)
    return a


def _open_endpoint(config, capture):
    """This party's gRPC endpoint: mutual TLS, or none where the file opts out."""
    from vfl.net import GrpcEndpoint, InsecureTransportWarning, TlsFiles

    if config.insecure:
        print(f"vfl party {config.name}: WARNING: insecure_transport = true in {config.source}: "
              "messages travel WITHOUT TLS, unencrypted and unauthenticated; use this only "
              "on a trusted test machine", file=sys.stderr)
    tls = None if config.insecure else TlsFiles(*config.tls)
    with warnings.catch_warnings():
        # Printed above, once, in the command's own words.
        warnings.simplefilter("ignore", InsecureTransportWarning)
        return GrpcEndpoint(config.name, config.run_id, config.listen, config.peers,
                            tls=tls, insecure=config.insecure, timeout=config.timeout,
                            connect_timeout=config.connect_timeout, capture=capture)


def _traffic_at(endpoint, epoch: int, seconds: float) -> dict:
    """What this party sent to each peer so far (for operators and benchmarks)."""
    sent = endpoint.traffic_snapshot()
    return {"epoch": epoch, "seconds": seconds,
            "bytes_sent": {p: t.bytes_sent for p, t in sent.items()},
            "messages_sent": {p: t.messages_sent for p, t in sent.items()},
            "transport_seconds": sum(t.send_seconds + t.receive_seconds for t in sent.values())}


def _run_role(config, party, endpoint, store) -> None:
    if config.kind == "binning":
        from vfl.runtime.session import Session

        # No epochs and nothing to resume: a binning run is simply run again.
        Session(party, endpoint).run()
    elif config.kind != "vertical":
        from vfl.progress import EpochProgress
        from vfl.runtime.session import Session

        # The parties that learn the loss show it (unless --quiet).
        shows = (config.role in ("server", "source")
                 and logging.getLogger("vfl").isEnabledFor(logging.INFO))
        Session(party, endpoint, checkpoints=store,
                progress=EpochProgress(config.epochs) if shows else None).run()
    elif config.role == "coordinator":
        party.run_training(endpoint, config.training, label_holder=config.label_holder,
                           feature_holders=config.feature_holders, checkpoints=store)
    elif config.role == "label_holder":
        party.run_training(endpoint, config.training, feature_holders=config.feature_holders,
                           coordinator=config.coordinator, alignment=config.alignment,
                           checkpoints=store)
    else:
        party.run_training(endpoint, config.training, label_holder=config.label_holder,
                           coordinator=config.coordinator, alignment=config.alignment,
                           checkpoints=store)


#: Each role's result files besides ``traffic_NAME.json``, the first its main one.
_RESULTS = {
    "coordinator": ("losses_{}.json",),
    "label_holder": ("model_{}.json", "history_{}.json"),
    "feature_holder": ("model_{}.json",),
    "server": ("model_{}.json", "history_{}.json"),
    "client": ("summary_{}.json",),
    "key_holder": ("summary_{}.json",),
    "source": ("model_{}.json", "history_{}.json"),
    "target": ("model_{}.json", "predictions_{}.csv"),
}


#: A binning party's result files besides ``traffic_NAME.json``.
_BINNING_RESULTS = {"coordinator": ("summary_{}.json",), "label_holder": ("binning_{}.json",),
                    "feature_holder": ("binning_{}.json",)}


def _result_names(config) -> list[str]:
    """The files this party writes into its output folder."""
    results = _BINNING_RESULTS if config.kind == "binning" else _RESULTS
    return [*(pattern.format(config.name) for pattern in results[config.role]),
            f"traffic_{config.name}.json"]


def _inputs(config) -> dict[str, str]:
    return {} if config.data_file is None else {config.name: str(config.data_file)}


def _write_result(config, party, traffic: list[dict], *, force: bool = False) -> str:
    """Write the party's result atomically into its output folder; return the file."""
    names = _result_names(config)
    files = dict(zip(names, _result_texts(config, party)))
    # Frame bytes this party sent to each peer, cumulated at each epoch's end
    # (since this process started): for operators and benchmarks.
    files[names[-1]] = dumps({"run_id": config.run_id, "epochs": traffic})
    write_outputs(str(config.output), files, _inputs(config), force=force)
    return str(config.output / names[0])


def _result_texts(config, party) -> list[str]:
    """The texts of the role's result files, in :data:`_RESULTS`'s order.

    Each party writes only what it learns anyway: S the global model and the
    round losses, a client its own metrics, the key holder how many rounds it
    served (it decrypts only masked sums), B its model and its own predictions.
    """
    role, run_id = config.role, config.run_id
    if config.kind == "binning":
        # Each data party its own binning file; C how many masked values it decrypted.
        if role == "coordinator":
            return [dumps({"run_id": run_id, "decrypted_values": len(party.decrypted_)})]
        return [dumps(party.report())]
    if role == "coordinator":
        # C learns the losses anyway (it decrypts them); nothing else to keep.
        return [dumps({"run_id": run_id, "losses": party.losses_,
                       "validation_losses": party.validation_losses_})]
    if role == "label_holder":
        return [party.model_.to_json(), dumps({
            "run_id": run_id, "aligned_rows": party.aligned_rows_, "history": party.history_})]
    if role == "feature_holder":
        return [party.model_.to_json()]
    if role == "server":
        from dataclasses import asdict

        from vfl.cli.horizontal import model_document

        model = model_document(config.horizontal.config.model, party.features, party.classes,
                               party.raw_layers())
        return [dumps({**model, "run_id": run_id}),
                dumps({"run_id": run_id, "history": [asdict(record) for record
                                                     in party.current.history]})]
    if role == "client":
        return [dumps({"run_id": run_id, "rows": party.rows, "rounds": party.rounds_,
                       "rounds_joined": list(party.current.rounds_joined),
                       "received_final_model": party.weights_ is not None})]
    if role == "key_holder":
        return [dumps({"run_id": run_id, "rounds": party.current.epoch})]
    if role == "source":
        return [party.model_json(), dumps({"run_id": run_id, "history": party.history_})]
    frame = party.predict_proba().rename("probability").reset_index()
    return [party.model_json(), frame.to_csv(index=False)]
