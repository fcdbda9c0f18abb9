"""The training options of ``vfl simulate`` (and the demo): one flag per TrainingConfig field.

Defaults and allowed values come from :class:`~vfl.training.TrainingConfig`
itself, so ``--help`` can never drift from what the library does.
"""

from __future__ import annotations

import argparse
from dataclasses import fields

from vfl.optim import OPTIMIZERS, PENALTIES, SCHEDULES
from vfl.training import EARLY_STOPPING, MODELS, TrainingConfig

__all__ = ["add_training_options", "config_from_args"]


def _batch_size(text: str) -> int | None:
    if text == "full":
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer or 'full', got {text!r}")
    if value < 1:
        raise argparse.ArgumentTypeError(f"batch size must be positive, got {value}")
    return value


#: (flag type or choices, help) per TrainingConfig field, in --help order.
_OPTIONS: dict[str, tuple[object, str]] = {
    "model": (MODELS, "linear regression, or logistic regression by the Taylor-expanded "
                      "log-loss (labels 0/1 or -1/+1)"),
    "epochs": (int, "maximum number of passes over the training rows"),
    "learning_rate": (float, "base step size (see --schedule)"),
    "batch_size": (_batch_size, "rows per mini-batch, or 'full' (None = full batch)"),
    "optimizer": (OPTIMIZERS, "update rule every party applies to its own weights"),
    "momentum": (float, "momentum coefficient (--optimizer momentum)"),
    "nesterov": (bool, "Nesterov momentum (--optimizer momentum)"),
    "beta1": (float, "Adam's first-moment decay"),
    "beta2": (float, "Adam's second-moment decay"),
    "rho": (float, "RMSprop's decay of the squared gradient"),
    "epsilon": (float, "added to the adaptive optimisers' denominators"),
    "schedule": (SCHEDULES, "learning rate per epoch e: constant, lr*gamma^((e-1)//step_size), "
                            "or lr/sqrt(1+decay*(e-1))"),
    "step_size": (int, "epochs between decays (--schedule step)"),
    "gamma": (float, "decay factor (--schedule step)"),
    "decay": (float, "decay rate (--schedule invsqrt)"),
    "penalty": (PENALTIES, "penalty on the weights (never the intercept); l1 is a proximal "
                           "soft-threshold step"),
    "alpha": (float, "penalty strength (0 with --penalty none)"),
    "early_stopping": (EARLY_STOPPING, "stop on the change of the training loss, on every "
                                       "party's own weight change (yes/no votes), on the "
                                       "validation loss with --patience, or never"),
    "tol": (float, "threshold of the stopping rule (> 0)"),
    "validation_fraction": (float, "share of aligned rows B holds out for validation "
                                   "(0: none)"),
    "patience": (int, "epochs without validation improvement before stopping"),
    "min_batch_factor": (float, "a party with d features refuses batches of <= factor*d rows"),
    "standardize": (bool, "each party standardises its own columns (--no-standardize: raw)"),
}


def add_training_options(parser: argparse.ArgumentParser) -> None:
    """Add one option per TrainingConfig field, defaults shown in --help."""
    defaults = {f.name: f.default for f in fields(TrainingConfig)}
    assert set(_OPTIONS) == set(defaults), "every TrainingConfig field needs a CLI option"
    group = parser.add_argument_group("training (identical at every party)")
    for name, (kind, text) in _OPTIONS.items():
        flag = "--" + name.replace("_", "-")
        default = defaults[name]
        if kind is bool:
            group.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction,
                               default=default, help=text)
        elif isinstance(kind, tuple):
            group.add_argument(flag, dest=name, choices=kind, default=default, help=text)
        else:
            group.add_argument(flag, dest=name, type=kind, default=default,
                               metavar="N|full" if name == "batch_size" else None, help=text)


def config_from_args(args: argparse.Namespace) -> TrainingConfig:
    """The TrainingConfig the parsed options describe (raises ConfigError if invalid)."""
    return TrainingConfig(**{name: getattr(args, name) for name in _OPTIONS})
