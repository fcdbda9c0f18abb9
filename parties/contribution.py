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
itself, on the rows of the first run's private alignment and with its key
pair (``reuse_alignment``/``reuse_key``), with the same validation rows. The
validation loss comes out of the protocol encrypted and is decrypted by C,
as in any run; no party reveals its data. A coalition without any feature
holder involves only B's own data, so B trains it alone with the same rule
(:func:`vfl.reference.train_centralized` on B's columns): there is nothing
to protect from anyone.

What the parties learn beyond a normal run: C and B see the validation loss
of every coalition trained, which is exactly what the report publishes.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd

from vfl.errors import ConfigError
from vfl.reference import train_centralized
from vfl.training import StoppingRule, TrainingConfig, training_labels, validation_split

from parties.federation import Federation
from parties.label_holder import LabelHolder

__all__ = ["CONTRIBUTION_METHODS", "ContributionReport", "measure_contributions"]

CONTRIBUTION_METHODS = ("leave-one-out", "shapley")


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
                          on_coalition: Callable[[tuple[str, ...], Federation], None]
                          | None = None) -> ContributionReport:
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
    players = tuple([*holders, *([b.name] if b.table.feature_names else [])])
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
    # Coalition runs retrain the same party objects: keep their trained state
    # (models, histories, secrets of the grand coalition) and give it back.
    parties = [federation.coordinator, b, *holders.values()]
    saved = [(party, dict(vars(party))) for party in parties]
    try:
        federation.coordinator.reuse_key = True
        for party in (b, *holders.values()):
            party.reuse_alignment = True
        for coalition in needed:
            if coalition in losses:
                continue
            members = [holders[name] for name in coalition if name in holders]
            label_holder = b if b.name in coalition else _without_features(b)
            if not members:
                losses[coalition] = _train_alone(label_holder, config)
                continue
            run = Federation(federation.coordinator, label_holder, members, config=config,
                             alignment=federation.alignment, timeout=federation.timeout)
            run.fit()
            losses[coalition] = final_validation_loss(run.history_, config)
            if on_coalition:
                on_coalition(coalition, run)
    finally:
        for party, state in saved:
            party.__dict__.clear()
            party.__dict__.update(state)

    value = {c: losses[()] - loss for c, loss in losses.items()}
    if method == "leave-one-out":
        contributions = {p: value[players] - value[tuple(q for q in players if q != p)]
                         for p in players}
    else:
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
    return ContributionReport(method, players, contributions, losses)


def _without_features(b: LabelHolder) -> LabelHolder:
    """B holding only IDs and labels, on the same aligned rows and validation split."""
    frame = pd.DataFrame({b.id_column: b.table.ids, b.label_column: b.table.label})
    view = LabelHolder(frame, id_column=b.id_column, label_column=b.label_column,
                       name=b.name, feature_columns=[], seed=int(b._rng.integers(0, 2**63 - 1)),
                       source=b.table.source)
    view._alignment_cache = b._alignment_cache
    view.split_seed_ = b.split_seed_
    view.reuse_alignment = True
    return view


def _train_alone(b: LabelHolder, config: TrainingConfig) -> float:
    """Validation loss of the model B trains on its own columns (no other party involved)."""
    positions = b._alignment_cache
    if positions is None or b.split_seed_ is None:
        raise RuntimeError("the grand coalition must be trained first")
    aligned = b.table.take(positions)
    d = aligned.features.shape[1]
    # B's own secrets, drawn as in a federated run.
    initial = b._initial_weights(d)
    seeds = [int(s) for s in b._rng.integers(0, 2**63 - 1, size=config.epochs)]
    y = training_labels(aligned.label, config, party=b.name, source=aligned.source,
                        column=b.label_column)
    train, _ = validation_split(len(y), config.validation_fraction, b.split_seed_)
    intercept = b._initial_intercept(y[train])
    result = train_centralized(aligned.features, aligned.label, config, initial_weights=initial,
                               initial_intercept=intercept, batch_seeds=seeds,
                               split_seed=b.split_seed_, blocks=[d])
    history = pd.DataFrame({"loss": result.history,
                            "validation_loss": result.validation_history})
    return final_validation_loss(history, config)
