"""Pictures for the course: timelines, speed-up plots, the laws explorer.

The generic charts live in :mod:`course_lib.charts` and are re-exported here,
so ``from course_lib.viz import timeline`` keeps working; the chapter pictures
below move to their chapters' ``pictures`` modules.

matplotlib is imported inside each function, so ``import course_lib.viz`` stays
cheap.  No function changes global matplotlib state (style, rcParams); each
draws on the ``ax`` it is given, or on a new figure from ``plt.subplots`` when
``ax`` is None, and returns the Axes.  Colour is never the only carrier of
meaning: lines differ in style and markers, bars in hatching, and legends or
text labels name everything.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from ._render import format_seconds
from .charts import amdahl_explorer, cpu_wall_bars, laws_plot, speedup_plot, timeline
from .figures import HATCHES, label_bars, new_axes, time_unit

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from .trace import Span, Tracer

__all__ = ["timeline", "speedup_plot", "laws_plot", "amdahl_explorer", "cpu_wall_bars"]

_MAX_LABELLED_SPANS = 40

# --------------------------------------------------------------------------- synchronisation
# Pictures for chapter 3: the steps of a race, lock contention, who holds and who waits.


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

    from .sync import find_lost_updates

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
    spans: Iterable[Span] | Tracer,
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
    items: list[Span] = list(source.spans if hasattr(source, "spans") else source)
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

    from .sync import natural_key

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


__all__ += ["interleaving", "contention", "wait_for_graph"]


# --------------------------------------------------------------------------- MPI (chapter 5)

_MPI_KINDS: dict[str, tuple[str, str, str]] = {  # kind -> (colour, hatch, legend label)
    "send": ("C0", "//", "blocking send"),
    "sendrecv": ("C4", "\\\\", "sendrecv (send and receive together)"),
    "recv": ("C1", "..", "blocking receive"),
    "wait": ("C7", "xx", "wait for a request"),
    "collective": ("C2", "++", "collective"),
}


def _format_bytes(n: int | None) -> str:
    if n is None:
        return "?"
    if n >= 10**6:
        return f"{n / 10**6:.3g} MB"
    if n >= 10**3:
        return f"{n / 10**3:.3g} kB"
    return f"{n} B"


def message_diagram(trace: Any, *, ax: Axes | None = None, title: str | None = None) -> Axes:
    """Ranks as lanes, time across, an arrow per message (from its send to its receipt).

    ``trace`` is a :class:`course_lib.mpi.MPITrace` (``run.trace``) or a list of
    its events. Bars show the calls each rank was inside (sends, receives,
    waits, collectives: colour *and* hatching, named in the legend); triangles
    mark non-blocking posts (▲ isend, ▼ irecv). A call that never returned
    (the program was stopped inside it) is drawn to the end with a red
    outline; a message nobody received is a dashed red stub.
    """
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    from .mpi import MPITrace

    if not hasattr(trace, "events"):
        trace = MPITrace(list(trace))
    events = list(trace.events)
    ranks = sorted({e.rank for e in events})
    ax = new_axes(ax, (10.0, max(2.4, 0.8 * len(ranks) + 1.6)))
    ax.set_title(title if title is not None else
                 "Messages between ranks (arrow: from the send to the receipt)")
    ax.set_ylabel("MPI rank")
    if not events:
        ax.set_xlabel("time (ms)")
        ax.text(0.5, 0.5, "no MPI calls recorded (did the program use TracedComm?)",
                transform=ax.transAxes, ha="center", va="center")
        return ax
    row = {r: i for i, r in enumerate(ranks)}
    t0 = trace.t0
    last = trace.t_end
    stuck = [e for e in events if e.end is None]
    total = max(last - t0, 1e-9)
    if stuck:
        total *= 1.08  # room to show that those calls went on
    scale, unit = time_unit(total)
    min_width = total * scale * 0.004

    used: dict[str, bool] = {}
    labels: list[tuple[float, float, int, str]] = []
    for e in events:
        if e.kind in ("isend", "irecv"):
            marker = "^" if e.kind == "isend" else "v"
            colour = "C0" if e.kind == "isend" else "C1"
            ax.plot([(e.start - t0) * scale], [row[e.rank] - 0.32], marker=marker, color=colour,
                    markeredgecolor="black", markersize=7, linestyle="none", zorder=4)
            used["post"] = True
            continue
        colour, hatch, _ = _MPI_KINDS.get(e.kind, ("C5", "", e.kind))
        end = e.end if e.end is not None else t0 + total
        left, width = (e.start - t0) * scale, max((end - e.start) * scale, min_width)
        ax.broken_barh([(left, width)], (row[e.rank] - 0.22, 0.44), facecolors=colour,
                       edgecolor="red" if e.end is None else "black",
                       linewidth=2.0 if e.end is None else 0.5, hatch=hatch, zorder=2)
        used[e.kind] = True
        if e.end is None:
            ax.text(left + width, row[e.rank] + 0.3, f"{e.op} never returned", ha="right",
                    va="top", fontsize=8, color="red")
        elif e.kind == "collective":
            labels.append((left, width, row[e.rank], e.op))

    messages = trace.messages
    for m in messages:
        if m.source not in row or m.dest not in row:
            continue
        y0, y1 = float(row[m.source]), float(row[m.dest])
        x0, x1 = (m.sent - t0) * scale, (m.received - t0) * scale
        if y0 == y1:
            y0, y1 = y0 - 0.2, y1 + 0.2
        ax.annotate("", xy=(x1, y1), xytext=(x0, y0), zorder=5,
                    arrowprops={"arrowstyle": "-|>", "color": "black", "lw": 1.0,
                                "shrinkA": 0, "shrinkB": 0})
        if len(messages) <= 16:
            ax.text((x0 + x1) / 2, (y0 + y1) / 2, _format_bytes(m.nbytes), fontsize=7,
                    ha="center", va="center", zorder=6,
                    bbox={"boxstyle": "round,pad=0.1", "facecolor": "white",
                          "edgecolor": "none", "alpha": 0.8})
    lost = trace.unmatched_sends
    for e in lost:
        if e.dest not in row:
            continue
        x0, y0 = (e.start - t0) * scale, float(row[e.rank])
        y1 = y0 + 0.45 * (1 if row[e.dest] > y0 else -1)
        ax.annotate("", xy=(x0 + 0.03 * total * scale, y1), xytext=(x0, y0), zorder=5,
                    arrowprops={"arrowstyle": "-|>", "color": "red", "lw": 1.2,
                                "linestyle": "--"})
    if len(events) <= _MAX_LABELLED_SPANS:
        ax.set_xlim(0.0, total * scale * 1.02)
        label_bars(ax, labels)

    ax.set_yticks(range(len(ranks)), [f"rank {r}" for r in ranks])
    ax.set_ylim(len(ranks) - 0.5, -0.5)
    ax.set_xlim(0.0, total * scale * 1.02)
    ax.set_xlabel(f"time since the first call ({unit})")
    ax.grid(axis="x", alpha=0.3)
    handles: list[Any] = [Patch(facecolor=c, edgecolor="black", hatch=h, label=label)
                          for kind, (c, h, label) in _MPI_KINDS.items() if used.get(kind)]
    if used.get("post"):
        handles.append(Line2D([], [], marker="^", color="C0", markeredgecolor="black",
                              linestyle="none", label="isend ▲ / irecv ▼ posted (returns at once)"))
    if messages:
        handles.append(Line2D([], [], color="black", marker=">", label="message: sent → received"))
    if lost:
        handles.append(Line2D([], [], color="red", linestyle="--", label="sent, never received"))
    if stuck:
        handles.append(Patch(facecolor="white", edgecolor="red", linewidth=2,
                             label="call that never returned"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0,
              fontsize=8)
    return ax


_COLLECTIVE_TEXT = {
    "bcast": "the root's value is copied to every rank",
    "scatter": "the root's list is cut into pieces: piece i goes to rank i",
    "gather": "every rank's value is collected, in rank order, on the root",
    "allgather": "every rank's value is collected on every rank",
    "reduce": "the values are combined (here: summed) on the root only",
    "allreduce": "the values are combined (here: summed) on every rank",
    "alltoall": "rank i's piece j goes to rank j, which keeps it in slot i",
}


def _collective_blocks(op: str, size: int, root: int) -> tuple[list[list[tuple[str, int]]],
                                                                list[list[tuple[str, int]]]]:
    """What each rank holds before and after ``op``: per rank a list of (label, origin rank).

    Origin -1 marks a combined value (a reduction).
    """
    ranks = range(size)
    own = [[(f"x{r}", r)] for r in ranks]
    everything = [(f"x{r}", r) for r in ranks]
    total = [("x0+…+x" + str(size - 1) if size > 1 else "x0", -1)]
    if op == "bcast":
        before = [[("x", root)] if r == root else [] for r in ranks]
        return before, [[("x", root)] for _ in ranks]
    if op == "scatter":
        before = [list(everything) if r == root else [] for r in ranks]
        return before, [[(f"x{r}", root)] for r in ranks]
    if op == "gather":
        return own, [list(everything) if r == root else [] for r in ranks]
    if op == "allgather":
        return own, [list(everything) for _ in ranks]
    if op == "reduce":
        return own, [list(total) if r == root else [] for r in ranks]
    if op == "allreduce":
        return own, [list(total) for _ in ranks]
    if op == "alltoall":
        before = [[(f"{r}→{j}", r) for j in ranks] for r in ranks]
        return before, [[(f"{i}→{r}", i) for i in ranks] for r in ranks]
    raise ValueError(f"unknown collective {op!r}; choose one of {', '.join(_COLLECTIVE_TEXT)}")


def collective_diagram(op: str, size: int = 4, *, root: int = 0, ax: Axes | None = None) -> Axes:
    """Where the data goes in one collective: what each rank holds before and after.

    ``op`` is one of bcast, scatter, gather, allgather, reduce, allreduce,
    alltoall. Each box is labelled with its value and coloured (and hatched)
    by the rank it came from; a summed value is grey.
    """
    from matplotlib.patches import FancyArrowPatch, Rectangle

    name = op.strip().lower()
    if name not in _COLLECTIVE_TEXT:
        raise ValueError(f"unknown collective {op!r}; choose one of {', '.join(_COLLECTIVE_TEXT)}")
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= 8:
        raise ValueError(f"size must be a whole number from 1 to 8, got {size!r}")
    if not 0 <= root < size:
        raise ValueError(f"root must be a rank from 0 to {size - 1}, got {root!r}")
    before, after = _collective_blocks(name, size, root)
    ax = new_axes(ax, (8.0, 0.55 * size + 1.4))
    gap = 2.2
    right = size + gap

    def draw(panel: list[list[tuple[str, int]]], x0: float) -> None:
        for r, blocks in enumerate(panel):
            ax.add_patch(Rectangle((x0, r - 0.4), size, 0.8, facecolor="none",
                                   edgecolor="grey", linestyle=":", linewidth=0.8))
            width = size if len(blocks) == 1 and blocks[0][1] == -1 else 1.0
            for slot, (label, origin) in enumerate(blocks):
                colour = "lightgrey" if origin < 0 else f"C{origin % 10}"
                hatch = "" if origin < 0 else HATCHES[origin % len(HATCHES)]
                ax.add_patch(Rectangle((x0 + slot * width, r - 0.35), width, 0.7,
                                       facecolor=colour, edgecolor="black", hatch=hatch,
                                       alpha=0.85, linewidth=0.8))
                ax.text(x0 + slot * width + width / 2, r, label, ha="center", va="center",
                        fontsize=8, bbox={"boxstyle": "round,pad=0.12", "facecolor": "white",
                                          "edgecolor": "none", "alpha": 0.85})

    draw(before, 0.0)
    draw(after, right)
    ax.add_patch(FancyArrowPatch((size + 0.25, (size - 1) / 2), (right - 0.25, (size - 1) / 2),
                                 arrowstyle="-|>", mutation_scale=18, color="black"))
    ax.text(size + gap / 2, (size - 1) / 2 - 0.5, f"comm.{name}", ha="center", va="bottom",
            fontsize=9, family="monospace")
    ax.text(size / 2, -0.75, "before", ha="center", va="bottom", fontsize=9)
    ax.text(right + size / 2, -0.75, "after", ha="center", va="bottom", fontsize=9)
    ax.set_xlim(-0.2, right + size + 0.2)
    ax.set_ylim(size - 0.4, -1.35)
    ax.set_yticks(range(size), [f"rank {r}" + (" (root)" if r == root and name in
                                               ("bcast", "scatter", "gather", "reduce") else "")
                                for r in range(size)])
    ax.set_xticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_title(f"{name}: {_COLLECTIVE_TEXT[name]}", fontsize=10)
    return ax


__all__ += ["message_diagram", "collective_diagram"]
