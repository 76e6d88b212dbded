"""Record spans (named intervals of time) from threads, asyncio tasks and processes.

A :class:`Tracer` keeps at most ``capacity`` spans in memory; spans beyond that
are counted in :attr:`Tracer.dropped`, never silently lost.  One
``with tr.span("x"):`` costs about a microsecond: the hot path reads the clock
twice and appends a tuple to a list; :class:`Span` objects are built only when
:attr:`Tracer.spans` is read.

Child processes record through :meth:`Tracer.for_process`, a picklable
:class:`RemoteTracer` that works under the fork, spawn and forkserver start
methods.  It appends each finished span as one line to a per-process file in a
temporary directory the :class:`Tracer` owns; the parent merges those files
when it reads its spans and removes the directory in :meth:`Tracer.close`.
Because every span is written as soon as it ends, nothing is lost when a pool
terminates its workers.  Using a :class:`RemoteTracer` after its tracer was
closed raises :class:`RuntimeError`.  Under the fork start method a child's
inherited copy of the Tracer itself also forwards its spans to the parent, but
only ``for_process()`` works under every start method.

Times come from :func:`time.perf_counter` (``CLOCK_MONOTONIC`` on Linux), so
spans from different processes on one machine share one time axis.

:meth:`Tracer.to_chrome` writes the Chrome trace event format, which
https://ui.perfetto.dev and ``chrome://tracing`` open.
"""

from course_lib.spans import Span
from course_lib.trace.remote import RemoteTracer
from course_lib.trace.report import TraceSummary
from course_lib.trace.tracer import Tracer

__all__ = ["Span", "Tracer", "RemoteTracer", "TraceSummary"]
