"""The distributed evidence checks fail on the lazy behaviour and pass on the reference
(graders.checks.distributed): joins, the Dask task stream, the ipyparallel hub's records,
concurrent callers."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

import pytest

import course_lib
from course_lib import distributed as dist
from course_lib.dist_tasks import count_words, count_words_where, merge_counts, square
from graders.checks import (
    assert_dask_tasks,
    assert_hub_engines,
    assert_joined,
    call_concurrently,
    dask_task_records,
    hub_task_records,
    no_leaks,
    results_of_type,
    watch_processes,
)


def _start(n: int, join: bool) -> None:
    ctx = course_lib.mp_context()
    workers = [ctx.Process(target=time.sleep, args=(0.01,)) for _ in range(n)]
    for w in workers:
        w.start()
    if join:
        for w in workers:
            w.join(10)
    else:  # the lazy farm: the workers end by themselves, nobody waits for them
        time.sleep(0.5)


def test_assert_joined_needs_a_join_per_process() -> None:
    with no_leaks(timeout=5), watch_processes() as watch:
        _start(2, join=True)
    assert_joined(watch, started=2)
    with watch_processes() as lazy:
        _start(2, join=False)
    with pytest.raises(AssertionError, match="never joined"):
        assert_joined(lazy, started=2)
    for record in lazy.records:
        record.process.join(5)
    with watch_processes() as nothing:
        pass
    with pytest.raises(AssertionError, match="0 process"):
        assert_joined(nothing, started=2)              # lazy: squared in the notebook


def test_dask_task_records_see_what_the_scheduler_ran() -> None:
    with dist.dask_client(n_workers=2) as client:
        texts = ["a b", "b c", "c d"]
        with dask_task_records(client) as ran:
            client.submit(merge_counts, client.map(count_words, texts)).result(timeout=30)
        assert_dask_tasks(ran, "count_words", 3)
        assert_dask_tasks(ran, "merge_counts", 1)
        with dask_task_records(client) as token:     # lazy: map in the notebook, a token reduce
            client.submit(merge_counts, [count_words(t) for t in texts]).result(timeout=30)
        with pytest.raises(AssertionError, match="ran 0 count_words"):
            assert_dask_tasks(token, "count_words", 3)
        with pytest.raises(AssertionError, match="worker"):
            assert_dask_tasks(ran, "merge_counts", 1, workers=2)


def test_hub_task_records_show_engines_and_results() -> None:
    texts = ["a b", "b c", "c d", "d e"]
    with dist.ipp_cluster(n=2, activate=False, local=True) as rc:
        view = rc.load_balanced_view()
        with hub_task_records(rc) as ran:
            view.map_async(count_words_where, texts).get(timeout=30)
        assert_hub_engines(ran, 2, tasks=4)
        assert sum(results_of_type(ran, Counter), Counter()) == merge_counts(
            map(count_words, texts)
        )
        with hub_task_records(rc) as token:  # lazy: count here, ask one engine once
            rc[0].apply_async(square, 3).get(timeout=30)
        with pytest.raises(AssertionError, match="recorded 1 task"):
            assert_hub_engines(token, 2, tasks=4)
        assert results_of_type(token, Counter) == []


class _Racy:
    def __init__(self) -> None:
        self.balance = 0
        self.lock = threading.Lock()

    def deposit(self, amount: int) -> int:
        old = self.balance
        time.sleep(0.001)
        self.balance = old + amount
        return self.balance


class _Locked(_Racy):
    def deposit(self, amount: int) -> int:
        with self.lock:
            return super().deposit(amount)


@pytest.mark.parametrize("kind,exact", [(_Locked, True), (_Racy, False)])
def test_call_concurrently_exposes_a_race(kind: Any, exact: bool) -> None:
    account = kind()
    answers = call_concurrently(lambda: account, "deposit", [[1] * 20] * 6, timeout=30)
    assert len(answers) == 120
    assert (account.balance == 120) is exact


def test_call_concurrently_reports_a_hang() -> None:
    stuck = threading.Event()

    class Hangs:
        def wait(self, _: int) -> None:
            stuck.wait(5)

    with pytest.raises(AssertionError, match="did not finish"):
        call_concurrently(Hangs, "wait", [[0]] * 2, timeout=0.3)
    stuck.set()


def test_pyro_thread_server_races_and_multiplex_does_not() -> None:
    Pyro5 = pytest.importorskip("Pyro5.api")

    @Pyro5.expose
    @Pyro5.behavior(instance_mode="single")
    class Slow:
        def __init__(self) -> None:
            self.balance = 0
            self.threads: set[str] = set()

        def deposit(self, amount: int) -> int:
            self.threads.add(threading.current_thread().name)
            old = self.balance
            time.sleep(0.001)
            self.balance = old + amount
            return self.balance

    def proxy(uri: Any) -> Any:
        made = Pyro5.Proxy(uri)
        made._pyroTimeout = 10
        return made

    seen = {}
    with no_leaks(timeout=5):
        for servertype in ("thread", "multiplex"):
            account = Slow()
            with dist.pyro_daemon({"slow": account}, servertype=servertype) as uris:
                call_concurrently(lambda uris=uris: proxy(uris["slow"]), "deposit",
                                  [[1] * 10] * 6, timeout=60)
            seen[servertype] = (account.balance, len(account.threads))
    assert seen["multiplex"] == (60, 1)
    assert seen["thread"][0] < 60 and seen["thread"][1] >= 2
    with pytest.raises(ValueError, match="servertype"), dist.pyro_daemon({}, servertype="actor"):
        pass


def test_fail_logged_counts_runs(tmp_path: Any) -> None:
    from course_lib.dist_tasks import fail_logged

    log = tmp_path / "runs.log"
    for _ in range(2):
        with pytest.raises(ValueError, match="bad input"):
            fail_logged("bad input", str(log))
    assert log.read_text().count("\n") == 2
