"""One federated run of one party, from the key to the model: the lifecycle, written once.

Every role of every protocol runs through :class:`Session`::

    open (key)  ->  align  ->  agree the resume epoch  ->  agree the plan
        ->  for each epoch: start, batch steps, validation step, end, checkpoint
        ->  finish

The role (:class:`~vfl.runtime.role.Role`) implements only the steps; the
session owns the order, the resume agreement between the parties, the
checkpoint after every epoch, the progress display and the clean-up. A
session is used once: a new run (a contribution coalition, say) is a new
session, never a reset of an old one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from vfl.progress import EpochProgress
from vfl.protocol.channel import Endpoint
from vfl.protocol.messages import ResumeDecision, ResumeState
from vfl.runtime.checkpoint import CheckpointStore, agree_resume_epoch
from vfl.runtime.role import Role
from vfl.runtime.state import RoleState

__all__ = ["Session"]

S = TypeVar("S", bound=RoleState)


class Session(Generic[S]):
    """Run one role through one federated run.

    Parameters
    ----------
    role : Role
        The party and its protocol steps.
    endpoint : Endpoint
        Its connection to the other parties (in-process or gRPC).
    checkpoints : CheckpointStore, optional
        Save the role's state after every epoch there, and resume from the
        last epoch every party holds. Every party keeps checkpoints, or none
        (without them nothing about resuming is exchanged).
    progress : EpochProgress, optional
        Batch counter and one line per epoch (for a party that learns the loss).
    on_epoch : callable, optional
        ``on_epoch(epoch, loss)`` after each epoch whose loss this party learns.
    """

    def __init__(self, role: Role[S], endpoint: Endpoint, *,
                 checkpoints: CheckpointStore[S] | None = None,
                 progress: EpochProgress | None = None,
                 on_epoch: Callable[[int, float], None] | None = None) -> None:
        if checkpoints is not None and checkpoints.state_type is not role.state_type:
            raise TypeError(f"checkpoints of {checkpoints.state_type.__name__} for a "
                            f"{type(role).__name__}")
        self.role = role
        self.endpoint = endpoint
        self.checkpoints = checkpoints
        self.progress = progress
        self.on_epoch = on_epoch

    def run(self) -> None:
        """Take part in the whole run; afterwards the role holds its result."""
        role, endpoint = self.role, self.endpoint
        try:
            role.open(endpoint)
            role.align(endpoint)
            resumed = self._agree_resume()
            role.agree_plan(endpoint, resumed)
            role.state = resumed if resumed is not None else role.fresh_state()
            if resumed is None:
                self._save()
            while not role.current.stopped and role.current.epoch < role.max_epochs:
                self._run_epoch(role.current.epoch + 1)
            role.finish(endpoint)
        finally:
            role.close()

    def _run_epoch(self, epoch: int) -> None:
        role, endpoint = self.role, self.endpoint
        if self.progress is not None:
            self.progress.start(epoch)
        batches = role.start_epoch(endpoint, epoch)
        for number in range(1, batches + 1):
            role.batch_step(endpoint, epoch, number)
            if self.progress is not None:
                self.progress.batch(epoch, number, batches)
        role.validation_step(endpoint, epoch)
        loss = role.end_epoch(endpoint, epoch)
        if role.current.epoch != epoch:
            raise RuntimeError(f"{type(role).__name__}.end_epoch did not record epoch {epoch}")
        self._save()
        if loss is not None:
            if self.progress is not None:
                self.progress.epoch(epoch, loss)
            if self.on_epoch is not None:
                self.on_epoch(epoch, loss)

    def _save(self) -> None:
        if self.checkpoints is not None:
            state = self.role.current
            self.checkpoints.save(state.epoch, state)

    def _agree_resume(self) -> S | None:
        """Every party's checkpointed epochs go to the leader, which picks the latest
        common one and announces it; returns this party's state after it (None: a
        fresh start)."""
        store, role, endpoint = self.checkpoints, self.role, self.endpoint
        if store is None:
            return None
        held = store.scan(role.identity())
        if role.name == role.leader:
            holdings = {role.name: held}
            for peer in role.followers():
                holdings[peer] = list(endpoint.receive(peer, ResumeState).epochs)
            epoch = agree_resume_epoch(holdings, party=role.name)
            for peer in role.followers():
                endpoint.send(peer, ResumeDecision(epoch))
        else:
            endpoint.send(role.leader, ResumeState(tuple(held)))
            epoch = endpoint.receive(role.leader, ResumeDecision).epoch
        return store.load(epoch)
