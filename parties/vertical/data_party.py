"""What feature holders and the label holder share: data, its preparation, the model part.

The protocol steps themselves live in :mod:`parties.vertical.feature_holder`
and :mod:`parties.vertical.label_holder`; the lifecycle around them in
:class:`vfl.runtime.Session`.
"""

from __future__ import annotations

import math
import os
import secrets
import warnings
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import numpy as np
import pandas as pd

from parties.vertical.messages import (
    DecryptedMaskedGradient,
    SearchDirection,
    TrainingPlan,
    TrialVerdict,
)
from parties.vertical.scales import PassScales
from vfl.audit.fingerprint import table_fingerprint
from vfl.crypto import FixedPointCodec, unmask
from vfl.data import PartyTable, Standardizer, read_party_csv
from vfl.errors import (
    BatchTooSmallError,
    ConfigError,
    ConfigMismatchError,
    DataPrecisionWarning,
    EncodingOverflowError,
    InsecureSeedWarning,
    MalformedMessageError,
    TrainingDivergedError,
)
from vfl.lbfgs import LbfgsBlock, exact_line_search, penalized_gradient
from vfl.model import ModelPart
from vfl.optim import penalty_value
from vfl.protocol.channel import Endpoint
from vfl.runtime.role import Role, expect_length
from vfl.runtime.state import RoleState
from vfl.training import TrainingConfig, smallest_batch, validation_split

__all__ = ["DataParty", "PreparedRows"]

#: Most encryptions of zero a party makes before its first epoch (~5 MB at 2048
#: bits): a larger run's first epoch draws the rest from the background refill.
_WARM_POWERS = 8192

S = TypeVar("S", bound=RoleState)
D = TypeVar("D", bound="DataParty[Any]")


@dataclass(frozen=True)
class PreparedRows:
    """A run's aligned rows, split, standardised and encoded as the plan says.

    Derived from the data and the plan at the start of every run (also a
    resumed one), so never saved.

    Attributes
    ----------
    aligned : PartyTable
        This party's rows shared by all parties, in the agreed order.
    scaler : Standardizer
        Fitted on the training rows only.
    x : numpy.ndarray
        Standardised features of every aligned row.
    encoded : list of list of int
        The same, fixed-point encoded.
    train, validation : numpy.ndarray
        Positions (in `aligned`) of the training and held-out rows.
    """

    aligned: PartyTable
    scaler: Standardizer
    x: np.ndarray
    encoded: list[list[int]]
    train: np.ndarray
    validation: np.ndarray

    @property
    def n_features(self) -> int:
        return int(self.x.shape[1])


class DataParty(Role[S]):
    """A party that holds rows of data: feature holder or label holder.

    Learned attributes (after training) end in ``_``: ``coef_`` (a Series of
    raw-unit weights indexed by feature name), ``model_`` (the
    :class:`~vfl.model.ModelPart` to save), ``aligned_rows_``,
    ``aligned_ids_`` and ``validation_rows_``.
    """

    is_label_holder: ClassVar[bool] = False

    def __init__(self, data: pd.DataFrame, *, id_column: str, name: str,
                 label_column: str | None = None,
                 feature_columns: list[str] | None = None,
                 seed: int | None = None, source: str | None = None,
                 model: ModelPart | None = None) -> None:
        super().__init__(name)
        self.id_column = id_column
        self.label_column = label_column
        self.feature_columns = feature_columns
        self.table = PartyTable.from_frame(
            data, party=name, id_column=id_column, label_column=label_column,
            is_label_holder=self.is_label_holder, feature_columns=feature_columns,
            source=source)
        check_seed(seed, party=name)
        # Unseeded (the default), each run draws its secrets from the OS CSPRNG.
        # run of this party object starts its secret stream from this seed.
        self.seed = seed
        self.model_: ModelPart | None = model
        #: The coordinator's name (set by each run).
        self.coordinator = "C"
        #: This party's own IDs of the shared rows, in the agreed order.
        self.aligned_ids_: list[str] | None = None
        #: Positions (in the aligned order) of the rows held out for validation.
        self.validation_rows_: np.ndarray | None = None
        # Set by each run, read by its steps (see _begin_run).
        self._secret_rng, self._public_rng = _streams(seed)
        self._config = TrainingConfig()
        self._alignment = ""
        self._codec = FixedPointCodec()
        self._aligned: PartyTable | None = None
        self._rows: PreparedRows | None = None
        #: Positions (in this party's table) of the aligned rows, in the agreed order.
        self._aligned_positions = np.zeros(0, dtype=int)
        self._scales = PassScales("linear", False, 1)

    @classmethod
    def from_csv(cls: type[D], path: str | os.PathLike[str], *, id_column: str,
                 **kwargs: Any) -> D:
        """Build the party from a CSV file (read only, never modified)."""
        name = str(kwargs.get("name", cls._default_name()))
        frame = read_party_csv(path, party=name, id_column=id_column)
        return cls(frame, id_column=id_column, source=os.fspath(path), **kwargs)

    @classmethod
    def _default_name(cls) -> str:
        return "B" if cls.is_label_holder else "A1"

    @property
    def aligned_rows_(self) -> int | None:
        """Number of rows shared by every party in the last run."""
        return None if self.aligned_ids_ is None else len(self.aligned_ids_)

    @property
    def coef_(self) -> pd.Series:
        """Raw-unit weights of this party's features."""
        if self.model_ is None:
            raise AttributeError(f"party {self.name} has not been trained or loaded yet")
        return pd.Series(self.model_.weights, index=self.model_.features, name=self.name)

    def save_model(self, path: str | os.PathLike[str]) -> None:
        """Save this party's part of the model (and nothing of any other party)."""
        if self.model_ is None:
            raise AttributeError(f"party {self.name} has no model to save yet")
        self.model_.save(path)

    def load_model(self, path: str | os.PathLike[str]) -> None:
        """Load this party's saved part, checking it matches the data's columns."""
        part = ModelPart.load(path, party=self.name)
        if part.features != self.table.feature_names:
            raise ValueError(
                f"party {self.name}: the model in {os.fspath(path)} uses features "
                f"{part.features}, the data has {self.table.feature_names}")
        self.model_ = part

    def on_aligned_rows(self: D, **overrides: Any) -> D:
        """A new party like this one holding only the rows of its last run's alignment.

        Same name, columns and secret seed; `overrides` replace constructor
        arguments (e.g. ``feature_columns=[]``). For further runs on exactly
        those rows, such as contribution coalitions; this party is unchanged.
        """
        aligned = self.aligned
        frame = pd.DataFrame(aligned.features, columns=aligned.feature_names)
        frame.insert(0, self.id_column, aligned.ids)
        if aligned.label is not None:
            frame[self.label_column] = aligned.label
        columns, extra = self._row_columns(self._aligned_positions)
        for name, values in columns.items():
            frame[name] = values
        arguments: dict[str, Any] = {
            "id_column": self.id_column, "name": self.name, "label_column": self.label_column,
            "feature_columns": list(aligned.feature_names), "seed": self.seed,
            "source": aligned.source, **extra, **overrides}
        return type(self)(frame, **arguments)

    def _row_columns(self, positions: np.ndarray) -> tuple[dict[str, np.ndarray],
                                                           dict[str, Any]]:
        """Columns besides ID, features and label that travel with the rows at
        `positions` (the label holder's weights and exposure), and the constructor
        arguments naming them."""
        return {}, {}

    # --- run-wide set-up, shared by A and B ---------------------------------------------

    def _begin_run(self, config: TrainingConfig, alignment: str) -> None:
        """Forget the last run's working data; fresh random streams (or the seed's again)."""
        self._config, self._alignment = config, alignment
        self._secret_rng, self._public_rng = _streams(self.seed)
        self._aligned, self._rows, self.state = None, None, None

    @property
    def max_epochs(self) -> int:
        return self._config.epochs

    @property
    def rows(self) -> PreparedRows:
        if self._rows is None:
            raise RuntimeError(f"party {self.name}: no plan agreed yet")
        return self._rows

    @property
    def aligned(self) -> PartyTable:
        """This run's rows shared by every party, in the agreed order."""
        if self._aligned is None:
            raise RuntimeError(f"party {self.name}: not aligned yet")
        return self._aligned

    def _take_aligned(self, positions: np.ndarray) -> None:
        self._aligned_positions = np.asarray(positions, dtype=int)
        self._aligned = self.table.take(positions)
        self.aligned_ids_ = list(self._aligned.ids)

    def _data_identity(self, **peers: object) -> dict[str, Any]:
        """What a checkpoint of this party must match to be resumed."""
        aligned = self.aligned
        return {"role": self.role, "config": self._config.to_dict(), **peers,
                "alignment": self._alignment,
                "data_fingerprint": table_fingerprint(self.table),
                "aligned_fingerprint": table_fingerprint(aligned)}

    def _check_plan(self, plan: TrainingPlan, sender: str) -> None:
        if plan.config != self._config:
            raise ConfigMismatchError(
                f"{sender} runs {plan.config}, this party was configured with {self._config}; "
                "start every party with the same training parameters", party=self.name)

    def _check_batch_size(self, n_rows: int) -> None:
        """Refuse batches small enough for the gradient to reveal residuals."""
        config = self._config
        d = self.table.features.shape[1]
        smallest = smallest_batch(n_rows, config.batch_size)
        if d and smallest <= config.min_batch_factor * d:
            full = config.batch_size is None or config.batch_size >= n_rows
            advice = ("with every training row in one batch already, add rows or drop "
                      "features" if full else "raise the batch size (or use full batch)")
            raise BatchTooSmallError(
                f"with {d} features this party needs batches of more than "
                f"{config.min_batch_factor:g} x {d} = {config.min_batch_factor * d:g} rows, but "
                f"the smallest batch has {smallest} of the {n_rows} training rows: {advice}",
                party=self.name)

    def _prepare(self, plan: TrainingPlan) -> PreparedRows:
        """Split, check, standardise and encode the aligned rows as the plan says."""
        config, codec, aligned = plan.config, self._codec, self.aligned
        train, validation = validation_split(len(aligned), config.validation_fraction,
                                             plan.split_seed)
        self._check_batch_size(len(train))
        self._scales = PassScales(config.model, plan.weighted, len(plan.feature_holders))
        # With K feature holders the loss sums (K + 1)**2 cross products per row;
        # weighted and Poisson passes multiply more scales (parties.vertical.scales).
        self._scales.check_capacity(codec, self.engine.n, max(len(train), len(validation)),
                                    party=self.name)
        scaler = Standardizer.fit(aligned.take(train), config.standardize)
        # Every party trains on the data rounded to the data's fixed-point grid, as the
        # centralised reference does (vfl.crypto.encoding): scores and gradients alike.
        x = codec.quantize_data(scaler.transform(aligned.features))
        if not config.standardize:
            self._warn_coarse_columns(aligned.features[train], x[train], codec.data_frac_bits)
        try:
            encoded = codec.encode_data(x, what="features", party=self.name)
        except EncodingOverflowError as exc:
            # Standardised columns always fit; raw ones may not.
            raise EncodingOverflowError(f"{exc} (standardize is off: turn it on, or rescale "
                                        "the columns)", party=None) from None
        self.validation_rows_ = validation
        self._rows = PreparedRows(aligned, scaler, x, encoded, train, validation)
        # The first epoch's encryptions of zero, made now (while the other parties
        # prepare) rather than cold inside it: later epochs find theirs made
        # during the previous epoch's waits, so the first then costs what they do.
        self.engine.warm_up(self._first_epoch_powers(len(train) + len(validation)))
        return self._rows

    def _warn_coarse_columns(self, raw: np.ndarray, rounded: np.ndarray,
                             data_frac_bits: int) -> None:
        """Warn about raw columns the data grid rounded more coarsely than a
        standardised one: by more than ``2**-(data_frac_bits + 1)`` of their standard
        deviation (values already on the grid, such as integers, lose nothing)."""
        if not len(raw):
            return
        error = np.max(np.abs(rounded - raw), axis=0)
        bound = 2.0 ** -(data_frac_bits + 1)
        coarse = [name for name, e, std in zip(self.aligned.feature_names, error,
                                                raw.std(axis=0)) if e > bound * std]
        if coarse:
            warnings.warn(
                f"party {self.name}: standardize is off and column(s) {', '.join(coarse)} "
                f"vary little against the data's grid: training rounds every value to a "
                f"multiple of 2^-{data_frac_bits} (the centralized reference too), "
                "which costs them detail: turn standardize on, or rescale them",
                DataPrecisionWarning, stacklevel=2)

    def _first_epoch_powers(self, rows: int) -> int:
        """The encryptions and re-randomisations this party makes in one epoch over
        `rows` rows, about (per-row ones only), capped at what is worth holding
        before the first epoch (~600 bytes each)."""
        return min(self._powers_per_row * rows, _WARM_POWERS)

    @property
    def _powers_per_row(self) -> int:
        """Encryptions or re-randomisations per row and epoch (A: its scores)."""
        return 1

    def _announce_work(self, config: TrainingConfig, train: int, validation: int) -> None:
        """Tell the engine the run's size as soon as the key is here: it sizes its
        table for the whole run and starts the first batch's encryptions of zero
        while the parties align, so that the first epoch costs what the others do."""
        # Per epoch each party encrypts or re-randomises about two values per row
        # (its scores or residual, and the products it sends back masked).
        self.engine.plan(2 * config.epochs * (train + validation))
        self.engine.expect(self._first_epoch_powers(train + validation))

    # --- L-BFGS (docs/lbfgs.md), the same at A and B ----------------------------------------

    def _lbfgs_iteration(self, endpoint: Endpoint, epoch: int) -> None:
        """One L-BFGS iteration: trial passes along this block of d until C accepts one.

        The first iteration starts with a pass at the initial weights (the
        gradient) and a Gram round (the first direction). Each pass is one
        "batch" of the epoch's messages, numbered from 1. After the first
        trial (the probe) this block's share of d.(g(t) - g(0)) goes to C,
        encrypted and summed like the Gram entries: the curvature along d.
        After the accepted trial a Gram round brings the next direction.
        """
        state, search = self.current, self._search()
        params, number, probe = self._params(), 1, True
        if state.epoch == 0:
            at = {"epoch": epoch, "batch": number}
            search.gradient = self._full_gradient(
                params, self._gradient_pass(endpoint, self.rows.train, params, **at))
            self._gram_round(endpoint, **at)
            number += 1
        step = search.step
        while True:
            at = {"epoch": epoch, "batch": number}
            trial = search.trial(params, step)
            gradient = self._full_gradient(
                trial, self._gradient_pass(endpoint, self.rows.train, trial, **at))
            if probe and exact_line_search(self._config.model):
                # The curvature along d, for the exact step of a quadratic loss.
                self._send_gram(endpoint, self._encode_products(
                    search.curvature_entries(gradient)), **at)
            probe = False
            verdict = endpoint.receive(self.coordinator, TrialVerdict, **at)
            if verdict.step is None:
                return  # C gave up: the point stays, the run stops
            taken = self._checked_step(verdict.step, "TrialVerdict")
            if verdict.accepted:
                self._set_params(search.accept(params, taken, step, gradient))
                self._gram_round(endpoint, **at)
                return
            step, number = taken, number + 1

    def _full_gradient(self, params: np.ndarray, gradient: np.ndarray) -> np.ndarray:
        return penalized_gradient(self._config, params, gradient, self._penalized())

    def _gram_round(self, endpoint: Endpoint, **at: int) -> None:
        """This block's new Gram entries out (encrypted, summed at B), C's direction back."""
        search = self._search()
        self._send_gram(endpoint, self._encode_products(search.gram_entries()), **at)
        message = endpoint.receive(self.coordinator, SearchDirection, **at)
        memory = self._config.lbfgs_memory
        expect_length(message.coefficients, search.basis_size(message.keep_pending, memory),
                      sender=self.coordinator, message="SearchDirection",
                      what="coefficients", party=self.name)
        search.take_direction(message.keep_pending, np.asarray(message.coefficients),
                              self._checked_step(message.step, "SearchDirection"), memory)

    def _encode_products(self, entries: np.ndarray) -> list[int]:
        """Inner products at the product scale (2^-2f), as C decodes them."""
        return self._codec.encode(entries, scale_power=2, what="L-BFGS inner products",
                                  party=self.name)

    def _checked_step(self, step: float, message: str) -> float:
        if not (isinstance(step, float) and math.isfinite(step) and step > 0):
            raise MalformedMessageError(f"{self.coordinator} sent {message} with step "
                                        f"{step!r}; a step is a positive number",
                                        party=self.name)
        return step

    def _search(self) -> LbfgsBlock:
        """This party's L-BFGS block (its state's ``search``)."""
        block = getattr(self.current, "search", None)
        if not isinstance(block, LbfgsBlock):
            raise RuntimeError(f"party {self.name}: not in an L-BFGS run")
        return block

    def _params(self) -> np.ndarray:
        """This party's parameters, as one vector (B: the intercept last)."""
        raise NotImplementedError

    def _set_params(self, params: np.ndarray) -> None:
        raise NotImplementedError

    def _penalized(self) -> np.ndarray:
        """Which of :meth:`_params` carry the penalty."""
        raise NotImplementedError

    def _gradient_pass(self, endpoint: Endpoint, rows: np.ndarray, params: np.ndarray,
                       **at: int) -> np.ndarray:
        """One pass of the protocol at `params`; this block's data-loss gradient."""
        raise NotImplementedError

    def _send_gram(self, endpoint: Endpoint, encoded: list[int], **at: int) -> None:
        """Send this block's encoded Gram entries on their way to C."""
        raise NotImplementedError

    # --- pieces of the protocol steps -----------------------------------------------------

    def _loss_part(self, u_encoded: list[int], weights: np.ndarray, *, penalty: bool) -> int:
        """This party's plaintext share of S at the loss's scale: sum u^2 (the
        unweighted squared pass only), plus the penalty term on training batches
        (validation losses carry no penalty)."""
        squares = sum(v * v for v in u_encoded) if self._scales.cross_terms else 0
        return squares + self._penalty_part(len(u_encoded), weights, penalty=penalty)

    def _penalty_part(self, rows: int, weights: np.ndarray, *, penalty: bool) -> int:
        """The penalty's share of S over `rows` rows, encoded at the loss's scale:
        2 m k penalty(w) for the squared losses, m penalty(w) for Poisson."""
        if not penalty:
            return 0
        config, scales = self._config, self._scales
        term = scales.penalty_factor(rows, config.residual_factor) * penalty_value(config,
                                                                                   weights)
        return self._codec.encode([term], scale_power=scales.loss, what="penalty term",
                                  party=self.name)[0]

    def _unmask_gradient(self, reply: DecryptedMaskedGradient, masks: list[int],
                         scale: float, sender: str) -> np.ndarray:
        """Decoded gradient sums from C's reply, divided by `scale` (k m).

        The sums carry the residual's scale (``PassScales.residual``) times
        the data's, ``2**data_frac_bits``.
        """
        expect_length(reply.values, len(masks), sender=sender,
                      message="DecryptedMaskedGradient", what="values", party=self.name)
        codec, n = self._codec, self.engine.n
        summed = codec.decode(codec.to_signed(unmask(reply.values, masks, n), n,
                                              what="gradient", party=self.name),
                              scale_power=self._scales.residual, data_factors=1)
        return summed / scale

    def _encode_scores(self, values: np.ndarray, what: str, epoch: int) -> list[int]:
        """Encode this run's scores; out of the encoding's range means divergence."""
        try:
            return self._codec.encode(values, what=what, party=self.name)
        except EncodingOverflowError as exc:
            if epoch <= 1 and not self._config.standardize:
                advice = "the raw columns are too large: rescale them or standardise"
            else:
                advice = "training diverged: lower the learning rate"
            raise TrainingDivergedError(f"at epoch {epoch}, {exc}; {advice}",
                                        party=self.name) from None

    def _initial_weights(self, d: int) -> np.ndarray:
        """Random secret initial weights (PROTOCOL.md: never all zeros)."""
        return self._secret_rng.normal(0.0, 1.0 / np.sqrt(max(d, 1)), size=d)

    def _public_seed(self) -> int:
        """A seed this party sends (batch order, validation split): never from the
        secrets' stream, so what a peer receives says nothing about the secrets."""
        if self._public_rng is None:
            return secrets.randbits(63)
        return int(self._public_rng.integers(0, 2**63 - 1))

    def _receive_codec(self, endpoint: Endpoint, coordinator: str) -> None:
        self._codec = self.receive_key(endpoint, coordinator)
        # Its own rows bound the aligned ones: the engine can prepare now, while
        # the parties align, instead of in the first epoch.
        rows = len(self.table)
        self._announce_work(self._config, rows, 0)


def check_seed(seed: object, *, party: str) -> None:
    """Refuse a seed that is not a non-negative integer; warn that any seed makes the
    party's secrets predictable."""
    if seed is None:
        return
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}", party=party)
    warnings.warn(f"party {party}: seed={seed} makes its secret initial weights predictable "
                  "to anyone who guesses the seed; use seeds for tests and reproducible "
                  "examples only", InsecureSeedWarning, stacklevel=4)


def _streams(seed: int | None) -> tuple[np.random.Generator, np.random.Generator | None]:
    """(secrets' generator, sent seeds' generator or None for the OS CSPRNG).

    Unseeded: the secrets come from a generator keyed by 256 bits of the OS
    CSPRNG and used for nothing else, and every sent seed from ``secrets``.
    Seeded (tests): two independent streams spawned from the seed, so that
    runs repeat exactly.
    """
    if seed is None:
        return np.random.default_rng(secrets.randbits(256)), None
    secret, public = np.random.SeedSequence(seed).spawn(2)
    return np.random.default_rng(secret), np.random.default_rng(public)
