"""course_lib.distributed, course_lib.dist_tasks and graders.checks.distributed.

Every engine test starts the real library on 127.0.0.1 and then checks that
its context manager left no child process, no thread and no listening port.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psutil
import pytest

from course_lib import dist_tasks
from course_lib import distributed as dist
from course_lib.distributed import Replica, ReplicatedStore, Unavailable
from graders.checks import CallRecorder, assert_called, assert_ran_on


def _port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _children() -> set[int]:
    out = set()
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if child.status() != psutil.STATUS_ZOMBIE and "resource_tracker" not in " ".join(
                    child.cmdline()) and "forkserver" not in " ".join(child.cmdline()):
                out.add(child.pid)
    return out


@contextlib.contextmanager
def _leaves_nothing(grace: float = 5.0) -> Iterator[None]:
    threads = set(threading.enumerate())
    children = _children()
    yield
    deadline = time.monotonic() + grace
    while True:
        new_threads = [t.name for t in threading.enumerate() if t not in threads and t.is_alive()]
        new_children = _children() - children
        if (not new_threads and not new_children) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert new_threads == [] and new_children == set(), (new_threads, new_children)


# --------------------------------------------------------------------------- pure parts


def test_config_reads_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in dist.ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv(dist.CONFIG_FILE_VAR, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))           # no settings file
    assert set(dist.config().values()) == {None}
    monkeypatch.setenv("COURSE_DASK_SCHEDULER", "tcp://10.0.0.5:8786")
    monkeypatch.setenv("COURSE_CELERY_BROKER", "")
    assert dist.config()["COURSE_DASK_SCHEDULER"] == "tcp://10.0.0.5:8786"
    assert dist.config()["COURSE_CELERY_BROKER"] is None


def test_dashboard_link_goes_through_the_hub_proxy() -> None:
    hub = {"JUPYTERHUB_SERVICE_PREFIX": "/user/ada/"}
    assert dist.dashboard_link(port=8787, environ=hub) == "/user/ada/proxy/8787/status"
    assert dist.dashboard_link(port=8787, environ={}) == "http://127.0.0.1:8787/status"

    class FakeClient:
        dashboard_link = "http://192.0.2.2:41511/status"

    assert dist.dashboard_link(FakeClient(), environ=hub) == "/user/ada/proxy/41511/status"
    with pytest.raises(ValueError, match="client or the dashboard port"):
        dist.dashboard_link(environ={})


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="n must be a positive"):
        with dist.ipp_cluster(0):
            pass
    with pytest.raises(ValueError, match="n_workers"):
        with dist.dask_client(0):
            pass
    with pytest.raises(ValueError, match="timeout"):
        dist.run_scoop("print(1)", 2, timeout=0)
    with pytest.raises(ValueError, match="mode"):
        ReplicatedStore(3, mode="CA")
    with pytest.raises(ValueError, match="exactly one group"):
        ReplicatedStore(3).partition({0, 1}, {1, 2})


def test_replica_keeps_the_newest_version() -> None:
    r = Replica("r0")
    assert r.read("k") == (0, None)
    r.write("k", 2, "new")
    r.write("k", 1, "old")
    assert r.read("k") == (2, "new")
    r.reachable = False
    with pytest.raises(Unavailable):
        r.read("k")


def test_cp_store_refuses_the_minority_and_ap_store_serves_stale_data() -> None:
    cp = ReplicatedStore(3, "CP")
    cp.put("x", 1)
    cp.partition({0, 1}, {2})
    cp.put("x", 2, at=1)
    with pytest.raises(Unavailable, match="majority"):
        cp.get("x", at=2)
    with pytest.raises(Unavailable):
        cp.put("x", 3, at=2)
    assert cp.get("x", at=0) == 2
    cp.heal()
    assert cp.get("x", at=2) == 2

    ap = ReplicatedStore(3, "AP")
    ap.put("x", 1)
    ap.partition({0, 1}, {2})
    ap.put("x", 2, at=0)
    assert ap.get("x", at=2) == 1          # stale, but answered
    ap.heal()
    assert [ap.get("x", at=i) for i in range(3)] == [2, 2, 2]


def test_word_count_map_and_reduce() -> None:
    assert dist_tasks.words("It's a Test, a TEST!") == ["it's", "a", "test", "a", "test"]
    parts = [dist_tasks.count_words(t) for t in ["a b", "b c", "b"]]
    assert dist_tasks.merge_counts(parts) == Counter({"b": 3, "a": 1, "c": 1})
    assert dist_tasks.merge_counts([]) == Counter()


def test_shard_gradients_add_up_to_the_full_gradient() -> None:
    X, y, _ = dist_tasks.toy_regression(50, 3, seed=2)
    w = np.array([0.5, -1.0, 2.0])
    full, n = dist_tasks.shard_gradient(w, X, y)
    halves = [dist_tasks.shard_gradient(w, X[a:b], y[a:b]) for a, b in [(0, 13), (13, 50)]]
    assert n == 50 and sum(h[1] for h in halves) == 50
    np.testing.assert_allclose(sum(h[0] for h in halves), full)
    eps = 1e-6
    numeric = [(np.sum((X @ (w + eps * e) - y) ** 2) - np.sum((X @ (w - eps * e) - y) ** 2))
               / (2 * eps) for e in np.eye(3)]
    np.testing.assert_allclose(full, numeric, rtol=1e-5)
    with pytest.raises(ValueError):
        dist_tasks.toy_regression(0, 3)


def test_task_spans_make_a_timeline() -> None:
    spans = dist.task_spans([(4, "h:12", 2.0, 3.0), (1, "h:11", 1.0, 1.5)], "sq")
    assert [(s.worker, s.pid, s.start) for s in spans] == [("h:11", 11, 1.0), ("h:12", 12, 2.0)]


# --------------------------------------------------------------------------- checks


def test_call_recorder_and_assert_called() -> None:
    class Target:
        size = 3

        def map(self, f: object, xs: list[int]) -> list[int]:
            return [x * 2 for x in xs]

    rec = CallRecorder(Target())
    assert rec.size == 3
    assert rec.map(None, [1, 2]) == [2, 4]
    assert rec.calls == ["map"]
    assert_called(rec, ["submit", "map"])
    with pytest.raises(AssertionError, match="never went to the cluster.*called map"):
        assert_called(rec, ["submit"], hint="use submit")


def test_assert_ran_on_rejects_strangers_and_too_few_workers() -> None:
    assert_ran_on(["a", "b", "a"], ["a", "b"], at_least=2)
    with pytest.raises(AssertionError, match="not a worker of the cluster"):
        assert_ran_on(["a", "me"], ["a", "b"])
    with pytest.raises(AssertionError, match="1 worker"):
        assert_ran_on(["a", "a"], ["a", "b"], at_least=2)


# --------------------------------------------------------------------------- engines


def test_queue_manager_farm_and_clean_up() -> None:
    from course_lib import mp_context

    with _leaves_nothing():
        with dist.queue_manager_server() as server:
            port = server.address[1]
            assert _port_open(port)
            ctx = mp_context()
            workers = [ctx.Process(target=dist_tasks.farm_worker,
                                   args=(server.address, server.authkey, f"w{i}"))
                       for i in range(2)]
            for w in workers:
                w.start()
            tasks, results = server.tasks(), server.results()
            for i in range(6):
                tasks.put(i)
            for _ in workers:
                tasks.put(None)
            answers = sorted(results.get(timeout=20) for _ in range(6))
            for w in workers:
                w.join(20)
            assert [a[:2] for a in answers] == [(i, i * i) for i in range(6)]
            assert all(w.exitcode == 0 for w in workers)
        assert not _port_open(port)


def test_farm_worker_gives_up_when_the_server_is_gone() -> None:
    port = dist.free_port()
    start = time.monotonic()
    dist_tasks.farm_worker(("127.0.0.1", port), b"key", "lonely", idle_timeout=0.5)
    assert time.monotonic() - start < 5


def test_dask_client_runs_tasks_on_its_workers_and_stops(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.delenv("COURSE_DASK_SCHEDULER", raising=False)
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with _leaves_nothing():
        with dist.dask_client(2) as client:
            port = int(dist.dashboard_link(client).rsplit(":", 1)[1].split("/")[0])
            assert _port_open(port)
            names = {str(w["name"]) for w in client.scheduler_info()["workers"].values()}
            X, y, _ = dist_tasks.toy_regression(40, 2)
            parts = client.scatter([X[:20], X[20:]])
            ys = client.scatter([y[:20], y[20:]])
            got = client.gather([
                client.submit(dist_tasks.shard_gradient_where, np.zeros(2), a, b, pure=False)
                for a, b in zip(parts, ys, strict=True)])
            assert {g[2] for g in got} == names and len(names) == 2
        assert not _port_open(port)
    assert list(tmp_path.iterdir()) == []


def test_ipp_cluster_load_balances_and_stops(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COURSE_IPP_PROFILE", raising=False)
    with _leaves_nothing(grace=10):
        with dist.ipp_cluster(2, activate=False) as rc:
            labels = rc[:].apply_async(dist_tasks.where).get(timeout=30)
            records = rc.load_balanced_view().map_async(dist_tasks.slow_square,
                                                        range(6)).get(timeout=30)
            assert [r[0] for r in records] == [i * i for i in range(6)]
            assert {r[1] for r in records} == set(labels)


def test_celery_workers_on_files_and_sqlite(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COURSE_CELERY_BROKER", raising=False)
    monkeypatch.delenv("COURSE_CELERY_BACKEND", raising=False)
    with _leaves_nothing():
        with dist.celery_worker(2) as celery:
            assert celery.broker == "filesystem://" and celery.backend.startswith("db+sqlite")
            pending = [celery.app.send_task("course_lib.celery_tasks.square", args=(i,))
                       for i in range(6)]
            answers = [p.get(timeout=30) for p in pending]
            assert [a[0] for a in answers] == [i * i for i in range(6)]
            assert {a[1] for a in answers} <= set(celery.names)
            pids = [p.pid for p in celery.processes]
        assert not any(psutil.pid_exists(pid) and psutil.Process(pid).status() !=
                       psutil.STATUS_ZOMBIE for pid in pids)


def test_celery_late_ack_survives_a_killed_pool_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """A pool process killed mid-task: the default task fails with WorkerLostError, the
    acks_late one runs again in another process; retries with a countdown succeed."""
    with _leaves_nothing():
        with dist.celery_worker(1, concurrency=2, local=True) as celery:
            outcomes = {}
            for task in ("slow_square", "slow_square_late"):
                result = celery.send(task, 3, delay=1.0)
                dist.wait_for(lambda r=result: r.state == "STARTED", 20, f"{task} starting")
                pid = result.info["pid"]
                dist.kill_process(pid)
                try:
                    outcomes[task] = (pid, result.get(timeout=30, interval=0.01))
                except Exception as error:  # the lost task's error, rebuilt by Celery
                    outcomes[task] = (pid, error)
            early = outcomes["slow_square"][1]
            assert isinstance(early, Exception) and dist.is_worker_lost(early), early
            pid, late = outcomes["slow_square_late"]
            assert late[0] == 9 and not late[1].endswith(f":{pid}"), late
            retried = celery.send("flaky_square", 4, failures=2, countdown=0.05)
            assert retried.get(timeout=30, interval=0.01)[:2] == [16, 2]
            with pytest.raises(ConnectionError, match="transient failure on attempt 2"):
                celery.send("flaky_square", 4, failures=3, countdown=0.05,
                            max_retries=1).get(timeout=30, interval=0.01)


def test_filesystem_broker_messages_are_never_half_written(tmp_path: Path) -> None:
    """The course's filesystem transport writes each message to a hidden file and renames it."""
    from course_lib import celery_tasks

    folder = tmp_path / "queue"
    folder.mkdir()
    app = celery_tasks.make_app("filesystem://", "cache+memory://", str(folder))
    try:
        with app.connection_for_write() as conn:
            assert type(conn.transport).__name__ == "FilesystemTransport"
        app.send_task("course_lib.celery_tasks.square", args=(2,))
        names = [p.name for p in folder.iterdir() if p.suffix == ".msg"]
        assert len(names) == 1 and not any(p.name.endswith(".part") for p in folder.iterdir())
        import json

        body = json.loads((folder / names[0]).read_text())
        assert body["headers"]["task"] == "course_lib.celery_tasks.square"
    finally:
        app.close()


def test_task_spans_take_a_name_per_record() -> None:
    spans = dist.task_spans([(None, "h:1", 0.0, 1.0, "attempt 1"), (4, "h:2", 1.0, 2.0)], "t")
    assert [s.name for s in spans] == ["attempt 1", "t"]


def test_fragile_square_kills_only_its_victims() -> None:
    assert dist_tasks.fragile_square(3, victims=(os.getpid() + 1_000_000,), delay=0)[0] == 9
    from course_lib import mp_context

    ctx = mp_context()
    proc = ctx.Process(target=_fragile_in_child)
    proc.start()
    proc.join(20)
    assert proc.exitcode is not None and proc.exitcode < 0     # killed by a signal


def _fragile_in_child() -> None:
    dist_tasks.fragile_square(2, victims=(os.getpid(),), delay=0)


@pytest.mark.skipif(not dist.redis_available(), reason="redis-server is not installed")
def test_celery_over_a_real_redis_server() -> None:
    with _leaves_nothing():
        with dist.redis_server() as url:
            port = int(url.rsplit(":", 1)[1])
            assert _port_open(port)
            with dist.celery_worker(1, broker=url + "/0", backend=url + "/1") as celery:
                answer = celery.app.send_task("course_lib.celery_tasks.square",
                                              args=(9,)).get(timeout=30)
                assert answer == [81, celery.names[0]]
        assert not _port_open(port)


def test_redis_server_says_what_to_do_when_absent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    assert not dist.redis_available()
    with pytest.raises(dist.DistributedError, match="redis-server is not installed"):
        with dist.redis_server():
            pass


def test_pyro_nameserver_and_remote_object() -> None:
    import Pyro5.api

    @Pyro5.api.expose
    class Echo:
        def echo(self, x: object) -> object:
            return x

    with _leaves_nothing():
        with dist.pyro_nameserver() as ns, dist.pyro_daemon({"t.echo": Echo()},
                                                            nameserver=ns) as uris:
            with Pyro5.api.Proxy(f"PYRONAME:t.echo@{ns.host}:{ns.port}") as proxy:
                proxy._pyroTimeout = 10
                assert proxy.echo([1, 2]) == [1, 2]
            ports = [ns.port, uris["t.echo"].port]
        assert not any(_port_open(p) for p in ports)


def test_rpyc_server_serves_and_closes() -> None:
    import rpyc

    class Doubler(rpyc.Service):  # type: ignore[misc]
        def exposed_double(self, x: int) -> int:
            return 2 * x

    with _leaves_nothing():
        with dist.rpyc_server(Doubler) as port:
            conn = rpyc.connect("127.0.0.1", port, config={"sync_request_timeout": 10})
            try:
                assert conn.root.double(21) == 42
            finally:
                conn.close()
        assert not _port_open(port)


def test_run_scoop_maps_over_workers_and_times_out() -> None:
    program = ("from scoop import futures\nfrom course_lib.dist_tasks import square\n"
               "if __name__ == '__main__':\n    print(sum(futures.map(square, range(10))))\n")
    with _leaves_nothing():
        run = dist.run_scoop(program, n=2, timeout=60)
        assert run.returncode == 0 and run.stdout.strip() == "285", run
        slow = dist.run_scoop("import time\ntime.sleep(60)\n", n=1, timeout=3)
        assert slow.timed_out


def test_pycsp_pipeline_leaves_no_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYCSP_HOST", "127.0.0.1")
    os.environ.setdefault("PYCSP_HOST", "127.0.0.1")
    import pycsp.parallel as csp

    got: list[int] = []

    @csp.process  # type: ignore[misc]
    def source(out: object, n: int) -> None:
        for i in range(n):
            out(i)  # type: ignore[operator]
        csp.retire(out)

    @csp.process  # type: ignore[misc]
    def sink(inp: object) -> None:
        try:
            while True:
                got.append(inp())  # type: ignore[operator]
        except csp.ChannelRetireException:
            pass

    with _leaves_nothing():
        ch = csp.Channel("t")
        csp.Parallel(source(ch.writer(), 4), sink(ch.reader()))
        csp.shutdown()
    assert got == [0, 1, 2, 3]
