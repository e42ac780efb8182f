"""Draw a ``Trace`` as a sequence diagram (matplotlib), ``Trace.draw`` says how; its lanes:
client, request queues, workers, "unknown sender" (a reply from no worker seen, with no
``app_id``), callback queue; one arrow per message, one evenly spaced row per step."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .namespace import short_name

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from .trace import Call, Trace, Worker

UNKNOWN = "unknown sender"
_UNSEEN = 1e-6  # an unseen step of another process sits just after the request/before the reply
_BREAK = 0.7  # the height a break adds, in rows


@dataclass
class _Step:
    """One row of the diagram: an arrow, or a mark on one lane (ack, no reply, gone)."""

    time: float  # where the row sorts; for an unseen step, next to what was seen
    start: float
    end: float
    colour: Any
    label: str = ""
    dashed: bool = False  # in another process: this step was not seen, only inferred
    mark: str = ""  # "ack", "no reply", "gone": a mark on the lane ``start``


def _lanes(calls: list[Call], workers: list[str]) -> dict[str, float]:
    queues = dict.fromkeys(call.queue for call in calls if call.queue)
    unknown = any(call.worker is None and (call.replied is not None or call.received is not None)
                  and not call.in_process for call in calls)
    names = ["client", *queues, *workers, *([UNKNOWN] if unknown else []), "callback queue"]
    return {name: float(index) for index, name in enumerate(names)}


def _steps(calls: list[Call], workers: dict[str, Worker], lanes: dict[str, float],
           colours: Any) -> list[_Step]:
    client, callback = lanes["client"], lanes["callback queue"]
    steps: list[_Step] = []
    for call in calls:
        colour = colours((call.number - 1) % 10)
        tag = f"{call.correlation_id[:6]}: " if call.correlation_id else ""
        queue = lanes.get(call.queue, client)
        worker = lanes.get(call.worker or UNKNOWN, lanes.get(UNKNOWN, queue))
        if call.sent is not None:
            returned = "  (returned: no queue took it)" if call.returned else ""
            steps.append(_Step(call.sent, client, queue, colour,
                               f"{tag}fib({call.request}){returned}"))
        if call.in_process and call.delivered is not None:
            steps += [_Step(at, queue, lanes.get(who or UNKNOWN, worker), colour,
                            "redelivered" if again else "") for at, who, again in call.deliveries]
            steps += [_Step(at, lanes.get(who or UNKNOWN, worker), callback, colour, body)
                      for at, who, body in call.replies_sent]  # two: the request ran twice
            if call.acked is not None:
                steps.append(_Step(call.acked, worker, worker, colour, mark="ack"))
        elif call.received is not None and (call.sent is not None or call.replied is None):
            # a worker in another process took it after it was sent, replied before it arrived
            if call.sent is not None:
                steps.append(_Step(call.sent + _UNSEEN, queue, worker, colour,
                                   "(another process)", dashed=True))
            steps.append(_Step(call.received - _UNSEEN, worker, callback, colour,
                               call.reply or "", dashed=True))
        elif call.replied is not None:  # published here, answering no request seen here
            steps.append(_Step(call.replied, worker, callback, colour, call.reply or ""))
        if call.received is not None:
            reply = ("error: " if call.error else "") + (call.reply or "")
            unmatched = "  (matches no request in this trace)" if call.sent is None else ""
            steps.append(_Step(call.received, callback, client, colour, f"{tag}{reply}{unmatched}"))
            steps += [_Step(later, callback, client, colour, f"{tag}duplicate: discarded")
                      for later in call.arrivals[1:]]
        elif call.sent is not None and not call.returned:
            steps.append(_Step(call.sent, client, client, colour, mark="no reply"))
    for found in workers.values():
        if found.gone is not None and found.label in lanes:
            x = lanes[found.label]
            steps.append(_Step(found.gone, x, x, "black", found.note, mark="gone"))
    steps.sort(key=lambda step: (step.time, step.mark != "gone"))  # gone, then what follows
    return steps


def _legend(lanes: dict[str, float], workers: dict[str, Worker], calls: list[Call]) -> list[str]:
    lines: list[str] = []
    for found in [found for label, found in workers.items() if label in lanes]:
        where = "this process" if found.in_process else "another process"
        said = f"app_id {found.app_id}" if found.app_id else "no app_id"
        gone = f"; ✗ {found.note} at {found.gone * 1000:.1f} ms" if found.gone is not None else ""
        lines.append(f"{found.label}: {said} ({where}){gone}")
    if UNKNOWN in lanes:
        here = any(call.worker is None and call.replied is not None for call in calls)
        origin = "published in this process" if here else "from another process"
        lines.append(f"{UNKNOWN}: a reply with no app_id, to a request no worker here took "
                     f"({origin})")
    return lines


def _lifelines(ax: Axes, lanes: dict[str, float], top: float, bottom: float,
               breaks: list[tuple[float, float]], ends: dict[float, float]) -> None:
    """Each lane's vertical line, interrupted at every break, ended where its worker went."""
    cuts = [top] + [y for y, _ in breaks] + [bottom]
    for x in lanes.values():
        end = ends.get(x, bottom)
        for upper, lower in zip(cuts, cuts[1:], strict=False):
            low = lower - (0.18 if lower != bottom else 0)
            high = upper + (0.18 if upper != top else 0)
            if high < min(low, end):
                ax.plot([x, x], [high, min(low, end)], color="0.8", lw=1, zorder=0)
    for y, skipped in breaks:
        ax.axhline(y, color="0.6", lw=0.6, ls=(0, (1, 3)), zorder=0)
        for x in lanes.values():
            if ends.get(x, bottom) > y:
                for dy in (-0.16, 0.16):  # a broken-axis mark: two slanted strokes
                    ax.plot([x - 0.06, x + 0.06], [y + dy + 0.05, y + dy - 0.05],
                            color="0.5", lw=1, zorder=1)
        ax.text(-0.55, y, f"⋯ {skipped * 1000:.1f} ms ⋯", ha="right", va="center",
                fontsize=7, style="italic", color="0.3")


def draw(trace: Trace, title: str | None, *, max_calls: int, gap: float) -> Figure:
    import matplotlib.pyplot as plt  # imported here: recording needs no matplotlib

    if gap <= 0:
        raise ValueError(f"gap must be a positive number of seconds, not {gap!r}")
    all_calls, workers, _ = trace._read()
    calls = all_calls[:max_calls]
    shown = {call.worker for call in calls} | {w for w, f in workers.items() if f.gone}
    lanes = _lanes(calls, [label for label in workers if label in shown])
    steps = _steps(calls, workers, lanes, plt.get_cmap("tab10"))
    ys: list[float] = []  # one row per step
    breaks: list[tuple[float, float]] = []  # (y, seconds skipped) where more than gap passed
    for before, step in zip([None, *steps], steps, strict=False):
        y = 0.0 if before is None else ys[-1] + 1.0
        if before is not None and step.time - before.time > gap:
            breaks.append((y + _BREAK / 2 - 0.5, step.time - before.time))
            y += _BREAK
        ys.append(y)
    legend = _legend(lanes, workers, calls)
    bottom = (ys[-1] if ys else 0.0) + 0.5
    height = 1.3 + 0.3 * (bottom + 0.5) + 0.22 * len(legend)
    fig, ax = plt.subplots(figsize=(1.9 * len(lanes) + 1.6, height))
    ends = {step.start: y for y, step in zip(ys, steps, strict=True) if step.mark == "gone"}
    _lifelines(ax, lanes, -0.5, bottom, breaks, ends)
    for name, x in lanes.items():
        ax.text(x, -0.8, short_name(name), ha="center", va="bottom", fontsize=9, fontweight="bold")
    for y, step in zip(ys, steps, strict=True):
        if step.mark == "gone":
            ax.plot([step.start], [y], marker="x", color="black", markersize=11, mew=2.2)
            ax.text(step.start + 0.08, y, step.label, fontsize=8, va="center")
        elif step.mark:  # a mark on one lane: an ack, or a call with no reply
            text = "✓ ack" if step.mark == "ack" else "✗ no reply"
            ax.text(step.start + 0.05, y, text, color=step.colour, fontsize=8, va="center")
        else:
            ax.annotate("", xy=(step.end, y), xytext=(step.start, y),
                        arrowprops={"arrowstyle": "-|>", "color": step.colour, "lw": 1.3,
                                    "linestyle": "--" if step.dashed else "-"})
            ax.text((step.start + step.end) / 2, y - 0.12, step.label, fontsize=7,
                    color=step.colour, ha="center", va="bottom")
    ticks = ["unseen" if step.dashed else f"{step.time * 1000:.1f} ms" for step in steps]
    ax.set_yticks(ys, ticks, fontsize=7)
    for index, line in enumerate(legend):
        ax.text(-0.5, bottom + 0.35 + 0.75 * index, line, fontsize=8, va="top", ha="left")
    ax.set(xlim=(-0.5, len(lanes) - 0.5), ylim=(bottom + 0.35 + 0.75 * len(legend), -1.2))
    ax.set_xticks([])
    ax.tick_params(axis="y", length=0)
    ax.spines[:].set_visible(False)
    more = f" (first {len(calls)} of {len(all_calls)} calls)" if len(all_calls) > len(calls) else ""
    ax.set_title((title or "messages in this cell") + more, fontsize=10)
    fig.tight_layout()
    plt.close(fig)  # returned, not shown twice: Jupyter displays the returned Figure
    return fig
