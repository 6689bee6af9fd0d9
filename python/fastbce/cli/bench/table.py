"""The printed table and the plot of ``fastbce bench``."""

from __future__ import annotations

import math
from typing import Any

from ..output import aligned
from .implementations import IMPLEMENTATIONS
from .timing import Settings, machine_line
from .variants import DISTRIBUTIONS


def format_n(n: int) -> str:
    exponent = round(math.log10(n)) if n > 0 else 0
    return f"1e{exponent}" if 10**exponent == n else str(n)


def format_table(settings: Settings, rows: list[dict[str, Any]]) -> str:
    header = ("implementation", "N", "ms", "ns/elem", "GB/s", "speed-up", "x floor", "rel. error")
    lines = [machine_line(), ""]
    for dist, v in ((d, v) for d in settings.dists for v in settings.variants):
        group = [r for r in rows if r["variant"] == v.name and r["dist"] == dist]
        if not group:
            continue
        table: list[tuple[str, ...]] = []
        for r in group:
            if "error" in r:
                table.append((r["implementation"], format_n(r["n"]), "failed: " + r["error"]))
                continue
            speedup = (
                "-" if r["peer"] == "fastbce" or r["speedup"] is None else f"{r['speedup']:.2f}"
            )
            floor = "-" if r["floor_ratio"] is None else f"{r['floor_ratio']:.2f}"
            error = "-" if r["rel_error"] is None else f"{r['rel_error']:.1e}"
            if not r["ok"]:
                error += " !"
            table.append(
                (
                    r["implementation"],
                    format_n(r["n"]),
                    f"{r['median_ms']:.3g}",
                    f"{r['ns_per_element']:.3g}",
                    f"{r['gb_per_s']:.3g}",
                    speedup,
                    floor,
                    error,
                )
            )
        widths = [  # (a failed row's message runs on past the columns: not counted)
            max(len(str(c[i])) for c in [header, *table] if len(c) > i and (len(c) > 3 or i < 2))
            for i in range(len(header))
        ]
        lines.append(f"{v.name}: {v.description}; {DISTRIBUTIONS[dist].description}")
        lines.append(aligned(header, widths))
        previous_n = None
        for cells in table:
            if previous_n is not None and cells[1] != previous_n:
                lines.append("")
            previous_n = cells[1]
            if len(cells) == 3:
                lines.append(
                    f"{cells[0].ljust(widths[0])}  {cells[1].rjust(widths[1])}  {cells[2]}"
                )
                continue
            lines.append(aligned(cells, widths))
        lines.append("")
    notes = [
        "ms: median of the repeats; ns/elem: ns per element; GB/s: input bytes read per second;",
        "speed-up: this row's time / fastbce's (how many times faster fastbce is); x floor: time /",
        "the read floor's; rel. error: |value - float64 reference| / reference ('!': too large).",
    ]
    lines.extend(notes)
    if settings.skipped:
        lines.append("")
        for name, why in settings.skipped.items():
            lines.append(f"skipped {name}: {why}")
    return "\n".join(lines)


def plot(settings: Settings, rows: list[dict[str, Any]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        (d, v)
        for d in settings.dists
        for v in settings.variants
        if any(r["variant"] == v.name and r["dist"] == d for r in rows)
    ]
    columns = min(3, len(panels)) or 1
    lines = -(-len(panels) // columns) or 1
    fig, axes = plt.subplots(lines, columns, figsize=(5 * columns, 4 * lines), squeeze=False)
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    for ax, (dist, v) in zip(axes.flat, panels, strict=False):
        for color, name in enumerate(IMPLEMENTATIONS):
            points = sorted(
                (r["n"], r["gb_per_s"])
                for r in rows
                if r["variant"] == v.name
                and r["dist"] == dist
                and r["implementation"] == name
                and "gb_per_s" in r
            )
            if not points:
                continue
            xs, ys = zip(*points, strict=True)
            style: dict[str, Any] = {"color": f"C{color}"}  # the same colour in every panel
            if name == "read floor":
                style = {"linestyle": "--", "color": "black"}
            elif name == "fastbce":
                style["linewidth"] = 2.5
            ax.plot(xs, ys, marker="o", label=name, **style)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(f"{v.name} ({dist}): {v.description}", fontsize=9)
        ax.set_xlabel("elements N")
        ax.set_ylabel("GB/s of input read")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("fastbce bench: throughput (higher is better)")
    fig.tight_layout()
    from ...io.writers import whole_file

    with whole_file(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
