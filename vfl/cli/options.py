"""Options of ``vfl simulate`` (and the demo), derived from the run settings' dataclasses.

One flag per :class:`~vfl.runtime.config.RunConfig` field that the ``cli``
surface carries, the training options one flag per
:class:`~vfl.training.TrainingConfig` field: names, defaults and allowed
values come from the dataclasses themselves, so ``--help`` can never drift
from what the library does.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import fields
from typing import Any

from vfl.errors import ConfigError
from vfl.optim import OPTIMIZERS, PENALTIES, SCHEDULES
from vfl.runtime.config import RunConfig, run_settings, setting_of
from vfl.training import EARLY_STOPPING, MODELS, TrainingConfig

__all__ = [
    "add_run_option",
    "add_run_options",
    "add_training_options",
    "batch_size",
    "config_from_args",
    "run_config_from_args",
]

#: Namespace attribute listing the options given on the command line (not defaulted).
_GIVEN = "_options_given"


class _Given(argparse.Action):
    """Store the value, as the default action does, and note that the option was given.

    ``--l2`` conflicts with a *given* ``--penalty`` or ``--alpha`` only, and
    argparse alone cannot tell a given value from the default.
    """

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        setattr(namespace, self.dest, values)
        setattr(namespace, _GIVEN, {*getattr(namespace, _GIVEN, ()), self.dest})


class _Refused(argparse.Action):
    """An option that does not exist, refused with a message instead of guessed at."""

    def __init__(self, option_strings: Sequence[str], dest: str, *, message: str,
                 **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS,
                         help=argparse.SUPPRESS, **kwargs)
        self.message = message

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        parser.error(self.message)


def batch_size(text: str) -> int | None:
    """argparse type of a batch size: a positive integer, or 'full' (None)."""
    if text == "full":
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a positive integer or 'full', got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"batch size must be positive, got {value}")
    return value


#: (flag type or choices, help) per TrainingConfig field, in --help order.
_OPTIONS: dict[str, tuple[Any, str]] = {
    "model": (MODELS, "linear regression, logistic regression by the Taylor-expanded "
                      "log-loss (labels 0/1 or -1/+1), or Poisson regression (counts, log "
                      "link)"),
    "epochs": (int, "maximum number of passes over the training rows"),
    "learning_rate": (float, "base step size (see --schedule)"),
    "batch_size": (batch_size, "rows per mini-batch, or 'full' (None = full batch)"),
    "optimizer": (OPTIMIZERS, "update rule every party applies to its own weights "
                              "(lbfgs: full-batch L-BFGS)"),
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
    "lbfgs_memory": (int, "pairs (step, gradient change) L-BFGS keeps (--optimizer lbfgs)"),
    "gradient_tol": (float, "L-BFGS stops when the whole gradient's norm is at most this"),
    "line_search_c1": (float, "Armijo's constant of L-BFGS's fallback backtracking, in (0, 1)"),
    "line_search_steps": (int, "passes of L-BFGS's fallback backtracking before it stops"),
}


def add_training_options(parser: argparse.ArgumentParser) -> None:
    """Add one option per TrainingConfig field, defaults shown in --help, and ``--l2``."""
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
            group.add_argument(flag, dest=name, action=_Given, choices=kind, default=default,
                               help=text)
        else:
            group.add_argument(flag, dest=name, action=_Given, type=kind, default=default,
                               metavar="N|full" if name == "batch_size" else None, help=text)
    # The first release's flag; scripts written against it keep working.
    group.add_argument("--l2", dest="l2", type=float, default=None, metavar="ALPHA",
                       help="shorthand for --penalty l2 --alpha ALPHA")


def config_from_args(args: argparse.Namespace) -> TrainingConfig:
    """The TrainingConfig the parsed options describe.

    Raises
    ------
    ConfigError
        If the options are invalid, or ``--l2`` is given with a different
        ``--penalty`` or ``--alpha``.
    """
    options = {name: getattr(args, name) for name in _OPTIONS}
    alpha = getattr(args, "l2", None)
    if alpha is not None:
        given: set[str] = getattr(args, _GIVEN, set())
        for name, implied in (("penalty", "l2"), ("alpha", alpha)):
            value = options[name]
            if name in given and value != implied:
                shown = f"{value:g}" if name == "alpha" else value
                raise ConfigError(f"--l2 {alpha:g} means --penalty l2 --alpha {alpha:g}, but "
                                  f"--{name} {shown} says otherwise: give --l2 or --{name}, "
                                  "not both")
        options.update(penalty="l2", alpha=alpha)
    return TrainingConfig(**options)


def add_run_option(parser: argparse.ArgumentParser | argparse._ArgumentGroup, name: str, *,
                   flags: Sequence[str] = (), dest: str | None = None,
                   help: str | None = None) -> None:
    """Add the option of one RunConfig field: its default, type and choices.

    Parameters
    ----------
    parser : ArgumentParser or argument group
    name : str
        A RunConfig field (not ``training``: see :func:`add_training_options`).
    flags : sequence of str
        The option's spellings; default ``--NAME`` with dashes. A command
        whose flag predates the setting's name keeps it (``vfl align
        --method``).
    dest, help : str, optional
        Attribute of the parsed namespace (default `name`) and help text
        (default the setting's own).
    """
    item = {f.name: f for f in run_settings()}[name]
    setting = setting_of(item)
    options: dict[str, Any] = {
        "dest": dest or name, "default": item.default,
        "help": setting.help if help is None else help}
    flags = list(flags) or ["--" + name.replace("_", "-")]
    if isinstance(item.default, bool):
        # An opt-out is off unless asked for: a bare flag, as it always was.
        options["action"] = "store_true" if not item.default else argparse.BooleanOptionalAction
    elif setting.choices is not None:
        options["choices"] = setting.choices()
    else:
        options.update(type=type(item.default), metavar=setting.metavar)
    parser.add_argument(*flags, **options)


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """Add one option per RunConfig field the ``cli`` surface carries.

    The ``training`` field brings the training options
    (:func:`add_training_options`); the other fields one option each, in a
    group of their own.
    """
    group = None
    for item in run_settings("cli"):
        if item.name == "training":
            add_training_options(parser)
            continue
        if group is None:
            group = parser.add_argument_group("run settings")
        add_run_option(group, item.name)
    # argparse would take --insecure (the party file's old name of the TLS
    # opt-out) for an abbreviation of --insecure-key, the small-key opt-out.
    parser.add_argument("--insecure", action=_Refused, message=(
        "--insecure is not an option here: the parties run in one process, with no network "
        "and no TLS to turn off; --insecure-key allows keys below 2048 bits (tests only)"))


def run_config_from_args(args: argparse.Namespace) -> RunConfig:
    """The RunConfig the options of :func:`add_run_options` describe.

    Settings the command line does not carry keep their defaults.

    Raises
    ------
    ConfigError
        If a setting is invalid (the message names it).
    """
    return RunConfig(training=config_from_args(args),
                     **{item.name: getattr(args, item.name)
                        for item in run_settings("cli") if item.name != "training"})
