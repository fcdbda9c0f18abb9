"""Federated binning (docs/binning.md) over gRPC with mutual TLS equals the in-process run."""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd

from parties.binning import (
    BinningConfig,
    BinningCoordinator,
    BinningFeatureHolder,
    BinningLabelHolder,
)
from vfl.runtime.session import Session


def test_binning_roles_run_over_mutual_tls(federation):
    rng = np.random.default_rng(5)
    n = 200
    x = rng.normal(size=(n, 2))
    y = (x[:, 0] + rng.normal(size=n) > 0).astype(int)
    ids = [f"r{i}" for i in range(n)]
    a = BinningFeatureHolder(pd.DataFrame({"id": ids, "a": x[:, 0]}), id_column="id")
    b = BinningLabelHolder(pd.DataFrame({"id": ids, "y": y, "b": x[:, 1]}), id_column="id",
                           label_column="y")
    c = BinningCoordinator(key_bits=512, insecure_key=True)
    config = BinningConfig(method="chimerge", bins=4, prebins=10)
    b.begin_run(config, feature_holders=["A1"])
    a.begin_run(config)
    c.begin_run(config, feature_holders=["A1"])
    endpoints = federation(timeout=30.0)
    errors: list[BaseException] = []

    def run(role):
        try:
            Session(role, endpoints[role.name]).run()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(r,)) for r in (a, b, c)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    # The owner's WOE equals B's view of the same anonymous column and a direct computation.
    from vfl.risk import woe_table

    bins = a.bins_["a"]
    index = bins.assign(x[:, 0])
    table = woe_table(np.bincount(index), np.bincount(index, weights=y).astype(int))
    np.testing.assert_allclose(a.result_[0].woe, table.woe, rtol=1e-9)
    assert next(f for f in b.result_ if f.name == "A1#0").woe == a.result_[0].woe
