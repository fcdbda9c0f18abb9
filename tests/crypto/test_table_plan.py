"""The fixed-base table's window follows the work, within the memory budget."""

from __future__ import annotations

import pytest

from vfl.crypto.fixed_base import table_bytes
from vfl.crypto.table_plan import MIN_WINDOW, TableSizer, best_window_for

BUDGET = 512 << 20


def _cost(window: int, powers: int, copies: int = 1) -> int:
    rows = -(-1024 // window)
    return copies * rows * ((1 << window) - 1) + powers * (rows - 1)


@pytest.mark.parametrize("powers", [0, 50, 2_000, 30_000, 10**6])
def test_the_choice_is_the_cheapest_window_that_fits(powers: int) -> None:
    choice = best_window_for(powers, 1024, 4096, budget=BUDGET)
    fitting = [w for w in range(MIN_WINDOW, 17) if table_bytes(1024, 4096, w) <= BUDGET]
    assert choice.window == min(fitting, key=lambda w: _cost(w, powers))
    assert choice.multiplications == _cost(choice.window, powers)
    assert choice.table_bytes == table_bytes(1024, 4096, choice.window)


def test_small_runs_get_small_tables_and_big_runs_the_budget() -> None:
    windows = [best_window_for(p, 1024, 4096, budget=BUDGET).window
               for p in (100, 2_000, 30_000, 10**7)]
    assert windows == sorted(windows) and windows[0] < windows[-1]
    assert best_window_for(2_000, 1024, 4096, budget=BUDGET).table_bytes < 40 << 20
    assert best_window_for(10**7, 1024, 4096, budget=BUDGET).table_bytes <= BUDGET
    # Two copies (one per worker) make building dearer: never a wider window.
    assert (best_window_for(30_000, 1024, 4096, copies=2, budget=BUDGET).window
            <= best_window_for(30_000, 1024, 4096, budget=BUDGET).window)


def test_a_tight_budget_caps_the_window() -> None:
    budget = table_bytes(1024, 4096, 9)
    assert best_window_for(10**7, 1024, 4096, budget=budget).window == 9


def test_the_sizer_grows_with_the_plan_and_with_the_work_never_shrinks() -> None:
    sizer = TableSizer(1024, 4096, budget=BUDGET, expected=2_000)
    start = sizer.window
    assert start == best_window_for(2_000, 1024, 4096, budget=BUDGET).window
    assert sizer.served(1_000) == start  # within the plan
    assert sizer.served(40_000) > start  # the run is bigger than planned: grow
    grown = sizer.window
    assert sizer.expect(0) == grown  # never smaller
    assert sizer.expect(10**7) == best_window_for(41_000 + 10**7, 1024, 4096,
                                                  budget=BUDGET).window
    with pytest.raises(ValueError, match="powers"):
        sizer.expect(-1)


def test_a_larger_table_is_built_only_when_it_pays_twice_over() -> None:
    sizer = TableSizer(1024, 4096, budget=BUDGET, expected=2_000)
    start = sizer.window
    # A 20-epoch demo's ~14,000 powers: a wider window would save less than twice
    # its building cost over the table already built, so it stays.
    assert sizer.expect(14_000) == start
    wider = best_window_for(14_000, 1024, 4096, budget=BUDGET).window
    assert wider > start  # from scratch the wider one would have been chosen
    # A large run pays for the largest table many times over.
    assert sizer.expect(2_000_000) == best_window_for(2_000_000, 1024, 4096,
                                                      budget=BUDGET).window
