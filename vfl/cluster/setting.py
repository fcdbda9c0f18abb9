"""The ``executor`` setting: where a party's heavy work runs, as text.

``"local"`` (the default) is the party's own process pool; ``"dask://HOST:PORT"``
a Dask scheduler; ``"ray://HOST:PORT"`` a Ray cluster's client server (Ray
Client, port 10001 by default); ``"ray:auto"`` the Ray cluster this machine
belongs to (started with ``ray start``), or the Ray instance this process
already connected to (``ray.init``). Parsing needs neither Dask nor Ray.
"""

from __future__ import annotations

from dataclasses import dataclass

from vfl.errors import ConfigError

__all__ = ["ENGINES", "LOCAL", "ExecutorSetting", "executor_problem", "parse_executor"]

#: The default: the local process pool, nothing to start.
LOCAL = "local"

#: The cluster engines a setting may name.
ENGINES = ("dask", "ray")

_FORMS = "local, dask://HOST:PORT, ray://HOST:PORT or ray:auto"


@dataclass(frozen=True)
class ExecutorSetting:
    """A parsed ``executor`` setting.

    Attributes
    ----------
    engine : {"local", "dask", "ray"}
    host : str or None
        The scheduler's (Dask) or client server's (Ray) host; None for
        ``local`` and ``ray:auto``.
    port : int or None
    """

    engine: str
    host: str | None = None
    port: int | None = None

    def __str__(self) -> str:
        if self.engine == LOCAL:
            return LOCAL
        if self.host is None:
            return f"{self.engine}:auto"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.engine}://{host}:{self.port}"

    @property
    def is_local(self) -> bool:
        return self.engine == LOCAL

    @property
    def address(self) -> str:
        """The address in the engine's own spelling (``tcp://h:p``, ``ray://h:p``, ``auto``)."""
        if self.host is None:
            return "auto"
        host = f"[{self.host}]" if ":" in self.host else self.host
        scheme = "tcp" if self.engine == "dask" else self.engine
        return f"{scheme}://{host}:{self.port}"


def parse_executor(text: str) -> ExecutorSetting:
    """Read an ``executor`` setting.

    Raises
    ------
    ConfigError
        If `text` is none of the forms, naming them.
    """
    problem = executor_problem(text)
    if problem is not None:
        raise ConfigError(f"executor {problem}")
    if text == LOCAL:
        return ExecutorSetting(LOCAL)
    if text == "ray:auto":
        return ExecutorSetting("ray")
    engine, _, rest = text.partition("://")
    host, _, port = rest.rpartition(":")
    return ExecutorSetting(engine, host.strip("[]"), int(port))


def executor_problem(value: object) -> str | None:
    """What is wrong with `value` as an ``executor`` setting, or None.

    The text follows the setting's name in a message ("executor must be ...").
    """
    if not isinstance(value, str):
        return f"must be {_FORMS} (text), got {value!r}"
    if value in (LOCAL, "ray:auto"):
        return None
    engine, sep, rest = value.partition("://")
    if not sep or engine not in ENGINES:
        return f"must be {_FORMS}, got {value!r}"
    host, _, port = rest.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if (not host or "/" in host or any(c.isspace() for c in host) or not port.isdigit()
            or not 1 <= int(port) <= 65535):
        return (f"must be {engine}://HOST:PORT with a port from 1 to 65535, got {value!r}")
    return None
