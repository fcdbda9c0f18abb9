"""What each party's data contributed, measured by federated training only.

A *player* is a feature holder (its columns) or the label holder's own
feature columns. The value of a coalition S of players is the drop of the
validation loss from the intercept-only model to the model trained on the
columns of S:

    v(S) = L_val(empty) - L_val(S)

- leave-one-out: phi_p = v(all) - v(all without p) = L_val(all without p) - L_val(all)
- Shapley:       phi_p = sum over S not containing p of
                 |S|! (n - |S| - 1)! / n! * (v(S + p) - v(S))

Every coalition that includes a feature holder is trained by the federation
itself, as a fresh run of fresh party objects: each member holds only its
rows of the first run's private alignment (aligned again, privately, which
changes nothing), C serves the first run's key pair, and B holds out the
same validation rows (the first run's split seed). The validation loss comes
out of the protocol encrypted and is decrypted by C, as in any run; no party
reveals its data. The parties of the first run are never touched. A
coalition without any feature holder involves only B's own data, so B trains
it alone with the same rule (:meth:`LabelHolder.train_alone`): there is
nothing to protect from anyone.

What the parties learn beyond a normal run: C and B see the validation loss
of every coalition trained, which is exactly what the report publishes.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import pandas as pd

from parties.vertical.coordinator import Coordinator
from parties.vertical.feature_holder import FeatureHolder
from parties.vertical.label_holder import LabelHolder
from vfl.errors import ConfigError
from vfl.training import StoppingRule, TrainingConfig

__all__ = ["CONTRIBUTION_METHODS", "ContributionReport", "measure_contributions"]

CONTRIBUTION_METHODS = ("leave-one-out", "shapley")


class Federation(Protocol):
    """What contribution accounting needs of a federation
    (:class:`parties.vertical.federation.Federation` is one)."""

    config: TrainingConfig
    coordinator: Coordinator
    label_holder: LabelHolder
    feature_holders: list[FeatureHolder]
    session_: str | None

    @property
    def history_(self) -> pd.DataFrame: ...

    def fit(self) -> Federation: ...

    def with_parties(self, coordinator: Coordinator, label_holder: LabelHolder,
                     feature_holders: list[FeatureHolder]) -> Federation: ...


@dataclass(frozen=True)
class ContributionReport:
    """Contributions of each player and the coalition losses behind them.

    Attributes
    ----------
    method : {"leave-one-out", "shapley"}
    players : tuple of str
        Feature holders' names, then the label holder's name standing for
        its own feature columns (absent if B has none).
    contributions : dict of str to float
        Drop in validation loss attributed to each player (positive: the
        player's columns help; near zero or negative: they do not).
    coalition_losses : dict of tuple of str to float
        Final validation loss of every coalition trained (players sorted as
        in `players`; the empty tuple is the intercept-only model).
    """

    method: str
    players: tuple[str, ...]
    contributions: dict[str, float]
    coalition_losses: dict[tuple[str, ...], float] = field(repr=False)

    def to_dict(self) -> dict[str, object]:
        """JSON-able form for report.json."""
        return {"method": self.method, "metric": "validation loss drop",
                "players": list(self.players), "contributions": dict(self.contributions),
                "coalitions": [{"players": list(c), "validation_loss": v}
                               for c, v in self.coalition_losses.items()]}


def final_validation_loss(history: pd.DataFrame, config: TrainingConfig) -> float:
    """Validation loss of the model a run ended with.

    Under validation early stopping the parties keep the weights of the last
    epoch the stopping rule marked best; otherwise those of the last epoch.
    """
    losses = history["validation_loss"].to_numpy(dtype=float)
    if config.early_stopping != "validation":
        return float(losses[-1])
    rule, best = StoppingRule(config), losses[0]
    for train_loss, loss in zip(history["loss"], losses):
        if rule.update(float(train_loss), float(loss))[1]:
            best = loss
    return float(best)


def measure_contributions(federation: Federation, *, method: str = "leave-one-out",
                          on_coalition: Callable[..., None] | None = None
                          ) -> ContributionReport:
    """Train the coalitions `method` needs and attribute the validation-loss drop.

    Parameters
    ----------
    federation : Federation
        Its configuration must hold out validation rows
        (``validation_fraction > 0``). If it has not been fitted yet, it is
        fitted first: that run is the grand coalition.
    method : {"leave-one-out", "shapley"}
        Leave-one-out trains one coalition per player; Shapley trains all
        2**n (n players: feature holders plus B's own columns).
    on_coalition : callable, optional
        Called as ``on_coalition(players, federation)`` after each federated
        coalition run (e.g. to compare with a centralized computation).

    Raises
    ------
    ConfigError
        If there is no validation split or `method` is unknown.
    """
    if method not in CONTRIBUTION_METHODS:
        raise ConfigError(f"contribution method must be one of "
                          f"{', '.join(CONTRIBUTION_METHODS)}, got {method!r}")
    config = federation.config
    if config.validation_fraction <= 0:
        raise ConfigError("contributions are measured on a validation split: set "
                          "validation_fraction (e.g. 0.2)")
    b = federation.label_holder
    holders = {a.name: a for a in federation.feature_holders}
    players = (*holders, *([b.name] if b.table.feature_names else []))
    if federation.session_ is None or b.history_ == []:
        federation.fit()
    losses: dict[tuple[str, ...], float] = {
        players: final_validation_loss(federation.history_, config)}
    if on_coalition:
        on_coalition(players, federation)

    if method == "leave-one-out":
        needed = [tuple(p for p in players if p != left) for left in players]
        needed.append(())
    else:
        needed = [c for size in range(len(players)) for c in
                  itertools.combinations(players, size)]
    # Each coalition is a fresh run of fresh parties on the grand coalition's
    # aligned rows, validation rows and key pair; the parties above keep their results.
    split_seed = b.split_seed_
    for coalition in needed:
        if coalition in losses:
            continue
        members = [holders[name].on_aligned_rows() for name in coalition if name in holders]
        label_holder = b.on_aligned_rows(
            split_seed=split_seed, **({} if b.name in coalition else {"feature_columns": []}))
        if not members:
            losses[coalition] = final_validation_loss(label_holder.train_alone(config), config)
            continue
        run = federation.with_parties(federation.coordinator.with_same_key(), label_holder,
                                      members)
        run.fit()
        losses[coalition] = final_validation_loss(run.history_, config)
        if on_coalition:
            on_coalition(coalition, run)

    return ContributionReport(method, players, _attribute(method, players, losses), losses)


def _attribute(method: str, players: tuple[str, ...],
               losses: dict[tuple[str, ...], float]) -> dict[str, float]:
    """Each player's share of the value v(S) = L_val(empty) - L_val(S) (module docstring)."""
    value = {c: losses[()] - loss for c, loss in losses.items()}
    if method == "leave-one-out":
        return {p: value[players] - value[tuple(q for q in players if q != p)]
                for p in players}
    n = len(players)
    contributions = {}
    for p in players:
        others = [q for q in players if q != p]
        total = 0.0
        for size in range(n):
            weight = math.factorial(size) * math.factorial(n - size - 1) / math.factorial(n)
            for subset in itertools.combinations(others, size):
                with_p = tuple(q for q in players if q in subset or q == p)
                total += weight * (value[with_p] - value[tuple(subset)])
        contributions[p] = total
    return contributions
