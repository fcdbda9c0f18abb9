"""Party configuration files for a whole federation on one machine (127.0.0.1).

For demos, tests and benchmarks, which start every party of a federation as
``vfl party`` processes on loopback: free ports, one TOML file per party. The
files are what :func:`vfl.party_config.load_party_config` reads, written with
the canonical names of the run settings.
"""

from __future__ import annotations

import math
import os
import socket
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vfl.party_config import run_settings_toml
from vfl.runtime.config import RunConfig
from vfl.training import TrainingConfig

if TYPE_CHECKING:
    from parties.binning.config import BinningConfig
    from parties.horizontal.config import HorizontalConfig
    from parties.transfer.config import TransferConfig

__all__ = ["dump_toml", "free_loopback_ports", "write_binning_loopback_configs",
           "write_horizontal_loopback_configs",
           "write_loopback_configs", "write_transfer_loopback_configs"]


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


def free_loopback_ports(names: Iterable[str]) -> dict[str, int]:
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
                           ports: Mapping[str, int],
                           label_holder: tuple[str, str | os.PathLike[str]],
                           feature_holders: list[tuple[str, str | os.PathLike[str]]],
                           id_column: str, label_column: str, training: TrainingConfig,
                           certs: str | os.PathLike[str] | None, coordinator: str = "C",
                           key_bits: int | None = None, insecure_key: bool | None = None,
                           backend: str | None = None, seeds: Mapping[str, int] | None = None,
                           timeout: float | None = None, connect_timeout: float | None = None,
                           alignment: str | None = None,
                           audit: Mapping[str, tuple[str | os.PathLike[str],
                                                     str | os.PathLike[str]]] | None = None
                           ) -> dict[str, Path]:
    """Write one configuration per party of a federation on this machine (127.0.0.1).

    Every party gets ``FOLDER/NAME.toml``, output ``FOLDER/output/NAME`` and
    checkpoints below it. `certs` is a ``vfl certs`` folder, or None for
    parties without TLS (``insecure_transport = true``). The run settings
    (`training`, `key_bits`, ..., `alignment`) are
    :class:`~vfl.runtime.config.RunConfig`'s fields; one left at None gets
    RunConfig's default. `audit` maps a party to its ``(log copy, signing
    key)`` for its ``[audit]`` table; parties it leaves out get none.

    Returns
    -------
    dict of str to Path
        Each party's configuration file.

    Raises
    ------
    ConfigError
        If a run setting is invalid.
    """
    given: dict[str, Any] = {
        "key_bits": key_bits, "insecure_key": insecure_key, "backend": backend,
        "timeout": timeout, "connect_timeout": connect_timeout, "alignment": alignment}
    run = RunConfig(training=training, insecure_transport=certs is None,
                    **{name: value for name, value in given.items() if value is not None})
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    seeds = dict(seeds or {})
    written = {}
    for name, role, talks_to, data in _vertical_parties(coordinator, label_holder,
                                                        feature_holders):
        settings = run_settings_toml(run, role=role)
        top = settings.pop(None, {})
        document = _document(folder, role=role, name=name, run_id=run_id, ports=ports,
                             talks_to=talks_to, certs=certs, top=top,
                             seed=seeds.get(name) if data is not None else None)
        if "training" in top:  # the vertical run's own table
            document["training"] = top["training"]
        if data is not None:
            document["data"] = {"file": str(Path(data).resolve()), "id_column": id_column,
                                "label_column": label_column}
        document["federation"] = {"label_holder": label_holder[0], "coordinator": coordinator,
                                  "feature_holders": [n for n, _ in feature_holders],
                                  **settings.pop("federation", {})}
        for table, keys in settings.items():  # [training], and the coordinator's [keys]
            if table is not None:
                document[table] = keys
        _add_audit(document, name, audit)
        written[name] = _write(folder, name, document)
    return written


def _vertical_parties(coordinator: str, label_holder: tuple[str, str | os.PathLike[str]],
                      feature_holders: list[tuple[str, str | os.PathLike[str]]]
                      ) -> Iterator[tuple[str, str, set[str], str | os.PathLike[str] | None]]:
    """``(name, role, peers it talks to, data file or None)`` of C, B and each A: a feature
    holder talks to B and C, B and C to everyone."""
    b_name, b_file = label_holder
    names = [coordinator, b_name, *(name for name, _ in feature_holders)]
    files = {b_name: b_file, **dict(feature_holders)}
    for name in names:
        role = ("coordinator" if name == coordinator else
                "label_holder" if name == b_name else "feature_holder")
        talks_to = {b_name, coordinator} if role == "feature_holder" else set(names) - {name}
        yield name, role, talks_to, files.get(name)


def _document(folder: Path, *, role: str, name: str, run_id: str, ports: Mapping[str, int],
              talks_to: Iterable[str], certs: str | os.PathLike[str] | None,
              top: Mapping[str, Any], seed: int | None = None) -> dict[str, Any]:
    """The keys every party's file has: role, name, addresses, output, TLS."""
    # [training] is the vertical runs' table; the others have their own.
    top = {key: value for key, value in top.items() if key != "training"}
    document: dict[str, Any] = {
        "role": role, "name": name, "run_id": run_id, "listen": f"127.0.0.1:{ports[name]}",
        "output": str(folder / "output" / name), **top, "seed": seed,
        "peers": {p: f"127.0.0.1:{ports[p]}" for p in sorted(talks_to)}}
    if certs is not None:
        document["tls"] = {"dir": str(Path(certs).resolve())}
    return document


def _add_audit(document: dict[str, Any], name: str,
               audit: Mapping[str, tuple[str | os.PathLike[str],
                                         str | os.PathLike[str]]] | None) -> None:
    """The ``[audit]`` table of party `name`, if `audit` names it."""
    if audit and name in audit:
        log, key = audit[name]
        document["audit"] = {"log": str(Path(log).resolve()), "key": str(Path(key).resolve())}


def _write(folder: Path, name: str, document: Mapping[str, Any]) -> Path:
    path = folder / f"{name}.toml"
    path.write_text(dump_toml(document), encoding="utf-8")
    return path


def write_horizontal_loopback_configs(
        folder: str | os.PathLike[str], *, run_id: str, ports: Mapping[str, int],
        clients: list[tuple[str, str | os.PathLike[str]]], label_column: str,
        features: list[str], config: HorizontalConfig, certs: str | os.PathLike[str] | None,
        server: str = "S", key_holder: str = "C", classes: list[float] | None = None,
        key_bits: int | None = None, insecure_key: bool | None = None,
        backend: str | None = None, timeout: float | None = None,
        connect_timeout: float | None = None, round_timeout: float | None = None,
        audit: Mapping[str, tuple[str | os.PathLike[str], str | os.PathLike[str]]] | None = None
) -> dict[str, Path]:
    """Write the configurations of a horizontal federation on this machine (127.0.0.1).

    As :func:`write_loopback_configs`: ``FOLDER/NAME.toml`` per party, output
    ``FOLDER/output/NAME``. `clients` are ``(name, CSV file)`` in the
    federation's order; `config` is every party's ``[horizontal]`` table;
    the key settings go to the key holder's ``[keys]``; `audit` as there.

    Returns
    -------
    dict of str to Path
        Each party's configuration file.
    """
    given: dict[str, Any] = {"key_bits": key_bits, "insecure_key": insecure_key,
                             "backend": backend, "timeout": timeout,
                             "connect_timeout": connect_timeout}
    run = RunConfig(insecure_transport=certs is None,
                    **{name: value for name, value in given.items() if value is not None})
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    names = [n for n, _ in clients]
    federation = {"kind": "horizontal", "server": server, "key_holder": key_holder,
                  "clients": names, "features": list(features), "classes": classes,
                  "round_timeout": round_timeout}
    written = {}
    for name, role in [(server, "server"), (key_holder, "key_holder"),
                       *((n, "client") for n in names)]:
        settings = run_settings_toml(run, role=role)
        talks_to = ({server, key_holder} if role == "client"
                    else {server, key_holder, *names} - {name})
        document = _document(folder, role=role, name=name, run_id=run_id, ports=ports,
                             talks_to=talks_to, certs=certs, top=settings.pop(None, {}))
        if role == "client":
            document["data"] = {"file": str(Path(dict(clients)[name]).resolve()),
                                "label_column": label_column}
        document["federation"] = federation
        document["horizontal"] = config.to_dict()
        if "keys" in settings:
            document["keys"] = settings["keys"]
        _add_audit(document, name, audit)
        written[name] = _write(folder, name, document)
    return written


def write_transfer_loopback_configs(
        folder: str | os.PathLike[str], *, run_id: str, ports: Mapping[str, int],
        source: tuple[str, str | os.PathLike[str]], target: tuple[str, str | os.PathLike[str]],
        id_column: str, label_column: str, config: TransferConfig,
        certs: str | os.PathLike[str] | None, seeds: Mapping[str, int] | None = None,
        timeout: float | None = None, connect_timeout: float | None = None,
        alignment: str | None = None,
        audit: Mapping[str, tuple[str | os.PathLike[str], str | os.PathLike[str]]] | None = None
) -> dict[str, Path]:
    """Write the configurations of a transfer pair on this machine (127.0.0.1).

    As :func:`write_loopback_configs`; `config` is both parties' ``[transfer]``
    table (key size and engine included), `seeds` each party's ``seed``,
    `audit` each auditing party's ``(log copy, signing key)``.

    Returns
    -------
    dict of str to Path
        Each party's configuration file.
    """
    given: dict[str, Any] = {"timeout": timeout, "connect_timeout": connect_timeout,
                             "alignment": alignment}
    run = RunConfig(insecure_transport=certs is None,
                    **{name: value for name, value in given.items() if value is not None})
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    seeds = dict(seeds or {})
    written = {}
    for (name, file), role, peer in ((source, "source", target[0]),
                                     (target, "target", source[0])):
        settings = run_settings_toml(run, role=role)
        document = _document(folder, role=role, name=name, run_id=run_id, ports=ports,
                             talks_to=[peer], certs=certs, top=settings.pop(None, {}),
                             seed=seeds.get(name))
        document["data"] = {"file": str(Path(file).resolve()), "id_column": id_column,
                            "label_column": label_column}
        document["federation"] = {"kind": "transfer", "source": source[0],
                                  "target": target[0], **settings.get("federation", {})}
        document["transfer"] = config.to_dict()
        _add_audit(document, name, audit)
        written[name] = _write(folder, name, document)
    return written


def write_binning_loopback_configs(
        folder: str | os.PathLike[str], *, run_id: str, ports: Mapping[str, int],
        label_holder: tuple[str, str | os.PathLike[str]],
        feature_holders: list[tuple[str, str | os.PathLike[str]]], id_column: str,
        label_column: str, config: BinningConfig, certs: str | os.PathLike[str] | None,
        coordinator: str = "C", key_bits: int | None = None, insecure_key: bool | None = None,
        backend: str | None = None, timeout: float | None = None,
        connect_timeout: float | None = None, alignment: str | None = None
) -> dict[str, Path]:
    """Write the configurations of a federated binning run on this machine (127.0.0.1).

    As :func:`write_loopback_configs` (the same roles and names), with
    ``[federation] kind = "binning"`` and `config` as every party's
    ``[binning]`` table instead of ``[training]``.

    Returns
    -------
    dict of str to Path
        Each party's configuration file.
    """
    given: dict[str, Any] = {
        "key_bits": key_bits, "insecure_key": insecure_key, "backend": backend,
        "timeout": timeout, "connect_timeout": connect_timeout, "alignment": alignment}
    run = RunConfig(insecure_transport=certs is None,
                    **{name: value for name, value in given.items() if value is not None})
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, role, talks_to, data in _vertical_parties(coordinator, label_holder,
                                                        feature_holders):
        settings = run_settings_toml(run, role=role)
        document = _document(folder, role=role, name=name, run_id=run_id, ports=ports,
                             talks_to=talks_to, certs=certs, top=settings.pop(None, {}))
        if data is not None:
            document["data"] = {"file": str(Path(data).resolve()), "id_column": id_column,
                                "label_column": label_column}
        document["federation"] = {"kind": "binning", "label_holder": label_holder[0],
                                  "coordinator": coordinator,
                                  "feature_holders": [n for n, _ in feature_holders],
                                  **settings.get("federation", {})}
        document["binning"] = config.to_dict()
        if "keys" in settings:
            document["keys"] = settings["keys"]
        written[name] = _write(folder, name, document)
    return written
