"""The settings of one transfer-learning run, identical at both parties (checked in the plan)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from vfl.crypto import DEFAULT_BACKEND, DEFAULT_KEY_BITS, available_backends, check_key_bits
from vfl.errors import ConfigError, InsecureKeyError

__all__ = ["MODES", "TransferConfig"]

#: ``encrypted`` (default): Paillier under each party's own key. ``plain``:
#: no encryption at all (debugging and tests; needs ``insecure=True``).
MODES = ("encrypted", "plain")


@dataclass(frozen=True)
class TransferConfig:
    """Every setting both parties must share (``docs/transfer.md``).

    Parameters
    ----------
    hidden : tuple of int
        Units of each layer of both networks; the last is the
        representation size d.
    activations : tuple of str
        One activation per layer (``sigmoid``, ``tanh``, ``relu``, ``linear``).
    epochs : int
        Exchanges of terms; each is followed by `local_rounds` gradient steps.
    learning_rate : float
        Gradient-descent step (the objective is a sum over the overlap rows).
    alpha : float
        Weight of the Taylor log-loss against the alignment term.
    l2 : float
        L2 penalty λ on both networks' parameters.
    local_rounds : int
        Gradient steps per exchange: 1 is the normal mode, more is the
        communication-efficient mode.
    tol : float
        Stop when the loss changes by less than ``tol`` relative to it (0: never).
    mode : str
        ``encrypted`` or ``plain``.
    insecure : bool
        Allow plain mode and keys below 2048 bits (tests and debugging only).
    key_bits : int
        Size of each party's Paillier modulus.
    backend : str
        Paillier engine (:func:`vfl.crypto.available_backends`).
    min_overlap_factor : float
        The overlap must reach this many times (fan-in + 1) of every layer of
        both networks, so a parameter gradient does not determine the rows.

    Raises
    ------
    ConfigError
        For an invalid value (naming the setting); InsecureKeyError for a small
        key without `insecure`.
    """

    hidden: tuple[int, ...] = (32,)
    activations: tuple[str, ...] = ("sigmoid",)
    epochs: int = 10
    learning_rate: float = 0.01
    alpha: float = 1.0
    l2: float = 0.0
    local_rounds: int = 1
    tol: float = 0.0
    mode: str = "encrypted"
    insecure: bool = False
    key_bits: int = DEFAULT_KEY_BITS
    backend: str = DEFAULT_BACKEND
    min_overlap_factor: float = field(default=2.0)

    def __post_init__(self) -> None:
        hidden = (self.hidden,) if isinstance(self.hidden, int) else tuple(self.hidden)
        activations = ((self.activations,) if isinstance(self.activations, str)
                       else tuple(self.activations))
        if len(activations) == 1 and len(hidden) > 1:
            activations = activations * len(hidden)
        object.__setattr__(self, "hidden", hidden)
        object.__setattr__(self, "activations", activations)
        if not hidden or any(not isinstance(h, int) or isinstance(h, bool) or h < 1
                             for h in hidden):
            raise ConfigError(f"hidden must be positive layer sizes, got {self.hidden!r}")
        if len(activations) != len(hidden):
            raise ConfigError(f"activations: {len(activations)} for {len(hidden)} layers")
        for name in ("epochs", "local_rounds"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        for name, positive in (("learning_rate", True), ("alpha", True), ("l2", False),
                               ("tol", False), ("min_overlap_factor", False)):
            value = getattr(self, name)
            if (isinstance(value, bool) or not isinstance(value, (int, float))
                    or not math.isfinite(value) or value < 0 or (positive and value == 0)):
                raise ConfigError(f"{name} must be a {'positive' if positive else 'non-negative'}"
                                  f" number, got {value!r}")
            object.__setattr__(self, name, float(value))
        if self.mode not in MODES:
            raise ConfigError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.mode == "plain" and not self.insecure:
            raise ConfigError("mode 'plain' sends every term unencrypted: the target would "
                              "see label-dependent values and the source the target's "
                              "representations; pass insecure=True (CLI: --insecure) for "
                              "debugging only")
        if self.backend == "plain":
            raise ConfigError("backend 'plain' is offered for vertical runs only; a transfer "
                              "run without encryption is mode 'plain' with insecure=True "
                              "(CLI: --mode plain --insecure)")
        if self.backend not in available_backends():
            raise ConfigError(f"backend must be one of {', '.join(available_backends())}, "
                              f"got {self.backend!r}")
        try:
            check_key_bits(self.key_bits, insecure=self.insecure)
        except InsecureKeyError:
            raise InsecureKeyError(f"key_bits is {self.key_bits}: a key that small can be "
                                   "factored; use at least 2048 bits, or pass insecure=True "
                                   "(CLI: --insecure) for tests only") from None
        except (TypeError, ValueError) as exc:
            raise ConfigError(str(exc)) from None

    def to_dict(self) -> dict[str, object]:
        return {"hidden": list(self.hidden), "activations": list(self.activations),
                "epochs": self.epochs, "learning_rate": self.learning_rate,
                "alpha": self.alpha, "l2": self.l2, "local_rounds": self.local_rounds,
                "tol": self.tol, "mode": self.mode, "insecure": self.insecure,
                "key_bits": self.key_bits, "backend": self.backend,
                "min_overlap_factor": self.min_overlap_factor}
