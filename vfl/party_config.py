"""One party's configuration file (TOML), as ``vfl party --config`` reads it.

Every key is checked: an unknown key, a key of another role, a missing or
mistyped one is a :class:`~vfl.errors.ConfigFileError` naming the file and
the key. Relative paths are relative to the file's own folder, so a folder
of configurations, certificates and data can be moved as a whole. The layout
is documented in ``docs/network.md`` and shown by the example configurations
in ``examples/three-parties``.
"""

from __future__ import annotations

import math
import os
import socket
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from vfl.errors import ConfigError, ConfigFileError
from vfl.training import TrainingConfig

__all__ = [
    "ROLES",
    "PartyConfig",
    "dump_toml",
    "free_loopback_ports",
    "load_party_config",
    "write_loopback_configs",
]

ROLES = ("coordinator", "label_holder", "feature_holder")
_TRAINING_FIELDS = {f.name: f for f in fields(TrainingConfig)}


@dataclass(frozen=True)
class PartyConfig:
    """What one party needs to run its role over the network.

    Attributes
    ----------
    source : Path
        The configuration file, for messages.
    role : {"coordinator", "label_holder", "feature_holder"}
    name : str
        This party's name (its certificate's name).
    run_id : str
        The federation run: every party must use the same. It is the
        session every message carries, and checkpoints of another run are
        refused.
    listen : str
        ``host:port`` this party's server binds.
    peers : dict of str to str
        ``host:port`` of every party this one talks to.
    tls : tuple of Path or None
        (CA certificate, own certificate, own key); None when `insecure`.
    insecure : bool
        No TLS: an explicit opt-out, for a trusted test machine only.
    timeout, connect_timeout : float
        Seconds to wait for a peer's next message; to keep retrying a peer
        that cannot be reached.
    data_file, id_column, label_column, features
        The data party's CSV file and columns (None at the coordinator).
    label_holder, coordinator : str
    feature_holders : tuple of str
        The feature holders' names, in the order every party must use.
    alignment : str
        Private alignment method.
    training : TrainingConfig
        Identical at every party (checked at the start).
    key_bits, insecure_key, backend
        The coordinator's Paillier key and engine.
    output : Path
        Folder the party's result is written to.
    checkpoints : Path
        Folder of this party's checkpoints.
    seed : int or None
        Seed of this party's secret randomness (initial weights, batch
        order); None draws it from the OS.
    audit_log, audit_key : Path or None
        From the ``[audit]`` table: this party's own copy of the signed audit
        log and its Ed25519 signing key (``vfl audit keygen``). None: the run
        is not audited (then no party may audit it).
    """

    source: Path
    role: str
    name: str
    run_id: str
    listen: str
    peers: dict[str, str]
    tls: tuple[Path, Path, Path] | None
    insecure: bool
    timeout: float
    connect_timeout: float
    label_holder: str
    coordinator: str
    feature_holders: tuple[str, ...]
    alignment: str
    training: TrainingConfig
    output: Path
    checkpoints: Path
    data_file: Path | None = None
    id_column: str | None = None
    label_column: str | None = None
    features: list[str] | None = None
    key_bits: int = 2048
    insecure_key: bool = False
    backend: str = "fast"
    seed: int | None = None
    audit_log: Path | None = None
    audit_key: Path | None = None

    @property
    def is_data_party(self) -> bool:
        return self.role != "coordinator"


class _Reader:
    """Takes keys out of one TOML table; whatever is left at the end is unknown."""

    def __init__(self, table: Mapping[str, Any], prefix: str, path: Path,
                 party: str | None) -> None:
        self.table = dict(table)
        self.prefix = prefix
        self.path = path
        self.party = party

    def fail(self, key: str, message: str) -> ConfigFileError:
        return ConfigFileError(f"{self.path}: {self.prefix}{key} {message}", party=self.party)

    def take(self, key: str, kind: type | tuple[type, ...], default: Any = ...,
             what: str = "") -> Any:
        if key not in self.table:
            if default is ...:
                raise self.fail(key, "is missing" + (f" ({what})" if what else ""))
            return default
        value = self.table.pop(key)
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if float in kinds and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            names = " or ".join(k.__name__ for k in kinds)
            raise self.fail(key, f"must be a {names}, got {value!r}")
        if isinstance(value, str) and not value:
            raise self.fail(key, "must not be empty")
        return value

    def table_of(self, key: str, *, required: bool = True) -> _Reader | None:
        if key not in self.table:
            if required:
                raise self.fail(key, "is missing: add a [" + self.prefix + key + "] table")
            return None
        value = self.table.pop(key)
        if not isinstance(value, dict):
            raise self.fail(key, f"must be a table ([{self.prefix}{key}]), got {value!r}")
        return _Reader(value, f"{self.prefix}{key}.", self.path, self.party)

    def strings(self, key: str, default: Any = ...) -> list[str] | None:
        value = self.take(key, list, default)
        if value is None or value is default:
            return value
        if not value or not all(isinstance(v, str) and v for v in value):
            raise self.fail(key, f"must be a non-empty list of names, got {value!r}")
        return list(value)

    def finish(self) -> None:
        if self.table:
            key = sorted(self.table)[0]
            raise self.fail(key, "is not a known setting here; check its spelling and "
                                 "the example configurations in examples/three-parties")

    def forbid(self, key: str, reason: str) -> None:
        if key in self.table:
            raise self.fail(key, reason)


def load_party_config(path: str | os.PathLike[str]) -> PartyConfig:
    """Read and check one party's configuration file.

    Raises
    ------
    ConfigFileError
        If the file is missing or not TOML, or a key is unknown, missing,
        mistyped or inconsistent (the message names the file and the key).
    """
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            document = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigFileError(f"configuration file {path} does not exist") from None
    except OSError as exc:
        raise ConfigFileError(f"cannot read configuration file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigFileError(f"{path} is not valid TOML: {exc}") from None
    base = path.resolve().parent

    def resolve(value: str) -> Path:
        return (base / os.path.expanduser(value)).resolve()

    top = _Reader(document, "", path, None)
    name = top.take("name", str, what="this party's name, e.g. A1, B or C")
    top.party = name
    from vfl.net.certs import check_party_name
    try:
        check_party_name(name)
    except ValueError as exc:
        raise top.fail("name", str(exc)) from None
    role = top.take("role", str, what=f"one of {', '.join(ROLES)}")
    if role not in ROLES:
        raise top.fail("role", f"must be one of {', '.join(ROLES)}, got {role!r}")
    run_id = top.take("run_id", str, what="the same run id at every party")
    listen = top.take("listen", str, what="host:port this party listens on")
    if ":" not in listen:
        raise top.fail("listen", f"must be host:port, got {listen!r}")
    insecure = top.take("insecure", bool, False)
    timeout = top.take("timeout", float, 1800.0)
    connect_timeout = top.take("connect_timeout", float, min(timeout, 60.0))
    for key, value in (("timeout", timeout), ("connect_timeout", connect_timeout)):
        if not (math.isfinite(value) and value > 0):
            raise top.fail(key, f"must be a positive number of seconds, got {value!r}")
    output = resolve(top.take("output", str, what="folder for this party's result"))
    checkpoints = resolve(top.take("checkpoints", str, str(output / "checkpoints")))
    seed = top.take("seed", int, None)

    federation = top.table_of("federation")
    label_holder = federation.take("label_holder", str, "B")
    coordinator = federation.take("coordinator", str, "C")
    feature_holders = tuple(federation.strings(
        "feature_holders", ...) or ())
    from vfl.psi import ALIGNMENT_METHODS, DEFAULT_ALIGNMENT
    alignment = federation.take("alignment", str, DEFAULT_ALIGNMENT)
    if alignment not in ALIGNMENT_METHODS:
        raise federation.fail("alignment", f"must be one of "
                                           f"{', '.join(sorted(ALIGNMENT_METHODS))}, "
                                           f"got {alignment!r}")
    federation.finish()
    everyone = [coordinator, label_holder, *feature_holders]
    if len(set(everyone)) != len(everyone):
        raise ConfigFileError(f"{path}: [federation] names {everyone}: every party needs its "
                              "own name", party=name)
    own = {"coordinator": coordinator, "label_holder": label_holder}.get(role)
    if (own is not None and own != name) or (role == "feature_holder"
                                             and name not in feature_holders):
        where = ("federation.feature_holders" if role == "feature_holder"
                 else f"federation.{role}")
        raise ConfigFileError(f"{path}: this party is {name!r} ({role}) but {where} does "
                              f"not name it", party=name)
    needed = ({label_holder, coordinator} if role == "feature_holder"
              else set(everyone) - {name})

    peers_table = top.table_of("peers")
    peers = {}
    for peer in sorted(needed):
        peers[peer] = peers_table.take(peer, str, what=f"host:port of {peer}")
    peers_table.finish()

    tls = None
    tls_table = top.table_of("tls", required=not insecure)
    if insecure:
        if tls_table is not None:
            raise ConfigFileError(f"{path}: insecure = true and a [tls] table: choose one",
                                  party=name)
    else:
        assert tls_table is not None
        folder = tls_table.take("dir", str, None)
        if folder is not None:
            from vfl.net.certs import CA_CERT_FILE, party_files
            cert, key = party_files(resolve(folder), name)
            default_ca, default_cert, default_key = (resolve(folder) / CA_CERT_FILE,
                                                     cert, key)
        else:
            default_ca = default_cert = default_key = ...
        ca = tls_table.take("ca", str, default_ca, "the federation CA's certificate")
        cert = tls_table.take("cert", str, default_cert, "this party's certificate")
        key = tls_table.take("key", str, default_key, "this party's private key")
        tls_table.finish()
        tls = tuple(resolve(str(p)) for p in (ca, cert, key))

    training_table = top.table_of("training", required=False)
    training = _training_config(training_table, path, name)

    values: dict[str, Any] = {}
    audit = top.table_of("audit", required=False)
    if audit is not None:
        values["audit_log"] = resolve(audit.take(
            "log", str, what="this party's own copy of the audit log, e.g. audit.jsonl"))
        values["audit_key"] = resolve(audit.take(
            "key", str, what=f"this party's signing key from 'vfl audit keygen --party {name}'"))
        audit.finish()
    data = top.table_of("data", required=role != "coordinator")
    if role == "coordinator":
        if data is not None:
            raise ConfigFileError(f"{path}: [data] is for the data parties; the coordinator "
                                  "holds no data", party=name)
        keys = top.table_of("keys", required=False)
        if keys is not None:
            from vfl.crypto import available_backends
            values["key_bits"] = keys.take("bits", int, 2048)
            values["insecure_key"] = keys.take("insecure", bool, False)
            values["backend"] = keys.take("backend", str, "fast")
            if values["backend"] not in available_backends():
                raise keys.fail("backend", f"must be one of {', '.join(available_backends())}, "
                                           f"got {values['backend']!r}")
            keys.finish()
        top.forbid("seed", "is for the data parties (the coordinator's key is always fresh)")
    else:
        top.forbid("keys", "is the coordinator's table ([keys]: key size and engine)")
        assert data is not None
        values["data_file"] = resolve(data.take("file", str, what="this party's CSV file"))
        values["id_column"] = data.take("id_column", str)
        values["label_column"] = data.take(
            "label_column", str, ... if role == "label_holder" else None,
            "the label column" if role == "label_holder" else "")
        values["features"] = data.strings("features", None)
        data.finish()
    top.finish()
    return PartyConfig(
        source=path, role=role, name=name, run_id=run_id, listen=listen, peers=peers,
        tls=tls, insecure=insecure, timeout=timeout, connect_timeout=connect_timeout,
        label_holder=label_holder, coordinator=coordinator, feature_holders=feature_holders,
        alignment=alignment, training=training, output=output, checkpoints=checkpoints,
        seed=seed, **values)


def _training_config(table: _Reader | None, path: Path, party: str) -> TrainingConfig:
    """The [training] table as a TrainingConfig: its keys are TrainingConfig's fields."""
    if table is None:
        return TrainingConfig()
    options: dict[str, Any] = {}
    for key in list(table.table):
        if key not in _TRAINING_FIELDS:
            raise table.fail(key, "is not a training parameter; the parameters are "
                                  f"{', '.join(_TRAINING_FIELDS)}")
        value = table.table.pop(key)
        if key == "batch_size" and value == "full":
            value = None
        default = _TRAINING_FIELDS[key].default
        if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if isinstance(default, bool) and not isinstance(value, bool):
            raise table.fail(key, f"must be true or false, got {value!r}")
        options[key] = value
    try:
        return TrainingConfig(**options)
    except ConfigError as exc:
        raise ConfigFileError(f"{path}: [training]: {exc}", party=party) from None


def dump_toml(document: Mapping[str, Any]) -> str:
    """TOML text of plain settings: top-level values first, then one level of tables.

    Enough for the configurations the demo and the tests write (strings,
    numbers, booleans, lists of strings); None values are left out.
    """
    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v) if not isinstance(v, float) or math.isfinite(v) else \
                ("nan" if math.isnan(v) else ("inf" if v > 0 else "-inf"))
        if isinstance(v, (str, os.PathLike)):
            return _quote(os.fspath(v))
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(value(x) for x in v) + "]"
        raise TypeError(f"cannot write {v!r} as TOML")

    lines = [f"{k} = {value(v)}" for k, v in document.items()
             if v is not None and not isinstance(v, Mapping)]
    for name, table in document.items():
        if isinstance(table, Mapping):
            lines += ["", f"[{name}]"]
            lines += [f"{_key(k)} = {value(v)}" for k, v in table.items() if v is not None]
    return "\n".join(lines) + "\n"


def _key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() else _quote(key)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def free_loopback_ports(names) -> dict[str, int]:
    """A free loopback port per party (held together, so all differ, then released
    for the parties to bind; another program could take one meanwhile)."""
    sockets, ports = [], {}
    for name in names:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        sockets.append(s)
        ports[name] = s.getsockname()[1]
    for s in sockets:
        s.close()
    return ports


def write_loopback_configs(folder: str | os.PathLike[str], *, run_id: str,
                           ports: Mapping[str, int], label_holder: tuple[str, str | os.PathLike[str]],
                           feature_holders: list[tuple[str, str | os.PathLike[str]]],
                           id_column: str, label_column: str, training: TrainingConfig,
                           certs: str | os.PathLike[str] | None, coordinator: str = "C",
                           key_bits: int = 2048, insecure_key: bool = False,
                           backend: str = "fast", seeds: Mapping[str, int] | None = None,
                           timeout: float = 1800.0, connect_timeout: float = 60.0,
                           alignment: str | None = None,
                           audit: Mapping[str, tuple[str | os.PathLike[str],
                                                     str | os.PathLike[str]]] | None = None
                           ) -> dict[str, Path]:
    """Write one configuration per party of a federation on this machine (127.0.0.1).

    For demos, tests and benchmarks: every party gets ``FOLDER/NAME.toml``,
    output ``FOLDER/output/NAME`` and checkpoints below it. `certs` is a
    ``vfl certs`` folder, or None for insecure (plaintext) parties. `audit`
    maps a party to its ``(log copy, signing key)`` for its ``[audit]`` table;
    parties it leaves out get none.

    Returns
    -------
    dict of str to Path
        Each party's configuration file.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    b_name, b_file = label_holder
    names = [coordinator, b_name, *(name for name, _ in feature_holders)]
    seeds = dict(seeds or {})
    federation = {"label_holder": b_name, "coordinator": coordinator,
                  "feature_holders": [name for name, _ in feature_holders]}
    if alignment is not None:
        federation["alignment"] = alignment
    plan = {k: v for k, v in training.to_dict().items() if v is not None}
    written = {}
    for name in names:
        role = ("coordinator" if name == coordinator else
                "label_holder" if name == b_name else "feature_holder")
        talks_to = ({b_name, coordinator} if role == "feature_holder"
                    else set(names) - {name})
        document: dict[str, Any] = {
            "role": role, "name": name, "run_id": run_id,
            "listen": f"127.0.0.1:{ports[name]}",
            "output": str(folder / "output" / name),
            "timeout": float(timeout), "connect_timeout": float(connect_timeout),
            "insecure": certs is None,
            "seed": seeds.get(name) if role != "coordinator" else None,
            "peers": {p: f"127.0.0.1:{ports[p]}" for p in names if p in talks_to},
        }
        if certs is not None:
            document["tls"] = {"dir": str(Path(certs).resolve())}
        if role == "label_holder":
            document["data"] = {"file": str(Path(b_file).resolve()), "id_column": id_column,
                                "label_column": label_column}
        elif role == "feature_holder":
            file = dict(feature_holders)[name]
            document["data"] = {"file": str(Path(file).resolve()), "id_column": id_column,
                                "label_column": label_column}
        document["federation"] = federation
        document["training"] = plan
        if role == "coordinator":
            document["keys"] = {"bits": key_bits, "insecure": insecure_key, "backend": backend}
        if audit and name in audit:
            log, key = audit[name]
            document["audit"] = {"log": str(Path(log).resolve()), "key": str(Path(key).resolve())}
        path = folder / f"{name}.toml"
        path.write_text(dump_toml(document), encoding="utf-8")
        written[name] = path
    return written
