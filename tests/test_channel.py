"""Envelope checks at the endpoint: any transport gets them for free."""

from __future__ import annotations

import pytest

from parties.vertical.messages import EpochEnd, EpochStart
from vfl.errors import ChannelTimeoutError, PeerAbortedError, UnexpectedMessageError
from vfl.protocol.channel import Envelope, InProcessNetwork


@pytest.fixture
def net():
    return InProcessNetwork(["A1", "B", "C"], "session-1", timeout=0.5)


def test_message_of_the_wrong_step_names_sender_and_step(net):
    net.endpoint("B").send("A1", EpochEnd(stop=False), epoch=1)
    with pytest.raises(UnexpectedMessageError,
                       match=r"party A1: expected EpochStart from B at epoch 1 batch 0, "
                             r"got EpochEnd"):
        net.endpoint("A1").receive("B", EpochStart, epoch=1)


def test_message_for_another_epoch(net):
    net.endpoint("B").send("A1", EpochStart(7), epoch=2)
    with pytest.raises(UnexpectedMessageError, match="is for epoch 2"):
        net.endpoint("A1").receive("B", EpochStart, epoch=1)


def test_message_of_another_session_is_refused(net):
    a = net.endpoint("A1")
    net._queues[("B", "A1")].put(Envelope("other", "B", "A1", 0, 1, 0, "EpochStart",
                                          EpochStart(1)))
    with pytest.raises(UnexpectedMessageError, match="belongs to session 'other'"):
        a.receive("B", EpochStart, epoch=1)


def test_duplicate_is_dropped_and_gap_is_an_error(net):
    a = net.endpoint("A1")
    first = Envelope("session-1", "B", "A1", 0, 1, 0, "EpochStart", EpochStart(1))
    for envelope in (first, first, Envelope("session-1", "B", "A1", 1, 2, 0, "EpochStart",
                                            EpochStart(2))):
        net._queues[("B", "A1")].put(envelope)
    assert a.receive("B", EpochStart, epoch=1).batch_seed == 1
    assert a.receive("B", EpochStart, epoch=2).batch_seed == 2  # the duplicate was skipped
    net._queues[("B", "A1")].put(Envelope("session-1", "B", "A1", 5, 3, 0, "EpochStart",
                                          EpochStart(3)))
    with pytest.raises(UnexpectedMessageError, match="expected 2: messages were lost"):
        a.receive("B", EpochStart, epoch=3)


def test_silence_times_out_naming_the_silent_party(net):
    with pytest.raises(ChannelTimeoutError, match="party A1: B sent nothing"):
        net.endpoint("A1").receive("B", EpochStart, epoch=1)


def test_abort_reaches_every_waiting_party(net):
    net.endpoint("C").abort("disk full")
    for name, peer in [("A1", "B"), ("B", "A1"), ("A1", "C")]:
        with pytest.raises(PeerAbortedError, match="C stopped: disk full"):
            net.endpoint(name).receive(peer, EpochStart)
