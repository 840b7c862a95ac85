"""``mmlw tune``: rank detector configurations on a machine's stored history."""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from mmlw.cli.core import (
    main,
    one_line_errors,
    open_store,
    parse_params,
    settings_of,
    train_dispatcher,
)

__all__ = ["tune"]


def grid_of(grid_file: Path | None, detectors: tuple[str, ...], params: tuple[str, ...]) -> Any:
    """The request fields from ``--grid FILE``, or from ``--detector``/``--param`` options:
    each ``--param NAME=[v1,v2]`` goes to every named detector that accepts NAME."""
    from mmlw.detectors.catalog import DETECTORS
    from mmlw.services.tuning_plan import grid_from_file

    if grid_file is not None:
        if detectors or params:
            raise ValueError("--grid: give either a grid file or --detector/--param, not both")
        return grid_from_file(grid_file.read_text(encoding="utf-8"), str(grid_file))
    if not detectors:
        raise ValueError("grid: give --grid FILE or at least one --detector")
    lists = {k: v if isinstance(v, list) else [v] for k, v in parse_params(params).items()}
    grid: dict[str, dict[str, list[Any]]] = {}
    for name in detectors:
        accepted = DETECTORS[name]().get_params() if name in DETECTORS else {}
        grid[name] = {k: v for k, v in lists.items() if k in accepted}
    unused = sorted(set(lists) - {k for g in grid.values() for k in g})
    if unused and all(name in DETECTORS for name in detectors):
        raise ValueError(f"--param: {unused} not accepted by any of {list(detectors)}")
    return {"grid": grid}


def _echo_table(result: Any) -> None:
    metric = result.metric
    click.echo(
        f"{'rank':>4}  {'config':<48} {metric:>17} {'false alarms':>12} {'fit s':>8} {'score s':>8}"
    )
    for r in result.rows:
        if r.error:
            click.echo(f"{r.rank:>4}  {r.label:<48} failed: {r.error}")
            continue
        click.echo(
            f"{r.rank:>4}  {r.label:<48} {r.metric:>17.4f} {r.false_alarm_rate:>12.2%} "
            f"{r.fit_time_s:>8.3f} {r.score_time_s:>8.3f}"
        )


@main.command("tune")
@click.argument("machine_id")
@click.option(
    "--grid",
    "grid_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="YAML/JSON: detector -> {param: [values]} (optionally under 'grid', with search, "
    "samples, seed)",
)
@click.option("--detector", "detectors", multiple=True, help="catalog name (instead of --grid)")
@click.option("--param", "params", multiple=True, metavar="NAME=[V1,V2]", help="values to try")
@click.option("--search", type=click.Choice(["grid", "random"]), default=None)
@click.option("--samples", type=int, default=None, help="configs drawn by a random search")
@click.option("--seed", type=int, default=None, help="random search seed")
@click.option("--train-fraction", type=float, default=0.5, show_default=True)
@click.option("--threshold-quantile", type=float, default=None)
@click.option("--start", type=click.DateTime(), default=None, help="window start (UTC)")
@click.option("--end", type=click.DateTime(), default=None, help="window end (UTC)")
@click.option("--last-n", type=int, default=None, help="newest N readings of the window")
@click.option("--experiment", default="mmlw-tuning", show_default=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None)
@click.option("--json", "as_json", is_flag=True, help="print the result as JSON")
@click.option("--register-best", is_flag=True, help="train the best config as challenger")
@click.option("--inline", is_flag=True, help="with --register-best: train here, not on a worker")
@click.pass_context
@one_line_errors
def tune(
    ctx: click.Context,
    machine_id: str,
    grid_file: Path | None,
    detectors: tuple[str, ...],
    params: tuple[str, ...],
    search: str | None,
    samples: int | None,
    seed: int | None,
    train_fraction: float,
    threshold_quantile: float | None,
    start: datetime | None,
    end: datetime | None,
    last_n: int | None,
    experiment: str,
    out: Path | None,
    as_json: bool,
    register_best: bool,
    inline: bool,
) -> None:
    """Rank detector configs on MACHINE_ID's stored history (fit on the older part,
    threshold from it, score the rest; F1 with labels, else the held-out flag rate).

    The grid maps detectors to parameter lists, e.g. {pca: {n_components: [0.9, 0.99]},
    pca_temporal: {windows: [[5], [20]]}}; a parent MLflow run gets one child run per
    config, and a chart and ranking.csv are written.
    """
    from pydantic import ValidationError

    from mmlw.schemas.readings import describe_validation_error
    from mmlw.schemas.tuning import TuneRequest
    from mmlw.services.tuning import register_best as queue_best
    from mmlw.services.tuning import run_tuning
    from mmlw.services.tuning_plan import plan_configs

    fields = grid_of(grid_file, detectors, params)
    overrides = {"search": search, "samples": samples, "seed": seed}
    fields |= {k: v for k, v in overrides.items() if v is not None}
    try:
        request = TuneRequest(
            machine_id=machine_id,
            train_fraction=train_fraction,
            threshold_quantile=threshold_quantile,
            start=start.replace(tzinfo=UTC) if start else None,
            end=end.replace(tzinfo=UTC) if end else None,
            last_n=last_n,
            experiment=experiment,
            **fields,
        )
    except ValidationError as exc:
        raise ValueError(describe_validation_error(exc)) from None
    n = len(plan_configs(request))
    settings = settings_of(ctx)
    with open_store(settings) as store:
        dispatcher = train_dispatcher(settings, store, inline, "tune") if register_best else None
        started = time.perf_counter()
        with click.progressbar(length=n, label=f"tuning {n} configs", file=sys.stderr) as bar:
            result = run_tuning(
                request,
                store=store,
                settings=settings,
                out=out.expanduser().resolve() if out else None,
                on_config=lambda _done, _total: bar.update(1),
            )
        elapsed = time.perf_counter() - started
        if dispatcher is not None:
            job = queue_best(request, result, store=store, dispatcher=dispatcher)
            while not store.jobs.get(job.id).state.finished:
                time.sleep(0.5)
            job = store.jobs.get(job.id)
            result = result.model_copy(update={"best_job_id": str(job.id)})
    if as_json:
        click.echo(json.dumps(result.model_dump(mode="json", exclude={"figure"}), indent=2))
    else:
        _echo_table(result)
        click.echo(
            f"{result.n_configs} configs on {result.n_train} + {result.n_test} readings of "
            f"{machine_id} in {elapsed:.1f} s; feature frames computed "
            f"{result.features_computed} times for {result.features_requested} configs"
        )
        click.echo(f"chart: {result.report}; MLflow parent run {result.parent_run_id}")
    if dispatcher is not None:
        if job.error:
            raise click.ClickException(f"train job {job.id} failed: {job.error}")
        version = (job.result or {}).get("version")
        click.echo(f"registered the best config as {machine_id} v{version} (challenger)")
