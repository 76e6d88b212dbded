"""Honest measurement: :func:`benchmark`, :func:`compare` and :func:`scaling`.

Each function measures and returns a result object (:class:`Timing`,
:class:`Comparison`, :class:`Scaling`) that renders itself as a text table
(``str``) or an HTML table (Jupyter) and can draw itself with matplotlib.

How a measurement is made (the pyperf recipe, kept small):

1. warm-up calls that are not timed (imports, caches, pools start);
2. calibration: the number of calls per repeat (``loops``) grows until one
   repeat lasts at least ``min_time``, so the clock's resolution is negligible;
3. ``repeat`` timed repeats; each gives the wall and CPU time of one call;
4. the median is reported with the interquartile range (IQR) as its spread,
   and ``warnings`` says when the numbers should not be trusted.

CPU time is measured beside wall time (``time.process_time`` by default), so
``cpu_per_wall`` shows how many cores were busy: about 1 for one busy core
(for instance threads serialised by the GIL), about N for N busy cores, about
0 while the program waits (sleep, I/O, or child processes, whose CPU time
``time.process_time`` does not count).

Clocks are injectable (``clock=``, ``cpu_clock=``: callables returning float
seconds) so that tests can script time instead of sleeping. A clock object
may carry a ``resolution`` attribute (seconds); for the clocks of the
:mod:`time` module the resolution comes from :func:`time.get_clock_info`.
"""

from course_lib.timing.compare import Comparison, ComparisonRow, answers_equal, compare
from course_lib.timing.measure import MAX_LOOPS as MAX_LOOPS
from course_lib.timing.measure import MIN_REPEAT as MIN_REPEAT
from course_lib.timing.measure import MIN_TICKS as MIN_TICKS
from course_lib.timing.measure import UNSTABLE_SPREAD as UNSTABLE_SPREAD
from course_lib.timing.measure import Timing, benchmark
from course_lib.timing.scaling import Scaling, scaling

__all__ = [
    "Comparison",
    "ComparisonRow",
    "Scaling",
    "Timing",
    "answers_equal",
    "benchmark",
    "compare",
    "scaling",
]
