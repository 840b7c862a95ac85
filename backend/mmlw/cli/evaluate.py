"""``mmlw evaluate``: benchmark detectors on a labelled dataset, by the SKAB protocol
(``--mode batch``) or by replaying what users are served (``--mode stream``)."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

import click

from mmlw.cli.core import (
    main,
    one_line_errors,
    parse_params,
    path_option,
    settings_of,
)

__all__ = ["evaluate"]

_STREAM_ONLY = ("batch_size",)
_BATCH_ONLY = (
    "recipes",
    "threshold_quantile",
    "threshold_factor",
    "smoothing",
    "smoothing_window",
    "smoothing_k",
    "hold",
    "cp_window",
    "cp_k",
    "cp_rolling_max",
    "cp_edges",
    "experiment",
)


@main.command()
@click.option(
    "--mode",
    type=click.Choice(["batch", "stream"]),
    default="batch",
    show_default=True,
    help="batch: the SKAB protocol; stream: replay each file through the serving path",
)
@path_option("--dataset", "dataset_path", "folder in SKAB or NAB layout")
@click.option(
    "--detector",
    "detectors",
    multiple=True,
    help="catalog name, repeatable (batch default: all, unless --recipe is given; stream "
    "default: the product's default detector; 'all': every catalog detector)",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="stream mode: readings per served batch",
)
@click.option("--recipe", "recipes", multiple=True, help="named recipe, e.g. skab_isolation_forest")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE", help="detector parameter")
@click.option("--threshold-quantile", type=float, default=0.99, show_default=True)
@click.option(
    "--threshold-factor",
    type=float,
    default=1.0,
    show_default=True,
    help="threshold = quantile of training scores x this factor",
)
@click.option(
    "--smoothing",
    type=click.Choice(["none", "rolling_median", "k_of_n"]),
    default="none",
    show_default=True,
    help="alarm smoothing over --smoothing-window rows",
)
@click.option("--smoothing-window", type=int, default=3, show_default=True)
@click.option("--smoothing-k", type=int, default=2, show_default=True, help="k for k_of_n")
@click.option("--hold", type=int, default=0, show_default=True, help="alarms keep firing N rows")
@click.option(
    "--cp-window",
    type=int,
    default=0,
    show_default=True,
    help="changepoints from --cp-k of the last N raw flags (0 = from the alarms)",
)
@click.option("--cp-k", type=int, default=1, show_default=True)
@click.option("--cp-rolling-max", type=int, default=0, show_default=True, help="0 = none")
@click.option(
    "--cp-edges", type=click.Choice(["rising", "both"]), default="rising", show_default=True
)
@click.option("--out", type=click.Path(path_type=Path), default=None, help="output folder")
@click.option("--experiment", default="mmlw-evaluation", show_default=True)
@click.option("--no-mlflow", is_flag=True, help="do not log runs to MLflow")
@click.pass_context
@one_line_errors
def evaluate(
    ctx: click.Context,
    mode: str,
    dataset_path: Path,
    detectors: tuple[str, ...],
    batch_size: int,
    recipes: tuple[str, ...],
    params: tuple[str, ...],
    threshold_quantile: float,
    threshold_factor: float,
    smoothing: str,
    smoothing_window: int,
    smoothing_k: int,
    hold: int,
    cp_window: int,
    cp_k: int,
    cp_rolling_max: int,
    cp_edges: str,
    out: Path | None,
    experiment: str,
    no_mlflow: bool,
) -> None:
    """Benchmark detectors: the SKAB protocol (--mode batch) or a replay of what users
    are served (--mode stream); write predictions/detections, metrics and a report.

    Batch mode, per file: fit a fresh detector on the first 400 rows, threshold =
    quantile of its training scores, score the rest. Recipes (--recipe) keep their own
    settings.

    Stream mode: each file is replayed in time order. A model is fitted on its learning
    period as `mmlw train` does (NAB layout: NAB's probation, 15 % of the file capped at
    750 rows; SKAB layout: 400 rows; the models' threshold quantile); the rest is scored
    by the serving scorer in --batch-size batches, and after each batch the alert rules
    of kind `scores` (the product's rules file) are evaluated at the batch's last
    timestamp. A detection is an alert onset (a rule starts firing). Writes
    OUT/detections/<data file path> (timestamp,anomaly_score: 1 at an onset, else 0) and
    OUT/summary.json, with NAB scores (NAB layout) or F1/FAR/MAR and the NAB changepoint
    score of the onsets and all-clears (SKAB layout). With several detectors (or
    --detector all) each writes OUT/<detector>/detections/... and OUT/summary.json covers
    them all. A file a detector fails on is reported and written as all zeros. Nothing is
    logged to MLflow.
    """
    if mode == "stream":
        _reject_options(ctx, _BATCH_ONLY, "--mode stream")
        _evaluate_stream(ctx, dataset_path, detectors, params, batch_size, out)
        return
    _reject_options(ctx, _STREAM_ONLY, "--mode batch")
    from mmlw.evaluation.datasets import load_dataset
    from mmlw.evaluation.protocol import ProtocolConfig
    from mmlw.evaluation.report import metrics_markdown
    from mmlw.evaluation.runner import log_runs, plan_runs, run_evaluation

    settings = settings_of(ctx)
    if not 0.5 < threshold_quantile < 1.0:
        raise click.ClickException("--threshold-quantile: must be in (0.5, 1)")
    if threshold_factor <= 0:
        raise click.ClickException("--threshold-factor: must be positive")
    if min(hold, cp_window, cp_rolling_max) < 0 or smoothing_k < 1 or cp_k < 1:
        raise click.ClickException(
            "--hold, --cp-window, --cp-rolling-max, --smoothing-k, --cp-k: "
            "must not be negative (k at least 1)"
        )
    config = ProtocolConfig(
        threshold_rule="quantile" if threshold_factor == 1.0 else "quantile_multiple",
        threshold_quantile=threshold_quantile,
        threshold_factor=threshold_factor,
        smoothing=smoothing,  # type: ignore[arg-type]
        smoothing_window=smoothing_window,
        smoothing_k=smoothing_k,
        smoothing_hold=hold,
        cp_k=cp_k,
        cp_window=cp_window,
        cp_rolling_max=cp_rolling_max,
        cp_edges=cp_edges,  # type: ignore[arg-type]
    )
    runs = plan_runs(detectors, recipes, parse_params(params), config)
    dataset = load_dataset(dataset_path)
    if out is None:
        out = settings.data_dir / "evaluations" / datetime.now().strftime("%Y%m%d-%H%M%S")
    out = out.expanduser().resolve()
    with click.progressbar(
        length=len(runs) * len(dataset.files), label="evaluating", file=sys.stderr
    ) as bar:
        results, table = run_evaluation(dataset, runs, out, on_file=lambda: bar.update(1))
    click.echo(metrics_markdown(table), nl=False)
    click.echo(f"outputs in {out}")
    if not no_mlflow:
        settings.ensure_data_dir()
        ids = log_runs(
            settings.resolved_tracking_uri,
            experiment,
            results,
            dataset,
            out,
            artifact_root=settings.artifact_root,
        )
        click.echo(
            f"logged MLflow run {ids[0]} with {len(ids) - 1} detector runs "
            f"to experiment {experiment!r}"
        )


def _reject_options(ctx: click.Context, names: tuple[str, ...], mode: str) -> None:
    """UsageError for options given on the command line that ``mode`` does not use."""
    from click.core import ParameterSource

    given = [
        param.opts[0]
        for param in ctx.command.params
        if param.name in names
        and ctx.get_parameter_source(param.name)
        in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)
    ]
    if given:
        raise click.UsageError(f"{', '.join(given)}: not used with {mode}")


def _evaluate_stream(
    ctx: click.Context,
    dataset_path: Path,
    detectors: tuple[str, ...],
    params: tuple[str, ...],
    batch_size: int,
    out: Path | None,
) -> None:
    """``mmlw evaluate --mode stream`` (see :mod:`mmlw.evaluation.stream`)."""
    from mmlw.alerts.config import load_alerts_config
    from mmlw.detectors.catalog import DETECTORS
    from mmlw.evaluation.datasets import load_dataset
    from mmlw.evaluation.protocol import ProtocolConfig
    from mmlw.evaluation.runner import plan_runs
    from mmlw.evaluation.stream import FileOutcome, score_rules, stream_evaluate, summary_table

    settings = settings_of(ctx)
    names = list(detectors) or [settings.models.default_detector]
    if "all" in names:
        names = sorted(DETECTORS)
    runs = plan_runs(names, (), parse_params(params), ProtocolConfig())
    rules = score_rules(load_alerts_config(settings.alerts.rules_file))
    dataset = load_dataset(dataset_path)
    if out is None:
        out = settings.data_dir / "evaluations" / datetime.now().strftime("%Y%m%d-%H%M%S")
    out = out.expanduser().resolve()

    def progress(detector: str, f: FileOutcome) -> None:
        failed = f"  ERROR {f.error}" if f.error else ""
        click.echo(
            f"{detector} {f.file}: {f.rows} rows, {f.detections} detections, "
            f"{f.alerts} alerts, {f.seconds:.2f} s{failed}"
        )

    summaries = stream_evaluate(
        dataset,
        out,
        [(run.detector, dict(run.params)) for run in runs],
        batch_size=batch_size,
        quantile=settings.models.threshold_quantile,
        rules=rules,
        on_file=progress,
    )
    click.echo(summary_table(summaries, dataset.layout), nl=False)
    click.echo(f"outputs in {out}")
