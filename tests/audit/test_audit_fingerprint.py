"""Dataset fingerprints and model-part hashes: stable for equal content, changed by any edit."""

from __future__ import annotations

import hashlib
import struct

import numpy as np
import pandas as pd
import pytest

from vfl.audit import dataset_fingerprint, model_part_hash, table_fingerprint
from vfl.data import PartyTable, read_party_csv
from vfl.model import ModelPart

IDS = ["p1", "p2", "p3", "zoë"]
COLUMNS = ["age", "bmi"]
VALUES = np.array([[50.0, 22.5], [61.0, 30.25], [38.0, 27.0], [70.0, 19.75]])
LABEL = np.array([151.0, 75.0, 141.0, 206.0])


def spec_digest(ids, columns, values, label=None) -> str:
    """The encoding docs/audit.md describes, written out independently of the library."""
    def text(s):
        data = s.encode("utf-8")
        return struct.pack("<Q", len(data)) + data

    parts = [b"vfl-dataset-fingerprint/1\x00", struct.pack("<QQ", len(ids), len(columns))]
    parts += [text(c) for c in columns] + [b"<f8"] + [text(i) for i in ids]
    parts += [struct.pack("<d", float(v)) for row in values for v in row]
    parts.append(b"\x00" if label is None else b"\x01" + b"".join(
        struct.pack("<d", float(v)) for v in label))
    return hashlib.sha256(b"".join(parts)).hexdigest()


def test_matches_the_documented_encoding():
    assert dataset_fingerprint(IDS, COLUMNS, VALUES) == spec_digest(IDS, COLUMNS, VALUES)
    assert (dataset_fingerprint(IDS, COLUMNS, VALUES, LABEL)
            == spec_digest(IDS, COLUMNS, VALUES, LABEL))


def test_equal_content_in_other_containers_gives_the_same_digest():
    reference = dataset_fingerprint(IDS, COLUMNS, VALUES, LABEL)
    assert dataset_fingerprint(tuple(IDS), tuple(COLUMNS), np.asfortranarray(VALUES),
                               list(LABEL)) == reference
    assert dataset_fingerprint(list(IDS), COLUMNS, VALUES.astype(">f8"), LABEL) == reference
    # Integer-valued floats given as ints, and -0.0 given for 0.0, are the same values.
    ints = np.array([[1, 0], [2, 3]])
    assert (dataset_fingerprint(["a", "b"], COLUMNS, ints)
            == dataset_fingerprint(["a", "b"], COLUMNS, np.array([[1.0, -0.0], [2.0, 3.0]])))


@pytest.mark.parametrize("row", range(4))
@pytest.mark.parametrize("col", range(2))
def test_any_value_change_changes_the_digest(row, col):
    changed = VALUES.copy()
    changed[row, col] = np.nextafter(changed[row, col], np.inf)  # the smallest possible change
    assert (dataset_fingerprint(IDS, COLUMNS, changed)
            != dataset_fingerprint(IDS, COLUMNS, VALUES))


@pytest.mark.parametrize("edit", ["swap rows", "id", "column name", "column order",
                                  "label added", "label value", "drop row", "id split"])
def test_any_structural_change_changes_the_digest(edit):
    ids, columns, values, label = list(IDS), list(COLUMNS), VALUES.copy(), LABEL.copy()
    reference = dataset_fingerprint(ids, columns, values, label)
    if edit == "swap rows":
        order = [1, 0, 2, 3]
        ids, values, label = [ids[i] for i in order], values[order], label[order]
    elif edit == "id":
        ids[2] = "p3 "
    elif edit == "column name":
        columns[1] = "BMI"
    elif edit == "column order":
        columns, values = columns[::-1], values[:, ::-1]
    elif edit == "label added":
        label = None
    elif edit == "label value":
        label[3] += 1.0
    elif edit == "drop row":
        ids, values, label = ids[:3], values[:3], label[:3]
    elif edit == "id split":  # length prefixes keep "p1"+"p2" apart from "p"+"1p2"
        ids[0], ids[1] = "p", "1p2"
    assert dataset_fingerprint(ids, columns, values, label) != reference


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="shape"):
        dataset_fingerprint(IDS[:3], COLUMNS, VALUES)
    with pytest.raises(TypeError, match="ID"):
        dataset_fingerprint([1, 2, 3, 4], COLUMNS, VALUES)
    with pytest.raises(ValueError, match="label"):
        dataset_fingerprint(IDS, COLUMNS, VALUES, LABEL[:2])


def test_party_table_fingerprint_follows_aligned_order(tmp_path):
    frame = pd.DataFrame({"id": IDS, "age": VALUES[:, 0], "bmi": VALUES[:, 1], "y": LABEL})
    path = tmp_path / "B.csv"
    frame.to_csv(path, index=False)
    tables = [PartyTable.from_frame(f, party="B", id_column="id", label_column="y",
                                    is_label_holder=True)
              for f in (frame, read_party_csv(path, party="B", id_column="id"))]
    # The same data from a DataFrame and from its CSV file.
    assert table_fingerprint(tables[0]) == table_fingerprint(tables[1])
    assert table_fingerprint(tables[0]) == dataset_fingerprint(IDS, COLUMNS, VALUES, LABEL)
    aligned = tables[0].take(np.array([3, 1, 0, 2]))
    assert table_fingerprint(aligned) != table_fingerprint(tables[0])
    assert table_fingerprint(aligned.take(np.array([2, 1, 3, 0]))) == table_fingerprint(tables[0])


def _part(**changes) -> ModelPart:
    fields = {"party": "B", "role": "label_holder", "features": ["age", "bmi"],
              "weights": [0.5, -1.25], "intercept": 152.0, "session": "abc"}
    return ModelPart(**{**fields, **changes})


def test_model_part_hash(tmp_path):
    reference = model_part_hash(_part())
    assert len(reference) == 64 and reference == model_part_hash(_part())
    _part().save(tmp_path / "model_B.json")
    assert model_part_hash(ModelPart.load(tmp_path / "model_B.json")) == reference
    assert model_part_hash(_part(weights=[np.float64(0.5), np.float64(-1.25)])) == reference
    for changes in ({"weights": [0.5, -1.2500000000000002]}, {"intercept": 152.5},
                    {"features": ["bmi", "age"]}, {"session": "abd"}, {"party": "A1"},
                    {"intercept": None}):
        assert model_part_hash(_part(**changes)) != reference, changes
