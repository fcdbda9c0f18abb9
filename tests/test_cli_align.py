"""``vfl align`` and :func:`vfl.runtime.alignment.align_frames`: private alignment on its own.

The reference everywhere is a plain pandas inner join on the normalised IDs,
computed centrally; the outputs must hold exactly its rows, with each party's
cells as they are in its file, in one order shared by every party.
"""

from __future__ import annotations

import os
import random
import unicodedata
from pathlib import Path

import pandas as pd
import pytest

from vfl.cli import main
from vfl.cli.align import output_names
from vfl.errors import DuplicateIDError, EmptyIntersectionError, MissingColumnError
from vfl.psi import normalize_ids
from vfl.runtime.alignment import align_frames

ZOE_NFC = "Zoë"
ZOE_NFD = unicodedata.normalize("NFD", ZOE_NFC)


def make_tables(seed: int, n: int = 60) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """B, A1, A2 as text tables: overlapping, shuffled IDs written in different ways."""
    rng = random.Random(seed)
    people = list(range(1000, 1000 + n))
    b_ids = rng.sample(people, k=2 * n // 3)
    a1_ids = rng.sample(people, k=2 * n // 3)
    a2_ids = rng.sample(people, k=3 * n // 4)
    # B writes IDs as plain integers, A1 with surrounding spaces, A2 as "1007"
    # text among unicode IDs: they must still match.
    b = pd.DataFrame({"id": [str(i) for i in b_ids] + [ZOE_NFC, "東京-1", "only-b"],
                      "y": [f"{rng.uniform(-5, 5):.3f}" for _ in range(len(b_ids) + 3)],
                      "note": [rng.choice(["007", "NA", "", "a,b", "1.50"])
                               for _ in range(len(b_ids) + 3)]})
    a1 = pd.DataFrame({"id": [f"  {i} " for i in a1_ids] + [ZOE_NFD, "東京-1", "only-a1"],
                       "age": [str(rng.randint(18, 90)) for _ in range(len(a1_ids) + 3)],
                       "city": [rng.choice(["Zürich", "null", "São Paulo"])
                                for _ in range(len(a1_ids) + 3)]})
    a2 = pd.DataFrame({"id": [str(i) for i in a2_ids] + ["東京-1", ZOE_NFC],
                       "score": [f"{rng.random():.6f}" for _ in range(len(a2_ids) + 2)]})
    return (b.sample(frac=1, random_state=seed).reset_index(drop=True),
            a1.sample(frac=1, random_state=seed + 1).reset_index(drop=True), a2)


def write(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_csv(path, index=False)
    return path


def read_text(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False)


def keyed(frame: pd.DataFrame, party: str) -> pd.DataFrame:
    return frame.assign(_key=normalize_ids(frame["id"], party=party, column="id"))


def central_join(tables: dict[str, pd.DataFrame]) -> set[str]:
    """The normalised IDs every table holds: a plain pandas inner join."""
    names = list(tables)
    joined = keyed(tables[names[0]], names[0])[["_key"]]
    for name in names[1:]:
        joined = joined.merge(keyed(tables[name], name)[["_key"]], on="_key", how="inner")
    return set(joined["_key"])


def check_outputs(inputs: dict[str, Path], outputs: dict[str, Path]) -> int:
    """Assert the outputs are the central join, row for row; returns its size."""
    tables = {p: read_text(path) for p, path in inputs.items()}
    expected = central_join(tables)
    assert expected, "the test data must overlap"
    order = None
    for party, path in outputs.items():
        out = read_text(path)
        assert list(out.columns) == list(tables[party].columns)
        keys = normalize_ids(out["id"], party=party, column="id")
        assert set(keys) == expected and len(keys) == len(expected)
        # Same order in every party's file.
        order = keys if order is None else order
        assert keys == order
        # Each row is the party's own input row, cell for cell.
        source = keyed(tables[party], party).set_index("_key")
        assert out.to_numpy().tolist() == source.loc[keys].to_numpy().tolist()
        # And byte for byte: every output line is a line of the input file.
        in_lines = inputs[party].read_text(encoding="utf-8").splitlines()
        out_lines = path.read_text(encoding="utf-8").splitlines()
        assert out_lines[0] == in_lines[0]
        assert set(out_lines[1:]) <= set(in_lines[1:])
    return len(expected)


def align(tmp_path: Path, b: Path, a: list[Path], out: Path, *extra: str) -> int:
    argv = ["align", "--party-b", str(b), "--id-column", "id", "--out", str(out),
            "--no-progress", *extra]
    for path in a:
        argv += ["--party-a", str(path)]
    return main(argv)


@pytest.mark.parametrize("method", ["ecdh", "hash"])
def test_outputs_equal_a_central_inner_join(tmp_path, capsys, method):
    b, a1, _ = make_tables(seed=1)
    paths = {"B": write(b, tmp_path / "labels.csv"), "A1": write(a1, tmp_path / "labs.csv")}
    out = tmp_path / "aligned"
    assert align(tmp_path, paths["B"], [paths["A1"]], out, "--method", method) == 0
    assert sorted(p.name for p in out.iterdir()) == ["A1_labs.csv", "B_labels.csv"]
    umask = os.umask(0)
    os.umask(umask)
    assert (out / "B_labels.csv").stat().st_mode & 0o777 == 0o666 & ~umask
    size = check_outputs(paths, {"B": out / "B_labels.csv", "A1": out / "A1_labs.csv"})
    # Integers and padded text match, and both spellings of the name match.
    assert size >= 3
    stdout = capsys.readouterr().out
    assert f"{size} IDs shared by B, A1" in stdout


@pytest.mark.parametrize("method", ["ecdh", "hash"])
def test_two_feature_holders_share_one_order(tmp_path, capsys, method):
    b, a1, a2 = make_tables(seed=2)
    (tmp_path / "sub").mkdir()
    paths = {"B": write(b, tmp_path / "b.csv"), "A1": write(a1, tmp_path / "a.csv"),
             "A2": write(a2, tmp_path / "sub" / "a.csv")}
    out = tmp_path / "out"
    assert align(tmp_path, paths["B"], [paths["A1"], paths["A2"]], out,
                 "--method", method) == 0
    # Two inputs named a.csv: the party prefix keeps their outputs apart.
    outputs = {"B": out / "B_b.csv", "A1": out / "A1_a.csv", "A2": out / "A2_a.csv"}
    size = check_outputs(paths, outputs)
    assert f"{size} IDs shared by B, A1, A2" in capsys.readouterr().out


def test_small_chunks_stream_the_same_result(tmp_path):
    b, a1, _ = make_tables(seed=3, n=300)
    paths = {"B": write(b, tmp_path / "b.csv"), "A1": write(a1, tmp_path / "a.csv")}
    out = tmp_path / "out"
    assert align(tmp_path, paths["B"], [paths["A1"]], out, "--chunk-size", "7") == 0
    assert check_outputs(paths, {"B": out / "B_b.csv", "A1": out / "A1_a.csv"}) > 100


@pytest.fixture
def good(tmp_path):
    b, a1, _ = make_tables(seed=4)
    return write(b, tmp_path / "b.csv"), write(a1, tmp_path / "a.csv")


def bad_inputs(tmp_path: Path, case: str, good_b: Path, good_a: Path):
    """(B file, A file, text the error must contain) for one kind of bad input."""
    if case == "missing file":
        return good_b, tmp_path / "nowhere.csv", ["A1", "nowhere.csv", "does not exist"]
    if case == "missing ID column":
        path = write(pd.DataFrame({"ID": ["1", "2"], "x": ["3", "4"]}), tmp_path / "caps.csv")
        return path, good_a, ["party B", "caps.csv", "'id'", "--id-column"]
    if case == "duplicate IDs":
        path = write(pd.DataFrame({"id": ["1", " 7", "7", "2"], "x": ["1", "2", "3", "4"]}),
                     tmp_path / "dupes.csv")
        return good_b, path, ["party A1", "dupes.csv", "'id'", "'7'"]
    if case == "missing ID":
        path = write(pd.DataFrame({"id": ["1", "", "2"], "x": ["1", "2", "3"]}),
                     tmp_path / "gap.csv")
        return path, good_a, ["party B", "gap.csv", "'id'", "row 1"]
    if case == "empty intersection":
        path = write(pd.DataFrame({"id": ["x1", "x2"], "x": ["1", "2"]}),
                     tmp_path / "other.csv")
        return good_b, path, ["other.csv", "b.csv", "'id'", "no ID"]
    raise AssertionError(case)


@pytest.mark.parametrize("method", ["ecdh", "hash"])
@pytest.mark.parametrize("case", ["missing file", "missing ID column", "duplicate IDs",
                                  "missing ID", "empty intersection"])
def test_bad_input_exits_2_names_file_and_column_writes_nothing(tmp_path, good, capsys,
                                                                case, method):
    b_path, a_path, needles = bad_inputs(tmp_path, case, *good)
    before = {p: p.read_bytes() for p in (b_path, a_path) if p.exists()}
    out = tmp_path / "out"
    assert align(tmp_path, b_path, [a_path], out, "--method", method) == 2
    err = capsys.readouterr().err
    assert err.startswith("vfl align: error: ")
    for needle in needles:
        assert needle in err, (needle, err)
    assert not out.exists()
    assert {p: p.read_bytes() for p in before} == before


def test_existing_outputs_need_force_and_stay_whole(tmp_path, good, capsys):
    b_path, a_path = good
    out = tmp_path / "out"
    out.mkdir()
    old = out / "A1_a.csv"
    old.write_text("earlier run\n")
    assert align(tmp_path, b_path, [a_path], out) == 2
    err = capsys.readouterr().err
    assert "A1_a.csv" in err and "--force" in err
    assert old.read_text() == "earlier run\n"
    assert [p.name for p in out.iterdir()] == ["A1_a.csv"]  # B's output not written either
    assert align(tmp_path, b_path, [a_path], out, "--force") == 0
    check_outputs({"B": b_path, "A1": a_path}, {"B": out / "B_b.csv", "A1": old})
    assert not [p for p in out.iterdir() if p.name.startswith(".tmp-")]


def test_a_failed_write_leaves_no_output(tmp_path, good, capsys, monkeypatch):
    b_path, a_path = good
    out = tmp_path / "out"
    calls = []
    real_to_csv = pd.DataFrame.to_csv

    def to_csv(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # the disk fills up while the second file is written
            raise OSError(28, "No space left on device")
        return real_to_csv(self, *args, **kwargs)

    monkeypatch.setattr(pd.DataFrame, "to_csv", to_csv)
    assert align(tmp_path, b_path, [a_path], out) == 2
    err = capsys.readouterr().err
    assert "No space left on device" in err and "nothing was written" in err
    assert list(out.iterdir()) == []


def test_an_output_never_replaces_an_input(tmp_path, good, capsys):
    b_path, _ = good
    # A1's output would be out/A1_x.csv, which is B's input here: refused even with --force.
    out = tmp_path / "out"
    out.mkdir()
    trap = write(read_text(b_path), out / "A1_x.csv")
    a_path = write(read_text(good[1]), tmp_path / "x.csv")
    before = trap.read_bytes()
    assert align(tmp_path, trap, [a_path], out, "--force") == 2
    assert "would overwrite the input file of party B" in capsys.readouterr().err
    assert trap.read_bytes() == before
    assert [p.name for p in out.iterdir()] == ["A1_x.csv"]


def test_chunk_size_with_hash_is_refused(tmp_path, good, capsys):
    out = tmp_path / "out"
    assert align(tmp_path, *good[:1], [good[1]], out, "--method", "hash",
                 "--chunk-size", "64") == 2
    assert "--chunk-size" in capsys.readouterr().err
    assert not out.exists()


def test_help_documents_every_option_with_its_default(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["align", "--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for option in ["--party-a", "--party-b", "--id-column", "--out", "--method",
                   "--chunk-size", "--progress", "--no-progress", "--force"]:
        assert option in text
    for default in ["(default: ecdh)", "(default: 4096)", "(default: True)",
                    "(default: refuse)"]:
        assert default in text
    assert text.count("Required") == 4


def test_output_names_follow_party_and_input_stem():
    assert output_names("x/B data.csv", ["a/one.csv", "b/one.txt"]) == {
        "B": "B_B data.csv", "A1": "A1_one.csv", "A2": "A2_one.csv"}


# --- the library function ------------------------------------------------------------


def test_align_frames_matches_ints_and_strings_and_keeps_values():
    b = pd.DataFrame({"pid": [3, 1, 2, 5], "y": [0.3, 0.1, 0.2, 0.5]}, index=[9, 8, 7, 6])
    # Text, padded text and a float holding an integer all match B's integers;
    # the text "3.0" would not (IDs are compared as text, see vfl.psi.ids).
    a = pd.DataFrame({"pid": ["2", " 5", "4", 3.0, ZOE_NFC], "x": list("abcde")})
    out = align_frames(b, a, id_column="pid", progress=False)
    assert list(out) == ["B", "A1"]
    assert sorted(out["B"]["pid"]) == [2, 3, 5]
    assert list(out["B"].index) == list(out["A1"].index) == [0, 1, 2]
    # Row i is the same person on both sides; values are the input's.
    pairs = {int(float(p)): x for p, x in zip(out["A1"]["pid"], out["A1"]["x"])}
    assert [pairs[p] for p in out["B"]["pid"]] == [{2: "a", 5: "b", 3: "d"}[p]
                                                   for p in out["B"]["pid"]]
    assert out["B"].set_index("pid")["y"].to_dict() == {3: 0.3, 2: 0.2, 5: 0.5}


def test_align_frames_errors_name_party_and_source():
    b = pd.DataFrame({"id": ["1", "2"]})
    with pytest.raises(MissingColumnError, match=r"party A1: a\.csv has no ID column 'id'"):
        align_frames(b, pd.DataFrame({"ID": ["1"]}), id_column="id",
                     sources={"A1": "a.csv"}, progress=False)
    with pytest.raises(DuplicateIDError, match=r"party A2: column 'id' of two\.csv"):
        align_frames(b, {"A1": b, "A2": pd.DataFrame({"id": [1, "1"]})}, id_column="id",
                     sources={"A2": "two.csv"}, progress=False)
    with pytest.raises(EmptyIntersectionError, match="B: DataFrame, 2 IDs; A1: DataFrame, 1"):
        align_frames(b, pd.DataFrame({"id": ["3"]}), id_column="id", progress=False)
    with pytest.raises(ValueError, match="ecdh method only"):
        align_frames(b, b, id_column="id", method="hash", chunk_size=10)
    with pytest.raises(ValueError, match="unknown alignment method"):
        align_frames(b, b, id_column="id", method="rsa")
