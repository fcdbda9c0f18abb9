"""The obfuscator table of each key in this process: sized by the work, built once.

Every DJN encryption or re-randomisation needs one power ``h_s^r mod n^2``,
made from a fixed-base table of h_s (:mod:`vfl.crypto.fixed_base`). This
module decides, per key and per process, which table the workers use:

- **Sized to the work** (:class:`~vfl.crypto.table_plan.TableSizer`): a small
  table first (the few thousand powers of a short run), a larger one once
  the plan or the powers actually made show a longer run. A table is built
  in the background, while the party aligns or waits; the old one serves
  until the new one is complete.
- **One copy per key**: on this machine's worker processes the table lives
  in one shared-memory segment (:mod:`vfl.crypto.shared_table`), filled by
  the workers together and read by all of them; every engine of the key in
  this process (the in-process simulation runs A, B and C in one process)
  uses the same one. On a cluster (an executor whose ``remote`` attribute is
  true, :mod:`vfl.cluster`) each worker builds its own table once and keeps
  it, as shared memory does not cross machines.

What the workers receive with each task is a *source*
(:data:`~vfl.crypto.workers.ObfuscatorSource`): the shared table
(:class:`~vfl.crypto.shared_table.SharedSource`), or the key's
:data:`~vfl.crypto.workers.DjnSpec` for a worker-built table.
"""

from __future__ import annotations

import threading
from concurrent.futures import Executor, Future

from vfl.crypto import executors
from vfl.crypto.fixed_base import table_budget
from vfl.crypto.shared_table import SharedSource, SharedTable, fill_rows
from vfl.crypto.table_plan import TableSizer

__all__ = ["KeyTable", "acquire", "release"]

#: Powers expected of a key before anything is known: one short epoch.
INITIAL_POWERS = 2_000

#: Bytes a shared table may take: the budget of one per-worker table, since
#: this one serves every worker of the process.
def _shared_budget() -> int:
    return table_budget(workers=1)


class KeyTable:
    """The table of one key in this process (see the module docstring).

    Parameters
    ----------
    n, h_s, r_bits : int
        The key, its DJN base and the randomness size.
    """

    def __init__(self, n: int, h_s: int, r_bits: int) -> None:
        self.n, self.h_s, self.r_bits = n, h_s, r_bits
        self.modulus = n * n
        self.sizer = TableSizer(r_bits, self.modulus.bit_length(), budget=_shared_budget(),
                                expected=INITIAL_POWERS)
        # Worker-built tables (a cluster): one per worker, so building counts per worker.
        self._remote_sizer: TableSizer | None = None
        # Re-entrant: a fill task that is already done runs its callback inside submit().
        self._lock = threading.RLock()
        self._ready = threading.Condition(self._lock)
        self._current: SharedTable | None = None
        self._filling: SharedTable | None = None
        self._retired: list[SharedTable] = []
        self._failure: BaseException | None = None
        self._users = 0
        self._closed = False
        #: Set by settle(): the table being grown is filled without waiting for idle workers.
        self._urgent = threading.Event()

    # --- what the engine asks ------------------------------------------------------------

    def source(self, executor: Executor | None) -> SharedSource | tuple[int, int, int, int]:
        """What a worker of `executor` needs to make powers, the table being sized now.

        For a local pool: the shared table, started if none is, waited for
        if none is complete yet. For a cluster or inline work: the key's
        DjnSpec with the window of a worker-built table.
        """
        if executor is None or executors.is_remote(executor):
            return self._spec(executor)
        with self._lock:
            self._start_fill(executor)
            while self._current is None:
                if self._failure is not None:
                    raise RuntimeError("the obfuscator table could not be built") \
                        from self._failure
                self._ready.wait()
            return SharedSource(self.n, self._current.layout)

    def prepare(self, executor: Executor | None) -> None:
        """Start building the table now, in the background (the key just arrived)."""
        if executor is not None and not executors.is_remote(executor):
            with self._lock:
                self._start_fill(executor)

    def plan(self, powers: int, executor: Executor | None) -> None:
        """The run will make about `powers` more powers: size the table for them."""
        self.sizer.expect(powers)
        if self._remote_sizer is not None:
            self._remote_sizer.expect(powers)
        self.prepare(executor)

    def served(self, count: int, executor: Executor | None) -> None:
        """Count `count` powers made; grow the table if the run is bigger than planned."""
        self.sizer.served(count)
        if self._remote_sizer is not None:
            self._remote_sizer.served(count)
        self.prepare(executor)

    def settle(self, executor: Executor | None, timeout: float | None = None) -> None:
        """Finish the table being grown now, on all workers, before many powers are made.

        A larger table is normally filled only while the workers are idle; a
        party about to make many powers at once (its first epoch's, made ahead)
        would make them all with the smaller one. The sizer chose the larger
        table because it pays for itself twice over, so finishing it first
        costs less than it saves. Returns when no table is being filled (or
        after `timeout` seconds).
        """
        if executor is None or executors.is_remote(executor):
            return
        with self._lock:
            self._start_fill(executor)
            if self._filling is None:
                return
            self._urgent.set()
            try:
                self._ready.wait_for(lambda: self._filling is None or self._closed, timeout)
            finally:
                self._urgent.clear()

    @property
    def has_table(self) -> bool:
        """Whether a complete shared table exists (powers are cheap now)."""
        return self._current is not None

    # --- building ----------------------------------------------------------------------

    def worker_window(self, executor: Executor | None) -> int:
        """The window of a table each worker of `executor` builds for itself."""
        return self._spec(executor)[3]

    def _spec(self, executor: Executor | None) -> tuple[int, int, int, int]:
        workers = executors.executor_workers(executor)
        if self._remote_sizer is None or self._remote_sizer.copies != workers:
            self._remote_sizer = TableSizer(self.r_bits, self.modulus.bit_length(),
                                            copies=workers, expected=max(
                                                INITIAL_POWERS, self.sizer.planned))
        return (self.n, self.h_s, self.r_bits, self._remote_sizer.window)

    def _start_fill(self, executor: Executor) -> None:
        """Start filling a table of the sizer's window unless one is (being) built (lock held).

        The first table is needed at once: its pieces go to the workers now.
        A larger one replaces a table that works already, so it is filled in
        the background, a piece at a time and only while no party waits on
        the workers (as the obfuscator pool is refilled): the party never
        waits for it.
        """
        if self._closed:
            raise RuntimeError("this key's table is closed")
        window = self.sizer.window
        for table in (self._filling, self._current):
            if table is not None and table.layout.window >= window:
                return
        if self._filling is not None:
            return  # a smaller one is being filled: the larger starts when it is done
        table = SharedTable(self.h_s, self.modulus, self.r_bits, window)
        self._filling = table
        workers = executors.executor_workers(executor)
        parts = table.row_ranges(4 * workers)
        if self._current is None:
            try:
                futures = [executor.submit(fill_rows, table.layout, rows) for rows in parts]
            except RuntimeError as exc:  # an executor shut down
                self._failed(table, exc)
                return
            remaining = [len(futures)]

            def done(future: Future[int]) -> None:
                with self._lock:
                    remaining[0] -= 1
                    error = future.exception()
                    if error is not None:
                        self._failed(table, error)
                    elif not remaining[0]:
                        self._complete(table)

            for future in futures:
                future.add_done_callback(done)
            return
        threading.Thread(target=self._fill_in_background, args=(table, parts, executor),
                         name="vfl-table-fill", daemon=True).start()

    def _fill_in_background(self, table: SharedTable, parts: list[range],
                            executor: Executor) -> None:
        workers = executors.executor_workers(executor)
        try:
            for start in range(0, len(parts), workers):
                while not (self._urgent.is_set() or executors.wait_until_idle(timeout=0.5)):
                    if self._closed:
                        return
                if self._closed:
                    return
                futures = [executor.submit(fill_rows, table.layout, rows)
                           for rows in parts[start:start + workers]]
                for future in futures:
                    future.result()
        except Exception as exc:  # noqa: BLE001 - the old table keeps serving
            with self._lock:
                self._failed(table, exc)
            return
        with self._lock:
            self._complete(table)

    def _failed(self, table: SharedTable, error: BaseException) -> None:
        """A fill failed (lock held): a first table's waiters get the error."""
        if self._filling is table:
            self._filling = None
            self._retired.append(table)
            if self._current is None:
                self._failure = error
            self._ready.notify_all()

    def _complete(self, table: SharedTable) -> None:
        """Every row of `table` is written (lock held): it serves from now on."""
        if self._filling is not table:
            return  # closed meanwhile
        table.mark_ready()
        self._filling = None
        if self._current is not None:
            # Workers may still read the old one; it goes with close().
            self._retired.append(self._current)
        self._current = table
        self._failure = None
        self._ready.notify_all()
        # A larger window asked for meanwhile starts at the next prepare().

    def close(self) -> None:
        """Unlink every segment of this key (the run is over)."""
        with self._lock:
            self._closed = True
            tables = [t for t in (self._current, self._filling, *self._retired)
                      if t is not None]
            self._current = self._filling = None
            self._retired = []
            self._ready.notify_all()
        for table in tables:
            table.close()


# --- one per key in this process -----------------------------------------------------------

_registry: dict[tuple[int, int], KeyTable] = {}
_registry_lock = threading.Lock()


def acquire(n: int, h_s: int, r_bits: int) -> KeyTable:
    """The table of this key in this process (made on first use); pair with :func:`release`."""
    with _registry_lock:
        table = _registry.get((n, h_s))
        if table is None or table._closed:
            table = KeyTable(n, h_s, r_bits)
            _registry[(n, h_s)] = table
        table._users += 1
        return table


def release(table: KeyTable) -> None:
    """One engine of the key is done; the last one unlinks the table."""
    with _registry_lock:
        table._users -= 1
        if table._users > 0:
            return
        if _registry.get((table.n, table.h_s)) is table:
            del _registry[(table.n, table.h_s)]
    table.close()
