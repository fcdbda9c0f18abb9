"""A script without ``if __name__ == "__main__":`` works: workers never re-run it."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = textwrap.dedent("""
    from pathlib import Path
    from parties import FeatureHolder, LabelHolder, VerticalLinearRegression
    from vfl.datasets import DIABETES_FEATURE_HOLDER_COLUMNS, load_diabetes, split_vertically

    with open(Path(__file__).with_suffix(".runs"), "a") as runs:
        runs.write("ran\\n")  # once per execution of this module's body
    frame_a, frame_b = split_vertically(
        load_diabetes(), id_column="patient_id", label_column="progression",
        feature_holder_columns=DIABETES_FEATURE_HOLDER_COLUMNS, seed=1)
    a = FeatureHolder(frame_a, id_column="patient_id")
    b = LabelHolder(frame_b, id_column="patient_id", label_column="progression")
    model = VerticalLinearRegression(epochs=1, batch_size=64, key_bits=512, insecure_key=True)
    model.fit([b, a])
    print("r2", model.evaluate()["r2"])
""")


def test_a_notebook_example_saved_as_a_script_without_main_guard_runs(tmp_path: Path) -> None:
    script = tmp_path / "example.py"
    script.write_text(SCRIPT, encoding="utf-8")
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                            timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "BrokenProcessPool" not in result.stderr
    assert result.stdout.startswith("r2 ")
    # The workers (one per core, and the fork server) did not execute the script again.
    assert (tmp_path / "example.runs").read_text().splitlines() == ["ran"]
