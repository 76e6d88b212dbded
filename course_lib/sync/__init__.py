"""Models, worker functions and instruments for the synchronisation chapter.

- **Races you can watch**: :class:`RacyCounter` performs ``value += amount`` as
  three separate, recorded steps (read, add, write); :func:`count_race` runs it
  in several threads and returns every step plus the updates that were lost
  (:func:`find_lost_updates`).  ``course_lib.viz.interleaving`` draws them.
- **Worker functions for child processes** (importable, so they work under the
  fork, spawn and forkserver start methods): :func:`deposit_many`,
  :func:`use_resource`, :func:`wait_for_go`, :func:`phase_worker`,
  :func:`wait_until_at_least`, :func:`square_worker`, :func:`nested_acquire`.
  Inside a child process they never print a traceback: a failure becomes one
  line on stdout and exit code 1.
- **Instruments**: :class:`TracedLock` records "waiting for" and "holding"
  spans on a tracer (the lock-contention timeline); :class:`LockMonitor` hands
  out :class:`MonitoredLock` objects that know who holds and who waits, find a
  deadlock (a cycle of waits) and can abort every waiter, so that a deadlocked
  program ends instead of hanging; :class:`FairLock` serves waiters in order.
- **Dining philosophers**: :func:`dine` runs the table with one of
  :data:`STRATEGIES` and reports meals, retries and any deadlock, leaving no
  thread behind.

Modules: :mod:`~course_lib.sync.races`, :mod:`~course_lib.sync.workers`,
:mod:`~course_lib.sync.locks`, :mod:`~course_lib.sync.philosophers` and the
chapter's pictures, :mod:`~course_lib.sync.pictures` (re-exported by
:mod:`course_lib.viz`).  This package only re-exports them.
"""

from __future__ import annotations

from course_lib.sync.locks import (
    FairLock,
    HoldsWaits,
    LockAborted,
    LockMonitor,
    MonitoredLock,
    TracedLock,
)
from course_lib.sync.philosophers import STRATEGIES, DiningResult, dine
from course_lib.sync.races import (
    LostUpdate,
    RaceResult,
    RacyCounter,
    Step,
    StepLog,
    count_race,
    find_lost_updates,
)
from course_lib.sync.races import natural_key as natural_key  # not in __all__; viz sorts with it
from course_lib.sync.workers import (
    deposit_many,
    nested_acquire,
    phase_worker,
    square_worker,
    stop_helper_processes,
    use_resource,
    wait_for_go,
    wait_until_at_least,
)

__all__ = [
    "STRATEGIES",
    "DiningResult",
    "FairLock",
    "HoldsWaits",
    "LockAborted",
    "LockMonitor",
    "LostUpdate",
    "MonitoredLock",
    "RaceResult",
    "RacyCounter",
    "Step",
    "StepLog",
    "TracedLock",
    "count_race",
    "deposit_many",
    "dine",
    "find_lost_updates",
    "nested_acquire",
    "phase_worker",
    "square_worker",
    "stop_helper_processes",
    "use_resource",
    "wait_for_go",
    "wait_until_at_least",
]
