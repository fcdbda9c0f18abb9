"""Per-party checkpoints, so that a federation survives a party that dies.

Each party saves its own state after every epoch into its own folder; nothing
is shared. A file ``PARTY-epoch-000007.json`` holds the state right after
epoch 7 (epoch 0: right before the first epoch), and an *identity*: the run
id, the party, the training configuration and, at a data party, fingerprints
of its data and of its aligned rows. A checkpoint whose identity differs from
the running party's is refused with :class:`~vfl.errors.CheckpointError`,
never used.

Parties can stop one epoch apart (C may have finished epoch 7 while B died
in it), so each keeps its last two checkpoints. On restart every party tells
the label holder which epochs it holds and B picks the latest one all hold
(:func:`agree_resume_epoch`). Every epoch is self-contained (C may make a
fresh key, alignment is deterministic), so training from that epoch on ends
with the weights of an uninterrupted run.

File format ``vfl-checkpoint/2``: a JSON object with ``format``, ``party``,
``run_id``, ``epoch``, ``layout``, ``identity``, ``state`` and ``sha256``,
the SHA-256 of the object's other keys as sorted, compact JSON, so a damaged
file is found even where it still parses. ``state`` is the role's state
dataclass (:mod:`vfl.runtime.state`) and ``layout`` names it; a file of the
older ``vfl-checkpoint/1`` format (loose dicts), or of another layout, is
refused by name, never half-read. Files are written with
:func:`vfl.files.atomic_write_text` (temporary file, fsync, rename), so a
crash leaves the old file or the new one, never half of one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Generic, TypeVar

from vfl.errors import CheckpointError
from vfl.files import atomic_write_text, sync_folder
from vfl.runtime.state import RoleState, state_from_json, state_to_json

__all__ = ["CHECKPOINT_FORMAT", "CheckpointStore", "agree_resume_epoch"]

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "vfl-checkpoint/2"
#: Formats this version recognises but cannot resume (their state was a loose dict).
OLDER_FORMATS = ("vfl-checkpoint/1",)
#: Checkpoints kept per party: parties can be one epoch apart.
KEEP = 2


def _digest(record: Mapping[str, Any]) -> str:
    text = json.dumps(record, sort_keys=True, separators=(",", ":"), allow_nan=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


S = TypeVar("S", bound=RoleState)


class CheckpointStore(Generic[S]):
    """One party's checkpoint folder, holding states of one type.

    Parameters
    ----------
    folder : path-like
        Where this party's checkpoints live (created on first save). Give each
        party its own folder, or at least its own name.
    party : str
        The party's name; only its files are read.
    run_id : str
        The federation run; checkpoints of another run are refused.
    state_type : type
        The role's state dataclass (a :class:`~vfl.runtime.state.RoleState`
        with a ``LAYOUT``); a checkpoint of another layout is refused.

    Notes
    -----
    Call :meth:`scan` with the party's identity first, then :meth:`load` the
    epoch the federation agreed on (or none) and :meth:`save` after every
    epoch.
    """

    def __init__(self, folder: str | os.PathLike[str], *, party: str, run_id: str,
                 state_type: type[S]) -> None:
        if not run_id:
            raise CheckpointError("a checkpoint store needs a non-empty run id", party=party)
        if not state_type.LAYOUT:
            raise TypeError(f"{state_type.__name__} names no LAYOUT")
        self.folder = Path(folder)
        self.party = party
        self.run_id = run_id
        self.state_type = state_type
        self._identity: dict[str, Any] | None = None
        self._usable: dict[int, S] = {}
        #: Damaged files found by :meth:`scan`: epoch -> reason (naming the file).
        self.damaged: dict[int, str] = {}
        #: Called as ``on_state(epoch, state)`` whenever a state is loaded or
        #: saved (e.g. to notice the last epoch).
        self.on_state: Callable[[int, S], None] | None = None

    def __repr__(self) -> str:
        return f"CheckpointStore({str(self.folder)!r}, party={self.party!r}, run={self.run_id!r})"

    def path(self, epoch: int) -> Path:
        """File of the checkpoint after `epoch`."""
        return self.folder / f"{self.party}-epoch-{epoch:06d}.json"

    def _files(self) -> dict[int, Path]:
        pattern = re.compile(rf"{re.escape(self.party)}-epoch-(\d{{6}})\.json")
        if not self.folder.is_dir():
            return {}
        found = {}
        for entry in self.folder.iterdir():
            match = pattern.fullmatch(entry.name)
            if match:
                found[int(match.group(1))] = entry
        return found

    # --- reading ------------------------------------------------------------------

    def scan(self, identity: Mapping[str, Any]) -> list[int]:
        """The epochs this party can resume from, checked against its identity.

        Parameters
        ----------
        identity : mapping
            What must not change between the run that wrote a checkpoint and
            the one that resumes it: the training configuration, the peers'
            names, data fingerprints. Plain JSON values.

        Returns
        -------
        list of int
            Sorted epochs of intact checkpoints of this run and identity. A
            damaged file is left out (see :attr:`damaged`) and logged.

        Raises
        ------
        CheckpointError
            If an intact checkpoint belongs to another run, party, identity or
            state layout, or is of an older format: resuming from it would
            silently mix two trainings.
        """
        self._identity = json.loads(json.dumps(dict(identity)))
        self._usable, self.damaged = {}, {}
        for epoch, path in sorted(self._files().items()):
            try:
                record = self._read(path)
            except _Damaged as exc:
                self.damaged[epoch] = str(exc)
                log.warning("%s", exc)
                continue
            self._check_identity(record, path)
            self._usable[epoch] = state_from_json(self.state_type, record["state"],
                                                  where=f"checkpoint {path}")
        return sorted(self._usable)

    def _read(self, path: Path) -> dict[str, Any]:
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise _Damaged(f"cannot read checkpoint {path}: {exc.strerror}",
                           party=self.party) from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise _Damaged(f"checkpoint {path} is damaged (not JSON: {exc})",
                           party=self.party) from None
        found = record.get("format") if isinstance(record, dict) else None
        if found in OLDER_FORMATS:
            # Intact but unusable: refused outright, not skipped as damaged,
            # so an upgrade never silently restarts a run from scratch.
            raise CheckpointError(
                f"checkpoint {path} has the older layout {found}, which this version cannot "
                f"resume (it reads {CHECKPOINT_FORMAT}); finish that run with the version that "
                "started it, or start a new run (another run_id or an empty checkpoint "
                "folder)", party=self.party)
        if found != CHECKPOINT_FORMAT:
            raise _Damaged(f"{path} is not a {CHECKPOINT_FORMAT} checkpoint", party=self.party)
        stored = record.pop("sha256", None)
        if stored != _digest(record):
            raise _Damaged(f"checkpoint {path} is damaged: its content does not match "
                           "its SHA-256", party=self.party)
        missing = {"party", "run_id", "epoch", "layout", "identity", "state"} - set(record)
        if missing:
            raise _Damaged(f"checkpoint {path} lacks {', '.join(sorted(missing))}",
                           party=self.party)
        return dict(record)

    def _check_identity(self, record: Mapping[str, Any], path: Path) -> None:
        advice = ("; to start a new training, give this run another run_id or an empty "
                  "checkpoint folder, or restore the settings of that run to resume it")
        if record["party"] != self.party:
            raise CheckpointError(f"checkpoint {path} is party {record['party']}'s",
                                  party=self.party)
        if record["layout"] != self.state_type.LAYOUT:
            raise CheckpointError(
                f"checkpoint {path} holds state layout {record['layout']!r}, this party "
                f"keeps {self.state_type.LAYOUT!r}; it was written by another version or "
                f"role{advice}", party=self.party)
        if record["run_id"] != self.run_id:
            raise CheckpointError(f"checkpoint {path} belongs to run {record['run_id']!r}, not "
                                  f"to this run {self.run_id!r}{advice}", party=self.party)
        expected = self._identity or {}
        saved = record["identity"]
        changed = sorted(key for key in set(saved) | set(expected)
                         if saved.get(key) != expected.get(key))
        if changed:
            details = "; ".join(_describe_change(key, saved.get(key), expected.get(key))
                                for key in changed)
            raise CheckpointError(f"checkpoint {path} was written with other settings or data: "
                                  f"{details}{advice}", party=self.party)

    def load(self, epoch: int | None) -> S | None:
        """The state saved after `epoch` (None: a fresh start, nothing to load).

        Raises
        ------
        CheckpointError
            If this party holds no intact checkpoint of that epoch (the message
            names a damaged file if that is why).
        """
        if epoch is None:
            return None
        if self._identity is None:
            raise RuntimeError("scan() the checkpoints before loading one")
        if epoch not in self._usable:
            reason = self.damaged.get(epoch, f"there is no file {self.path(epoch)}")
            raise CheckpointError(f"the federation resumes after epoch {epoch}, but this "
                                  f"party cannot: {reason}", party=self.party)
        log.info("resuming after epoch %d from %s", epoch, self.path(epoch))
        if self.on_state is not None:
            self.on_state(epoch, self._usable[epoch])
        return self._usable[epoch]

    # --- writing ------------------------------------------------------------------

    def save(self, epoch: int, state: S) -> Path:
        """Write the state after `epoch` atomically, then drop all but the last two.

        The file holds exactly ``state`` (see :func:`~vfl.runtime.state.state_to_json`);
        a later :meth:`load` gives an equal dataclass back.
        """
        if self._identity is None:
            raise RuntimeError("scan() the checkpoints before saving one")
        if not isinstance(state, self.state_type):
            raise TypeError(f"this store keeps {self.state_type.__name__}, not "
                            f"{type(state).__name__}")
        record: dict[str, Any] = {
            "format": CHECKPOINT_FORMAT, "party": self.party, "run_id": self.run_id,
            "epoch": epoch, "layout": self.state_type.LAYOUT, "identity": self._identity,
            "state": state_to_json(state)}
        record["sha256"] = _digest(record)
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.path(epoch)
        atomic_write_text(path, json.dumps(record, indent=1, allow_nan=True) + "\n")
        sync_folder(self.folder)
        # What a later load() returns: decoded from the JSON, never the live object.
        self._usable[epoch] = state_from_json(self.state_type, record["state"])
        self.damaged.pop(epoch, None)
        for old, old_path in self._files().items():
            if old <= epoch - KEEP:
                old_path.unlink(missing_ok=True)
                self._usable.pop(old, None)
        if self.on_state is not None:
            self.on_state(epoch, state)
        return path


class _Damaged(CheckpointError):
    """A file that cannot be read as a checkpoint: skipped, the previous one is used."""


def _describe_change(key: str, saved: Any, now: Any) -> str:
    if isinstance(saved, dict) and isinstance(now, dict):
        keys = sorted(k for k in set(saved) | set(now) if saved.get(k) != now.get(k))
        shown = ", ".join(f"{k} {saved.get(k)!r} -> {now.get(k)!r}" for k in keys[:5])
        return f"{key}: {shown}{', ...' if len(keys) > 5 else ''}"
    if key.endswith("fingerprint"):
        return f"{key} changed (the data is not the same)"
    return f"{key} {saved!r} -> {now!r}"


def agree_resume_epoch(holdings: Mapping[str, Sequence[int]], *,
                       party: str | None = None) -> int | None:
    """The epoch every party resumes after: the latest one they all hold.

    Parameters
    ----------
    holdings : mapping of party name to epochs
        What each party's :meth:`CheckpointStore.scan` returned.
    party : str, optional
        The deciding party, for error messages.

    Returns
    -------
    int or None
        None when no party holds a checkpoint past epoch 0: a fresh start
        (the parties' initial states are their own, so mixing a restored
        epoch-0 state with a fresh one is no inconsistency; starting afresh
        is simply cleaner).

    Raises
    ------
    CheckpointError
        If some party holds a later epoch but no epoch is held by all: some
        files were deleted or damaged, and neither resuming nor silently
        restarting would give the run the operator asked for.
    """
    sets = {name: set(epochs) for name, epochs in holdings.items()}
    common = set.intersection(*sets.values()) if sets else set()
    if common:
        return max(common)
    if all(max(epochs, default=0) <= 0 for epochs in sets.values()):
        return None
    shown = "; ".join(f"{name}: {', '.join(map(str, sorted(e))) or 'none'}"
                      for name, e in sets.items())
    raise CheckpointError(
        f"no epoch is checkpointed by every party ({shown}), so training cannot resume "
        "consistently; restore the missing or damaged checkpoint files, or start a new run "
        "(another run_id, or empty every party's checkpoint folder)", party=party)
