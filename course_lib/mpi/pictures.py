"""Chapter 5's pictures: messages between ranks over time, and where a collective sends data.

Built on :mod:`course_lib.figures`; matplotlib is imported inside each function.
Neither function changes global matplotlib state: each draws on the ``ax`` it is
given, or on a new figure, and returns the Axes. Colour is never the only carrier
of meaning: bars are hatched too, and the legend names everything.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from course_lib.figures import HATCHES, label_bars, new_axes, time_unit
from course_lib.mpi.events import first_start, last_moment, match_messages

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["collective_diagram", "message_diagram"]

_MAX_LABELLED_SPANS = 40

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

    events = list(trace.events) if hasattr(trace, "events") else list(trace)
    stopped = getattr(trace, "stopped", None)  # when a run was killed: the axis reaches it
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
    t0 = first_start(events)
    last = last_moment(events, stopped)
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

    messages, lost = match_messages(events)
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
