"""Training configuration, the validation split and the batch schedule every party derives alike."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from vfl.errors import ConfigError, InvalidLabelError, InvalidWeightError
from vfl.optim import OPTIMIZERS, PENALTIES, SCHEDULES

__all__ = [
    "CLASS_WEIGHTS",
    "EARLY_STOPPING",
    "MODELS",
    "StoppingRule",
    "StoppingState",
    "TrainingConfig",
    "balanced_class_weights",
    "batch_plan",
    "batch_weights",
    "check_exposure",
    "check_sample_weights",
    "smallest_batch",
    "training_labels",
    "validation_split",
]


MODELS = ("linear", "logistic", "poisson")
#: ``class_weight`` choices of the label holder: none, or n / (2 n_c) per class (logistic).
CLASS_WEIGHTS = ("balanced",)
EARLY_STOPPING = ("loss", "weights", "validation", "none")


@dataclass(frozen=True)
class TrainingConfig:
    """Hyper-parameters of federated training, identical at every party.

    B sends its configuration to every party at the start; a party whose own
    configuration differs in any field refuses to train
    (:class:`~vfl.errors.ConfigMismatchError`).

    Parameters
    ----------
    model : {"linear", "logistic", "poisson"}
        Linear regression (squared loss), logistic regression by the
        second-order Taylor expansion of the log-loss around 0 (labels 0/1 or
        -1/+1), or Poisson regression with the log link (counts; the exact
        loss mu - y log mu, no approximation: ``docs/poisson.md``).
    epochs : int
        Maximum number of passes over the training rows.
    learning_rate : float
        Base step size; see `schedule`.
    batch_size : int or None
        Rows per mini-batch; None means full batch. A trailing remainder
        smaller than half a batch is merged into the batch before it.
    optimizer : {"sgd", "momentum", "adagrad", "rmsprop", "adam", "lbfgs"}
        Update rule each party applies to its own weights (see :mod:`vfl.optim`),
        or full-batch L-BFGS with an exact line search (see :mod:`vfl.lbfgs`
        and ``docs/lbfgs.md``): each epoch is one iteration,
        its loss the loss at the accepted point; `learning_rate` and
        `schedule` are not used. Needs a full batch and no L1 penalty.
    momentum : float
        Momentum coefficient mu in [0, 1) (``optimizer="momentum"``).
    nesterov : bool
        Nesterov momentum (only with ``optimizer="momentum"``).
    beta1, beta2 : float
        Adam's moment decay rates, in [0, 1).
    rho : float
        RMSprop's decay rate of the squared gradient, in [0, 1).
    epsilon : float
        Added to the denominators of the adaptive optimisers, > 0.
    schedule : {"constant", "step", "invsqrt"}
        Learning rate per epoch e (from 1): constant; ``lr * gamma ** ((e-1)
        // step_size)``; ``lr / sqrt(1 + decay * (e-1))``.
    step_size : int
        Epochs between two decays of the ``step`` schedule.
    gamma : float
        Factor of each ``step`` decay, in (0, 1].
    decay : float
        Rate of the ``invsqrt`` schedule, >= 0.
    penalty : {"none", "l2", "l1"}
        Penalty on the weights (never the intercept): alpha/2 |w|^2, or
        alpha |w|_1 applied as a proximal soft-threshold step.
    alpha : float
        Penalty strength, >= 0 (must be 0 with ``penalty="none"``).
    early_stopping : {"loss", "weights", "validation", "none"}
        Stop when the epoch's training loss changes by at most `tol`; when
        every party's own weights moved by at most `tol` (Euclidean norm, each
        party reports only a yes/no); when the validation loss has not
        improved by more than `tol` for `patience` epochs (the weights of the
        best epoch are kept); or never.
    tol : float
        Threshold of the stopping rule, > 0.
    validation_fraction : float
        Share of the aligned rows B holds out as a validation split, in
        [0, 0.5]. The validation loss is computed (encrypted, like the
        training loss) after every epoch. Required > 0 by
        ``early_stopping="validation"``.
    patience : int
        Epochs without improvement before validation early stopping.
    min_batch_factor : float
        A party with d features refuses batches of m <= factor * d rows: with
        fewer rows than features its gradient reveals the residuals. >= 1.
    standardize : bool
        Each party centres and scales its own columns internally (weights are
        reported back in raw units).
    lbfgs_memory : int
        L-BFGS: pairs (step, gradient change) kept for the Hessian estimate, >= 1.
    gradient_tol : float
        L-BFGS: stop when the norm of the whole gradient (every party's block,
        L2 term and intercept included) is at most this, > 0; the stopping
        rule of `early_stopping` applies as well.
    line_search_c1 : float
        L-BFGS: Armijo's constant, in (0, 1), of the fallback backtracking
        (used only where the loss does not curve up along d, i.e. rounding):
        a trial step t is accepted when the loss drops by ``c1 * t * |g.d|``.
    line_search_steps : int
        L-BFGS: passes of that fallback per iteration (the step halves after
        each); when none is accepted the run stops where it is. >= 1.
    """

    model: str = "linear"
    epochs: int = 20
    learning_rate: float = 0.1
    batch_size: int | None = None
    optimizer: str = "sgd"
    momentum: float = 0.9
    nesterov: bool = False
    beta1: float = 0.9
    beta2: float = 0.999
    rho: float = 0.9
    epsilon: float = 1e-8
    schedule: str = "constant"
    step_size: int = 10
    gamma: float = 0.5
    decay: float = 1.0
    penalty: str = "none"
    alpha: float = 0.0
    early_stopping: str = "loss"
    tol: float = 1e-6
    validation_fraction: float = 0.0
    patience: int = 5
    min_batch_factor: float = 2.0
    standardize: bool = True
    lbfgs_memory: int = 10
    gradient_tol: float = 1e-5
    line_search_c1: float = 1e-4
    line_search_steps: int = 20

    def __post_init__(self) -> None:
        def fail(message: str) -> None:
            raise ConfigError(message)

        def choice(name: str, allowed: tuple[str, ...]) -> None:
            value = getattr(self, name)
            if value not in allowed:
                fail(f"{name} must be one of {', '.join(allowed)}; got {value!r}")

        def number(name: str, low: float, high: float = math.inf, *,
                   low_open: bool = False, high_open: bool = False) -> None:
            value = getattr(self, name)
            ok = (isinstance(value, (int, float)) and not isinstance(value, bool)
                  and math.isfinite(value)
                  and (value > low if low_open else value >= low)
                  and (value < high if high_open else value <= high))
            if not ok:
                if math.isinf(high):
                    bound = f"{'>' if low_open else '>='} {low:g}"
                else:
                    bound = (f"in {'(' if low_open else '['}{low:g}, "
                             f"{high:g}{')' if high_open else ']'}")
                fail(f"{name} must be {bound}, got {value!r}")

        def integer(name: str, low: int) -> None:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                fail(f"{name} must be an integer >= {low}, got {value!r}")

        choice("model", MODELS)
        choice("optimizer", OPTIMIZERS)
        choice("schedule", SCHEDULES)
        choice("penalty", PENALTIES)
        choice("early_stopping", EARLY_STOPPING)
        integer("epochs", 1)
        number("learning_rate", 0, low_open=True)
        if self.batch_size is not None:
            integer("batch_size", 1)
        number("momentum", 0, 1, high_open=True)
        number("beta1", 0, 1, high_open=True)
        number("beta2", 0, 1, high_open=True)
        number("rho", 0, 1, high_open=True)
        number("epsilon", 0, low_open=True)
        integer("step_size", 1)
        number("gamma", 0, 1, low_open=True)
        number("decay", 0)
        number("alpha", 0)
        number("tol", 0, low_open=True)
        number("validation_fraction", 0, 0.5)
        integer("patience", 1)
        number("min_batch_factor", 1)
        integer("lbfgs_memory", 1)
        number("gradient_tol", 0, low_open=True)
        number("line_search_c1", 0, 1, low_open=True, high_open=True)
        integer("line_search_steps", 1)
        if self.optimizer == "lbfgs" and self.batch_size is not None:
            fail(f"optimizer='lbfgs' trains on the full batch, but batch_size="
                 f"{self.batch_size!r}: drop batch_size (--batch-size full), or choose "
                 "another optimizer for mini-batches")
        if self.optimizer == "lbfgs" and self.penalty == "l1":
            fail("optimizer='lbfgs' does not support penalty='l1' (it needs an OWL-QN "
                 "step, not implemented): use penalty='l2', or another optimizer for L1")
        if self.nesterov and self.optimizer != "momentum":
            fail(f"nesterov=True needs optimizer='momentum', got {self.optimizer!r}")
        if self.penalty == "none" and self.alpha != 0:
            fail(f"alpha={self.alpha!r} is set but penalty='none'; choose penalty='l2' or "
                 "'l1', or drop alpha")
        if self.early_stopping == "validation" and self.validation_fraction == 0:
            fail("early_stopping='validation' needs a validation split: set "
                 "validation_fraction, e.g. 0.2")

    @property
    def residual_factor(self) -> int:
        """k with k*d the residual the protocol encrypts (integer, so no division in Z_n).

        Linear: d = u - y, k = 1. Logistic (Taylor): d = u/4 - y/2, so 4d = u - 2y, k = 4.
        Poisson: d = mu - y, k = 1.
        """
        return 4 if self.model == "logistic" else 1

    def to_dict(self) -> dict[str, object]:
        """Plain-dict form for reports."""
        return asdict(self)


@dataclass
class StoppingState:
    """What the stopping rule remembers between epochs (saved in C's checkpoints).

    Attributes
    ----------
    previous : float or None
        Training loss of the last epoch.
    best : float or None
        Lowest validation loss so far.
    since_best : int
        Epochs since the validation loss last improved by more than ``tol``.
    """

    previous: float | None = None
    best: float | None = None
    since_best: int = 0


class StoppingRule:
    """The coordinator's decision after each epoch (see ``early_stopping``).

    The same object drives the federation and :mod:`vfl.reference`, so both
    stop after the same epoch.

    Parameters
    ----------
    config : TrainingConfig
    state : StoppingState, optional
        Where to continue from (a checkpoint's); updated in place.
    """

    def __init__(self, config: TrainingConfig, state: StoppingState | None = None) -> None:
        self.config = config
        self.state = state if state is not None else StoppingState()

    def update(self, loss: float, validation_loss: float | None = None,
               votes: list[bool] | None = None) -> tuple[bool, bool]:
        """Record an epoch; return (stop, this epoch is the best on validation)."""
        c, s = self.config, self.state
        best = False
        if validation_loss is not None:
            if s.best is None or validation_loss < s.best - c.tol:
                s.best, s.since_best, best = validation_loss, 0, True
            else:
                s.since_best += 1
        if c.early_stopping == "loss":
            stop = s.previous is not None and abs(s.previous - loss) <= c.tol
        elif c.early_stopping == "weights":
            if votes is None:
                raise ValueError("weight-change stopping needs every party's vote")
            stop = all(votes)
        elif c.early_stopping == "validation":
            stop = s.since_best >= c.patience
        else:
            stop = False
        s.previous = loss
        return stop, best


def validation_split(n_rows: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(training positions, validation positions) of the aligned rows.

    Both sorted. B draws `seed` and sends it in the training plan so every
    party holds out the same rows. With fraction 0 every row trains.
    """
    if fraction <= 0:
        return np.arange(n_rows), np.arange(0)
    n_val = max(1, round(n_rows * fraction))
    if n_val >= n_rows:
        raise ConfigError(f"a validation fraction of {fraction:g} leaves no training row "
                          f"out of {n_rows}")
    order = np.random.Generator(np.random.PCG64(seed)).permutation(n_rows)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def batch_plan(n_rows: int, batch_size: int | None, seed: int) -> list[np.ndarray]:
    """Row indices of each batch of one epoch.

    Full batch: all rows in order. Mini-batches: a permutation drawn from
    `seed` (PCG64) cut into `batch_size` pieces; a trailing piece smaller than
    half a batch joins the one before. A and B call this with the seed B
    sends, so they slice identical rows in identical order.
    """
    if n_rows < 1:
        raise ValueError("no rows to train on")
    if batch_size is None or batch_size >= n_rows:
        return [np.arange(n_rows)]
    order = np.random.Generator(np.random.PCG64(seed)).permutation(n_rows)
    cuts = list(range(batch_size, n_rows, batch_size))
    if n_rows - cuts[-1] < batch_size / 2:
        cuts.pop()
    return np.split(order, cuts)


def smallest_batch(n_rows: int, batch_size: int | None) -> int:
    """Size of the smallest batch :func:`batch_plan` produces (any seed)."""
    return min(len(b) for b in batch_plan(n_rows, batch_size, 0))


def training_labels(label: np.ndarray | None, config: TrainingConfig, *, party: str,
                    source: str | None, column: str | None) -> np.ndarray:
    """The labels the protocol trains on: as given (linear) or mapped to {-1, +1}.

    Raises
    ------
    InvalidLabelError
        If every label is the same; for logistic regression, if the labels
        are not two classes coded {0, 1} or {-1, +1}.
    """
    assert label is not None
    y = np.asarray(label, dtype=np.float64)
    values = set(np.unique(y).tolist())
    if len(values) < 2:
        shown = ", ".join(f"{v:g}" for v in values) or "no value"
        raise InvalidLabelError(
            f"label column {column!r} of {source} holds {shown} in every aligned row: there "
            "is nothing to learn; check the label column and that the parties share rows of "
            "both outcomes", party=party)
    if config.model == "poisson":
        if np.any(y < 0):
            raise InvalidLabelError(
                f"label column {column!r} of {source} holds the negative value "
                f"{float(y[y < 0][0]):g}; Poisson regression needs counts (or rates): "
                "non-negative labels", party=party)
        return y
    if config.model != "logistic":
        return y
    if values <= {0.0, 1.0}:
        return 2.0 * y - 1.0
    if values <= {-1.0, 1.0}:
        return y
    shown = ", ".join(f"{v:g}" for v in sorted(values)[:5])
    raise InvalidLabelError(
        f"label column {column!r} of {source} holds {shown}{', ...' if len(values) > 5 else ''}"
        "; logistic regression needs two classes coded 0/1 or -1/+1", party=party)


def check_sample_weights(values: object, *, party: str, source: str | None,
                         column: str) -> np.ndarray:
    """The label holder's sample weights as float64, refused unless usable.

    Raises
    ------
    InvalidWeightError
        One line naming the file and the column: a value that is not a
        number, NaN or infinite, negative, or every weight zero.
    """
    where = source or "the DataFrame"
    try:
        weights = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidWeightError(f"weight column {column!r} of {where} holds a value that is "
                                 "not a number; weights are non-negative numbers",
                                 party=party) from None
    bad = ~np.isfinite(weights)
    if bad.any():
        raise InvalidWeightError(f"weight column {column!r} of {where} holds NaN or infinity "
                                 f"(row {int(np.argmax(bad)) + 1}); give every row a finite "
                                 "weight", party=party)
    if np.any(weights < 0):
        row = int(np.argmax(weights < 0))
        raise InvalidWeightError(f"weight column {column!r} of {where} holds the negative "
                                 f"weight {weights[row]:g} (row {row + 1}); weights must be "
                                 ">= 0", party=party)
    if not np.any(weights > 0):
        raise InvalidWeightError(f"weight column {column!r} of {where} is zero in every row: "
                                 "nothing would be learned; check the column", party=party)
    return weights


def check_exposure(values: object, *, party: str, source: str | None,
                   column: str) -> np.ndarray:
    """The label holder's Poisson exposure as float64 (finite, > 0), or the error.

    Raises
    ------
    InvalidWeightError
        One line naming the file and the column.
    """
    where = source or "the DataFrame"
    try:
        exposure = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidWeightError(f"exposure column {column!r} of {where} holds a value that "
                                 "is not a number", party=party) from None
    bad = ~(np.isfinite(exposure) & (exposure > 0))
    if bad.any():
        row = int(np.argmax(bad))
        raise InvalidWeightError(f"exposure column {column!r} of {where} holds "
                                 f"{exposure[row]:g} (row {row + 1}); an exposure (time at "
                                 "risk, population) is a positive finite number", party=party)
    return exposure


def balanced_class_weights(y: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``class_weight="balanced"``: n / (2 n_c) for every row of class c.

    n and n_c count the training `rows` (positions into `y`), as scikit-learn
    counts the rows it fits; every row of `y` (validation rows too) gets
    its class's weight.

    Parameters
    ----------
    y : numpy.ndarray
        Two classes (any coding).
    rows : numpy.ndarray
        The training positions.
    """
    y = np.asarray(y, dtype=np.float64)
    classes, counts = np.unique(y[rows], return_counts=True)
    if len(classes) != 2:
        raise ConfigError(f"class_weight='balanced' needs both classes among the training "
                          f"rows, found {len(classes)}")
    weights = np.empty(len(y))
    for value, count in zip(classes, counts):
        weights[y == value] = len(rows) / (2.0 * count)
    return weights


def batch_weights(weights: np.ndarray | None, rows: np.ndarray) -> np.ndarray | None:
    """The weights of a batch scaled to mean 1: w_i * m / sum_batch w (None: unweighted).

    Every loss and gradient of a weighted run is the weighted mean over the
    batch, sum w_i l_i / sum w_i = (1/m) sum w'_i l_i: with w' the protocol
    keeps dividing by the batch's row count m, so the coordinator, who
    divides, never learns the weights' sum.

    Raises
    ------
    InvalidWeightError
        If every row of the batch has weight 0 (the weighted mean is undefined).
    """
    if weights is None:
        return None
    chosen = np.asarray(weights, dtype=np.float64)[rows]
    total = float(chosen.sum())
    if not total > 0:
        raise InvalidWeightError(f"every row of a batch of {len(rows)} rows has weight 0: "
                                 "train on the full batch or on larger batches")
    return chosen * (len(chosen) / total)
