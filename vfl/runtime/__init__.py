"""The federation runtime: what every run of every protocol shares.

- :mod:`vfl.runtime.config`: :class:`RunConfig`, the run's settings, and how each
  surface (CLI, party file, estimator) carries them;
- :mod:`vfl.runtime.session`: :class:`Session`, the lifecycle of one party's run;
- :mod:`vfl.runtime.role`: :class:`Role`, what a protocol's role implements;
- :mod:`vfl.runtime.state` and :mod:`vfl.runtime.checkpoint`: a role's saved state
  and the checkpoints that hold exactly it;
- :mod:`vfl.runtime.inprocess`: every party of a run as a thread of one process;
- :mod:`vfl.runtime.loopback`: party files for a federation on this machine.

See ``docs/runtime.md``.
"""

from vfl.runtime.checkpoint import CheckpointStore
from vfl.runtime.config import RunConfig
from vfl.runtime.inprocess import run_parties
from vfl.runtime.role import Role
from vfl.runtime.session import Session
from vfl.runtime.state import RoleState

__all__ = ["CheckpointStore", "Role", "RoleState", "RunConfig", "Session", "run_parties"]
