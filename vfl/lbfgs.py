"""Full-batch L-BFGS written on inner products: what each party and the coordinator compute.

The two-loop recursion of L-BFGS (Nocedal and Wright, *Numerical
Optimization*, algorithm 7.4) only ever combines the vectors of its memory
(steps s_i = w_{i+1} - w_i, gradient changes y_i = g_{i+1} - g_i) and the
gradient g linearly, and only ever asks for inner products between them. So
the search direction is d = sum_j c_j v_j over the basis
v = (s_1..s_h, y_1..y_h, g), with coefficients c that depend on the Gram
matrix G_jk = v_j . v_k alone (:func:`two_loop`). In the vertical protocol
each party holds one block of every vector, so G is the sum of the parties'
partial Gram matrices, and each party forms its own block of d from c.

The pieces, shared by the federation and by the centralized reference
(:func:`vfl.reference.train_centralized`), so that both follow one rule:

- :class:`LbfgsBlock`: one party's block of the vectors (the reference's
  block is the whole vector): the gradient, the memory, the pair the last
  step made (pending until the coordinator checks its curvature), the
  direction and the first trial step. Party-local, checkpointed.
- :class:`LbfgsState` and :class:`LbfgsRule`: what the coordinator keeps
  (the Gram matrix of the memory, the loss at the current point, the slope
  g.d of the direction) and decides (keep the new pair or not, the
  coefficients, whether a trial step is accepted).

One iteration: the parties send the Gram entries that are new (the pending
pair's and the gradient's inner products with the memory and with each
other: :meth:`LbfgsBlock.gram_entries`; the memory's own Gram matrix is kept
by the coordinator), the coordinator returns the coefficients and a probe
step t0, and one pass of the protocol at w + t0 d yields the loss there (at
the coordinator) and each party's gradient block there.

The line search is exact, and costs that one pass. Every loss these rules
minimise (squared loss, the Taylor log-loss, with or without L2) is a
quadratic in the weights, so along d it is L(t) = L(0) + t g.d + t^2 k / 2
with g.d = (G c)_g, a by-product of the recursion, and k found from the
probe: k = d.(g(t0) - g(0)) / t0, an inner product of whole vectors that
the parties' shares give as the Gram entries do (one entry; the loss
difference would give k too, but loses digits to cancellation on
ill-conditioned data). With k > 0 the coordinator
takes the minimiser t* = -g.d / k, where L(t*) = L(0) + t* g.d / 2 < L(0);
the gradient, affine along d, is g(t*) = g(0) + (t*/t0) (g(t0) - g(0)), which
each party forms from its own two blocks. This is what makes L-BFGS behave
like conjugate gradients on these losses: on FATE's motor data it reaches
the optimum in 12 iterations where Armijo backtracking from t = 1 needs 30
for a thousandth of R². Should k not be positive (rounding on a flat loss),
the probe is judged by Armijo's condition L(t) <= L(0) + c1 t g.d on the
loss measured there, and t halves until it holds, at most
``line_search_steps`` passes; if none does, the run stops where it is
instead of climbing.

Poisson regression's loss sum(mu - y u), mu = exp(u), is not quadratic:
there the probe is judged like any later trial, by Armijo's condition on
the measured loss, t halving from the first trial step (1 with pairs,
min(1, 1/|g|) without), each trial one protocol pass; the accepted point's
gradient is the one its pass measured (no interpolation), and no curvature
entry travels (:func:`exact_line_search`).

A new pair is kept only if s.y > CURVATURE_EPS |s| |y| (the standard skip
that keeps the inverse-Hessian estimate positive definite); the oldest pair
leaves the memory when it holds more than ``lbfgs_memory``. The first step
along -g (empty memory) is min(1, 1/|g|); with pairs it is 1, the
recursion's scaling s.y / y.y giving the direction its length.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "CURVATURE_EPS",
    "SHRINK",
    "LbfgsBlock",
    "LbfgsRule",
    "LbfgsState",
    "entry_count",
    "exact_line_search",
    "penalized_gradient",
    "two_loop",
]

#: A pair (s, y) joins the memory only if s.y > CURVATURE_EPS * |s| |y|.
CURVATURE_EPS = 1e-8
#: Each rejected trial halves the step.
SHRINK = 0.5


def exact_line_search(model: str) -> bool:
    """Whether the model's loss is quadratic in the weights, so the line search is exact.

    Squared loss and the Taylor log-loss are; Poisson's sum(mu - y u) is not
    (mu = exp(u)): its L-BFGS backtracks from the first trial step by
    Armijo's condition, each trial one pass, and the parties send no
    curvature entry.
    """
    return model != "poisson"


def entry_count(pairs: int, pending: bool) -> int:
    """How many Gram entries a round carries: see :meth:`LbfgsBlock.gram_entries`.

    Parameters
    ----------
    pairs : int
        Pairs in the memory (h).
    pending : bool
        Whether the last accepted step left a pair to be checked.
    """
    new = 3 if pending else 1
    return new * 2 * pairs + new * (new + 1) // 2


def penalized_gradient(config, params: np.ndarray, gradient: np.ndarray,
                       penalized: np.ndarray) -> np.ndarray:
    """The data-loss gradient plus the L2 term alpha * w (never on the intercept)."""
    gradient = np.asarray(gradient, dtype=np.float64)
    if config.penalty != "l2":
        return gradient
    return gradient + config.alpha * np.where(penalized, params, 0.0)


def two_loop(gram: np.ndarray, pairs: int) -> np.ndarray:
    """Coefficients c of the L-BFGS direction d = -H g over the basis (s_1..s_h, y_1..y_h, g).

    The textbook two-loop recursion with every vector replaced by its
    coefficient vector over the basis, so that an inner product u.v becomes
    u_c^T G v_c. H's initial scaling is s_h.y_h / y_h.y_h (1 without pairs).

    Parameters
    ----------
    gram : numpy.ndarray, shape (2h + 1, 2h + 1)
        Inner products of the basis vectors, oldest pair first, g last.
    pairs : int
        h.
    """
    size = 2 * pairs + 1
    if gram.shape != (size, size):
        raise ValueError(f"a Gram matrix of shape {gram.shape} for {pairs} pairs")
    q = np.zeros(size)
    q[-1] = 1.0
    rho = np.array([1.0 / gram[i, pairs + i] for i in range(pairs)])
    alpha = np.zeros(pairs)
    for i in reversed(range(pairs)):
        alpha[i] = rho[i] * (gram[i] @ q)
        q[pairs + i] -= alpha[i]
    gamma = gram[pairs - 1, 2 * pairs - 1] / gram[2 * pairs - 1, 2 * pairs - 1] if pairs else 1.0
    r = gamma * q
    for i in range(pairs):
        beta = rho[i] * (gram[pairs + i] @ r)
        r[i] += alpha[i] - beta
    return -r


@dataclass
class LbfgsBlock:
    """One party's block of the L-BFGS vectors (saved in its checkpoints).

    The label holder's block ends with the intercept. The centralized
    reference keeps one block holding the whole vectors.

    Attributes
    ----------
    gradient : numpy.ndarray
        The gradient block at the current point, L2 term included.
    steps, changes : list of numpy.ndarray
        The memory: s_i and y_i blocks, oldest first.
    pending_step, pending_change : numpy.ndarray or None
        The pair the last accepted step made, until the coordinator says
        whether it joins the memory.
    direction : numpy.ndarray
        This block of the search direction d.
    step : float
        The first trial step along it.
    """

    gradient: np.ndarray
    steps: list[np.ndarray]
    changes: list[np.ndarray]
    pending_step: np.ndarray | None
    pending_change: np.ndarray | None
    direction: np.ndarray
    step: float

    @classmethod
    def empty(cls, size: int) -> LbfgsBlock:
        """Before the first gradient (set by the first pass)."""
        return cls(np.zeros(size), [], [], None, None, np.zeros(size), 0.0)

    @property
    def pending(self) -> bool:
        return self.pending_step is not None

    def gram_entries(self) -> np.ndarray:
        """This block's share of the Gram entries the coordinator does not hold yet.

        With N the new vectors (pending s, pending y, g; or g alone) and M the
        memory (s_1..s_h, y_1..y_h): first n.m for n in N, m in M (row by
        row), then n_i.n_j for i <= j. The coordinator adds the parties'
        shares: the inner products of the full vectors.
        """
        memory = [*self.steps, *self.changes]
        new = [self.gradient]
        if self.pending_step is not None and self.pending_change is not None:
            new = [self.pending_step, self.pending_change, self.gradient]
        entries = [float(n @ m) for n in new for m in memory]
        entries += [float(new[i] @ new[j]) for i in range(len(new)) for j in range(i, len(new))]
        return np.asarray(entries, dtype=np.float64)

    def curvature_entries(self, trial_gradient: np.ndarray) -> np.ndarray:
        """This block's share of d.(g(t) - g(0)), t the probe step: one entry."""
        return np.asarray([float(self.direction @ (trial_gradient - self.gradient))])

    def basis_size(self, keep: bool, memory: int) -> int:
        """Coefficients expected after the memory update (2h' + 1)."""
        pairs = len(self.steps) + (1 if self.pending and keep else 0)
        return 2 * min(pairs, memory) + 1

    def take_direction(self, keep: bool, coefficients: np.ndarray, step: float,
                       memory: int) -> None:
        """Update the memory as the coordinator decided; form this block of d = sum c_j v_j."""
        if self.pending and keep:
            assert self.pending_step is not None and self.pending_change is not None
            self.steps.append(self.pending_step)
            self.changes.append(self.pending_change)
            del self.steps[:-memory], self.changes[:-memory]
        self.pending_step = self.pending_change = None
        basis = [*self.steps, *self.changes, self.gradient]
        coefficients = np.asarray(coefficients, dtype=np.float64)
        if len(coefficients) != len(basis):
            raise ValueError(f"{len(coefficients)} coefficients for {len(basis)} vectors")
        self.direction = np.column_stack(basis) @ coefficients
        self.step = float(step)

    def trial(self, params: np.ndarray, step: float) -> np.ndarray:
        """The trial point w + t d of this block."""
        return params + step * self.direction

    def accept(self, params: np.ndarray, step: float, trial_step: float,
               trial_gradient: np.ndarray) -> np.ndarray:
        """Move to w + t d; return it. The new pair is pending, the gradient current.

        `trial_gradient` is this block's gradient at the last trial, w +
        `trial_step` d. Accepting another step (the line search's exact
        minimiser) interpolates the gradient, affine along d for a quadratic
        loss: g(t) = g(0) + (t / t_trial) (g(t_trial) - g(0)).
        """
        point = self.trial(params, step)
        if step == trial_step:
            gradient = trial_gradient
        else:
            gradient = self.gradient + (step / trial_step) * (trial_gradient - self.gradient)
        self.pending_step = point - params
        self.pending_change = gradient - self.gradient
        self.gradient = gradient
        return point


@dataclass
class LbfgsState:
    """What the coordinator keeps of an L-BFGS run (saved in its checkpoints).

    Attributes
    ----------
    gram : list of numpy.ndarray
        Rows of the Gram matrix of the memory (s_1..s_h, y_1..y_h): 2h rows
        of 2h inner products of full vectors.
    pending : bool
        The last accepted step left a pair whose entries the next round brings.
    loss : float
        The loss at the current point (penalty included).
    slope : float
        g.d of the current direction (< 0 for a descent direction).
    step : float
        Its first trial step.
    gradient_norm : float
        |g| at the current point (from the Gram entries).
    gave_up : bool
        No trial of the last line search decreased the loss enough.
    """

    gram: list[np.ndarray]
    pending: bool
    loss: float
    slope: float
    step: float
    gradient_norm: float
    gave_up: bool

    @classmethod
    def fresh(cls) -> LbfgsState:
        return cls([], False, math.nan, 0.0, 0.0, math.inf, False)

    @property
    def pairs(self) -> int:
        return len(self.gram) // 2


class LbfgsRule:
    """The coordinator's decisions: coefficients, first step, trial verdicts, convergence.

    Parameters
    ----------
    config : vfl.training.TrainingConfig
        Supplies ``lbfgs_memory``, ``line_search_c1``, ``line_search_steps``
        and ``gradient_tol``.
    state : LbfgsState
        Updated in place.
    """

    def __init__(self, config, state: LbfgsState) -> None:
        self.config = config
        self.state = state
        self.exact = exact_line_search(config.model)

    def begin(self, loss: float) -> None:
        """The loss at the starting point (the run's first pass)."""
        self.state.loss = loss

    @property
    def expected_entries(self) -> int:
        return entry_count(self.state.pairs, self.state.pending)

    def direction(self, entries: np.ndarray) -> tuple[bool, np.ndarray, float]:
        """From the round's summed Gram entries: (keep the pending pair, c, first step).

        Also updates the memory's Gram matrix, |g| and the slope g.d.
        """
        s = self.state
        h, pending = s.pairs, s.pending
        entries = np.asarray(entries, dtype=np.float64)
        if len(entries) != entry_count(h, pending):
            raise ValueError(f"{len(entries)} Gram entries, expected {entry_count(h, pending)}")
        new = 3 if pending else 1
        size = 2 * h + new
        full = np.zeros((size, size))
        full[:2 * h, :2 * h] = np.asarray(s.gram).reshape(2 * h, 2 * h)
        cross = entries[:new * 2 * h].reshape(new, 2 * h)
        full[2 * h:, :2 * h], full[:2 * h, 2 * h:] = cross, cross.T
        rest = iter(entries[new * 2 * h:])
        for i in range(new):
            for j in range(i, new):
                full[2 * h + i, 2 * h + j] = full[2 * h + j, 2 * h + i] = next(rest)
        steps, changes = list(range(h)), list(range(h, 2 * h))
        keep = False
        if pending:
            ss, sy, yy = full[2 * h, 2 * h], full[2 * h, 2 * h + 1], full[2 * h + 1, 2 * h + 1]
            keep = bool(sy > CURVATURE_EPS * math.sqrt(max(ss * yy, 0.0)))
            if keep:
                steps.append(2 * h)
                changes.append(2 * h + 1)
                memory = self.config.lbfgs_memory
                steps, changes = steps[-memory:], changes[-memory:]
        basis = [*steps, *changes, size - 1]
        gram = full[np.ix_(basis, basis)]
        pairs = len(steps)
        coefficients = two_loop(gram, pairs)
        slope = float(gram[-1] @ coefficients)
        norm = math.sqrt(max(gram[-1, -1], 0.0))
        if not slope < 0:
            # Only rounding can get here (every kept pair has s.y > 0, so H is
            # positive definite): fall back to steepest descent.
            coefficients = np.zeros(len(basis))
            coefficients[-1] = -1.0
            slope = -gram[-1, -1]
        step = 1.0 if pairs else min(1.0, 1.0 / norm) if norm > 0 else 1.0
        s.gram = list(gram[:2 * pairs, :2 * pairs])
        s.pending, s.slope, s.step, s.gradient_norm = False, slope, step, norm
        return keep, coefficients, step

    def verdict(self, loss: float, step: float, trial: int,
                change: float | None = None) -> tuple[bool, float | None]:
        """After the pass at step t, trial `trial` (from 1), with loss `loss` there.

        `change` is d.(g(t) - g(0)) (the probe's summed curvature entries;
        None after later trials). Returns (True, the step taken) or (False,
        the next trial's step), or (False, None) once ``line_search_steps``
        trials failed: the point stays where it is and the run stops. After
        the probe the step taken is the exact minimiser along d when the loss
        curves up there (see the module's docstring); otherwise trials follow
        Armijo's condition on the measured loss. A loss that is not quadratic
        (Poisson: :func:`exact_line_search`) is judged by Armijo's condition
        at every trial, the probe included.
        """
        s, c = self.state, self.config
        if change is not None and self.exact:
            curvature = change / step
            if math.isfinite(curvature) and curvature > 0:
                best = -s.slope / curvature
                s.loss, s.pending = s.loss + 0.5 * best * s.slope, True
                return True, best
        if math.isfinite(loss) and loss <= s.loss + c.line_search_c1 * step * s.slope:
            s.loss, s.pending = loss, True
            return True, step
        if trial >= c.line_search_steps:
            s.gave_up = True
            return False, None
        return False, step * SHRINK

    @property
    def converged(self) -> bool:
        """Stop: the gradient's norm is at most ``gradient_tol``, or the line search gave up."""
        return self.state.gave_up or self.state.gradient_norm <= self.config.gradient_tol
