"""``vfl party`` configuration files: the examples load, mistakes name the file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from vfl.cli import main
from vfl.errors import ConfigFileError
from vfl.party_config import load_party_config

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "three-parties"

B_CONFIG = """\
role = "label_holder"
name = "B"
run_id = "r1"
listen = "127.0.0.1:50052"
output = "out"

[peers]
A1 = "127.0.0.1:50051"
C = "127.0.0.1:50053"

[tls]
dir = "certs"

[data]
file = "B.csv"
id_column = "patient_id"
label_column = "progression"

[federation]
feature_holders = ["A1"]

[training]
epochs = 3
batch_size = "full"
"""


@pytest.mark.parametrize("name, role", [("A1", "feature_holder"), ("B", "label_holder"),
                                        ("C", "coordinator")])
def test_the_example_configurations_load(name, role):
    config = load_party_config(EXAMPLES / f"{name}.toml")
    assert (config.name, config.role, config.run_id) == (name, role,
                                                         "three-parties-example-1")
    assert config.tls[0] == (EXAMPLES / "certs" / "ca.crt").resolve()
    assert config.training.epochs == 10 and not config.insecure
    # The examples show the settings by their names, not the first release's.
    text = (EXAMPLES / f"{name}.toml").read_text()
    assert "insecure_transport = false" in text and "\ninsecure =" not in text
    assert "\nbits =" not in text


def test_paths_are_relative_to_the_file_and_full_batch_is_none(tmp_path):
    path = tmp_path / "b.toml"
    path.write_text(B_CONFIG)
    config = load_party_config(path)
    assert config.data_file == tmp_path / "B.csv"
    assert config.checkpoints == tmp_path / "out" / "checkpoints"
    assert config.training.batch_size is None and config.training.epochs == 3


@pytest.mark.parametrize("edit, words", [
    (("epochs = 3", "epochs = 3\nlearning_rat = 0.1"), "training.learning_rat is not a "
                                                       "training parameter"),
    (('run_id = "r1"', 'run_id = "r1"\ncolour = "blue"'), "colour is not a known setting"),
    (('id_column = "patient_id"', ""), "data.id_column is missing"),
    (('listen = "127.0.0.1:50052"', "listen = 50052"), "listen must be a str"),
    (('C = "127.0.0.1:50053"', ""), "peers.C is missing"),
    (("epochs = 3", "epochs = 0"), "epochs must be an integer >= 1"),
    (('role = "label_holder"', 'role = "boss"'), "role must be one of"),
    (('dir = "certs"', ""), "tls.ca is missing"),
    (("[tls]", "[keys]\nbits = 512\n[tls]"), "keys is the coordinator's table"),
    (('name = "B"', 'name = "A1"'), "federation.label_holder does not name it"),
])
def test_mistakes_name_the_file_and_the_key(tmp_path, edit, words):
    path = tmp_path / "b.toml"
    old, new = edit
    assert old in B_CONFIG
    path.write_text(B_CONFIG.replace(old, new))
    with pytest.raises(ConfigFileError, match=words) as error:
        load_party_config(path)
    assert str(path) in str(error.value)


@pytest.mark.parametrize("key", ["insecure_transport", "insecure"])  # the name, the old name
def test_insecure_must_be_explicit_and_excludes_tls(tmp_path, key):
    path = tmp_path / "b.toml"
    path.write_text(B_CONFIG.replace('run_id = "r1"', f'run_id = "r1"\n{key} = true'))
    with pytest.raises(ConfigFileError, match=f"{key} = true and a \\[tls\\] table"):
        load_party_config(path)
    path.write_text(B_CONFIG.replace('run_id = "r1"', f'run_id = "r1"\n{key} = true')
                    .replace('[tls]\ndir = "certs"\n', ""))
    config = load_party_config(path)
    assert config.tls is None and config.insecure and config.insecure_transport


def test_the_command_reports_a_bad_file_and_exits_2(tmp_path, capsys):
    assert main(["party", "--config", str(tmp_path / "missing.toml")]) == 2
    assert "missing.toml does not exist" in capsys.readouterr().err
    (tmp_path / "bad.toml").write_text("role = [")
    assert main(["party", "--config", str(tmp_path / "bad.toml")]) == 2
    assert "is not valid TOML" in capsys.readouterr().err
