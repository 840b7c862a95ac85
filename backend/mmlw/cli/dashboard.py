"""``mmlw dashboard``: serve the web dashboard (Dash + plotly), which reads only the API."""

from __future__ import annotations

import click

from mmlw.cli.core import main, one_line_errors, settings_of


@main.command()
@click.option("--host", default=None, help="default: MMLW_DASHBOARD__HOST")
@click.option("--port", type=int, default=None, help="default: MMLW_DASHBOARD__PORT (8050)")
@click.option(
    "--api-url", default=None, help="the backend API to read (default: MMLW_DASHBOARD__API_URL)"
)
@click.option(
    "--mlflow-url",
    default=None,
    help="MLflow UI for links, as browsers reach it (default: the tracking server when it "
    "is http(s), else http://127.0.0.1:5000)",
)
@click.pass_context
@one_line_errors
def dashboard(
    ctx: click.Context,
    host: str | None,
    port: int | None,
    api_url: str | None,
    mlflow_url: str | None,
) -> None:
    """Serve the dashboard: machines, anomaly scores, alerts, models and jobs."""
    from mmlw.frontend.server import run_dashboard

    settings = settings_of(ctx)
    updates = {
        name: value
        for name, value in (("host", host), ("port", port), ("api_url", api_url))
        if value is not None
    }
    settings = settings.model_copy(
        update={"dashboard": settings.dashboard.model_copy(update=updates)}
    )
    base = f"http://{settings.dashboard.host}:{settings.dashboard.port}"
    click.echo(f"dashboard: {base}/  (reading {settings.dashboard.api_url})")
    run_dashboard(settings, mlflow_url=mlflow_url)
