"""Pictures for chapter 3: the steps of a race, lock contention, who holds and who waits.

Built on :mod:`course_lib.figures`, like every picture in the course:
matplotlib is imported inside each function, no function changes global
matplotlib state, each draws on the ``ax`` it is given (or a new figure) and
returns the Axes, and colour is never the only carrier of meaning.
:mod:`course_lib.viz` re-exports these functions.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from course_lib._render import format_seconds
from course_lib.figures import new_axes, time_unit
from course_lib.sync.races import find_lost_updates, natural_key

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["interleaving", "contention", "wait_for_graph"]


class SpanLike(Protocol):
    """What :func:`contention` reads from a :class:`course_lib.trace.Span`."""

    @property
    def name(self) -> str: ...

    @property
    def worker(self) -> str: ...

    @property
    def start(self) -> float: ...

    @property
    def end(self) -> float: ...

    @property
    def duration(self) -> float: ...


class HasSpans(Protocol):
    """What :func:`contention` reads from a :class:`course_lib.trace.Tracer`."""

    @property
    def spans(self) -> Sequence[SpanLike]: ...


def _step_label(action: str, value: int) -> str:
    if action == "read":
        return f"read\n{value}"
    if action == "add":
        return f"add\n→ {value}"
    return f"write\n{value}"


def interleaving(
    steps: Iterable[Any],
    *,
    lost: Iterable[Any] | None = None,
    ax: Axes | None = None,
    title: str | None = None,
) -> Axes:
    """The read, add and write steps of each thread, in the order they happened.

    ``steps`` are :class:`course_lib.sync.Step` objects (``index``, ``thread``,
    ``action``, ``value``), for example ``count_race(...).steps``.  One lane
    per thread; the x axis is the position in the global order.  Steps differ
    by hatching and label as well as colour.  A write that was lost (another
    thread overwrote it with a value computed from an older read) is crossed
    out and marked "LOST", and a dashed arrow joins the stale read to the
    write that did the damage.  ``lost`` defaults to
    :func:`course_lib.sync.find_lost_updates` of the steps.
    """
    from matplotlib.patches import FancyArrowPatch, Patch, Rectangle

    items = list(steps)
    for s in items:
        if not all(hasattr(s, a) for a in ("index", "thread", "action", "value")):
            raise TypeError(f"steps must be course_lib.sync.Step objects (for example "
                            f"count_race(...).steps), got {type(s).__name__}")
    items.sort(key=lambda s: s.index)
    losses = list(find_lost_updates(items) if lost is None else lost)
    lanes: dict[str, int] = {}
    for s in items:
        lanes.setdefault(s.thread, len(lanes))
    ax = new_axes(ax, (max(6.0, 0.55 * len(items) + 2.0), max(2.2, 0.9 * len(lanes) + 1.4)))
    styles = {"read": ("C0", ".."), "add": ("0.85", ""), "write": ("C1", "//")}
    lost_at = {u.lost.index for u in losses}
    position = {s.index: x for x, s in enumerate(items)}
    fontsize = 8.0 if len(items) <= 24 else 6.5 if len(items) <= 40 else 0.0
    for x, s in enumerate(items):
        colour, hatch = styles.get(s.action, ("white", ""))
        row = lanes[s.thread]
        if s.index in lost_at:
            ax.add_patch(Rectangle((x - 0.45, row - 0.3), 0.9, 0.6, facecolor="C3", hatch="xx",
                                   edgecolor="black", linewidth=1.5))
            ax.text(x, row - 0.36, "LOST", ha="center", va="bottom", fontsize=8,
                    fontweight="bold", color="C3")
        else:
            ax.add_patch(Rectangle((x - 0.45, row - 0.3), 0.9, 0.6, facecolor=colour,
                                   hatch=hatch, edgecolor="black", linewidth=0.6))
        if fontsize:
            ax.text(x, row, _step_label(s.action, s.value), ha="center", va="center",
                    fontsize=fontsize, bbox={"boxstyle": "round,pad=0.1", "facecolor": "white",
                                             "edgecolor": "none", "alpha": 0.75})
    for u in losses:
        if u.stale_read.index in position and u.by.index in position:
            start = (position[u.stale_read.index], lanes[u.stale_read.thread] + 0.3)
            end = (position[u.by.index], lanes[u.by.thread] + 0.3)
            ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=10,
                                         linestyle="--", color="C3", linewidth=1.2,
                                         connectionstyle="arc3,rad=0.35"))
    ax.set_xlim(-0.7, max(len(items), 1) - 0.3)
    ax.set_ylim(len(lanes) - 0.2, -0.7)
    ax.set_yticks(range(len(lanes)), [f"thread {name}" for name in lanes])
    ax.set_xticks(range(len(items)) if len(items) <= 40 else [])
    ax.set_xlabel("step, in the order the steps happened")
    ax.grid(axis="x", alpha=0.2)
    handles: list[Any] = [Patch(facecolor=c, hatch=h, edgecolor="black", label=a)
                          for a, (c, h) in styles.items()]
    handles.append(Patch(facecolor="C3", hatch="xx", edgecolor="black",
                         label="lost write (overwritten)"))
    from matplotlib.lines import Line2D

    handles.append(Line2D([], [], linestyle="--", color="C3", marker=">", markersize=5,
                          label="stale read → the write based on it"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0,
              fontsize=8)
    if title is None:
        title = (f"{len(losses)} update(s) lost: a write based on a stale read overwrote "
                 "another thread's write" if losses else
                 "No update lost: every read saw the latest write")
    ax.set_title(title)
    return ax


def contention(
    spans: Iterable[SpanLike] | HasSpans,
    *,
    ax: Axes | None = None,
    title: str | None = None,
) -> Axes:
    """Per worker: time spent holding a lock, waiting for one, and doing neither.

    Reads the "holding ..." and "waiting for ..." spans that
    :class:`course_lib.sync.TracedLock` records (any span whose name starts
    with "holding" or "waiting").  Each bar covers the whole trace, from the
    first span's start to the last span's end; the three parts differ in
    hatching and are labelled with their share when wide enough.
    """
    source: Any = spans
    items: list[SpanLike] = list(source.spans if hasattr(source, "spans") else source)
    order: dict[str, int] = {}
    for s in sorted(items, key=lambda s: (s.start, s.end)):
        order.setdefault(s.worker, len(order))
    ax = new_axes(ax, (9.0, max(2.2, 0.5 * len(order) + 1.5)))
    if title is not None or items:
        ax.set_title(title if title is not None else
                     "Holding vs waiting: time a worker waits is time it does nothing useful")
    if not items:
        ax.text(0.5, 0.5, "no spans recorded", transform=ax.transAxes, ha="center",
                va="center")
        ax.set_xlabel("time (ms)")
        return ax
    window = max(s.end for s in items) - min(s.start for s in items)
    scale, unit = time_unit(window if window > 0 else 1.0)
    # The same colours and hatches as timeline() gives TracedLock's spans ("waiting" comes first).
    parts = [("holding", "C1", "//"), ("waiting", "C0", ""), ("neither", "0.9", "..")]
    for worker, row in order.items():
        mine = [s for s in items if s.worker == worker]
        hold = sum(s.duration for s in mine if s.name.startswith("holding"))
        wait = sum(s.duration for s in mine if s.name.startswith("waiting"))
        rest = max(0.0, window - hold - wait)
        left = 0.0
        for (label, colour, hatch), value in zip(parts, (hold, wait, rest), strict=True):
            width = value * scale
            ax.barh(row, width, left=left, height=0.6, color=colour, hatch=hatch,
                    edgecolor="black", linewidth=0.5)
            share = value / window if window > 0 else 0.0
            if share >= 0.08:
                ax.text(left + width / 2, row, f"{label} {share:.0%}", ha="center", va="center",
                        fontsize=8, bbox={"boxstyle": "round,pad=0.15", "facecolor": "white",
                                          "edgecolor": "none", "alpha": 0.8})
            left += width
    from matplotlib.patches import Patch

    ax.legend(handles=[Patch(facecolor=c, hatch=h, edgecolor="black", label=label)
                       for label, c, h in parts],
              loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, fontsize=8)
    ax.set_yticks(range(len(order)), list(order))
    ax.set_ylim(len(order) - 0.5, -0.5)
    ax.set_xlabel(f"time ({unit}), whole trace = {format_seconds(window)}")
    ax.set_xlim(0, window * scale * 1.01 or 1.0)
    return ax


def wait_for_graph(
    snapshot: Any,
    *,
    ax: Axes | None = None,
    title: str | None = None,
    order: Sequence[str] | None = None,
) -> Axes:
    """Who holds which lock and who waits for which, as arrows around a circle.

    ``snapshot`` is a :class:`course_lib.sync.HoldsWaits` (``holds``,
    ``waits``, ``cycle`` and optionally ``locks``), for example
    ``dine(...).deadlock`` or ``LockMonitor.snapshot()``.  Threads are circles,
    locks are hatched squares; a solid arrow lock → thread means "holds", a
    dashed arrow thread → lock means "waits for".  Arrows on a cycle of waits
    (a deadlock) are drawn thicker.  By default locks and threads alternate
    around the circle in natural order (fork 0, philosopher 0, fork 1, ...).
    """
    import math

    from matplotlib.lines import Line2D
    from matplotlib.patches import Circle, FancyArrowPatch, Rectangle

    if snapshot is None or not (hasattr(snapshot, "holds") and hasattr(snapshot, "waits")):
        raise TypeError("snapshot must be a course_lib.sync.HoldsWaits (LockMonitor.snapshot(), or "
                        f"dine(...).deadlock when the dinner deadlocked), got {snapshot!r}")
    holds: dict[str, tuple[str, ...]] = dict(snapshot.holds)
    waits: dict[str, str] = dict(snapshot.waits)
    cycle = tuple(getattr(snapshot, "cycle", ()))
    threads = sorted(set(holds) | set(waits), key=natural_key)
    known = list(getattr(snapshot, "locks", ()) or ())
    used = {lock for held in holds.values() for lock in held} | set(waits.values())
    locks = known + sorted(used - set(known), key=natural_key)
    if order is None:
        nodes: list[str] = []
        for i in range(max(len(threads), len(locks))):
            if i < len(locks):
                nodes.append(locks[i])
            if i < len(threads):
                nodes.append(threads[i])
    else:
        nodes = list(order) + [n for n in locks + threads if n not in set(order)]
    ax = new_axes(ax, (6.0, 6.0))
    where: dict[str, tuple[float, float]] = {}
    for k, node in enumerate(nodes):
        angle = math.pi / 2 - 2 * math.pi * k / max(len(nodes), 1)
        where[node] = (math.cos(angle), math.sin(angle))
    size = min(0.12, 0.8 * math.sin(math.pi / max(len(nodes), 2)))
    lock_set = set(locks)
    for node, (x, y) in where.items():
        if node in lock_set:
            ax.add_patch(Rectangle((x - size, y - size), 2 * size, 2 * size, facecolor="0.85",
                                   hatch="..", edgecolor="black"))
        else:
            ax.add_patch(Circle((x, y), size, facecolor="white", edgecolor="black",
                                linewidth=1.5))
        ha = "left" if x > 0.25 else "right" if x < -0.25 else "center"
        va = "bottom" if y > 0.25 else "top" if y < -0.25 else "center"
        ax.text(x * (1 + size + 0.06), y * (1 + size + 0.06), node, ha=ha, va=va, fontsize=9)
    on_cycle = set(cycle)

    def arrow(a: str, b: str, dashed: bool, bold: bool) -> None:
        (x0, y0), (x1, y1) = where[a], where[b]
        length = math.hypot(x1 - x0, y1 - y0) or 1.0
        dx, dy = (x1 - x0) / length, (y1 - y0) / length
        gap = 1.25 * size
        ax.add_patch(FancyArrowPatch((x0 + gap * dx, y0 + gap * dy), (x1 - gap * dx, y1 - gap * dy),
                                     arrowstyle="-|>", mutation_scale=14,
                                     linestyle="--" if dashed else "-",
                                     linewidth=2.6 if bold else 1.3,
                                     color="C3" if dashed else "C0"))

    for thread, held in holds.items():
        for lock in held:
            if lock in where and thread in where:
                arrow(lock, thread, dashed=False, bold=thread in on_cycle)
    for thread, lock in waits.items():
        if lock in where and thread in where:
            arrow(thread, lock, dashed=True, bold=thread in on_cycle)
    ax.legend(handles=[Line2D([], [], color="C0", label="holds (lock → thread)"),
                       Line2D([], [], color="C3", linestyle="--",
                              label="waits for (thread → lock)"),
                       Line2D([], [], marker="o", linestyle="", markerfacecolor="white",
                              markeredgecolor="black", label="thread"),
                       Line2D([], [], marker="s", linestyle="", markerfacecolor="0.85",
                              markeredgecolor="black", label="lock")],
              loc="lower center", bbox_to_anchor=(0.5, -0.12), ncols=2, fontsize=8)
    ax.set_xlim(-1.6, 1.6)
    ax.set_ylim(-1.6, 1.6)
    ax.set_aspect("equal")
    ax.axis("off")
    if title is None:
        title = (f"Deadlock: {len(cycle)} threads each hold a lock and wait for the next one"
                 if cycle else "No cycle of waits: somebody can always go on")
    ax.set_title(title)
    return ax

