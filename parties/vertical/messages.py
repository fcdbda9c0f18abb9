"""Typed messages of the vertical protocol (``PROTOCOL.md``), one dataclass per step.

Arrows give sender -> recipient. Ciphertext fields are
:class:`~vfl.crypto.EncryptedVector`; the receiving party validates every one
of them (see :meth:`vfl.runtime.role.Role.receive`). Nothing here carries a raw
ID, feature, label or weight; the only plaintext reals are the loss (to B),
the batch size, the L-BFGS coefficients and steps (``docs/lbfgs.md``) and,
for prediction and the final intercept fold, the values documented in the
README's leakage list. The key, resuming and the audit
record are the runtime's messages (:mod:`vfl.protocol.messages`); alignment
messages live with their method in :mod:`vfl.psi`.
"""

from __future__ import annotations

from dataclasses import dataclass

from vfl.crypto.ciphertext import EncryptedVector
from vfl.protocol.wire import wire_message
from vfl.training import TrainingConfig

__all__ = [
    "ChainedExpScores",
    "ConvergenceVote",
    "CrossTerm",
    "CrossTermRequest",
    "DecryptedMaskedGradient",
    "EncryptedGram",
    "EncryptedGramPart",
    "EncryptedLoss",
    "EncryptedPartialScores",
    "EncryptedResidual",
    "EncryptedValidationLoss",
    "EncryptedValidationScores",
    "EpochEnd",
    "EpochStart",
    "ExtendExpScores",
    "InterceptOffset",
    "MaskedGradient",
    "MaskedPartialScores",
    "PartialScores",
    "PredictionMaskSeed",
    "SearchDirection",
    "TrainingPlan",
    "TrialVerdict",
    "WeightedLossTerm",
]


# --- the plan ------------------------------------------------------------------


@wire_message
@dataclass(frozen=True)
class TrainingPlan:
    """B -> A, C: the configuration B will run and the aligned row count.

    A and C compare it with their own configuration and refuse to start on
    any difference.
    """

    config: TrainingConfig
    n_rows: int
    feature_holders: tuple[str, ...]
    #: Seed of the validation split (see :func:`vfl.training.validation_split`).
    split_seed: int = 0
    #: B weights the rows (sample weights or balanced classes; docs/poisson.md): the
    #: pass's scales change. Only this yes/no leaves B, never a weight.
    weighted: bool = False


# --- training -----------------------------------------------------------------


@wire_message
@dataclass(frozen=True)
class EpochStart:
    """B -> A: the seed both sides derive this epoch's batch order from."""

    batch_seed: int


@wire_message
@dataclass(frozen=True)
class EncryptedPartialScores:
    """A -> B: [[u_A]] and [[L_A]], L_A = sum u_A^2 + m*lambda*||theta_A||^2.

    In weighted and Poisson runs L_A is the penalty term alone, at the loss's
    scale (``parties.vertical.scales``).
    """

    scores: EncryptedVector
    loss_part: EncryptedVector


@wire_message
@dataclass(frozen=True)
class EncryptedResidual:
    """B -> A: [[k d]] = [[sum_j u_Aj]] + v, re-randomised for this recipient.

    v = u_B - y (linear, k = 1) or u_B - 2y with y in {-1, +1} (logistic
    Taylor loss, k = 4); see :attr:`vfl.training.TrainingConfig.residual_factor`.
    """

    residual: EncryptedVector


@wire_message
@dataclass(frozen=True)
class CrossTermRequest:
    """B -> A_j: [[U]] = [[sum_{k>j} u_Ak]], re-randomised, for the loss's cross terms.

    With several feature holders the loss needs sum_i u_Aj,i * u_Ak,i for
    j < k. A_j multiplies [[U]] by its own scores in the clear (batch 0: the
    validation rows).
    """

    values: EncryptedVector


@wire_message
@dataclass(frozen=True)
class CrossTerm:
    """A_j -> B: [[2 sum_i u_Aj,i U_i]], one ciphertext, re-randomised."""

    value: EncryptedVector


@wire_message
@dataclass(frozen=True)
class WeightedLossTerm:
    """A -> B (weighted runs of the squared losses): [[sum_i r_i u_A,i]], re-randomised.

    r = [[k w' d]] is the residual A received; B adds sum_i r_i v_i and the
    penalties: sum_i r_i (sum_k u_Ak,i + v_i) = sum_i w'_i (k d_i)^2, the
    weighted loss, without any cross term between feature holders.
    """

    value: EncryptedVector


@wire_message
@dataclass(frozen=True)
class ChainedExpScores:
    """A_k -> B (Poisson): [[prod_{j<=k} exp(u_Aj)]], re-randomised.

    A1 encrypts its own exp(u_A1) (scale 2^f); each later A_k multiplies what
    B relayed by its own exp(u_Ak) encoded (one more factor 2^f). B relays the
    product to A_{k+1} (:class:`ExtendExpScores`) or, after the last, forms
    [[mu]] with its own factor. Every party sees only ciphertexts.
    """

    scores: EncryptedVector


@wire_message
@dataclass(frozen=True)
class ExtendExpScores:
    """B -> A_k (Poisson, k >= 2): [[prod_{j<k} exp(u_Aj)]] from A_{k-1}, re-randomised."""

    scores: EncryptedVector


@wire_message
@dataclass(frozen=True)
class EncryptedValidationScores:
    """A -> B: [[u_A]] and [[sum u_A^2]] on the validation rows (batch 0)."""

    scores: EncryptedVector
    loss_part: EncryptedVector


@wire_message
@dataclass(frozen=True)
class EncryptedLoss:
    """B -> C: [[S]] for a batch of `batch_rows` rows, re-randomised.

    S = sum_i (k d_i)^2 + 2 m k * penalty, from which C recovers the loss
    L = S / (2 m k) + (log 2 - 1/2 for the logistic Taylor loss). Weighted:
    sum_i w'_i (k d_i)^2 + 2 m k * penalty. Poisson: S = sum_i w'_i (mu_i - y_i
    eta_i) + m * penalty, L = S / m (``PassScales.mean_loss``).
    """

    loss: EncryptedVector
    batch_rows: int


@wire_message
@dataclass(frozen=True)
class EncryptedValidationLoss:
    """B -> C: [[S]] of the validation rows (no penalty), after each epoch."""

    loss: EncryptedVector
    rows: int


@wire_message
@dataclass(frozen=True)
class ConvergenceVote:
    """A or B -> C: whether this party's own weights moved by at most tol this epoch.

    Only the yes/no leaves the party, never the weights or their change.
    """

    converged: bool


@wire_message
@dataclass(frozen=True)
class MaskedGradient:
    """A or B -> C: [[X^T d + R]] (B appends [[sum d + R_b]]), re-randomised."""

    values: EncryptedVector


@wire_message
@dataclass(frozen=True)
class DecryptedMaskedGradient:
    """C -> A or B: the decrypted masked gradient, residues in Z_n."""

    values: tuple[int, ...]


@wire_message
@dataclass(frozen=True)
class EpochEnd:
    """C -> A, B: whether to stop. Only B is told the losses.

    Attributes
    ----------
    stop : bool
    loss : float or None
        Mean training loss of the epoch (to B only).
    validation_loss : float or None
        Loss on the validation split (to B only; None without a split).
    best : bool
        This epoch's weights are the best so far on the validation split;
        each party keeps a copy, restored at the end under validation early
        stopping. Told to the feature holders only under validation early
        stopping: whether the validation loss improved depends on the labels.
    """

    stop: bool
    loss: float | None = None
    validation_loss: float | None = None
    best: bool = False


# --- L-BFGS (docs/lbfgs.md) -------------------------------------------------------


@wire_message
@dataclass(frozen=True)
class EncryptedGramPart:
    """A -> B: [[this party's share of the new Gram entries]] (vfl.lbfgs), product scale.

    B cannot read them (C's key) and forwards only their sum with its own.
    """

    values: EncryptedVector


@wire_message
@dataclass(frozen=True)
class EncryptedGram:
    """B -> C: [[the new Gram entries of the full vectors]]: every party's share summed,
    re-randomised. C decrypts inner products of whole vectors, never a party's share."""

    values: EncryptedVector


@wire_message
@dataclass(frozen=True)
class SearchDirection:
    """C -> A, B: the L-BFGS direction as coefficients over the parties' own vectors.

    Each party forms its block of d = sum_j c_j v_j over (s_1..s_h, y_1..y_h,
    g), after adding the pending pair to its memory if `keep_pending`.

    Attributes
    ----------
    keep_pending : bool
        The last step's pair passed the curvature check and joins the memory.
    coefficients : tuple of float
        c, one per basis vector (2h + 1).
    step : float
        The first trial step t.
    """

    keep_pending: bool
    coefficients: tuple[float, ...]
    step: float


@wire_message
@dataclass(frozen=True)
class TrialVerdict:
    """C -> A, B: after the pass at w + t d, what the line search decided.

    Attributes
    ----------
    accepted : bool
    step : float or None
        Accepted: the step taken (the trial's own, or the exact minimiser
        along d, where each party interpolates its gradient). Not accepted:
        the next trial's step, or None when the line search gave up (the
        point stays; the run stops).
    """

    accepted: bool
    step: float | None = None


# --- after training -------------------------------------------------------------


@wire_message
@dataclass(frozen=True)
class InterceptOffset:
    """A -> B: A's partial score of an all-zero raw row.

    A standardises its columns internally; its raw-unit model is
    ``X_raw @ w + offset``. Folding the offset into B's intercept makes each
    party's saved part a plain linear model. Reveals one scalar to B.
    """

    offset: float


@wire_message
@dataclass(frozen=True)
class PartialScores:
    """A -> B: u_A in the clear for rows to predict (PROTOCOL.md, prediction)."""

    scores: tuple[float, ...]


@wire_message
@dataclass(frozen=True)
class PredictionMaskSeed:
    """B -> A: a 32-byte seed of the masks that hide A's scores from C.

    Used when the prediction goes to C: A sends C its encoded scores plus
    masks expanded from this seed, B sends its own minus the masks of every
    A, so C can add them up but sees no single party's partial score.
    """

    seed: bytes


@wire_message
@dataclass(frozen=True)
class MaskedPartialScores:
    """A or B -> C: fixed-point partial scores plus masks, mod 2**256.

    B's message also names the model kind, so C knows whether the summed
    score is the prediction or the log-odds of class 1.
    """

    values: tuple[int, ...]
    model: str | None = None
