"""One configuration: the CLI, the party file and the estimators carry the same run settings.

Every :class:`RunConfig` field (and every :class:`TrainingConfig` field, the
training options) is checked on every surface that carries it: the default
each surface gives is the dataclass default, and a value given through the
surface arrives in the resulting configuration.
"""

from __future__ import annotations

import math
import re
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

from parties import VerticalLinearRegression, VerticalLogisticRegression
from vfl.cli import build_parser, main
from vfl.cli.options import config_from_args, run_config_from_args
from vfl.errors import ConfigError, ConfigFileError
from vfl.party_config import PartyConfig, load_party_config
from vfl.runtime import RunConfig
from vfl.runtime.config import SURFACES, run_settings, setting_of
from vfl.runtime.loopback import dump_toml, write_loopback_configs
from vfl.training import TrainingConfig

RUN_FIELDS = {f.name: f for f in fields(RunConfig)}
TRAINING_FIELDS = {f.name: f for f in fields(TrainingConfig)}
ALL = frozenset(SURFACES)

#: Which surfaces carry each run setting, and its TOML table (None: top level).
#: Written out, so that a setting dropped from a surface or moved fails here.
EXPECTED = {
    "key_bits": (ALL, "keys"),
    "insecure_key": (ALL, "keys"),
    "backend": (ALL, "keys"),
    "insecure_plaintext": (ALL, "keys"),
    "alignment": (ALL, "federation"),
    "timeout": (ALL, None),
    "connect_timeout": ({"toml"}, None),
    "insecure_transport": ({"toml"}, None),
    "executor": (ALL, "compute"),
    "training": (ALL, None),
}

#: The first release's names in the party file, still read: (table, old key) -> field.
ALIASES = {("keys", "bits"): "key_bits", ("keys", "insecure"): "insecure_key",
           (None, "insecure"): "insecure_transport"}

#: A value other than the default for every setting, with the settings it needs beside it.
OTHER: dict[str, tuple[Any, dict[str, Any]]] = {
    "key_bits": (3072, {}),
    "insecure_key": (True, {}),
    "backend": ("phe", {}),
    "insecure_plaintext": (True, {}),
    "alignment": ("hash", {}),
    "timeout": (12.5, {}),
    "connect_timeout": (7.5, {}),
    "insecure_transport": (True, {}),
    "executor": ("dask://10.0.0.5:8786", {}),
    "model": ("logistic", {}),
    "epochs": (3, {}),
    "learning_rate": (0.05, {}),
    "batch_size": (32, {}),
    "optimizer": ("adam", {}),
    "momentum": (0.5, {"optimizer": "momentum"}),
    "nesterov": (True, {"optimizer": "momentum"}),
    "beta1": (0.8, {}),
    "beta2": (0.99, {}),
    "rho": (0.8, {}),
    "epsilon": (1e-7, {}),
    "schedule": ("step", {}),
    "step_size": (3, {}),
    "gamma": (0.25, {}),
    "decay": (0.5, {}),
    "penalty": ("l1", {}),
    "alpha": (0.5, {"penalty": "l2"}),
    "early_stopping": ("validation", {"validation_fraction": 0.2}),
    "tol": (1e-4, {}),
    "validation_fraction": (0.2, {}),
    "patience": (2, {}),
    "min_batch_factor": (3.0, {}),
    "standardize": (False, {}),
    "lbfgs_memory": (4, {"optimizer": "lbfgs"}),
    "gradient_tol": (1e-4, {"optimizer": "lbfgs"}),
    "line_search_c1": (0.3, {"optimizer": "lbfgs"}),
    "line_search_steps": (5, {"optimizer": "lbfgs"}),
}

#: Every setting a surface can carry: the run settings but `training`, and the training options.
SETTINGS = [name for name in RUN_FIELDS if name != "training"] + list(TRAINING_FIELDS)

SIMULATE = ["simulate", "--party-a", "A1.csv", "--party-b", "B.csv", "--id-column", "id",
            "--label-column", "y", "--out", "out"]

#: A coordinator's file with nothing but what is required: every run setting defaulted.
MINIMAL: dict[str, Any] = {
    "role": "coordinator", "name": "C", "run_id": "r1", "listen": "127.0.0.1:50053",
    "output": "out",
    "peers": {"A1": "127.0.0.1:50051", "B": "127.0.0.1:50052"},
    "tls": {"dir": "certs"},
    "federation": {"feature_holders": ["A1"]},
}


def default(name: str) -> Any:
    item = TRAINING_FIELDS.get(name) or RUN_FIELDS[name]
    return item.default


def carried_by(name: str) -> set[str]:
    """The surfaces carrying setting `name` (a training option: those carrying `training`)."""
    return set(setting_of(RUN_FIELDS.get(name) or RUN_FIELDS["training"]).surfaces)


def value_of(run: RunConfig, name: str) -> Any:
    return getattr(run.training if name in TRAINING_FIELDS else run, name)


# --- the three surfaces, driven by setting names --------------------------------------


def through_cli(settings: dict[str, Any]) -> RunConfig:
    """The RunConfig ``vfl simulate`` makes of these settings given as flags."""
    flags = []
    for name, value in settings.items():
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            flags.append(flag if value else "--no-" + flag[2:])
        else:
            flags += [flag, str(value)]
    return run_config_from_args(build_parser().parse_args([*SIMULATE, *flags]))


def through_toml(folder: Path, settings: dict[str, Any], *,
                 document: dict[str, Any] | None = None) -> PartyConfig:
    """The party configuration of the minimal coordinator file with these keys added."""
    document = {k: dict(v) if isinstance(v, dict) else v
                for k, v in (document or MINIMAL).items()}
    for name, value in settings.items():
        table: str | None
        if name in TRAINING_FIELDS:
            table, key = "training", name
        else:
            setting = setting_of(RUN_FIELDS[name])
            table, key = setting.table, setting.key
        if table is None:
            document[key] = value
        else:
            document.setdefault(table, {})[key] = value
    if True in (document.get("insecure_transport"), document.get("insecure")):
        document.pop("tls")  # the TLS opt-out replaces the [tls] table
    path = folder / "C.toml"
    path.write_text(dump_toml(document), encoding="utf-8")
    return load_party_config(path)


def through_estimator(settings: dict[str, Any]) -> RunConfig:
    return VerticalLinearRegression(**settings).run_config


# --- the proof: same settings, same defaults --------------------------------------------


def test_every_setting_has_a_value_to_try_and_one_name_everywhere():
    assert set(OTHER) == set(SETTINGS), "add the new setting to OTHER"
    assert {name: (set(setting_of(f).surfaces), setting_of(f).table)
            for name, f in RUN_FIELDS.items()} == EXPECTED
    for item in run_settings():
        assert setting_of(item).key == item.name  # the TOML key is the setting's name
    assert {(setting_of(f).table, alias): f.name for f in run_settings()
            for alias in setting_of(f).aliases} == ALIASES


def test_the_defaults_are_the_documented_ones():
    run = RunConfig()
    assert (run.key_bits, run.insecure_key, run.backend, run.alignment, run.timeout,
            run.connect_timeout, run.insecure_transport, run.training) == (
        2048, False, "fast", "ecdh", 1800.0, 60.0, False, TrainingConfig())


@pytest.mark.parametrize("name", SETTINGS)
def test_every_surface_carrying_a_setting_has_its_default_and_takes_its_value(name, tmp_path):
    surfaces = carried_by(name)
    expected = default(name)
    value, companions = OTHER[name]
    assert value != expected
    given = {**companions, name: value}
    checked = set()

    if "cli" in surfaces:
        args = build_parser().parse_args(SIMULATE)
        assert getattr(args, name) == expected
        assert value_of(run_config_from_args(args), name) == expected
        assert value_of(through_cli(given), name) == value
        checked.add("cli")
    else:
        with pytest.raises(SystemExit):
            build_parser().parse_args([*SIMULATE, "--" + name.replace("_", "-")])

    if "toml" in surfaces:
        (tmp_path / "default").mkdir()
        (tmp_path / "given").mkdir()
        assert value_of(through_toml(tmp_path / "default", {}).run, name) == expected
        config = through_toml(tmp_path / "given", given)
        assert value_of(config.run, name) == value
        if name in RUN_FIELDS:  # the flat attribute the party code reads
            assert getattr(config, name) == value
        else:
            assert getattr(config.training, name) == value
        checked.add("toml")

    if "estimator" in surfaces:
        if name == "model":  # the estimator's class is the model
            assert "model" not in VerticalLinearRegression().get_params()
            assert VerticalLinearRegression().run_config.training.model == expected
            assert VerticalLogisticRegression().run_config.training.model == value
        else:
            assert VerticalLinearRegression().get_params()[name] == expected
            estimator = VerticalLinearRegression(**given)
            assert estimator.get_params()[name] == value
            assert value_of(estimator.run_config, name) == value
        checked.add("estimator")
    else:
        with pytest.raises(TypeError, match="unknown parameter"):
            VerticalLinearRegression(**{name: value})
    assert checked == surfaces


def test_connect_timeout_in_a_file_defaults_to_at_most_timeout(tmp_path):
    config = through_toml(tmp_path, {"timeout": 10})
    assert (config.timeout, config.connect_timeout) == (10.0, 10.0)


def test_grpc_endpoint_uses_the_same_connect_timeout():
    from vfl.net.grpc_endpoint import DEFAULT_CONNECT_TIMEOUT_S

    assert RunConfig().connect_timeout == DEFAULT_CONNECT_TIMEOUT_S


def test_the_other_commands_derive_the_alignment_option():
    parser = build_parser()
    predict = parser.parse_args(["predict", "--party-a", "a", "--party-b", "b", "--id-column",
                                 "id", "--model", "m", "--out", "p.csv"])
    align = parser.parse_args(["align", "--party-a", "a", "--party-b", "b", "--id-column", "id",
                               "--out", "o"])
    assert predict.alignment == align.method == RunConfig().alignment
    assert parser.parse_args(["align", "--party-a", "a", "--party-b", "b", "--id-column", "id",
                              "--out", "o", "--method", "hash"]).method == "hash"


# --- validation --------------------------------------------------------------------------


@pytest.mark.parametrize("settings, words", [
    ({"key_bits": 1024}, "key_bits is 1024: .* insecure_key"),
    ({"key_bits": 100, "insecure_key": True}, "key_bits must be an even number from 128 to 8192"),
    ({"key_bits": "2048"}, "key_bits must be an integer"),
    ({"insecure_key": "yes"}, "insecure_key must be true or false"),
    ({"backend": "nope"}, "backend must be one of .*fast.*phe"),
    ({"alignment": "nope"}, "alignment must be one of ecdh, hash"),
    ({"timeout": 0}, "timeout must be a positive number of seconds"),
    ({"connect_timeout": math.inf}, "connect_timeout must be a positive number"),
    ({"training": {"epochs": 3}}, "training must be a TrainingConfig"),
])
def test_a_bad_setting_is_a_config_error_naming_it(settings, words):
    with pytest.raises(ConfigError, match=words):
        RunConfig(**settings)


def test_the_estimator_refuses_a_bad_setting_when_made():
    with pytest.raises(ConfigError, match="alignment must be one of"):
        VerticalLinearRegression(alignment="nope")
    with pytest.raises(ConfigError, match="key_bits is 1024"):
        VerticalLinearRegression(key_bits=1024)
    with pytest.raises(ConfigError, match="timeout"):
        VerticalLinearRegression().set_params(timeout=-1)


def test_a_bad_setting_in_a_file_names_the_file_and_the_key(tmp_path):
    cases: list[tuple[dict[str, Any], str]] = [
        ({"backend": "nope"}, "keys.backend must be one of"),
        ({"alignment": "x"}, "federation.alignment must be one of"),
        ({"timeout": -1}, "timeout must be a positive number of seconds"),
        ({"key_bits": 1024}, "keys.key_bits is 1024")]
    for settings, words in cases:
        with pytest.raises(ConfigFileError, match=re.escape(words)) as error:
            through_toml(tmp_path, settings)
        assert str(tmp_path / "C.toml") in str(error.value)


# --- renamed settings --------------------------------------------------------------------


@pytest.mark.parametrize("table, alias", sorted(ALIASES, key=str))
def test_old_names_in_a_file_still_work(tmp_path, table, alias):
    name = ALIASES[(table, alias)]
    value = {"key_bits": 1024}.get(name, True)
    extra: dict[str, Any] = {"insecure_key": True} if name == "key_bits" else {}
    new = through_toml(tmp_path, {**extra, name: value})

    document = {k: dict(v) if isinstance(v, dict) else v for k, v in MINIMAL.items()}
    where = document if table is None else document.setdefault(table, {})
    where[alias] = value
    old = through_toml(tmp_path, extra, document=document)
    assert old.run == new.run and getattr(old.run, name) == value

    where[setting_of(RUN_FIELDS[name]).key] = value
    place = "" if table is None else f"{table}."
    words = f"{place}{alias} and {place}{name} are the same setting"
    with pytest.raises(ConfigFileError, match=re.escape(words)) as error:
        through_toml(tmp_path, extra, document=document)
    assert str(tmp_path / "C.toml") in str(error.value)


def test_the_loopback_writer_uses_the_new_names(tmp_path):
    (tmp_path / "A1.csv").write_text("id,x\n1,2\n")
    (tmp_path / "B.csv").write_text("id,y\n1,2\n")
    training = TrainingConfig(epochs=3, batch_size=8, penalty="l2", alpha=0.1)
    files = write_loopback_configs(
        tmp_path, run_id="r", ports={"A1": 1, "B": 2, "C": 3},
        label_holder=("B", tmp_path / "B.csv"), feature_holders=[("A1", tmp_path / "A1.csv")],
        id_column="id", label_column="y", training=training, certs=None, key_bits=512,
        insecure_key=True, backend="phe", timeout=30, connect_timeout=20, alignment="hash")
    text = files["C"].read_text()
    assert "key_bits = 512" in text and "insecure_key = true" in text
    assert "insecure_transport = true" in text
    assert "\nbits" not in text and "\ninsecure =" not in text
    for name, path in files.items():
        config = load_party_config(path)
        assert config.run.training == training and config.insecure_transport
        assert (config.alignment, config.timeout, config.connect_timeout) == ("hash", 30.0, 20.0)
        if name == "C":
            assert (config.key_bits, config.insecure_key, config.backend) == (512, True, "phe")
        else:
            assert "[keys]" not in path.read_text()


# --- two opt-outs that cannot be confused ----------------------------------------------


def test_the_small_key_opt_out_keeps_tls(tmp_path):
    for key in ("insecure_key", "insecure"):  # new and old name
        document = {k: dict(v) if isinstance(v, dict) else v for k, v in MINIMAL.items()}
        document["keys"] = {key: True, "key_bits": 1024}
        config = through_toml(tmp_path, {}, document=document)
        assert config.insecure_key and config.key_bits == 1024
        assert not config.insecure_transport and not config.insecure
        assert config.tls is not None
        document.pop("tls")
        with pytest.raises(ConfigFileError, match="tls is missing"):
            through_toml(tmp_path, {}, document=document)
    assert not through_cli({"insecure_key": True}).insecure_transport
    assert not RunConfig(insecure_key=True, key_bits=1024).insecure_transport


def test_the_tls_opt_out_allows_no_small_key(tmp_path):
    config = through_toml(tmp_path, {"insecure_transport": True})
    assert config.insecure and config.tls is None and not config.insecure_key
    with pytest.raises(ConfigFileError, match=r"keys\.key_bits is 1024"):
        through_toml(tmp_path, {"insecure_transport": True, "key_bits": 1024})
    with pytest.raises(ConfigError, match="key_bits is 1024"):
        RunConfig(insecure_transport=True, key_bits=1024)


def test_simulate_refuses_insecure_instead_of_reading_it_as_insecure_key(capsys):
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args([*SIMULATE, "--insecure"])
    assert exit_.value.code == 2
    assert "--insecure-key allows keys below 2048 bits" in capsys.readouterr().err


# --- --l2, the first release's flag ------------------------------------------------------


def test_l2_is_short_for_penalty_l2_and_alpha():
    def training(*flags: str) -> TrainingConfig:
        return config_from_args(build_parser().parse_args([*SIMULATE, *flags]))

    assert training("--l2", "0.5") == TrainingConfig(penalty="l2", alpha=0.5)
    assert training("--l2", "0.5") == training("--penalty", "l2", "--alpha", "0.5")
    assert training("--penalty", "l2", "--alpha", "0.5", "--l2", "0.5").alpha == 0.5
    assert through_cli({"l2": 0.01}).training.penalty == "l2"
    assert training().penalty == "none"


@pytest.mark.parametrize("flags, other", [(["--penalty", "l1"], "--penalty"),
                                          (["--penalty", "none"], "--penalty"),
                                          (["--alpha", "0.1"], "--alpha")])
def test_l2_with_a_different_penalty_or_alpha_is_one_line_and_exit_2(capsys, tmp_path,
                                                                     flags, other):
    out = tmp_path / "never"
    code = main(["simulate", "--party-a", str(tmp_path / "A1.csv"), "--party-b",
                 str(tmp_path / "B.csv"), "--id-column", "id", "--label-column", "y",
                 "--out", str(out), "--l2", "0.5", *flags])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("vfl simulate: error: ") and err.count("\n") == 1
    assert "--l2" in err and other in err and "Traceback" not in err
    assert not out.exists()
