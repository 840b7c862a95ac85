"""The bench report as a plain-text table: one column per detector, best run first with
the spread of repeats, then ratios, memory, where the CPU went, and the targets."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from mmlw.bench.report import BenchReport

__all__ = ["render_report"]

T = TypeVar("T")


def _num(value: float | None, fmt: str = ",.0f") -> str:
    return "-" if value is None else format(value, fmt)


def _best_and_spread(
    runs: Sequence[T], value: Callable[[T], float], *, high: bool = True, fmt: str = ",.0f"
) -> str:
    if not runs:
        return "-"
    values = [value(r) for r in runs]
    best = max(values) if high else min(values)
    text = format(best, fmt)
    if len(values) > 1:
        text += f" ({format(min(values), fmt)}..{format(max(values), fmt)})"
    return text


def _rows(report: BenchReport) -> list[tuple[str, list[str]]]:
    detectors: list[str] = list(report.scenario["detectors"])
    batch = int(report.scenario["batch_size"])
    latency = report.scenario["latency"]
    rows: list[tuple[str, list[str]]] = []

    def row(label: str, cell: Callable[[str], str]) -> None:
        rows.append((label, [cell(d) for d in detectors]))

    row(
        f"e2e readings/s, {batch}/msg, zero loss",
        lambda d: _best_and_spread(
            [r for r in report.throughput.get(d, []) if r.lossless], lambda r: r.readings_per_s
        ),
    )
    row(
        "  lossless runs / runs",
        lambda d: (
            f"{sum(r.lossless for r in report.throughput[d])}/{len(report.throughput[d])}"
            if report.throughput.get(d)
            else "-"
        ),
    )
    for size in latency["batch_sizes"]:
        for q in ("p50", "p95", "p99"):
            row(
                f"latency {q} ms @{latency['rate']:,.0f}/s, {size}/msg",
                lambda d, q=q, size=size: _best_and_spread(  # type: ignore[misc]
                    [r for r in report.latency.get(d, []) if r.batch_size == size],
                    lambda r: r.percentiles_ms[q],
                    high=False,
                ),
            )
        row(
            f"  scored readings/s in that run ({size}/msg)",
            lambda d, size=size: _best_and_spread(  # type: ignore[misc]
                [r for r in report.latency.get(d, []) if r.batch_size == size],
                lambda r: r.scored_rate,
            ),
        )
    row(
        f"mlflow models serve readings/s, {batch}/req, best of its worker counts",
        lambda d: _best_and_spread(report.mlflow_serve.get(d, []), lambda r: r.readings_per_s),
    )
    row(
        f"plain pika consumer readings/s, {batch}/msg",
        lambda d: _best_and_spread(report.plain_consumer.get(d, []), lambda r: r.readings_per_s),
    )
    sizes = sorted({r.batch_size for runs in report.scoring_limits.values() for r in runs})
    for size in sizes:
        row(
            f"limit: raw scoring rows/s @{size} (1 thread)",
            lambda d, size=size: _num(report.scoring_limit(d, size)),  # type: ignore[misc]
        )
    rabbit = _best_and_spread(report.rabbitmq_limit, lambda r: r.readings_per_s)
    row(f"limit: RabbitMQ publish+consume, {batch}/msg", lambda d: rabbit)
    ratios = report.ratios()
    for key, label in (
        ("vs_mlflow_serve", "ratio ours / mlflow serve"),
        ("vs_plain_consumer", "ratio ours / plain consumer"),
        ("vs_raw_scoring", f"ratio ours / raw scoring @{batch}"),
        ("vs_raw_rabbitmq", "ratio ours / raw RabbitMQ"),
    ):
        row(label, lambda d, key=key: _num(ratios.get(d, {}).get(key), ".2f"))  # type: ignore[misc]
    row(
        "train 10k: first call s",
        lambda d: _num(report.training[d].first_s, ".2f") if d in report.training else "-",
    )
    row(
        "train 10k: warm median s (fit s)",
        lambda d: (
            f"{report.training[d].warm_median_s:.2f} ({report.training[d].fit_s:.3f})"
            if d in report.training
            else "-"
        ),
    )
    return rows


def _grid(header: list[str], rows: list[tuple[str, list[str]]]) -> list[str]:
    rows = [r for r in rows if any(cell != "-" for cell in r[1])]  # phases not run
    widths = [max(len(header[0]), *(len(r[0]) for r in rows))]
    for i in range(1, len(header)):
        widths.append(max(len(header[i]), *(len(r[1][i - 1]) for r in rows)))
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    for label, cells in rows:
        parts = [label.ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(cells, widths[1:], strict=True)
        ]
        lines.append("  ".join(parts))
    return lines


def _scaleout_lines(report: BenchReport) -> list[str]:
    """Throughput by scorer processes, and its ratio to one scorer."""
    best = {
        n: max(r.readings_per_s for r in runs if r.lossless)
        for n, runs in sorted(report.scaleout.items())
        if any(r.lossless for r in runs)
    }
    if not best:
        return []
    one = best.get(1)
    detector = report.scenario["detectors"][0]
    lines = ["", f"scale-out, {detector} e2e readings/s by scorer processes (x one scorer):"]
    for n, value in best.items():
        ratio = f" (x{value / one:.2f})" if one else ""
        lines.append(f"  {n} scorer(s): {value:,.0f}{ratio}")
    return lines


def render_report(report: BenchReport) -> str:
    env = report.environment_before
    after = report.environment_after or {}
    lines = [
        f"MMLW bench - scenario {report.scenario['name']!r}, store {report.store}, "
        f"{env.get('cpus')} CPUs, load average {env.get('load_average')} before, "
        f"{after.get('load_average')} after",
        "best run (spread of repeats in brackets)",
        "",
    ]
    lines += _grid(["measurement", *report.scenario["detectors"]], _rows(report))
    if report.peak_rss_mb:
        lines += ["", "peak RSS MB (largest process / whole process tree):"]
        for role, peak in sorted(report.peak_rss_mb.items()):
            lines.append(f"  {role:<14} {peak['process_mb']:>7.0f} / {peak['tree_mb']:.0f}")
    for detector, runs in report.throughput.items():
        if runs:
            best = max(runs, key=lambda r: r.readings_per_s)
            per_k = 1e6 / best.readings  # CPU seconds -> ms per 1000 readings
            cpu = ", ".join(f"{k} {v:.1f} s ({v * per_k:.1f})" for k, v in best.cpu_s.items())
            lines.append(
                f"CPU during {detector} throughput ({best.seconds:.1f} s wall x "
                f"{report.environment_before.get('cpus')} CPUs; ms per 1000 readings): {cpu}"
            )
    if report.storage:
        tables = ", ".join(
            f"{name} {size / 2**20:,.1f} MB"
            for name, size in report.storage.items()
            if name != "readings"
        )
        lines += [
            "",
            f"storage: {report.storage_kb_per_1000():.1f} KB per 1,000 readings with their "
            f"scores ({report.storage['readings']:,} readings; {tables})",
        ]
    lines += _scaleout_lines(report)
    lines += ["", "targets:"]
    for target in report.targets():
        mark = {True: "MET", False: "NOT MET", None: "-"}[target.met]
        lines.append(f"  [{mark:^7}] {target.name}: {target.reached} (goal {target.goal})")
    lines += [f"note: {note}" for note in report.notes]
    return "\n".join(lines)
