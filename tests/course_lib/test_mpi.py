"""course_lib.mpi and the MPI pictures: bad input, timeouts that kill every rank, failing ranks,
per-rank output, traces and message matching."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import matplotlib
import psutil
import pytest

import course_lib.mpi.pictures as pictures
from course_lib.mpi import (
    MPIEngines,
    MPIRunError,
    MPITimeoutError,
    MPITrace,
    MPIUnavailableError,
    TraceEvent,
    mpi_available,
    mpiexec_command,
    run_function,
    run_mpi,
)

matplotlib.use("Agg")

needs_mpi = pytest.mark.skipif(not mpi_available(), reason="mpi4py or mpiexec is not installed")
SHM = Path("/dev/shm")


def _shm() -> set[str]:
    """MPI's segments in /dev/shm (other programs may come and go there meanwhile)."""
    return {p.name for p in SHM.iterdir() if p.name.startswith("mpich")} if SHM.is_dir() else set()


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


@pytest.fixture(autouse=True)
def _own_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every run's folder goes under a private folder, which must be empty afterwards."""
    folder = tmp_path / "runs"
    folder.mkdir()
    monkeypatch.setenv("COURSE_MPI_TMPDIR", str(folder))
    monkeypatch.delenv("COURSE_MPIEXEC", raising=False)
    children = {p.pid for p in psutil.Process().children(recursive=True)}
    yield folder
    assert sorted(p.name for p in folder.iterdir()) == [], "run folders were left behind"
    left = {p.pid for p in psutil.Process().children(recursive=True)
            if p.status() != psutil.STATUS_ZOMBIE} - children
    assert not left, f"processes left running: {left}"


# --------------------------------------------------------------------------- bad input


def test_missing_program_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"no MPI program at .*nope\.py.*%%writefile"):
        run_mpi(tmp_path / "nope.py", n=2)
    with pytest.raises(FileNotFoundError, match="nope.py"):
        run_mpi("nope.py", n=2, cwd=tmp_path)


@pytest.mark.parametrize("n", [0, -3])
def test_rank_count_below_one_is_refused(n: int) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        run_mpi("print('never')\n", n=n)
    with pytest.raises(ValueError, match="at least 1"):
        MPIEngines(n)


@pytest.mark.parametrize("n", [1.5, "4", True])
def test_rank_count_must_be_a_whole_number(n: object) -> None:
    with pytest.raises(TypeError, match="whole number"):
        run_mpi("print('never')\n", n=n)  # type: ignore[arg-type]


@pytest.mark.parametrize("timeout", [0, -1, float("nan"), None])
def test_every_run_needs_a_positive_timeout(timeout: object) -> None:
    with pytest.raises(ValueError, match="positive number of seconds"):
        run_mpi("print('never')\n", n=1, timeout=timeout)  # type: ignore[arg-type]


def test_a_launcher_that_does_not_exist_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COURSE_MPIEXEC", "/no/such/mpiexec -f hosts")
    with pytest.raises(MPIUnavailableError, match=r"COURSE_MPIEXEC names '/no/such/mpiexec'"):
        mpiexec_command()
    with pytest.raises(MPIUnavailableError, match="empty"):
        mpiexec_command([])


def test_run_function_needs_a_def_and_picklable_arguments() -> None:
    import threading

    with pytest.raises(TypeError, match="not a lambda"):
        run_function(lambda comm: 1, 1)
    with pytest.raises(TypeError, match="cannot be sent to the ranks"):
        run_function(_who_am_i, 1, args=(threading.Lock(),))


# --------------------------------------------------------------------------- discovery


@needs_mpi
def test_mpiexec_is_found_next_to_the_interpreter(monkeypatch: pytest.MonkeyPatch) -> None:
    if not (Path(sys.executable).parent / "mpiexec").exists():
        pytest.skip("no mpiexec in this interpreter's bin folder")
    monkeypatch.setenv("PATH", "")  # a kernel's PATH may not include the virtual environment
    assert mpiexec_command() == [str(Path(sys.executable).parent / "mpiexec")]


@needs_mpi
def test_the_launcher_and_its_options_come_from_course_mpiexec(
        monkeypatch: pytest.MonkeyPatch) -> None:
    launcher = mpiexec_command()[0]
    if not (Path(launcher).parent / "mpichversion").exists():
        pytest.skip("the option used here (-launcher fork) is MPICH's")
    monkeypatch.setenv("COURSE_MPIEXEC", f"{launcher} -launcher fork")
    assert mpiexec_command() == [launcher, "-launcher", "fork"]
    run = run_mpi("print('configured')\n", n=2, timeout=30)
    assert run.command[:3] == (launcher, "-launcher", "fork")
    assert run.stdout == ["configured\n", "configured\n"]


# --------------------------------------------------------------------------- running


LINES = """
import sys
from mpi4py import MPI
rank = MPI.COMM_WORLD.Get_rank()
for i in range(int(sys.argv[1])):
    print(f"rank {rank} line {i} " + "x" * 300)
"""


@needs_mpi
def test_each_rank_gets_its_own_whole_lines() -> None:
    run = run_mpi(LINES, n=4, args=[200], timeout=30)
    assert run.ok and run.exit_codes == [0, 0, 0, 0]
    for rank in range(4):
        assert run.lines(rank) == [f"rank {rank} line {i} " + "x" * 300 for i in range(200)]
    assert run.lines()[0].startswith("[0] rank 0 line 0")
    assert "rank 3 line 199" in str(run) and "rank 3 line 199" in run._repr_html_()


@needs_mpi
def test_a_program_file_runs_in_its_folder_with_arguments(tmp_path: Path) -> None:
    script = tmp_path / "argv.py"
    script.write_text("import sys, os\nprint(sys.argv[1:], os.path.basename(sys.argv[0]))\n")
    run = run_mpi(script, n=1, args=["a", 2], timeout=30)
    assert run.stdout == ["['a', '2'] argv.py\n"]
    assert run.label == "argv.py"


STUCK = """
import os, sys, time
from mpi4py import MPI
comm = MPI.COMM_WORLD
print(os.getpid(), os.getppid(), flush=True)
if comm.Get_rank() == 0:
    comm.recv(source=1)          # rank 1 never sends: a deadlock
else:
    time.sleep(600)
"""


@needs_mpi
def test_timeout_kills_every_rank_and_says_which_were_stuck() -> None:
    began = time.monotonic()
    with pytest.raises(MPITimeoutError) as caught:
        run_mpi(STUCK, n=3, timeout=2)
    assert time.monotonic() - began < 10
    run = caught.value.run
    assert run.timed_out and run.still_running == [0, 1, 2]
    message = str(caught.value)
    assert "did not finish within 2 s" in message and "deadlock" in message
    pids = [int(word) for out in run.stdout for word in out.split()]
    assert len(pids) == 6, run.stdout  # each rank and its launcher proxy
    assert not [pid for pid in pids if _alive(pid)], "a rank or its proxy survived the timeout"


DEADLOCK = """
import numpy as np
from mpi4py import MPI
from course_lib.mpi import TracedComm
comm = TracedComm(MPI.COMM_WORLD)
big = np.zeros(1_000_000)
comm.Send(big, dest=1 - comm.Get_rank())     # both send first: rendezvous, never matched
comm.Recv(big, source=1 - comm.Get_rank())
"""


@needs_mpi
def test_a_killed_deadlock_leaves_no_shared_memory_and_a_trace() -> None:
    before = _shm()
    run = run_mpi(DEADLOCK, n=2, timeout=2, check=False)
    assert run.timed_out and not run.ok
    assert _shm() - before == set(), "the killed ranks' shared-memory segments are still there"
    assert [(e.rank, e.op, e.end) for e in sorted(run.trace.events, key=lambda e: e.rank)] == \
        [(0, "Send", None), (1, "Send", None)]
    assert len(run.trace.unmatched_sends) == 2 and run.trace.messages == []
    assert run.trace.stopped is not None and run.trace.t_end >= run.trace.stopped
    assert {e.send_nbytes for e in run.trace.events} == {8_000_000}


@needs_mpi
def test_a_rank_exiting_non_zero_is_named_with_its_output() -> None:
    before = _shm()
    program = ("import sys\nfrom mpi4py import MPI\ncomm = MPI.COMM_WORLD\n"
               "print('bye from', comm.Get_rank())\n"
               "if comm.Get_rank() == 2:\n    sys.exit(3)\ncomm.Barrier()\n")
    began = time.monotonic()
    with pytest.raises(MPIRunError) as caught:
        run_mpi(program, n=4, timeout=30)
    assert time.monotonic() - began < 15, "the other ranks were left waiting in Barrier"
    run = caught.value.run
    assert not isinstance(caught.value, MPITimeoutError)
    assert run.exit_codes[2] == 3 and run.failed_ranks == [2]
    message = str(caught.value)
    assert "rank 2 of 4 failed (exit code 3)" in message and "bye from 2" in message
    assert _shm() - before == set()


@needs_mpi
def test_an_exception_on_one_rank_shows_its_traceback_without_helper_frames() -> None:
    program = ("from mpi4py import MPI\nrank = MPI.COMM_WORLD.Get_rank()\n"
               "if rank == 1:\n    raise ValueError('bad value on rank one')\n"
               "MPI.COMM_WORLD.Barrier()\n")
    run = run_mpi(program, n=3, timeout=30, check=False)
    assert not run.ok and run.failed_ranks == [1]
    assert run.ranks[1].exit_code == 1
    message = run.error_message() or ""
    assert "rank 1 of 3 failed (exit code 1): ValueError: bad value on rank one" in message
    assert "runpy" not in run.stderr[1] and "course_lib" not in run.stderr[1]
    assert "were stopped when it failed" in message


@needs_mpi
def test_a_successful_run_checks_clean() -> None:
    run = run_mpi("print('ok')\n", n=2, timeout=30, check=False)
    assert run.check() is run and run.error_message() is None


# --------------------------------------------------------------------------- run_function


def _who_am_i(comm, extra):  # type: ignore[no-untyped-def]
    return comm.Get_rank(), comm.Get_size(), extra


def _talk(comm):  # type: ignore[no-untyped-def]
    import numpy

    rank, size = comm.Get_rank(), comm.Get_size()
    right, left = (rank + 1) % size, (rank - 1) % size
    comm.send({"from": rank}, dest=right, tag=5)
    got = comm.recv(source=left, tag=5)
    buffer = numpy.empty(3)
    comm.Sendrecv(numpy.full(3, rank, dtype=float), dest=right, recvbuf=buffer, source=left)
    requests = [comm.irecv(source=left, tag=9), comm.isend(rank, dest=right, tag=9)]
    late = MPI.Request.waitall(requests)[0]  # noqa: F821 - the program header imports MPI
    total = comm.allreduce(rank)
    return got["from"], float(buffer[0]), late, total


def _forgets_to_wait(comm):  # type: ignore[no-untyped-def]
    other = (comm.Get_rank() + 1) % comm.Get_size()
    request = comm.irecv(source=other)
    comm.isend("hello", dest=other)
    return request.wait()


def _returns_a_generator(comm):  # type: ignore[no-untyped-def]
    return (i for i in range(3))


@needs_mpi
def test_run_function_returns_what_each_rank_returned() -> None:
    run = run_function(_who_am_i, 3, args=("x",), timeout=30)
    assert run.results == [(0, 3, "x"), (1, 3, "x"), (2, 3, "x")]
    assert run.label == "_who_am_i(comm, 'x')"


@needs_mpi
def test_traced_messages_are_matched_sender_to_receiver() -> None:
    run = run_function(_talk, 3, trace=True, timeout=30)
    assert run.results == [(2, 2.0, 2, 3), (0, 0.0, 0, 3), (1, 1.0, 1, 3)]
    trace = run.trace
    assert trace.ranks == [0, 1, 2] and trace.unfinished == [] and trace.incomplete_requests == []
    pairs = sorted((m.source, m.dest, m.tag, m.send_op) for m in trace.messages)
    assert pairs == [(0, 1, 0, "Sendrecv"), (0, 1, 5, "send"), (0, 1, 9, "isend"),
                     (1, 2, 0, "Sendrecv"), (1, 2, 5, "send"), (1, 2, 9, "isend"),
                     (2, 0, 0, "Sendrecv"), (2, 0, 5, "send"), (2, 0, 9, "isend")]
    assert {m.nbytes for m in trace.messages if m.send_op == "Sendrecv"} == {24}
    assert all(m.received >= m.sent for m in trace.messages)
    assert trace.count(op="allreduce") == 3 and trace.count(kind="collective") == 3
    spans = trace.spans()
    assert {s.worker for s in spans} == {"rank 0", "rank 1", "rank 2"}
    assert "9 message(s) between 3 rank(s)" in str(trace)


@needs_mpi
def test_requests_never_completed_are_reported() -> None:
    run = run_function(_forgets_to_wait, 2, trace=True, timeout=30)
    assert run.results == ["hello", "hello"]
    assert sorted((e.rank, e.op) for e in run.trace.incomplete_requests) == [(0, "isend"),
                                                                             (1, "isend")]


@needs_mpi
def test_a_return_value_that_cannot_travel_is_explained() -> None:
    with pytest.raises(MPIRunError, match="returned a generator, which cannot be sent back"):
        run_function(_returns_a_generator, 2, timeout=30)


@needs_mpi
def test_mpi_engines_start_and_stop_leaving_nothing() -> None:
    with MPIEngines(2, activate=False, timeout=60) as rc:
        ranks = rc[:].apply_sync(lambda: __import__("mpi4py.MPI").MPI.COMM_WORLD.Get_rank())
    assert sorted(ranks) == [0, 1]


# --------------------------------------------------------------------------- traces, no MPI


def _records() -> list[dict[str, object]]:
    """Rank 0 sends tag 1 twice to rank 1 and posts an irecv; rank 1 receives both, then
    sends once (received by rank 0's wait); rank 1 is stuck in a last Send."""
    return [
        {"rank": 0, "id": 1, "op": "send", "kind": "send", "start": 1.0, "end": 1.1, "dest": 1,
         "send_tag": 1, "send_nbytes": 10},
        {"rank": 0, "id": 2, "op": "send", "kind": "send", "start": 2.0, "dest": 1,
         "send_tag": 1, "send_nbytes": 20},
        {"rank": 0, "id": 2, "end": 2.1},
        {"rank": 1, "id": 1, "op": "recv", "kind": "recv", "start": 0.5, "end": 1.5, "source": 0,
         "recv_tag": 1, "recv_nbytes": 10},
        {"rank": 1, "id": 2, "op": "recv", "kind": "recv", "start": 1.6, "end": 2.5, "source": 0,
         "recv_tag": 1, "recv_nbytes": 20},
        {"rank": 0, "id": 3, "op": "irecv", "kind": "irecv", "start": 2.6, "end": 2.6,
         "source": 1, "recv_tag": 4},
        {"rank": 1, "id": 3, "op": "Isend", "kind": "isend", "start": 3.0, "end": 3.0, "dest": 0,
         "send_tag": 4, "send_nbytes": 8},
        {"rank": 0, "id": 4, "op": "wait", "kind": "wait", "start": 2.7, "end": 3.2,
         "source": 1, "recv_tag": 4, "recv_nbytes": 8, "request": 3, "posted": 2.6},
        {"rank": 1, "id": 4, "op": "Send", "kind": "send", "start": 3.5, "dest": 0,
         "send_tag": 0, "send_nbytes": 4000},
        {"rank": 1, "id": 5, "end": 9.9},  # an end without its beginning (a torn file): ignored
    ]


def test_messages_are_matched_in_order_per_source_dest_and_tag() -> None:
    trace = MPITrace.from_records(_records())
    assert [(m.source, m.dest, m.tag, m.nbytes, m.sent, m.received) for m in trace.messages] == [
        (0, 1, 1, 10, 1.0, 1.5), (0, 1, 1, 20, 2.0, 2.5), (1, 0, 4, 8, 3.0, 3.2)]
    assert trace.messages[-1].recv_op == "irecv + wait"
    assert [(e.rank, e.op) for e in trace.unfinished] == [(1, "Send")]
    assert [(e.rank, e.op) for e in trace.unmatched_sends] == [(1, "Send")]
    assert [(e.rank, e.op) for e in trace.incomplete_requests] == [(1, "Isend")]  # never waited
    assert trace.ranks == [0, 1]
    assert trace.t0 == 0.5 and trace.t_end == 3.5
    assert all(isinstance(e, TraceEvent) for e in trace.events)


def test_a_trace_file_cut_short_still_loads(tmp_path: Path) -> None:
    import json

    lines = [json.dumps(r) for r in _records()[:3]]
    (tmp_path / "trace-0.jsonl").write_text("\n".join(lines) + '\n{"rank": 0, "id": 9, "op"')
    trace = MPITrace.load(tmp_path)
    assert [e.id for e in trace.events] == [1, 2]


def test_message_diagram_draws_lanes_arrows_and_stuck_calls() -> None:
    trace = MPITrace.from_records(_records())
    trace.stopped = 5.0
    ax = pictures.message_diagram(trace, title="test")
    assert [t.get_text() for t in ax.get_yticklabels()] == ["rank 0", "rank 1"]
    texts = [t.get_text() for t in ax.texts]
    assert "Send never returned" in texts and "10 B" in texts and "4 kB" not in texts
    arrows = [c for c in ax.get_children() if type(c).__name__ == "Annotation"]
    assert len(arrows) == 3 + 1  # three messages and one send never received
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "call that never returned" in labels and "sent, never received" in labels
    assert ax.get_xlabel().startswith("time since the first call (")
    assert ax.get_xlim()[1] >= (5.0 - 0.5)  # the axis reaches the moment the run was stopped
    import matplotlib.pyplot as plt

    plt.close("all")


def test_message_diagram_of_an_empty_trace_says_so() -> None:
    ax = pictures.message_diagram(MPITrace([]))
    assert "no MPI calls recorded" in ax.texts[0].get_text()
    import matplotlib.pyplot as plt

    plt.close("all")


@pytest.mark.parametrize("op,labels", [
    ("bcast", {"x"}),
    ("scatter", {"x0", "x1", "x2", "x3"}),
    ("gather", {"x0", "x1", "x2", "x3"}),
    ("allreduce", {"x0", "x1", "x2", "x3", "x0+…+x3"}),
    ("alltoall", {f"{i}→{j}" for i in range(4) for j in range(4)}),
])
def test_collective_diagram_labels_where_the_data_goes(op: str, labels: set[str]) -> None:
    ax = pictures.collective_diagram(op, 4)
    texts = {t.get_text() for t in ax.texts}
    assert labels <= texts and "before" in texts and "after" in texts
    assert op in ax.get_title()
    import matplotlib.pyplot as plt

    plt.close("all")


@pytest.mark.parametrize("kwargs,match", [
    ({"op": "broadcast"}, "unknown collective"),
    ({"op": "bcast", "size": 0}, "size must be"),
    ({"op": "bcast", "size": 4, "root": 4}, "root must be"),
])
def test_collective_diagram_refuses_bad_input(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        pictures.collective_diagram(**kwargs)  # type: ignore[arg-type]


def test_rank_comes_from_the_launchers_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from course_lib.mpi.rank import rank_from_environment

    for name in ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK", "MV2_COMM_WORLD_RANK",
                 "SLURM_PROCID"):
        monkeypatch.delenv(name, raising=False)
    assert rank_from_environment() is None
    monkeypatch.setenv("OMPI_COMM_WORLD_RANK", "5")
    assert rank_from_environment() == 5
    monkeypatch.setenv("PMI_RANK", "2")
    assert rank_from_environment() == 2


def test_importing_the_module_does_not_start_mpi() -> None:
    import subprocess

    code = "import sys, course_lib.mpi; print('mpi4py.MPI' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr


def test_benchmarks_skip_without_mpi(monkeypatch: pytest.MonkeyPatch) -> None:
    import benchmarks.mpi
    from benchmarks import FIGURES, Skip

    monkeypatch.setattr("course_lib.mpi.mpi_available", lambda: False)
    for name in ("mpi_startup_seconds", "mpi_buffer_vs_pickle_speedup", "mpi_allreduce_us",
                 "heat_mpi_speedup"):
        assert FIGURES[name].measure.__module__ == benchmarks.mpi.__name__
        with pytest.raises(Skip, match="mpi4py or mpiexec is missing"):
            FIGURES[name].measure()


@needs_mpi
def test_mpich_writes_no_topology_file_in_tmp(_own_tmp: Path) -> None:
    """Hydra ignores TMPDIR and leaves /tmp/hydra_hwloc_xmlfile_* behind after a killed job."""
    from course_lib.mpi.launch import bundled_hydra

    if not bundled_hydra(mpiexec_command()):
        pytest.skip("only the mpich wheel's mpiexec is told where its topology file goes")
    run = run_mpi("import os\nprint(os.environ.get('HWLOC_XMLFILE'))\n", n=1, timeout=30)
    assert run.stdout[0].startswith(str(_own_tmp)), run.stdout
