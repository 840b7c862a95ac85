"""``mmlw select-settings``: choose a detector's settings by leave-one-group-out on a
SKAB-layout folder, and report the figures no setting was chosen on."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import click

from mmlw.cli.core import main, one_line_errors, path_option, settings_of

__all__ = ["select_settings"]


@main.command("select-settings")
@path_option(
    "--dataset", "dataset_path", "SKAB-layout folder whose first-level folders are the groups"
)
@path_option(
    "--candidates",
    "candidates_path",
    "YAML: detector, candidates (list of parameter mappings) and/or grid",
)
@click.option(
    "--max-far",
    type=click.FloatRange(min=0.0, max=100.0),
    default=13.5,
    show_default=True,
    help="a fold only chooses configurations with at most this false-alarm rate (%) on "
    "the groups it chooses on",
)
@click.option("--batch-size", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=None, help="output folder")
@click.pass_context
@one_line_errors
def select_settings(
    ctx: click.Context,
    dataset_path: Path,
    candidates_path: Path,
    max_far: float,
    batch_size: int,
    out: Path | None,
) -> None:
    """Replay every candidate configuration through the serving path (as `mmlw evaluate
    --mode stream`), then for each group choose the one with the highest F1 on the other
    groups (FAR at most --max-far there) and score it on the held-out group. Prints each
    candidate's figures, each fold's choice and the pooled held-out F1, FAR, MAR and
    changepoint score; writes OUT/selection.json and each candidate's detections."""
    from mmlw.alerts.config import load_alerts_config
    from mmlw.evaluation.datasets import load_dataset
    from mmlw.evaluation.selection import leave_one_group_out, load_candidates
    from mmlw.evaluation.stream import score_rules, stream_evaluate

    settings = settings_of(ctx)
    detector, configs = load_candidates(candidates_path)
    detector = detector or settings.models.default_detector
    dataset = load_dataset(dataset_path)
    if dataset.layout != "skab":
        raise click.ClickException(f"--dataset: {dataset_path} is not in SKAB layout")
    rules = score_rules(load_alerts_config(settings.alerts.rules_file))
    if out is None:
        out = settings.data_dir / "selections" / datetime.now().strftime("%Y%m%d-%H%M%S")
    out = out.expanduser().resolve()
    groups = []
    for k, params in enumerate(configs):
        (summary,) = stream_evaluate(
            dataset,
            out / f"candidate-{k}",
            [(detector, params)],
            batch_size=batch_size,
            quantile=settings.models.threshold_quantile,
            rules=rules,
        )
        groups.append(summary.groups)
        pooled = summary.scores
        by_group = ", ".join(
            f"{g} {totals.scores()['f1']:.3f}" for g, totals in sorted(summary.groups.items())
        )
        click.echo(
            f"[{k + 1}/{len(configs)}] {_shown(params)}: F1 {pooled['f1']:.3f}, FAR "
            f"{pooled['far']:.2f} %, changepoints {pooled['nab_standard']:.2f} ({by_group})"
        )
    folds, held = leave_one_group_out(groups, max_far=max_far)
    for fold in folds:
        click.echo(
            f"without {fold.held_out}: chose {_shown(configs[fold.chosen])} (F1 "
            f"{fold.train['f1']:.3f} on the others); held out: F1 {fold.held['f1']:.3f}, "
            f"FAR {fold.held['far']:.2f} %"
        )
    click.echo(
        f"pooled held out: F1 {held['f1']:.3f}, FAR {held['far']:.2f} %, MAR "
        f"{held['mar']:.2f} %, changepoints {held['nab_standard']:.2f}"
    )
    record = {
        "dataset": str(dataset.root),
        "detector": detector,
        "max_far": max_far,
        "candidates": configs,
        "folds": [
            {"held_out": f.held_out, "chosen": configs[f.chosen], "train": f.train, "held": f.held}
            for f in folds
        ],
        "held_out": held,
    }
    (out / "selection.json").write_text(json.dumps(record, indent=2, default=float))
    click.echo(f"outputs in {out}")


def _shown(params: dict[str, object]) -> str:
    return " ".join(f"{k}={v}" for k, v in params.items()) or "(defaults)"
