"""``scripts/bench_horizontal.py --quick`` runs without Flower and says it skipped it."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_horizontal.py"


def test_quick_run_without_flwr_prints_the_skip_line(monkeypatch, capsys) -> None:
    spec = importlib.util.spec_from_file_location("bench_horizontal", SCRIPT)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    monkeypatch.setitem(sys.modules, "flwr", None)  # `import flwr` raises ImportError
    bench.main(["--quick", "--backend", "phe"])
    out = capsys.readouterr().out
    assert bench.FLOWER_SKIP in out.splitlines()
    assert "     200  packed " in out and "     200  single " in out
