"""scripts/bench_wide.py --breakdown: every core-second of the epoch is put somewhere."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_breakdown_accounts_for_the_epoch_and_counts_its_obfuscations():
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench_wide.py"), "--rows", "200",
         "--host-features", "30", "--guest-features", "5", "--key-bits", "512",
         "--breakdown"], capture_output=True, text=True, timeout=300, check=True).stdout
    epoch = float(re.search(r"epoch: ([\d.]+) core-s", out).group(1))
    total = float(re.search(r"\| total \| \| \| \| ([\d.]+) \|", out).group(1))
    # The lines add up to the process tree's CPU over the epoch (printed to 0.1 s;
    # /proc counts the workers' time in 10 ms ticks).
    assert abs(total - epoch) <= 0.05 + 0.1 * epoch
    # Each party's [[X^T d]] is a line of its own, on the workers.
    assert re.search(r"\| A1:matvec_t\(200x30\) \| matvec_chunk \| \d+ \| 60 \|", out)
    assert re.search(r"\| B:matvec_t\(200x5\) \| matvec_chunk \| \d+ \| 10 \|", out)
    # A's scores (200) and loss part (1), B's residual (200), the masked
    # gradients (30 and 5 + 1) and the loss (1): 438 encryptions of zero.
    assert "encrypted or re-randomised 438 values" in out
    assert re.search(r"ratio with every obfuscation the epoch used at its cost", out)
