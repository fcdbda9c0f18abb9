"""Several feature holders: every party ends with the common rows in one order."""

from __future__ import annotations

import io

import pandas as pd
import pytest

from vfl.errors import EmptyIntersectionError
from vfl.protocol.channel import InProcessNetwork
from vfl.psi import EcdhAlignment, get_alignment, normalize_ids
from vfl.psi.federation import align_as_feature_holder, align_as_label_holder
from vfl.psi.progress import Progress


@pytest.mark.parametrize("method_name", ["ecdh", "hash"])
def test_three_parties_share_rows_in_one_order(run_all, method_name):
    frames = {
        "B": pd.DataFrame({"id": [1, 2, 3, 4, 5, 6, "Zoë"], "y": range(7)}),
        "A1": pd.DataFrame({"id": ["6", "5", " 4 ", "3", "Zoë", "99"], "x1": range(6)}),
        "A2": pd.DataFrame({"id": [3.0, 4.0, 5.0, 7.0, "Zoë"], "x2": range(5)}),
    }
    ids = {name: normalize_ids(f["id"], party=name, column="id") for name, f in frames.items()}

    def method():
        return EcdhAlignment(progress=False) if method_name == "ecdh" else get_alignment("hash")

    network = InProcessNetwork(["A1", "A2", "B"], "federation")
    rows = run_all(network, {
        "B": lambda ep: align_as_label_holder(ids["B"], ep, ["A1", "A2"], method()),
        "A1": lambda ep: align_as_feature_holder(ids["A1"], ep, "B", method()),
        "A2": lambda ep: align_as_feature_holder(ids["A2"], ep, "B", method()),
    })
    aligned = {name: frames[name].iloc[rows[name]] for name in frames}
    keys = {name: normalize_ids(f["id"], party=name, column="id") for name, f in aligned.items()}
    assert sorted(keys["B"]) == ["3", "4", "5", "Zoë"]
    assert keys["B"] == keys["A1"] == keys["A2"]


def test_no_common_row_is_an_error_on_every_side(run_all):
    network = InProcessNetwork(["A1", "A2", "B"], "empty")
    with pytest.raises(EmptyIntersectionError):
        run_all(network, {
            "B": lambda ep: align_as_label_holder(["1", "2"], ep, ["A1", "A2"],
                                                  EcdhAlignment(progress=False)),
            "A1": lambda ep: align_as_feature_holder(["1"], ep, "B",
                                                     EcdhAlignment(progress=False)),
            "A2": lambda ep: align_as_feature_holder(["2"], ep, "B",
                                                     EcdhAlignment(progress=False)),
        })


def test_progress_line_is_rate_limited_and_silent_when_short():
    out = io.StringIO()
    progress = Progress("party B: ecdh", 100, stream=out)
    progress.advance(10)
    progress.close()
    assert out.getvalue() == ""  # under a second: nothing
    progress = Progress("party B: ecdh", 100, stream=out)
    progress._start -= 30  # pretend it has run for half a minute
    progress._last -= 30
    progress.advance(50)
    progress.advance(10)  # too soon after the last line
    progress.close()
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and "50.0%" in lines[0] and "60/100" in lines[1]
    quiet = io.StringIO()
    disabled = Progress("x", 10, stream=quiet, enabled=False)
    disabled._start -= 30
    disabled.advance(5)
    disabled.close()
    assert quiet.getvalue() == ""
