"""Run settings: one typed object, read from every door a setting comes in by.

A run's settings (key size, Paillier engine, alignment method, timeouts, TLS,
the training options) reach the library through three surfaces: the flags of
``vfl simulate`` (``cli``), a party's configuration file for ``vfl party``
(``toml``) and the keywords of the notebook estimators (``estimator``).
:class:`RunConfig` is the one definition of them: each field carries, in its
metadata, a :class:`Setting` that says which surfaces carry it, under which
TOML table and key, and which old TOML names are still accepted. The
surfaces derive their flags, keys, keywords and defaults from these fields
(:mod:`vfl.cli.options`, :mod:`vfl.party_config`, :mod:`parties.vertical.estimators`),
so a default is defined once and a setting has one name everywhere.

The training options are :class:`~vfl.training.TrainingConfig`'s fields,
carried by every surface: flags of their own, the ``[training]`` table,
keywords of their own (the estimator's class gives ``model``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import Field, dataclass, field, fields, replace
from typing import Any

from vfl.cluster.setting import LOCAL, executor_problem
from vfl.crypto import (
    DEFAULT_BACKEND,
    DEFAULT_KEY_BITS,
    MIN_SECURE_KEY_BITS,
    available_backends,
    check_key_bits,
)
from vfl.crypto.plain_engine import PLAIN_BACKEND
from vfl.errors import ConfigError, InsecureKeyError
from vfl.protocol.channel import DEFAULT_TIMEOUT_S
from vfl.psi import ALIGNMENT_METHODS, DEFAULT_ALIGNMENT
from vfl.training import TrainingConfig

__all__ = [
    "SURFACES",
    "RunConfig",
    "Setting",
    "run_settings",
    "setting_of",
    "setting_problem",
]

#: Where settings come in: ``vfl simulate`` flags, a ``vfl party`` configuration
#: file, keywords of ``VerticalLinearRegression``/``VerticalLogisticRegression``.
SURFACES = ("cli", "toml", "estimator")

#: Seconds a party keeps retrying a peer it cannot reach. The same value as
#: ``vfl.net.grpc_endpoint.DEFAULT_CONNECT_TIMEOUT_S`` (GrpcEndpoint's own
#: default, for Python callers); not imported from there, because that module
#: loads gRPC, which the in-process surfaces never need.
_DEFAULT_CONNECT_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Setting:
    """How one :class:`RunConfig` field appears on each surface.

    Attributes
    ----------
    help : str
        What the setting means, for ``--help``.
    surfaces : frozenset of str
        The surfaces (see :data:`SURFACES`) that carry it.
    table : str or None
        TOML table holding its key; None for the top level of the file.
    key : str
        Its TOML key (the setting's name: one name everywhere).
    aliases : tuple of str
        Old TOML keys in the same table, still accepted for files written for
        an earlier release; giving an alias and the key together is an error.
    choices : callable or None
        The allowed values (a callable, because the Paillier engines depend
        on what is installed).
    metavar : str or None
        Placeholder of the value in ``--help``.
    """

    help: str
    surfaces: frozenset[str]
    table: str | None
    key: str
    aliases: tuple[str, ...] = ()
    choices: Callable[[], list[str]] | None = None
    metavar: str | None = None


def _meta(help: str, surfaces: str, *, table: str | None = None,
          aliases: tuple[str, ...] = (), choices: Callable[[], list[str]] | None = None,
          metavar: str | None = None) -> dict[str, Setting]:
    """A field's metadata: its :class:`Setting`; `surfaces` is a space-separated list.

    The TOML key is left to :func:`setting_of`, which fills in the field's
    name: one name everywhere.
    """
    carried = frozenset(surfaces.split())
    assert carried <= set(SURFACES), f"unknown surfaces {sorted(carried - set(SURFACES))}"
    return {"setting": Setting(help, carried, table, "", aliases, choices, metavar)}


def _alignment_methods() -> list[str]:
    return sorted(ALIGNMENT_METHODS)


@dataclass(frozen=True)
class RunConfig:
    """Every setting of one federated run, checked when it is made.

    Parameters
    ----------
    key_bits : int
        Size in bits of the coordinator's Paillier modulus.
    insecure_key : bool
        The small-key opt-out: allow keys below 2048 bits, which can be
        factored (tests only). It does not touch the transport.
    backend : str
        Paillier engine (:func:`vfl.crypto.available_backends`).
    insecure_plaintext : bool
        The encryption opt-out: allow ``backend="plain"``, which runs the
        same protocol with every value in the clear (debugging only). Every
        party of a networked run must set it, or it refuses the key holder.
    alignment : str
        Private alignment method (:data:`vfl.psi.ALIGNMENT_METHODS`).
    timeout : float
        Seconds a party waits for a peer's next message.
    connect_timeout : float
        Seconds a party keeps retrying a peer it cannot reach (networked
        parties only).
    insecure_transport : bool
        The TLS opt-out: networked parties talk without TLS, unencrypted and
        unauthenticated (a trusted test machine only). It does not touch the
        key size.
    executor : str
        Where this party's heavy public work runs (encryption, ciphertext
        arithmetic, alignment hashing): ``"local"`` (its own process pool),
        ``"dask://HOST:PORT"``, ``"ray://HOST:PORT"`` or ``"ray:auto"``, a
        cluster inside the party's trust boundary (:mod:`vfl.cluster`,
        ``docs/cluster.md``). Decryption stays local. Each party's own choice.
    training : TrainingConfig
        The training options, identical at every party.

    Raises
    ------
    ConfigError
        If a setting is invalid; the message starts with the field's name.
    """

    key_bits: int = field(default=DEFAULT_KEY_BITS, metadata=_meta(
        "Paillier key size in bits; below 2048 needs insecure_key (--insecure-key)",
        "cli toml estimator", table="keys", aliases=("bits",), metavar="BITS"))
    insecure_key: bool = field(default=False, metadata=_meta(
        "allow keys below 2048 bits (factorable: tests only); does not turn off TLS",
        "cli toml estimator", table="keys", aliases=("insecure",)))
    backend: str = field(default=DEFAULT_BACKEND, metadata=_meta(
        "Paillier engine", "cli toml estimator", table="keys", choices=available_backends))
    insecure_plaintext: bool = field(default=False, metadata=_meta(
        "allow backend 'plain': the same protocol with nothing encrypted (debugging only; "
        "every party must set it)", "cli toml estimator", table="keys"))
    alignment: str = field(default=DEFAULT_ALIGNMENT, metadata=_meta(
        "private alignment method", "cli toml estimator", table="federation",
        choices=_alignment_methods))
    timeout: float = field(default=DEFAULT_TIMEOUT_S, metadata=_meta(
        "seconds a party waits for a peer's next message", "cli toml estimator",
        metavar="SECONDS"))
    connect_timeout: float = field(default=_DEFAULT_CONNECT_TIMEOUT_S, metadata=_meta(
        "seconds a party keeps retrying a peer it cannot reach (in a party file, at most "
        "`timeout` unless given)", "toml", metavar="SECONDS"))
    insecure_transport: bool = field(default=False, metadata=_meta(
        "no TLS at all: messages travel unencrypted and unauthenticated (a trusted test "
        "machine only); does not allow small keys", "toml", aliases=("insecure",)))
    executor: str = field(default=LOCAL, metadata=_meta(
        "where this party's heavy work (encryption, X^T[[d]], alignment hashing) runs: local "
        "(its own process pool), or a cluster it operates: dask://HOST:PORT, ray://HOST:PORT, "
        "ray:auto (see docs/cluster.md); decryption stays local", "cli toml estimator",
        table="compute", metavar="local|dask://HOST:PORT|ray://HOST:PORT|ray:auto"))
    training: TrainingConfig = field(default_factory=TrainingConfig, metadata=_meta(
        "the training options, identical at every party", "cli toml estimator"))

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            problem = setting_problem(item.name, value, insecure_key=self.insecure_key is True)
            if problem is not None:
                raise ConfigError(f"{item.name} {problem}")
            if isinstance(item.default, float) and not isinstance(value, float):
                # 600 in a file or a keyword means 600.0: one type per field.
                object.__setattr__(self, item.name, float(value))
        if self.backend == PLAIN_BACKEND and not self.insecure_plaintext:
            raise ConfigError(
                "backend 'plain' encrypts nothing: it needs insecure_plaintext "
                "(--insecure-plaintext, [keys] insecure_plaintext = true) at every party, "
                "for debugging only")


def setting_of(item: Field[Any]) -> Setting:
    """The :class:`Setting` of a :class:`RunConfig` field."""
    setting: Setting = item.metadata["setting"]
    return setting if setting.key else replace(setting, key=item.name)


def run_settings(surface: str | None = None) -> list[Field[Any]]:
    """:class:`RunConfig`'s fields, in order; only those `surface` carries if given."""
    if surface is not None and surface not in SURFACES:
        raise ValueError(f"unknown surface {surface!r}; the surfaces are {', '.join(SURFACES)}")
    return [item for item in fields(RunConfig)
            if surface is None or surface in setting_of(item).surfaces]


def setting_problem(name: str, value: object, *, insecure_key: bool = False) -> str | None:
    """What is wrong with `value` for the :class:`RunConfig` field `name`, or None.

    The text follows the setting's name in a message ("timeout must be ..."),
    so each surface can name the setting its own way (a flag, a TOML key).
    `insecure_key` is the run's small-key opt-out, which `key_bits` depends on.
    """
    item = {f.name: f for f in fields(RunConfig)}[name]
    default = item.default
    setting = setting_of(item)
    if name == "training":
        if not isinstance(value, TrainingConfig):
            return f"must be a TrainingConfig, got {type(value).__name__}"
    elif isinstance(default, bool):
        if not isinstance(value, bool):
            return f"must be true or false, got {value!r}"
    elif isinstance(default, int):
        if not isinstance(value, int) or isinstance(value, bool):
            return f"must be an integer, got {value!r}"
    elif isinstance(default, float):
        # The float settings are durations: the timeouts.
        if (not isinstance(value, (int, float)) or isinstance(value, bool)
                or not (math.isfinite(value) and value > 0)):
            return f"must be a positive number of seconds, got {value!r}"
    elif isinstance(default, str):
        allowed = setting.choices() if setting.choices is not None else None
        if not isinstance(value, str) or (allowed is not None and value not in allowed):
            return (f"must be one of {', '.join(allowed)}, got {value!r}" if allowed
                    else f"must be a string, got {value!r}")
    if name == "executor":
        return executor_problem(value)
    if name == "key_bits":
        assert isinstance(value, int)
        try:
            check_key_bits(value, insecure=insecure_key)
        except InsecureKeyError:
            return (f"is {value}: a key that small can be factored; use at least "
                    f"{MIN_SECURE_KEY_BITS} bits, or set insecure_key (--insecure-key, "
                    "[keys] insecure_key = true) for tests only")
        except ValueError as exc:
            # check_key_bits names the field itself ("key_bits must be ...").
            return str(exc).removeprefix("key_bits ")
    return None
