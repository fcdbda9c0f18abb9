"""A horizontal client that was killed comes back: the transport readmits its new process,
S readmits it to the run, and the run ends with the model of an in-process run in which
that client missed exactly the rounds it was away.

The transport tests run two endpoints on loopback with mutual TLS; the federation tests
run S, C and three clients as ``vfl party`` processes (as ``test_horizontal_network``,
whose fixtures ``certs`` and ``data`` they share).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time

import numpy as np
import pandas as pd
import pytest
from test_horizontal_network import CLIENTS, KEY_BITS, NAMES, RTOL, server_model, write_configs
from test_horizontal_network import certs as certs
from test_horizontal_network import data as data
from three_parties import checkpoint_epochs, kill9, start, wait_all, wait_for_checkpoint

from parties.horizontal import FederatedAveraging, HorizontalClient, HorizontalConfig
from parties.horizontal.messages import Admission, Join, RoundStart
from parties.horizontal.server import Server
from vfl.errors import ChannelTimeoutError, PeerLeftError, ProtocolError
from vfl.net import GrpcEndpoint, TlsFiles
from vfl.net.liveness import PeerWatch
from vfl.runtime.loopback import free_loopback_ports, write_horizontal_loopback_configs

#: Long enough that S is still running when the restarted client asks to come back.
CONFIG = HorizontalConfig(model="logistic", algorithm="fedavg", rounds=14, local_epochs=2,
                          batch_size=8, learning_rate=0.2, server_optimizer="adam",
                          server_learning_rate=0.1, seed=5)
TIMEOUT = 30.0


# --- the transport: a new process of a peer that may leave --------------------------


def _free_address() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


class _Link:
    """S and a client C2 on loopback; C2 can be stopped and started again."""

    def __init__(self, certs_dir, *, leave: bool = True) -> None:
        self.certs = certs_dir
        self.addresses = {"S": _free_address(), "C2": _free_address()}
        self.server = self._endpoint("S")
        if leave:
            self.server.allow_leaving(["C2"])
        self.client = self._endpoint("C2")

    def _endpoint(self, name: str) -> GrpcEndpoint:
        peer = "C2" if name == "S" else "S"
        return GrpcEndpoint(name, "run", self.addresses[name], {peer: self.addresses[peer]},
                            tls=TlsFiles.in_directory(self.certs, name), timeout=5.0,
                            connect_timeout=2.0)

    def restart_client(self) -> GrpcEndpoint:
        """Stop C2's process (no abort notice: as if killed) and start a new one."""
        self.client.close(grace=0)
        self.client = self._endpoint("C2")
        return self.client

    def close(self) -> None:
        self.client.close(grace=0)
        self.server.close(grace=0)


@pytest.fixture
def link(certs):
    made: list[_Link] = []

    def make(**options) -> _Link:
        made.append(_Link(certs, **options))
        return made[-1]

    yield make
    for each in made:
        each.close()


def _started(link: _Link) -> None:
    """C2 says it is here and S answers: each knows the other's process."""
    link.client.send("S", Join())
    assert link.server.receive("C2", Join) == Join()
    link.server.send("C2", Admission(rejoin=False))
    assert link.client.receive("S", Admission) == Admission(rejoin=False)


def test_a_new_process_of_a_client_that_left_waits_apart_until_readmitted(link):
    link = link()
    _started(link)
    link.restart_client()
    # S learns that the old process stopped (as its peer watch does) ...
    link.server.peer_stopped("C2", "its port refuses connections")
    with pytest.raises(PeerLeftError):
        link.server.send("C2", RoundStart(False, ()), epoch=1, batch=1)
    # ... and the new one calls: it waits apart, the old link stays ended.
    link.client.send("S", Join())
    assert link.server.wait_for_return(["C2"], 5.0) == ["C2"]
    assert link.server.returning() == ["C2"] and link.server.has_left("C2")
    with pytest.raises(PeerLeftError):
        link.server.receive("C2", Join)
    link.server.readmit("C2")
    assert link.server.returning() == [] and not link.server.has_left("C2")
    # A new link: sequence numbers from 0 both ways.
    assert link.server.receive("C2", Join) == Join()
    link.server.send("C2", Admission(rejoin=True))
    assert link.client.receive("S", Admission) == Admission(rejoin=True)
    link.client.send("S", Join())
    assert link.server.receive("C2", Join) == Join()


def test_a_restart_that_went_unnoticed_is_seen_at_the_new_process_first_message(link):
    link = link()
    _started(link)
    link.restart_client()
    assert not link.server.has_left("C2")  # its death was not seen
    link.client.send("S", Join())
    # The old process's link ends at once; the new process waits to be readmitted.
    with pytest.raises(PeerLeftError, match="C2 stopped: it restarted"):
        link.server.receive("C2", Join)
    assert link.server.returning() == ["C2"]


def test_a_message_for_the_old_process_is_refused_by_the_new_one(link):
    link = link()
    _started(link)
    fresh = link.restart_client()
    with pytest.raises(PeerLeftError, match="C2 stopped: it restarted"):
        link.server.send("C2", RoundStart(True, (1.0, 2.0)), epoch=1, batch=1)
    fresh.timeout = 0.5
    with pytest.raises(ChannelTimeoutError):  # nothing reached the new process
        fresh.receive("S", RoundStart, epoch=1, batch=1)


def test_a_new_process_that_stops_before_being_readmitted_is_forgotten(link):
    link = link()
    _started(link)
    fresh = link.restart_client()
    fresh.send("S", Join())
    assert link.server.wait_for_return(["C2"], 5.0) == ["C2"]
    fresh.abort("cannot read C2.csv")
    deadline = time.monotonic() + 5
    while link.server.returning() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert link.server.returning() == []


def test_another_process_failing_under_the_name_of_a_live_client_ends_nothing(link):
    link = link()
    _started(link)
    second = GrpcEndpoint("C2", "run", _free_address(), {"S": link.addresses["S"]},
                          tls=TlsFiles.in_directory(link.certs, "C2"), timeout=5.0,
                          connect_timeout=2.0)
    try:
        second.abort("cannot listen on its address: in use")  # started twice, say
    finally:
        second.close(grace=0)
    assert not link.server.has_left("C2") and link.server.returning() == []
    link.client.send("S", Join())
    assert link.server.receive("C2", Join) == Join()


def test_only_a_peer_that_may_leave_is_readmitted(link):
    link = link(leave=False)
    _started(link)
    with pytest.raises(ValueError, match="readmits only peers that may leave"):
        link.server.readmit("C2")


def test_the_peer_watch_watches_a_readmitted_client_again(link):
    link = link()
    _started(link)
    with PeerWatch(link.server, interval=0.1, misses=2):
        link.client.close(grace=0)
        _wait(lambda: link.server.has_left("C2"))
        fresh = link.restart_client()
        fresh.send("S", Join())
        assert link.server.wait_for_return(["C2"], 5.0) == ["C2"]
        link.server.readmit("C2")
        link.server.receive("C2", Join)
        time.sleep(0.5)
        assert not link.server.has_left("C2")  # up, watched again
        fresh.close(grace=0)
        _wait(lambda: link.server.has_left("C2"))  # and its death is seen again
    with pytest.raises(PeerLeftError):
        link.server.receive("C2", Join)


def _wait(condition, limit: float = 5.0) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


# --- the federation: vfl party processes ----------------------------------------------


def _wait_for_text(run, words: tuple[str, ...], limit: float = 20.0) -> None:
    deadline = time.monotonic() + limit
    while not any(w in run.output() for w in words):
        assert time.monotonic() < deadline, run.output()[-2000:]
        time.sleep(0.01)


def _missed(history: list[dict]) -> list[int]:
    """The rounds C2 was drawn in but is not in the sum of (fraction 1: every round)."""
    return [h["round"] for h in history if "C2" in h["dropped"]]


def _in_process(data, missed, clients=CLIENTS) -> FederatedAveraging:
    tables = [HorizontalClient(pd.read_csv(data[n]), label_column="y", name=n,
                               feature_columns=["a", "b"],
                               miss_rounds=missed if n == "C2" else ()) for n in clients]
    return FederatedAveraging(**CONFIG.to_dict(), key_bits=KEY_BITS, insecure_key=True,
                              round_timeout=1.0).fit(tables)


def _losses(history: list[dict]) -> list[float]:
    return [np.nan if h["loss"] is None else h["loss"] for h in history]  # None: no sum


def _assert_same_run(folder, expected: FederatedAveraging, history: list[dict]) -> None:
    weights, intercept, _ = server_model(folder)
    np.testing.assert_allclose(weights, expected.coef_, rtol=RTOL, atol=0)
    np.testing.assert_allclose(intercept, expected.intercept_, rtol=RTOL, atol=0)
    np.testing.assert_allclose(_losses(history), _losses(expected.history_), rtol=RTOL, atol=0)
    assert [(h["participants"], h["dropped"]) for h in history] == \
        [(h["participants"], h["dropped"]) for h in expected.history_]


def _run_and_kill_c2(tmp_path, data, certs):
    """Every party as a process; C2 killed after S's second checkpoint, once S saw it go."""
    configs = write_configs(tmp_path, data, certs, CONFIG, timeout=TIMEOUT,
                            connect_timeout=TIMEOUT, round_timeout=TIMEOUT)
    running = start(configs, names=NAMES)
    wait_for_checkpoint(tmp_path, "S", 2, running)
    kill9(running["C2"])
    _wait_for_text(running["S"], ("C2 left", "C2 stopped"))
    return configs, running


@pytest.mark.slow
def test_a_killed_client_started_again_rejoins_and_the_run_equals_the_in_process_one(
        tmp_path, data, certs):
    configs, running = _run_and_kill_c2(tmp_path, data, certs)
    server = running["S"]
    # C1 is held while C2 starts again (seconds): S waits for C1's update, so rounds
    # remain for C2 to rejoin (they take no time at all on loopback).
    held = running["C1"].process.pid
    os.kill(held, signal.SIGSTOP)
    try:
        again = start(configs, names=("C2",), attempt=1)["C2"]  # the same command and file
        _wait_for_text(server, ("C2 is back",), limit=TIMEOUT / 2)
    finally:
        os.kill(held, signal.SIGCONT)
    finishing = {**{n: r for n, r in running.items() if n != "C2"}, "C2": again}
    codes = wait_all(finishing, timeout=120)
    assert set(codes.values()) == {0}, {n: r.output()[-2000:] for n, r in finishing.items()}

    _, _, history = server_model(tmp_path)
    missed = _missed(history)
    back = max(missed) + 1
    # Away for a stretch of rounds, then in every round again (fraction 1).
    assert missed == list(range(min(missed), back)) and back <= CONFIG.rounds
    assert all("C2" in h["participants"] for h in history if h["round"] not in missed)
    assert f"C2 rejoins: it takes part from round {back}" in server.output()
    summary = json.loads((tmp_path / "output" / "C2" / "summary_C2.json").read_text())
    assert summary["received_final_model"]
    assert set(range(back, CONFIG.rounds + 1)) <= set(summary["rounds_joined"])
    assert not set(missed) & set(summary["rounds_joined"])
    assert "resuming after epoch" in again.output()  # its own checkpoint: its place so far
    # In-process, C2 late in exactly those rounds: the same rounds, the same model.
    _assert_same_run(tmp_path, _in_process(data, missed), history)


@pytest.mark.slow
def test_a_run_resumes_although_a_client_had_departed_when_the_server_died(
        tmp_path, data, certs):
    configs, running = _run_and_kill_c2(tmp_path, data, certs)
    server = running["S"]
    alive = {n: r for n, r in running.items() if n != "C2"}
    # S checkpoints a round with C2 departed, then dies.
    wait_for_checkpoint(tmp_path, "S", max(checkpoint_epochs(tmp_path, "S")) + 1, alive)
    kill9(server)
    others = {n: r for n, r in alive.items() if n != "S"}
    assert set(wait_all(others, timeout=TIMEOUT + 30).values()) == {2}
    assert max(checkpoint_epochs(tmp_path, "S")) < CONFIG.rounds

    # Every party again, C2 included (its checkpoints are older than S's): it resumes.
    restarted = start(configs, names=NAMES, attempt=1)
    codes = wait_all(restarted, timeout=120)
    assert set(codes.values()) == {0}, {n: r.output()[-2000:] for n, r in restarted.items()}
    _, _, history = server_model(tmp_path)
    missed = _missed(history)
    assert missed and missed == list(range(min(missed), max(missed) + 1))
    assert all("C2" in h["participants"] for h in history if h["round"] > max(missed))
    _assert_same_run(tmp_path, _in_process(data, missed), history)



@pytest.mark.slow
def test_with_two_clients_s_waits_for_the_killed_one_to_come_back(tmp_path, data, certs):
    """Fewer than min_clients present: S waits (up to the round deadline) for a departed
    client to rejoin instead of stopping the run; the rounds without it change nothing."""
    pair = ("C1", "C2")
    configs = write_horizontal_loopback_configs(
        tmp_path, run_id="hfl-pair", ports=free_loopback_ports(("S", "C", *pair)),
        clients=[(n, data[n]) for n in pair], label_column="y", features=["a", "b"],
        config=CONFIG, certs=certs, key_bits=KEY_BITS, insecure_key=True, timeout=TIMEOUT,
        connect_timeout=TIMEOUT, round_timeout=TIMEOUT)
    running = start(configs, names=("S", "C", *pair))
    wait_for_checkpoint(tmp_path, "S", 2, running)
    kill9(running["C2"])
    _wait_for_text(running["S"], ("C2 left", "C2 stopped"))
    again = start(configs, names=("C2",), attempt=1)["C2"]
    finishing = {**{n: r for n, r in running.items() if n != "C2"}, "C2": again}
    codes = wait_all(finishing, timeout=120)
    assert set(codes.values()) == {0}, {n: r.output()[-2000:] for n, r in finishing.items()}
    _, _, history = server_model(tmp_path)
    missed = _missed(history)
    assert missed and missed == list(range(min(missed), max(missed) + 1))
    # A sum of one update is never decrypted: those rounds leave the model as it was.
    assert all(h["loss"] is None and h["rows"] == 0 for h in history if h["round"] in missed)
    assert all(h["participants"] == list(pair) for h in history if h["round"] not in missed)
    _assert_same_run(tmp_path, _in_process(data, missed, clients=pair), history)


class _NobodyReturns:
    """A network endpoint's rejoin side where no departed client ever comes back."""

    def __init__(self) -> None:
        self.waited: list[tuple[list[str], float]] = []

    def returning(self) -> list[str]:
        return []

    def wait_for_return(self, peers, timeout: float) -> list[str]:
        self.waited.append((list(peers), timeout))
        return []

    def readmit(self, peer: str) -> list[str]:
        raise AssertionError("nobody asked to rejoin")

    def peer_stopped(self, peer: str, reason: str) -> None:
        raise AssertionError("nobody rejoined")


def test_s_stops_when_too_few_clients_remain_and_none_comes_back_in_time():
    server = Server(CONFIG, CLIENTS, ["a", "b"], round_timeout=0.25)
    server.state = server.fresh_state()
    server.state.departed[:] = ["C1", "C3"]
    endpoint = _NobodyReturns()
    with pytest.raises(ProtocolError, match=r"only 1 client\(s\) remain \(C2\); a round needs "
                                            r"at least min_clients=2; none of the others "
                                            r"rejoined within 0.25 s"):
        server.start_epoch(endpoint, 3)  # type: ignore[arg-type]
    assert [peers for peers, _ in endpoint.waited] == [["C1", "C3"]]
    assert 0 < endpoint.waited[0][1] <= 0.25
