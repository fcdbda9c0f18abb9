"""Alignment on its own, all parties in one process: for notebooks and ``vfl align``.

:func:`align_frames` takes the label holder's table and each feature holder's,
runs the chosen alignment method between them exactly as a federation would
(each party in its own thread, over an
:class:`~vfl.protocol.channel.InProcessNetwork`, the coordinator absent), and
returns every party's rows of the common intersection, in one order. It is
the same code path as training's alignment, only without training after it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from vfl.errors import ConfigError, EmptyIntersectionError, MissingColumnError
from vfl.protocol.channel import DEFAULT_TIMEOUT_S, Endpoint, InProcessNetwork
from vfl.psi.base import AlignmentMethod
from vfl.psi.federation import align_as_feature_holder, align_as_label_holder
from vfl.psi.ids import normalize_ids
from vfl.psi.methods import ALIGNMENT_METHODS, DEFAULT_ALIGNMENT, get_alignment
from vfl.runtime.inprocess import run_parties

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["align_frames"]


def align_frames(label_holder: pd.DataFrame,
                 feature_holders: pd.DataFrame | Sequence[pd.DataFrame]
                 | Mapping[str, pd.DataFrame],
                 *, id_column: str, method: str = DEFAULT_ALIGNMENT,
                 chunk_size: int | None = None, progress: bool = True,
                 sources: Mapping[str, str] | None = None, label_holder_name: str = "B",
                 timeout: float = DEFAULT_TIMEOUT_S) -> dict[str, pd.DataFrame]:
    """Every party's rows of the IDs all parties share, in the same order.

    Parameters
    ----------
    label_holder : pandas.DataFrame
        The label holder B's table (any columns, one of them `id_column`).
    feature_holders : DataFrame, sequence of DataFrames, or mapping of name to DataFrame
        One table per feature holder. A sequence names them A1, A2, ...
    id_column : str
        Name of the ID column in every table. IDs are compared after
        :func:`vfl.psi.normalize_ids` (so ``42`` and ``"42"`` match).
    method : str
        ``"ecdh"`` (Diffie-Hellman PSI, the default) or ``"hash"`` (keyed
        hashing: faster, but either side can test guessed IDs offline).
    chunk_size : int, optional
        IDs per message and per worker task (``ecdh`` only; default
        :data:`vfl.psi.ecdh.DEFAULT_CHUNK_SIZE`).
    progress : bool
        Show the label holder's progress line on stderr for alignments that
        take more than a second.
    sources : mapping of party name to str, optional
        Where each table came from (a file name), named in errors.
    label_holder_name : str
        The label holder's party name.
    timeout : float
        Seconds a party waits for any one message. With several feature
        holders, B aligns with them one after another, so A_k waits while B
        works with A_1 .. A_(k-1).

    Returns
    -------
    dict of str to pandas.DataFrame
        Label holder first, then the feature holders in the order given. Each
        frame holds that party's rows of the common intersection with all its
        columns and original values, and a fresh index 0 .. n-1: row i of
        every frame belongs to the same ID. The order is the protocol's:
        sorted by normalised ID, unrelated to any party's row order (a
        party's own order would tell the others how its table is sorted).

    Raises
    ------
    MissingColumnError
        If a table has no `id_column`.
    InvalidIDError, DuplicateIDError
        If an ID is missing or repeated within one table.
    EmptyIntersectionError
        If no ID is shared by every party.
    ConfigError
        For an unknown method, or `chunk_size` with a method other than ``ecdh``
        (a ``ValueError``).
    """
    if method not in ALIGNMENT_METHODS:
        raise ConfigError(f"unknown alignment method {method!r}; available: "
                          f"{', '.join(sorted(ALIGNMENT_METHODS))}")
    if chunk_size is not None and method != "ecdh":
        raise ConfigError(f"chunk_size applies to the ecdh method only, not {method!r}")
    frames = _named_frames(label_holder, feature_holders, label_holder_name)
    sources = dict(sources or {})
    ids = {name: _normalised_ids(name, frame, id_column, sources.get(name))
           for name, frame in frames.items()}

    def new_method(show: bool) -> AlignmentMethod:
        if method != "ecdh":
            return get_alignment(method)
        options: dict[str, Any] = {"progress": progress and show}
        if chunk_size is not None:
            options["chunk_size"] = chunk_size
        return get_alignment(method, **options)

    b, *names = frames
    tasks: dict[str, Callable[[Endpoint], Any]] = {
        b: lambda ep: align_as_label_holder(ids[b], ep, names, new_method(True))}
    for name in names:
        # Only B shows progress: it takes part in every pairwise run.
        tasks[name] = (lambda n: lambda ep: align_as_feature_holder(
            ids[n], ep, b, new_method(False)))(name)
    network = InProcessNetwork([b, *names], uuid.uuid4().hex, timeout=timeout)
    try:
        # B sees every pairwise result, so its error says the most.
        positions = run_parties(network, tasks, prefer=b)
    except EmptyIntersectionError as exc:
        held = "; ".join(f"{name}: {sources.get(name, 'DataFrame')}, {len(ids[name])} IDs"
                         for name in frames)
        raise EmptyIntersectionError(
            f"no ID in column {id_column!r} is shared by every party ({held}); {exc}") from None
    return {name: frame.iloc[positions[name]].reset_index(drop=True)
            for name, frame in frames.items()}


def _named_frames(label_holder: pd.DataFrame,
                  feature_holders: pd.DataFrame | Sequence[pd.DataFrame]
                  | Mapping[str, pd.DataFrame], label_holder_name: str
                  ) -> dict[str, pd.DataFrame]:
    """Every table by party name: the label holder first, then A1, A2, ... (or given names)."""
    import pandas as pd

    if isinstance(feature_holders, pd.DataFrame):
        feature_holders = [feature_holders]
    if isinstance(feature_holders, Mapping):
        holders = dict(feature_holders)
    else:
        holders = {f"A{k}": frame for k, frame in enumerate(feature_holders, start=1)}
    if not holders:
        raise ValueError("align_frames needs at least one feature holder")
    if label_holder_name in holders:
        raise ValueError(f"feature holder named {label_holder_name!r} like the label holder")
    frames = {label_holder_name: label_holder, **holders}
    for name, frame in frames.items():
        if not isinstance(frame, pd.DataFrame):
            raise TypeError(f"party {name}: data must be a pandas DataFrame, "
                            f"got {type(frame).__name__}")
    return frames


def _normalised_ids(name: str, frame: pd.DataFrame, id_column: str,
                    source: str | None) -> list[str]:
    if id_column not in frame.columns:
        raise MissingColumnError(
            f"{source or 'the DataFrame'} has no ID column {id_column!r} (columns: "
            f"{', '.join(map(str, frame.columns))}); pass the right ID column", party=name)
    return normalize_ids(frame[id_column].tolist(), party=name, column=id_column,
                         source=source)
