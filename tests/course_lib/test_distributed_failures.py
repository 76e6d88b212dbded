"""Bad input to chapter 6's engines: each mistake gives a clear error, in bounded time,
and leaves no process, thread, port or temporary file behind.

- a broker (or result backend) that does not answer;
- a Pyro5 name the name server does not know, and a name server that is gone;
- a task that raises: the caller sees the remote exception's type and message;
- a payload that cannot be serialised: the message names the part and a fix.
"""

from __future__ import annotations

import itertools
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from course_lib import dist_tasks
from course_lib import distributed as dist

from .test_distributed import _leaves_nothing, _port_open


@pytest.fixture()
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private temporary folder (and no cluster settings): whatever is left in it leaked."""
    for name in dist.ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(dist.CONFIG_FILE_VAR, "")
    (tmp_path / "home").mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setenv("TMPDIR", str(folder))
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    yield folder
    assert sorted(p.name for p in folder.iterdir()) == [], "temporary files were left behind"


# --------------------------------------------------------------------------- brokers


def test_a_broker_that_does_not_answer_fails_fast_naming_the_url(private_tmp: Path) -> None:
    port = dist.free_port()
    url = f"redis://127.0.0.1:{port}/0"
    with _leaves_nothing():
        start = time.monotonic()
        with pytest.raises(dist.DistributedError) as caught:
            with dist.celery_worker(1, broker=url, timeout=5):
                pass
        assert time.monotonic() - start < 10
    message = str(caught.value)
    assert url in message and "does not answer" in message
    assert "redis-server" in message and "unset COURSE_CELERY_BROKER" in message


def test_the_broker_setting_is_checked_too_and_passwords_are_masked(
        private_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    port = dist.free_port()
    monkeypatch.setenv("COURSE_CELERY_BROKER", f"redis://:hunter2@127.0.0.1:{port}/0")
    with _leaves_nothing():
        with pytest.raises(dist.DistributedError, match="does not answer") as caught:
            with dist.celery_broker():
                pass
    assert "hunter2" not in str(caught.value) and ":***@127.0.0.1" in str(caught.value)
    # local=True ignores the setting: the file broker needs no server.
    with _leaves_nothing(), dist.celery_broker(local=True) as broker:
        assert broker.broker == "filesystem://" and broker.messages() == []


def test_a_result_backend_that_does_not_answer_is_named(private_tmp: Path) -> None:
    url = f"redis://127.0.0.1:{dist.free_port()}/1"
    with _leaves_nothing(), pytest.raises(dist.DistributedError,
                                          match="result backend.*does not answer"):
        with dist.celery_broker(backend=url):
            pass


def test_check_broker_rejects_what_is_not_a_url() -> None:
    with pytest.raises(ValueError, match="redis://host"):
        dist.check_broker("localhost:6379")
    with pytest.raises(ValueError, match="timeout"):
        dist.check_broker("redis://127.0.0.1:1/0", timeout=0)
    dist.check_broker("filesystem://")          # nothing to reach: no error


# --------------------------------------------------------------------------- Pyro5


def test_an_unknown_pyro_name_lists_the_known_names() -> None:
    import Pyro5.api

    @Pyro5.api.expose
    class Thermometer:
        def read(self) -> float:
            return 21.5

        def fail(self) -> None:
            raise ValueError("sensor 7 is missing")

    with _leaves_nothing():
        with dist.pyro_nameserver() as ns, dist.pyro_daemon(
                {"lab.thermometer": Thermometer(), "lab.barometer": Thermometer()},
                nameserver=ns) as uris:
            with pytest.raises(dist.NameNotFound) as caught:
                dist.pyro_proxy("lab.thermometre", ns)
            assert isinstance(caught.value, LookupError)
            message = str(caught.value)
            assert "'lab.thermometre'" in message
            assert "'lab.barometer', 'lab.thermometer'" in message and "spelling" in message
            with dist.pyro_proxy("lab.thermometer", ns, timeout=10) as proxy:
                assert proxy.read() == 21.5
                with pytest.raises(ValueError, match="sensor 7 is missing"):
                    proxy.fail()                 # a remote error keeps its type and message
            ports = [ns.port, uris["lab.thermometer"].port]
        assert not any(_port_open(p) for p in ports)
        start = time.monotonic()
        with pytest.raises(dist.DistributedError, match="name server .* does not answer"):
            dist.pyro_proxy("lab.thermometer", ns, timeout=3)
        assert time.monotonic() - start < 10
    with pytest.raises(ValueError, match="name must be"):
        dist.pyro_proxy("", ns)


# --------------------------------------------------------------------------- remote errors


def test_celery_task_errors_and_bad_payloads(private_tmp: Path) -> None:
    with _leaves_nothing():
        with dist.celery_worker(1, local=True) as celery:
            with pytest.raises(ValueError, match="bad input 42"):
                celery.send("fail", "bad input 42").get(timeout=30, interval=0.01)
            with pytest.raises(dist.PayloadError, match=r"square\(\) argument \[0\]\['guard'\] "
                                                        r"is a _thread.lock.*inside the task"):
                celery.send("square", {"guard": threading.Lock()})
            # nothing was sent, and the worker still answers
            assert celery.send("square", 5).get(timeout=30, interval=0.01)[0] == 25
            pids = [p.pid for p in celery.processes]
    assert all(p.poll() is not None for p in celery.processes), pids


def test_dask_task_errors_keep_type_and_message(private_tmp: Path) -> None:
    with _leaves_nothing(), dist.dask_client(1, local=True) as client:
        future = client.submit(dist_tasks.fail, "bad input 42")
        with pytest.raises(ValueError, match="bad input 42"):
            future.result(timeout=30)
        assert not dist.is_worker_lost(future.exception(timeout=30))


def test_ipyparallel_task_errors_name_the_remote_type(private_tmp: Path) -> None:
    with _leaves_nothing(grace=10), dist.ipp_cluster(1, activate=False, local=True) as rc:
        with pytest.raises(Exception) as caught:
            rc[0].apply_async(dist_tasks.fail, "bad input 42").get(timeout=30)
        error: Any = caught.value
        assert (error.ename, error.evalue) == ("ValueError", "bad input 42")
        assert "ValueError: bad input 42" in str(error)
        assert not dist.is_worker_lost(error)
        # ipyparallel pickles with its own error; check_payload names the culprit
        with pytest.raises(TypeError, match="cannot pickle"):
            rc[0].apply_async(dist_tasks.square, threading.Lock()).get(timeout=30)
        with pytest.raises(dist.PayloadError, match=r"apply arguments\[0\] is a _thread.lock"):
            dist.check_payload((threading.Lock(),), what="apply arguments")


def test_rpyc_remote_errors_keep_type_and_message() -> None:
    import rpyc

    class Failing(rpyc.Service):  # type: ignore[misc]
        def exposed_fail(self, message: str) -> None:
            raise ValueError(message)

    with _leaves_nothing(), dist.rpyc_server(Failing) as port:
        conn = rpyc.connect("127.0.0.1", port, config={"sync_request_timeout": 10})
        try:
            with pytest.raises(ValueError, match="bad input 42"):
                conn.root.fail("bad input 42")
        finally:
            conn.close()


# --------------------------------------------------------------------------- payloads


def test_check_payload_names_the_part_and_a_fix(tmp_path: Path) -> None:
    dist.check_payload({"x": [1, 2.5, "a"], "w": np.zeros(3)})          # pickles fine
    dist.check_payload([1, {"a": None, "b": [True]}], serializer="json")
    dist.check_payload(lambda x: x + 1)                                 # cloudpickle copes

    cases: list[tuple[object, str, str]] = [
        ([1, {"lock": threading.RLock()}], "pickle", r"payload\[1\]\['lock'\] is a _thread.RLock"),
        ((x for x in range(3)),  "pickle", "generator.*list\\(generator\\)"),
        ({"ids": {1, 2}}, "json", r"payload\['ids'\] is a builtins.set.*sorted"),
        ([np.arange(3)], "json", r"payload\[0\] is a numpy.ndarray.*tolist\(\)"),
        ([b"raw"], "json", "JSON has no bytes"),
        (threading.Thread(target=print), "pickle", "thread"),
    ]
    for payload, serializer, pattern in cases:
        with pytest.raises(dist.PayloadError, match=pattern):
            dist.check_payload(payload, serializer=serializer)
    with open(tmp_path / "data.txt", "w") as handle:
        with pytest.raises(dist.PayloadError, match=r"args\[0\].*send its path"):
            dist.check_payload([handle], what="args")

    class Holder:
        def __init__(self) -> None:
            self.data = [1, 2]
            self.guard = threading.Lock()

    with pytest.raises(dist.PayloadError, match=r"payload\.guard is a _thread.lock"):
        dist.check_payload(Holder())
    with pytest.raises(ValueError, match="serializer"):
        dist.check_payload(1, serializer="yaml")
    assert issubclass(dist.PayloadError, TypeError)


def test_celery_send_checks_before_sending() -> None:
    sent: list[tuple[Any, ...]] = []

    class App:
        def send_task(self, name: str, args: Any = (), kwargs: Any = None) -> str:
            sent.append((name, args, kwargs))
            return "result"

    workers = dist.CeleryWorkers(App(), "filesystem://", "db+sqlite://", ["w1"], [])
    assert workers.send("square", 3) == "result"
    assert sent == [("course_lib.celery_tasks.square", (3,), {})]
    with pytest.raises(dist.PayloadError, match=r"keyword argument \['when'\]"):
        workers.send("square", 3, when=object())
    assert len(sent) == 1


# --------------------------------------------------------------------------- helpers


def test_is_worker_lost_tells_a_crash_from_the_task_s_own_error() -> None:
    class EngineError(Exception):
        pass

    class RemoteError(Exception):
        ename = "EngineError"

    class KilledWorker(Exception):
        pass

    assert dist.is_worker_lost(EngineError("died"))
    assert dist.is_worker_lost(RemoteError("wrapped"))
    assert dist.is_worker_lost(KilledWorker("too many deaths"))
    assert not dist.is_worker_lost(ValueError("bad input"))
    assert not dist.is_worker_lost(TimeoutError("slow"))


def test_wait_for_times_out_naming_what_on_a_fake_clock() -> None:
    ticks = itertools.count(0.0, 0.5)
    naps: list[float] = []
    with pytest.raises(TimeoutError, match="the task starting did not happen within 2 s"):
        dist.wait_for(lambda: False, 2, "the task starting",
                      clock=lambda: next(ticks), sleep=naps.append)
    assert len(naps) == 4                         # no real sleeping
    flags = iter([False, False, True])
    dist.wait_for(lambda: next(flags), 5, "x", sleep=lambda _: None)
    with pytest.raises(ValueError, match="timeout"):
        dist.wait_for(lambda: True, 0, "x")


def test_kill_process_checks_its_argument() -> None:
    with pytest.raises(ValueError, match="positive process id"):
        dist.kill_process(0)
    with pytest.raises(ValueError, match="refuses"):
        dist.kill_process(os.getpid())
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    dist.kill_process(proc.pid)
    assert proc.wait(10) < 0                      # killed by a signal, and left for us to reap
    dist.kill_process(proc.pid)                   # already gone: not an error


# --------------------------------------------------------------------------- settings


def test_settings_file_and_environment(tmp_path: Path) -> None:
    home = tmp_path / "home"
    default = home / ".config/parallel-python/cluster.toml"
    assert dist.config_file({"HOME": str(home)}) is None
    default.parent.mkdir(parents=True)
    default.write_text('dask_scheduler = "tcp://10.0.0.5:8786"\n'
                       'celery_broker = "redis://10.0.0.6:6379/0"\n')
    env = {"HOME": str(home)}
    assert dist.config_file(env) == default
    settings = dist.config(env)
    assert settings["COURSE_DASK_SCHEDULER"] == "tcp://10.0.0.5:8786"
    assert settings["COURSE_IPP_PROFILE"] is None
    env["COURSE_CELERY_BROKER"] = "redis://override:6379/0"          # the environment wins
    assert dist.config(env)["COURSE_CELERY_BROKER"] == "redis://override:6379/0"

    named = tmp_path / "class.toml"
    named.write_text('ipp_profile = "slurm"\n')
    assert dist.config({"HOME": str(home), dist.CONFIG_FILE_VAR: str(named)}) == {
        "COURSE_IPP_PROFILE": "slurm", "COURSE_DASK_SCHEDULER": None,
        "COURSE_CELERY_BROKER": None, "COURSE_CELERY_BACKEND": None}
    with pytest.raises(dist.DistributedError, match="not a file"):
        dist.config({dist.CONFIG_FILE_VAR: str(tmp_path / "missing.toml")})
    named.write_text('dask_schedular = "tcp://x:1"\n')
    with pytest.raises(dist.DistributedError, match="unknown setting.*dask_schedular"):
        dist.config({dist.CONFIG_FILE_VAR: str(named)})
    named.write_text("dask_scheduler = tcp://x:1\n")
    with pytest.raises(dist.DistributedError, match="cannot read"):
        dist.config({dist.CONFIG_FILE_VAR: str(named)})


def test_local_and_a_named_cluster_do_not_mix() -> None:
    with pytest.raises(ValueError, match="not both"):
        with dist.ipp_cluster(1, "slurm", local=True):
            pass
    with pytest.raises(ValueError, match="not both"):
        with dist.dask_client(1, address="tcp://10.0.0.5:8786", local=True):
            pass
    with pytest.raises(ValueError, match="concurrency"):
        with dist.celery_worker(1, concurrency=0):
            pass
