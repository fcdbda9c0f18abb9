"""One party's configuration file (TOML), as ``vfl party --config`` reads it.

Every key is checked: an unknown key, a key of another role, a missing or
mistyped one is a :class:`~vfl.errors.ConfigFileError` naming the file and
the key. Relative paths are relative to the file's own folder, so a folder
of configurations, certificates and data can be moved as a whole. The layout
is documented in ``docs/network.md`` and shown by the example configurations
in ``examples/three-parties``.

Four protocol families share the format: vertical (``coordinator``,
``label_holder``, ``feature_holder``), horizontal (``client``, ``server``,
``key_holder``), transfer (``source``, ``target``) and binning (the vertical
role names, with ``[federation] kind = "binning"``). The role names the
family; ``[federation] kind`` may state it too (then it must agree), and
must for binning. The horizontal options are the ``[horizontal]`` table
(HorizontalConfig's fields), the transfer options the ``[transfer]`` table
(TransferConfig's), the binning options the ``[binning]`` table
(BinningConfig's).

The run settings (key size and engine, alignment, timeouts, TLS opt-out, the
``[compute]`` table's executor, the ``[training]`` table) are
:class:`~vfl.runtime.config.RunConfig`'s fields: their keys, tables, old names
and defaults come from its field metadata, not from this module.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload

if sys.version_info >= (3, 11):
    import tomllib
else:  # the same parser, as a package before Python 3.11
    import tomli as tomllib

from vfl.errors import ConfigError, ConfigFileError, InsecureKeyError
from vfl.runtime.config import RunConfig, run_settings, setting_of, setting_problem
from vfl.training import TrainingConfig

if TYPE_CHECKING:  # imported where used: the vertical roles never load these families
    from parties.binning.config import BinningConfig
    from parties.horizontal.config import HorizontalConfig
    from parties.transfer.config import TransferConfig

__all__ = ["KINDS", "ROLES", "HorizontalSpec", "PartyConfig", "TransferSpec",
           "load_party_config", "run_settings_toml"]

#: The roles of each protocol family (``[federation] kind``).
KINDS: dict[str, tuple[str, ...]] = {
    "vertical": ("coordinator", "label_holder", "feature_holder"),
    "horizontal": ("client", "server", "key_holder"),
    "transfer": ("source", "target"),
    # The vertical roles' names: the same parties, binning their columns (docs/binning.md).
    "binning": ("coordinator", "label_holder", "feature_holder"),
}
ROLES = tuple(dict.fromkeys(role for roles in KINDS.values() for role in roles))
#: The family a role names when ``[federation] kind`` does not say (binning must say).
_KIND_OF_ROLE: dict[str, str] = {}
for _kind, _roles in KINDS.items():
    for _role in _roles:
        _KIND_OF_ROLE.setdefault(_role, _kind)
#: The table of run settings only the coordinator's file has (key size and engine).
_COORDINATOR_TABLE = "keys"
_TRAINING_FIELDS = {f.name: f for f in fields(TrainingConfig)}


@dataclass(frozen=True)
class HorizontalSpec:
    """The ``[federation]`` and ``[horizontal]`` tables of a horizontal party.

    Attributes
    ----------
    server, key_holder : str
    clients : tuple of str
        Every client, in the order every party must use (it fixes each
        client's sampling seed).
    features : tuple of str
        The columns every client holds, in model order.
    classes : tuple of float
        Softmax classes (empty for the other models).
    round_timeout : float
        Seconds the server waits for a sampled client's update.
    config : HorizontalConfig
    """

    server: str
    key_holder: str
    clients: tuple[str, ...]
    features: tuple[str, ...]
    classes: tuple[float, ...]
    round_timeout: float
    config: HorizontalConfig

    def peers_of(self, name: str) -> set[str]:
        """Who `name` talks to: clients only to S and C (never to each other)."""
        if name in self.clients:
            return {self.server, self.key_holder}
        return {self.server, self.key_holder, *self.clients} - {name}


@dataclass(frozen=True)
class TransferSpec:
    """The ``[federation]`` and ``[transfer]`` tables of a transfer party."""

    source: str
    target: str
    config: TransferConfig

    def peers_of(self, name: str) -> set[str]:
        return {self.source, self.target} - {name}


@dataclass(frozen=True)
class PartyConfig:
    """What one party needs to run its role over the network.

    Attributes
    ----------
    source : Path
        The configuration file, for messages.
    role : str
        One of :data:`ROLES`.
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
        (CA certificate, own certificate, own key); None when
        ``run.insecure_transport``.
    label_holder, coordinator : str
    feature_holders : tuple of str
        The feature holders' names, in the order every party must use
        (vertical runs; empty strings and an empty tuple in the others).
    run : RunConfig
        The run settings: key size and engine (the coordinator's ``[keys]``;
        defaults at the data parties), alignment, timeouts, the TLS opt-out
        and the training options (identical at every party, checked at the
        start). Also readable one by one: ``key_bits``, ``insecure_key``,
        ``backend``, ``alignment``, ``timeout``, ``connect_timeout``,
        ``insecure`` (the TLS opt-out's old name), ``insecure_transport``,
        ``executor`` (``[compute]``: where this party's heavy work runs),
        ``training``.
    output : Path
        Folder the party's result is written to.
    checkpoints : Path
        Folder of this party's checkpoints.
    data_file, id_column, label_column, features
        The data party's CSV file and columns (None at the coordinator, the
        horizontal server and key holder; a horizontal client has no ID
        column, and its features are ``horizontal.features``).
    weight_column, class_weight, exposure_column
        A vertical label holder's ``[data]`` sample-weight column, ``"balanced"``
        class weights and Poisson exposure column (None: not used; see
        :class:`~parties.LabelHolder`).
    seed : int or None
        Seed of this party's secret randomness (initial weights, batch
        order); None draws it from the OS.
    audit_log, audit_key : Path or None
        From the ``[audit]`` table: this party's own copy of the signed audit
        log and its Ed25519 signing key (``vfl audit keygen``). None: the run
        is not audited (then no party may audit it).
    kind : {"vertical", "horizontal", "transfer", "binning"}
        The protocol family (follows from the role and ``[federation] kind``).
    horizontal : HorizontalSpec or None
        A horizontal party's federation and options.
    transfer : TransferSpec or None
        A transfer party's federation and options.
    binning : BinningConfig or None
        A binning party's options (the ``[binning]`` table).
    """

    source: Path
    role: str
    name: str
    run_id: str
    listen: str
    peers: dict[str, str]
    tls: tuple[Path, Path, Path] | None
    label_holder: str
    coordinator: str
    feature_holders: tuple[str, ...]
    run: RunConfig
    output: Path
    checkpoints: Path
    data_file: Path | None = None
    id_column: str | None = None
    label_column: str | None = None
    features: list[str] | None = None
    weight_column: str | None = None
    class_weight: str | None = None
    exposure_column: str | None = None
    seed: int | None = None
    audit_log: Path | None = None
    audit_key: Path | None = None
    kind: str = "vertical"
    horizontal: HorizontalSpec | None = None
    transfer: TransferSpec | None = None
    binning: BinningConfig | None = None

    @property
    def is_data_party(self) -> bool:
        return self.role not in ("coordinator", "server", "key_holder")

    @property
    def epochs(self) -> int:
        """Epochs (rounds) of the run, whatever its family."""
        if self.horizontal is not None:
            return self.horizontal.config.rounds
        if self.transfer is not None:
            return self.transfer.config.epochs
        if self.kind == "binning":
            return 0
        return self.run.training.epochs

    # The run settings one by one, as the code that runs a party reads them.

    @property
    def key_bits(self) -> int:
        return self.run.key_bits

    @property
    def insecure_key(self) -> bool:
        return self.run.insecure_key

    @property
    def backend(self) -> str:
        return self.run.backend

    @property
    def insecure_plaintext(self) -> bool:
        return self.run.insecure_plaintext

    @property
    def alignment(self) -> str:
        return self.run.alignment

    @property
    def executor(self) -> str:
        return self.run.executor

    @property
    def timeout(self) -> float:
        return self.run.timeout

    @property
    def connect_timeout(self) -> float:
        return self.run.connect_timeout

    @property
    def insecure_transport(self) -> bool:
        return self.run.insecure_transport

    @property
    def insecure(self) -> bool:
        """The TLS opt-out (``run.insecure_transport``), by its first name."""
        return self.run.insecure_transport

    @property
    def training(self) -> TrainingConfig:
        return self.run.training


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

    def resolve(self, value: str) -> Path:
        """A path as written in the file: relative to the file's own folder."""
        return (self.path.resolve().parent / os.path.expanduser(value)).resolve()

    def take_path(self, key: str, default: Any = ..., what: str = "") -> Path:
        return self.resolve(self.take(key, str, default, what))

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

    @overload
    def table_of(self, key: str, *, required: Literal[True] = ...) -> _Reader: ...

    @overload
    def table_of(self, key: str, *, required: bool) -> _Reader | None: ...

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
    top = _Reader(_read_toml(path), "", path, None)
    name, role = _name_and_role(top)
    kind = _stated_kind(top, role)
    run_id = top.take("run_id", str, what="the same run id at every party")
    listen = _address(top, "listen", "host:port this party listens on")
    # The run settings, field by field from RunConfig; `written` keeps the key
    # each was given by (its name or an old alias), for messages.
    settings: dict[str, Any] = {}
    written: dict[str, str] = {}
    defaults = RunConfig()
    _take_run_settings(top, None, settings, written)
    # [compute]: where this party's heavy work runs (any role; its own choice).
    compute = top.table_of("compute", required=False)
    if compute is not None:
        _take_run_settings(compute, "compute", settings, written)
        compute.finish()
    if "connect_timeout" not in settings:
        # Unless given, retrying an unreachable peer never outlasts `timeout`
        # (GrpcEndpoint's own rule).
        settings["connect_timeout"] = min(settings.get("timeout", defaults.timeout),
                                          defaults.connect_timeout)
    insecure = settings.get("insecure_transport", defaults.insecure_transport)
    output = top.take_path("output", what="folder for this party's result")
    checkpoints = top.take_path("checkpoints", str(output / "checkpoints"))
    family: dict[str, Any] = {}
    if kind in ("vertical", "binning"):
        if kind == "binning":
            family["binning"] = _binning(top, name)
            seed = None
        else:
            seed = top.take("seed", int, None)
        label_holder, coordinator, feature_holders = _federation(top, name, role, settings,
                                                                 written, kind)
        everyone = [coordinator, label_holder, *feature_holders]
        needed = ({label_holder, coordinator} if role == "feature_holder"
                  else set(everyone) - {name})
    else:
        # Horizontal and transfer runs: none of the vertical names.
        label_holder, coordinator, feature_holders = "", "", ()
        top.forbid("training", f"is for vertical runs; a {kind} run's options are the "
                               f"[{kind}] table")
        if kind == "horizontal":
            # The sampling and batch-order seed is the shared [horizontal] seed.
            top.forbid("seed", "is not used by a horizontal party: the run's seed is "
                               "[horizontal] seed, the same at every party")
            seed = None
            spec: HorizontalSpec | TransferSpec = _horizontal(top, name, role)
            family["horizontal"] = spec
        else:
            seed = top.take("seed", int, None)
            spec = _transfer(top, name, role, settings, written)
            family["transfer"] = spec
        needed = spec.peers_of(name)
    peers_table = top.table_of("peers")
    peers = {peer: _address(peers_table, peer, f"host:port of {peer}")
             for peer in sorted(needed)}
    peers_table.finish()
    tls = _tls(top, name, insecure, written)
    training = (_training_config(top.table_of("training", required=False), path, name)
                if kind == "vertical" else TrainingConfig())
    if kind != "binning":
        top.forbid("binning", f"is for binning runs ([federation] kind = \"binning\"), not "
                              f"{kind} ones")
    values = {**_audit_files(top, name), **_data_or_keys(top, role, settings, written)}
    top.finish()
    try:
        run = RunConfig(**settings, training=training)
    except ConfigError as exc:  # each value was checked where it was read; a backstop
        raise ConfigFileError(f"{path}: {exc}", party=name) from None
    return PartyConfig(
        source=path, role=role, name=name, run_id=run_id, listen=listen, peers=peers,
        tls=tls, label_holder=label_holder, coordinator=coordinator,
        feature_holders=feature_holders, run=run, output=output, checkpoints=checkpoints,
        seed=seed, kind=kind, **family, **values)


def _address(reader: _Reader, key: str, what: str) -> str:
    """A ``host:port`` value with a real port (1-65535): never silently another one."""
    value = reader.take(key, str, what=what)
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise reader.fail(key, f"must be host:port with a port from 1 to 65535, got {value!r}")
    return value


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigFileError(f"configuration file {path} does not exist") from None
    except OSError as exc:
        raise ConfigFileError(f"cannot read configuration file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigFileError(f"{path} is not valid TOML: {exc}") from None


def _name_and_role(top: _Reader) -> tuple[str, str]:
    from vfl.net.certs import check_party_name

    name = top.take("name", str, what="this party's name, e.g. A1, B or C")
    top.party = name
    try:
        check_party_name(name)
    except ValueError as exc:
        raise top.fail("name", str(exc)) from None
    role = top.take("role", str, what=f"one of {', '.join(ROLES)}")
    if role not in ROLES:
        raise top.fail("role", f"must be one of {', '.join(ROLES)}, got {role!r}")
    return name, role


def _federation(top: _Reader, name: str, role: str, settings: dict[str, Any],
                written: dict[str, str], kind: str = "vertical"
                ) -> tuple[str, str, tuple[str, ...]]:
    """The [federation] table: every party's name (this one's among them) and its settings."""
    federation = _federation_table(top, kind, role)
    label_holder = federation.take("label_holder", str, "B")
    coordinator = federation.take("coordinator", str, "C")
    feature_holders = tuple(federation.strings("feature_holders", ...) or ())
    _take_run_settings(federation, "federation", settings, written)
    federation.finish()
    _names_of(top, name, role, {"coordinator": coordinator, "label_holder": label_holder},
              {"feature_holders": feature_holders})
    return label_holder, coordinator, feature_holders


def _stated_kind(top: _Reader, role: str) -> str:
    """The family: ``[federation] kind`` where it names one of the role's families, else the
    role's first (a wrong kind is refused, naming the key, when the table is read)."""
    federation = top.table.get("federation")
    stated = federation.get("kind") if isinstance(federation, dict) else None
    if stated in KINDS and role in KINDS[stated]:
        return str(stated)
    return _KIND_OF_ROLE[role]


def _binning(top: _Reader, name: str) -> BinningConfig:
    """A binning party's [binning] table; the vertical run's tables are refused."""
    from parties.binning.config import BinningConfig

    top.forbid("training", "is for vertical training runs; a binning run's options are the "
                           "[binning] table")
    top.forbid("seed", "is not used by a binning party (nothing it draws may be predictable)")
    top.forbid("audit", "is not supported for binning runs yet")
    return _options_table(top.table_of("binning", required=False), BinningConfig, top.path,
                          name)


def _federation_table(top: _Reader, kind: str, role: str) -> _Reader:
    """The [federation] table, its optional ``kind`` checked against the role's family."""
    federation = top.table_of("federation")
    stated = federation.take("kind", str, kind, f"one of {', '.join(KINDS)}")
    if stated not in KINDS:
        raise federation.fail("kind", f"must be one of {', '.join(KINDS)}, got {stated!r}")
    if stated != kind:
        raise federation.fail("kind", f"is {stated!r} but role {role!r} is a {kind} role (the "
                                      f"{stated} roles are {', '.join(KINDS[stated])})")
    return federation


def _names_of(top: _Reader, name: str, role: str,
              names: dict[str, str], groups: dict[str, tuple[str, ...]]) -> None:
    """Every party's name distinct, and this party's name where its role says."""
    everyone = [*names.values(), *(n for group in groups.values() for n in group)]
    if len(set(everyone)) != len(everyone):
        raise ConfigFileError(f"{top.path}: [federation] names {everyone}: every "
                              "party needs its own name", party=name)
    own = names.get(role)
    if own is not None and own != name:
        raise ConfigFileError(f"{top.path}: this party is {name!r} ({role}) but "
                              f"federation.{role} does not name it", party=name)
    for key, group in groups.items():
        if key == role + "s" and name not in group:
            raise ConfigFileError(f"{top.path}: this party is {name!r} ({role}) but "
                                  f"federation.{key} does not name it", party=name)


def _horizontal(top: _Reader, name: str, role: str) -> HorizontalSpec:
    """[federation] (the parties, columns, classes) and [horizontal] (the options)."""
    from parties.horizontal.config import HorizontalConfig

    federation = _federation_table(top, "horizontal", role)
    server = federation.take("server", str, "S")
    key_holder = federation.take("key_holder", str, "C")
    clients = tuple(federation.strings("clients") or ())
    features = tuple(federation.strings("features") or ())
    classes = federation.take("classes", list, None)
    if classes is not None and (len(classes) < 2 or not all(
            isinstance(c, (int, float)) and not isinstance(c, bool) for c in classes)):
        raise federation.fail("classes", f"must be a list of two or more numbers, got "
                                         f"{classes!r}")
    round_timeout = federation.take("round_timeout", float, 600.0)
    if not round_timeout > 0:
        raise federation.fail("round_timeout", f"must be > 0, got {round_timeout}")
    federation.forbid("alignment", "is for vertical and transfer runs: horizontal clients "
                                   "hold different rows of the same columns, nothing is "
                                   "aligned")
    federation.finish()
    if len(clients) < 2:
        raise federation.fail("clients", f"must name two or more clients, got {list(clients)}")
    _names_of(top, name, role, {"server": server, "key_holder": key_holder},
              {"clients": clients})
    config = _options_table(top.table_of("horizontal", required=False), HorizontalConfig,
                            top.path, name)
    with_classes = config.model in ("softmax", "mlp")
    if with_classes and classes is None:
        raise federation.fail("classes", f"is missing: a {config.model} model needs the "
                                         "classes, the same list at every party")
    return HorizontalSpec(
        server=server, key_holder=key_holder, clients=clients, features=features,
        classes=tuple(float(c) for c in classes or ()) if with_classes else (),
        round_timeout=round_timeout, config=config)


def _transfer(top: _Reader, name: str, role: str, settings: dict[str, Any],
              written: dict[str, str]) -> TransferSpec:
    """[federation] (the two parties, the alignment) and [transfer] (the options)."""
    from parties.transfer.config import TransferConfig

    federation = _federation_table(top, "transfer", role)
    source = federation.take("source", str, "A")
    target = federation.take("target", str, "B")
    _take_run_settings(federation, "federation", settings, written)  # alignment
    federation.finish()
    _names_of(top, name, role, {"source": source, "target": target}, {})
    config = _options_table(top.table_of("transfer", required=False), TransferConfig,
                            top.path, name)
    return TransferSpec(source=source, target=target, config=config)


def _tls(top: _Reader, name: str, insecure: bool,
         written: dict[str, str]) -> tuple[Path, Path, Path] | None:
    """CA, certificate and key from [tls] (given, or a `vfl certs` folder); None without TLS."""
    tls_table = top.table_of("tls", required=not insecure)
    if insecure:
        if tls_table is not None:
            raise ConfigFileError(f"{top.path}: {written['insecure_transport']} = "
                                  "true and a [tls] table: choose one", party=name)
        return None
    assert tls_table is not None
    folder = tls_table.take("dir", str, None)
    # CA, certificate, key: required (...) unless a `vfl certs` folder gives them.
    tls_defaults: tuple[Any, Any, Any] = (..., ..., ...)
    if folder is not None:
        from vfl.net.certs import CA_CERT_FILE, party_files

        where = top.resolve(folder)
        tls_defaults = (where / CA_CERT_FILE, *party_files(where, name))
    ca = tls_table.take("ca", str, tls_defaults[0], "the federation CA's certificate")
    cert = tls_table.take("cert", str, tls_defaults[1], "this party's certificate")
    key = tls_table.take("key", str, tls_defaults[2], "this party's private key")
    tls_table.finish()
    return top.resolve(str(ca)), top.resolve(str(cert)), top.resolve(str(key))


def _audit_files(top: _Reader, name: str) -> dict[str, Path]:
    """The optional [audit] table: this party's log copy and signing key."""
    audit = top.table_of("audit", required=False)
    if audit is None:
        return {}
    values = {
        "audit_log": audit.take_path("log", what="this party's own copy of the audit log, e.g. "
                                            "audit.jsonl"),
        "audit_key": audit.take_path("key", what=f"this party's signing key from 'vfl audit "
                                            f"keygen --party {name}'")}
    audit.finish()
    return values


#: The roles that make the Paillier key pair (and may have a [keys] table).
_KEY_ROLES = ("coordinator", "key_holder")
#: The roles without data: no [data] table.
_DATALESS_ROLES = ("coordinator", "server", "key_holder")


def _data_or_keys(top: _Reader, role: str, settings: dict[str, Any],
                  written: dict[str, str]) -> dict[str, Any]:
    """[data] at a data party (its file and columns); [keys] at the key's maker."""
    data = top.table_of("data", required=role not in _DATALESS_ROLES)
    if role in _DATALESS_ROLES:
        if data is not None:
            raise ConfigFileError(f"{top.path}: [data] is for the data parties; the "
                                  f"{role.replace('_', ' ')} holds no data", party=top.party)
        if role in _KEY_ROLES:
            keys = top.table_of(_COORDINATOR_TABLE, required=False)
            if keys is not None:
                _take_run_settings(keys, _COORDINATOR_TABLE, settings, written)
                keys.finish()
        else:
            top.forbid(_COORDINATOR_TABLE, "is the key holder's table ([keys]: key size and "
                                           "engine)")
        top.forbid("seed", f"is for the data parties (the {role.replace('_', ' ')}'s key is "
                           "always fresh)")
        return {}
    kind = _KIND_OF_ROLE[role]
    top.forbid(_COORDINATOR_TABLE, {
        "vertical": "is the coordinator's table ([keys]: key size and engine)",
        "horizontal": "is the key holder's table ([keys]: key size and engine)",
        "transfer": "is not used by a transfer party: each party's key size and engine are "
                    "[transfer] key_bits and backend, the same at both"}[kind])
    assert data is not None
    file = data.take_path("file", what="this party's CSV file")
    if role == "client":
        # The feature columns are [federation] features, the same at every party.
        values: dict[str, Any] = {
            "data_file": file, "label_column": data.take("label_column", str,
                                                         what="the label column")}
    else:
        labelled = role in ("label_holder", "source")
        values = {
            "data_file": file,
            "id_column": data.take("id_column", str),
            "label_column": data.take("label_column", str, ... if labelled else None,
                                      "the label column" if labelled else "")}
        if kind in ("vertical", "binning"):
            values["features"] = data.strings("features", None)
        if kind == "vertical":
            # The label holder's own row data (docs/poisson.md): never sent anywhere.
            for key in _ROW_KEYS:
                if role != "label_holder":
                    data.forbid(key, "is the label holder's (B's weights and exposure are "
                                     "its own row data)")
                values[key] = data.take(key, str, None)
            if values["class_weight"] not in (None, "balanced"):
                raise data.fail("class_weight", f"must be \"balanced\", got "
                                                f"{values['class_weight']!r}")
    data.finish()
    return values


#: [data] keys of a vertical label holder: its weight, class-weight and exposure options.
_ROW_KEYS = ("weight_column", "class_weight", "exposure_column")


def _take_run_settings(reader: _Reader, table: str | None, settings: dict[str, Any],
                       written: dict[str, str]) -> None:
    """Take the run settings that live in `table` (None: top level) out of `reader`.

    Keys, old names, types and checks come from RunConfig's fields; the
    ``[training]`` table is read by :func:`_training_config`. Each value goes
    to `settings` under its field's name and, once the table is read (the key
    size depends on the small-key opt-out beside it), is checked, so a
    message names the key the file used.
    """
    taken = []
    for item in run_settings("toml"):
        setting = setting_of(item)
        if setting.table != table or item.name == "training":
            continue
        given = [key for key in (setting.key, *setting.aliases) if key in reader.table]
        if len(given) > 1:
            raise reader.fail(given[1], f"and {reader.prefix}{setting.key} are the same setting "
                                        f"({given[1]} is its old name): keep only "
                                        f"{setting.key}")
        written[item.name] = given[0] if given else setting.key
        if given:
            settings[item.name] = reader.take(given[0], type(item.default))
            taken.append(item.name)
    for name in taken:
        problem = setting_problem(name, settings[name],
                                  insecure_key=settings.get("insecure_key") is True)
        if problem is not None:
            raise reader.fail(written[name], problem)


def run_settings_toml(run: RunConfig, *, role: str) -> dict[str | None, dict[str, Any]]:
    """The keys that give a party of `role` the settings `run`, by table (None: top level).

    The inverse of what :func:`load_party_config` reads, by the canonical
    names: the ``[keys]`` table goes to the coordinator (or horizontal key holder) alone, and
    ``training`` is the ``[training]`` table (a full batch, None, left out).
    """
    tables: dict[str | None, dict[str, Any]] = {}
    for item in run_settings("toml"):
        setting = setting_of(item)
        if setting.table == _COORDINATOR_TABLE and role not in _KEY_ROLES:
            continue
        value = getattr(run, item.name)
        if isinstance(value, TrainingConfig):
            value = {k: v for k, v in value.to_dict().items() if v is not None}
        tables.setdefault(setting.table, {})[setting.key] = value
    return tables


def _training_config(table: _Reader | None, path: Path, party: str) -> TrainingConfig:
    """The [training] table as a TrainingConfig: its keys are TrainingConfig's fields."""
    return _options_table(table, TrainingConfig, path, party)


_Options = TypeVar("_Options")


def _options_table(table: _Reader | None, options_type: type[_Options], path: Path,
                   party: str) -> _Options:
    """A table of a frozen options dataclass ([training], [horizontal], [transfer]).

    Its keys are the dataclass's fields; ``batch_size = "full"`` is None (a
    full batch); the dataclass checks the values, and its message is
    prefixed with the file and the table.
    """
    if table is None:
        return options_type()
    known = {f.name: f for f in fields(options_type)}  # type: ignore[arg-type]
    what = table.prefix.rstrip(".")
    options: dict[str, Any] = {}
    for key in list(table.table):
        if key not in known:
            raise table.fail(key, f"is not a {what} parameter; the parameters are "
                                  f"{', '.join(known)}")
        value = table.table.pop(key)
        if key == "batch_size" and value == "full":
            value = None
        default = known[key].default
        if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if isinstance(default, bool) and not isinstance(value, bool):
            raise table.fail(key, f"must be true or false, got {value!r}")
        options[key] = value
    try:
        return options_type(**options)
    except (ConfigError, InsecureKeyError, TypeError) as exc:
        raise ConfigFileError(f"{path}: [{what}]: {exc}", party=party) from None
