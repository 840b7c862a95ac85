"""The dashboard's pure parts: figures, machine status and order, time ranges, links."""

from __future__ import annotations

import doctest
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import numpy as np
import plotly.graph_objects as go
import pytest

from mmlw.frontend import (
    components,
    figure_style,
    figures,
    links,
    overlays,
    shadow,
    status,
    timerange,
)
from mmlw.frontend.figure_style import WEBGL_FROM, epoch_ms
from mmlw.frontend.figures import (
    CHALLENGER_COLOR,
    contributions_figure,
    flagged_values,
    score_figure,
    sensor_figure,
    sparkline,
)
from mmlw.frontend.overlays import AlertPeriod, alert_periods, selection_marker
from mmlw.frontend.shadow import shadow_summary
from mmlw.frontend.status import Status, machine_row, worst_first
from mmlw.frontend.timerange import RESET, parse_moment, window_for, zoom_window
from mmlw.schemas.alerts import AlertOut
from mmlw.schemas.resources import MachineOut, ReadingsOut, ScoresOut, SensorContribution
from mmlw.schemas.shadow import ShadowComparisonOut, ShadowSummaryOut

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def stamps(n: int, step_s: float = 1.0) -> list[datetime]:
    return [T0 + timedelta(seconds=i * step_s) for i in range(n)]


def scores_of(values: list[float], threshold: float = 1.0, version: int = 1) -> ScoresOut:
    n = len(values)
    return ScoresOut(
        machine_id="pump-1",
        columns=["a", "b"],
        timestamps=stamps(n),
        scores=values,
        thresholds=[threshold] * n,
        flags=[v > threshold for v in values],
        model_versions=[version] * n,
        top_sensors=[[] for _ in range(n)],
    )


def readings_of(table: list[list[float]], step_s: float = 1.0) -> ReadingsOut:
    return ReadingsOut(
        machine_id="pump-1",
        columns=["a", "b"],
        timestamps=stamps(len(table), step_s),
        values=table,
        labels=[None] * len(table),
    )


def alert(
    alert_id: int, started: datetime, resolved: datetime | None, state: str = "firing"
) -> AlertOut:
    return AlertOut(
        id=alert_id,
        rule="anomalous-readings",
        machine_id="pump-1",
        severity="warning",
        state=state,  # type: ignore[arg-type]
        acknowledged=False,
        acknowledged_by=None,
        acknowledged_at=None,
        ack_comment=None,
        silenced=False,
        started_at=started,
        fired_at=started,
        resolved_at=resolved,
        resolved_by=None,
        last_active_at=started,
        last_notified_at=None,
        last_score=3.0,
        threshold=1.0,
        model_version=1,
        top_sensors=[],
        labels={},
        summary="5 of the last 10 readings anomalous",
    )


def machine(**updates: Any) -> MachineOut:
    base = {
        "id": "pump-1",
        "columns": ["a", "b"],
        "first_seen": T0,
        "last_seen": T0,
        "last_reading_at": T0,
        "n_readings": 100,
        "n_scored": 100,
        "champion_version": 1,
    }
    return MachineOut(**{**base, **updates})


def ms(moment: datetime) -> float:
    return moment.timestamp() * 1000.0


def test_epoch_ms_reads_aware_and_naive_times_as_utc() -> None:
    assert epoch_ms([T0]).tolist() == epoch_ms([T0.replace(tzinfo=None)]).tolist() == [ms(T0)]
    assert epoch_ms([T0.astimezone(timezone(timedelta(hours=2)))]).tolist() == [ms(T0)]
    assert epoch_ms([]).tolist() == []


def trace(figure: go.Figure, name: str) -> Any:
    (found,) = [t for t in figure.data if t.name == name][:1]
    return found


# --- doctests of the small modules -----------------------------------------------------


@pytest.mark.parametrize(
    "module", [components, links, status, timerange, figures, figure_style, overlays, shadow]
)
def test_doctests(module: Any) -> None:
    assert doctest.testmod(module).failed == 0


# --- score figure ----------------------------------------------------------------------


def test_score_figure_draws_score_threshold_and_flagged_points() -> None:
    figure = score_figure(scores_of([0.5, 2.0, 0.7, 3.0]))
    assert [t.name for t in figure.data] == ["score", "threshold", "anomalous"]
    assert list(trace(figure, "score").y) == [0.5, 2.0, 0.7, 3.0]
    assert list(trace(figure, "threshold").y) == [1.0] * 4
    assert trace(figure, "threshold").line.shape == "hv"  # a step per model version
    flagged = trace(figure, "anomalous")
    assert list(flagged.y) == [2.0, 3.0]
    # milliseconds since the epoch on a date axis: a binary array, not date strings
    assert list(flagged.x) == [ms(T0 + timedelta(seconds=1)), ms(T0 + timedelta(seconds=3))]
    assert figure.layout.xaxis.type == "date"
    assert all(isinstance(t, go.Scatter) for t in figure.data)  # few points: SVG


def test_long_series_use_webgl() -> None:
    figure = score_figure(scores_of([0.1] * WEBGL_FROM))
    assert all(isinstance(t, go.Scattergl) for t in figure.data)


def test_score_figure_shades_alerts_and_marks_the_selection_first() -> None:
    periods = [
        AlertPeriod(T0 + timedelta(seconds=1), T0 + timedelta(seconds=2), "closed"),
        AlertPeriod(T0 + timedelta(seconds=3), None, "open"),
    ]
    figure = score_figure(scores_of([0.5, 2.0, 0.7, 3.0]), periods, selected=T0)
    marker, closed, still_open = figure.layout.shapes
    assert marker.visible is True and marker.name == "selected"
    assert str(marker.x0) == "2026-11-22 10:00:00"
    assert closed.fillcolor == figure_style.CLOSED_ALERT_FILL
    assert str(still_open.x1) == "2026-11-22 10:00:03"  # open: shaded to the newest score
    assert still_open.fillcolor == figure_style.OPEN_ALERT_FILL
    assert closed.yref == "paper" and (closed.y0, closed.y1) == (0, 1)


def test_without_a_selection_the_marker_is_hidden() -> None:
    figure = score_figure(scores_of([1.0, 2.0]))
    assert figure.layout.shapes[0].visible is False
    assert selection_marker(None)["visible"] is False


def test_score_figure_options() -> None:
    figure = score_figure(scores_of([1.0, 2.0]), log_y=True, revision="r1")
    assert figure.layout.yaxis.type == "log"
    assert figure.layout.uirevision == "r1"


def test_no_scores_gives_an_explaining_empty_figure() -> None:
    figure = score_figure(scores_of([]))
    assert not figure.data
    assert "no scores" in figure.layout.annotations[0].text


# --- shadow challenger on the score figure ----------------------------------------------


def comparison_of(
    champion: list[float], challenger: list[float], offset: int = 0, threshold: float = 1.0
) -> ShadowComparisonOut:
    """Both versions on readings ``offset`` .. ``offset + n - 1`` of :func:`scores_of`."""
    n = len(champion)
    champ_f = [v > threshold for v in champion]
    chal_f = [v > threshold for v in challenger]
    return ShadowComparisonOut(
        machine_id="pump-1",
        champion_version=1,
        challenger_version=2,
        summary=ShadowSummaryOut(
            n_compared=n,
            champion_flagged=sum(champ_f),
            challenger_flagged=sum(chal_f),
            disagreements=sum(a != b for a, b in zip(champ_f, chal_f, strict=True)),
            champion_mean=float(np.mean(champion)) if n else None,
            challenger_mean=float(np.mean(challenger)) if n else None,
            correlation=None,
        ),
        timestamps=stamps(offset + n)[offset:],
        champion_scores=champion,
        challenger_scores=challenger,
        champion_thresholds=[threshold] * n,
        challenger_thresholds=[threshold] * n,
        champion_flags=champ_f,
        challenger_flags=chal_f,
    )


def test_score_figure_draws_the_challenger_dashed_on_the_readings_both_scored() -> None:
    champion = [0.5, 2.0, 0.7, 3.0]
    figure = score_figure(
        scores_of(champion), shadow=comparison_of(champion[2:], [1.5, 0.2], offset=2)
    )
    names = [t.name for t in figure.data]
    assert names == ["score", "threshold", "anomalous", "challenger v2 (shadow)"]
    shadowed = trace(figure, "challenger v2 (shadow)")
    assert shadowed.line.dash == "dash" and shadowed.line.color == CHALLENGER_COLOR
    assert list(shadowed.y) == [1.5, 0.2]
    # the same readings as the champion's, on the champion's time axis
    assert list(shadowed.x) == list(trace(figure, "score").x)[2:]
    assert list(shadowed.customdata) == ["flags, champion disagrees", "passes, champion disagrees"]
    assert "challenger v2 (shadow)" in shadowed.hovertemplate
    assert figure.layout.shapes[0].name == "selected"  # the marker is still shapes[0]


def test_score_figure_without_shadow_readings_draws_the_champion_only() -> None:
    figure = score_figure(scores_of([0.5, 2.0]), shadow=comparison_of([], []))
    assert [t.name for t in figure.data] == ["score", "threshold", "anomalous"]


def test_a_long_shadow_series_uses_webgl() -> None:
    values = [0.1] * WEBGL_FROM
    figure = score_figure(scores_of([0.1] * 10), shadow=comparison_of(values, values))
    assert isinstance(trace(figure, "challenger v2 (shadow)"), go.Scattergl)
    assert isinstance(trace(figure, "score"), go.Scatter)


def test_shadow_summary_counts_what_each_flags_and_where_they_disagree() -> None:
    text = shadow_summary(comparison_of([0.5, 2.0, 3.0, 0.1], [0.5, 0.2, 0.3, 1.4]))
    assert text == (
        "challenger v2 (shadow) vs champion v1 on 4 readings: challenger flags 1, "
        "champion 2, they disagree on 3 (75.0%)"
    )


def test_shadow_summary_says_why_there_is_nothing_to_compare() -> None:
    none = comparison_of([], []).model_copy(
        update={"challenger_version": None, "reason": "machine 'pump-1' has no challenger"}
    )
    assert shadow_summary(none) == "no shadow challenger (machine 'pump-1' has no challenger)"
    waiting = comparison_of([], []).model_copy(
        update={"reason": "no reading scored by both in range"}
    )
    assert shadow_summary(waiting) == ("challenger v2 (shadow): no reading scored by both in range")


# --- sensors ---------------------------------------------------------------------------


def test_sensor_figure_has_one_panel_per_sensor_with_flags_on_the_traces() -> None:
    readings = readings_of([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0], [4.0, 40.0]])
    figure = sensor_figure(readings, scores_of([0.5, 2.0, 0.7, 3.0]))
    lines = [t for t in figure.data if t.mode == "lines"]
    marks = [t for t in figure.data if t.mode == "markers"]
    assert [t.name for t in lines] == ["a", "b"]
    assert [t.yaxis for t in lines] == ["y", "y2"]
    assert figure.layout.xaxis2.type == "date"
    assert list(marks[0].y) == [2.0, 4.0] and list(marks[1].y) == [20.0, 40.0]
    assert [t.showlegend for t in marks] == [True, False]
    assert figure.layout.xaxis.matches == "x2"  # one time axis: the bottom panel's


def test_flags_between_downsampled_readings_sit_on_the_drawn_line() -> None:
    readings = readings_of([[0.0, 0.0], [10.0, 100.0]], step_s=10.0)  # t = 0 s, 10 s
    scores = scores_of([0.0] * 11)
    scores = scores.model_copy(update={"flags": [i == 5 for i in range(11)]})
    times, values = flagged_values(readings, scores)
    assert times.tolist() == [ms(T0 + timedelta(seconds=5))]
    assert values.shape == (1, 2)
    assert values[0].tolist() == pytest.approx([5.0, 50.0])


def test_flags_outside_the_readings_are_dropped() -> None:
    readings = readings_of([[0.0, 0.0], [1.0, 1.0]])
    scores = scores_of([0.0, 0.0, 5.0])  # the flagged third score is after the readings
    times, values = flagged_values(readings, scores)
    assert len(times) == 0 and values.shape == (0, 2)


def test_no_readings_gives_an_empty_figure() -> None:
    figure = sensor_figure(readings_of([]), scores_of([]))
    assert not figure.data
    assert "no readings" in figure.layout.annotations[0].text


# --- contributions, sparkline, alert periods -------------------------------------------


def test_contributions_are_bars_largest_on_top() -> None:
    figure = contributions_figure(
        [
            SensorContribution(sensor="a", contribution=0.2),
            SensorContribution(sensor="b", contribution=3.0),
            SensorContribution(sensor="c", contribution=1.0),
        ],
        at=T0,
        score=4.2,
        threshold=2.0,
    )
    (bars,) = figure.data
    assert list(bars.y) == ["a", "c", "b"]  # plotly draws the last category on top
    assert list(bars.x) == [0.2, 1.0, 3.0]
    assert "2026-11-22 10:00:00 UTC" in figure.layout.title.text
    assert "score 4.2 vs threshold 2 (anomalous)" in figure.layout.title.text


def test_no_contributions_explains_what_to_do() -> None:
    figure = contributions_figure([])
    assert "select a moment" in figure.layout.annotations[0].text


def test_sparkline_is_small_static_svg() -> None:
    figure = sparkline(scores_of([0.5, 2.0, 0.7]))
    assert [t.name for t in figure.data] == ["score", "threshold", "anomalous"]
    assert all(isinstance(t, go.Scatter) for t in figure.data)
    assert figure.layout.height == 48 and figure.layout.xaxis.visible is False


def test_alert_periods_are_open_until_resolved() -> None:
    later = T0 + timedelta(minutes=5)
    periods = alert_periods(
        [alert(2, later, None), alert(1, T0, T0 + timedelta(minutes=1), "resolved")]
    )
    assert [p.start for p in periods] == [T0, later]
    assert [p.is_open for p in periods] == [False, True]
    assert periods[1].label == "warning: anomalous-readings (#2)"


# --- status and order ------------------------------------------------------------------


NOW = T0 + timedelta(minutes=1)


def test_machine_status_from_scores_and_alerts() -> None:
    calm, hot = scores_of([0.5, 0.6]), scores_of([0.5, 2.0])
    assert machine_row(machine(), calm, [], now=NOW).status is Status.NORMAL
    assert machine_row(machine(), hot, [], now=NOW).status is Status.ANOMALOUS
    pending = alert(1, T0, None, "pending")
    assert machine_row(machine(), calm, [pending], now=NOW).status is Status.ANOMALOUS
    firing = alert(2, T0, None)
    row = machine_row(machine(), calm, [firing, pending], now=NOW)
    assert (row.status, row.open_alerts, row.firing_alerts) == (Status.ALERTING, 2, 1)
    resolved = alert(3, T0, NOW, "resolved")
    assert machine_row(machine(), calm, [resolved], now=NOW).status is Status.NORMAL
    other = alert(4, T0, None).model_copy(update={"machine_id": "pump-2"})
    assert machine_row(machine(), calm, [other], now=NOW).status is Status.NORMAL
    silent = machine_row(machine(), calm, [], now=T0 + timedelta(minutes=10))
    assert silent.status is Status.NO_DATA
    untrained = machine_row(machine(champion_version=None, n_scored=0), None, [], now=NOW)
    assert untrained.status is Status.NO_MODEL


def test_worst_first() -> None:
    rows = [
        machine_row(machine(id="normal"), scores_of([0.5]), [], now=NOW),
        machine_row(machine(id="untrained", champion_version=None), None, [], now=NOW),
        machine_row(machine(id="mild"), scores_of([1.5]), [], now=NOW),
        machine_row(machine(id="wild"), scores_of([9.0]), [], now=NOW),
        machine_row(
            machine(id="alerting"),
            scores_of([0.5]),
            [alert(1, T0, None).model_copy(update={"machine_id": "alerting"})],
            now=NOW,
        ),
        machine_row(machine(id="silent"), scores_of([0.5]), [], now=T0 + timedelta(hours=1)),
    ]
    order = [r.machine.id for r in worst_first(rows)]
    assert order == ["alerting", "wild", "mild", "silent", "untrained", "normal"]


# --- time ranges -----------------------------------------------------------------------


def test_ranges_count_back_from_the_newest_reading() -> None:
    assert window_for("15m", T0) == (T0 - timedelta(minutes=15), None)
    assert window_for("all", T0) == (None, None)
    assert window_for("1h", None) == (None, None)
    with pytest.raises(ValueError, match="range"):
        window_for("1y", T0)


@pytest.mark.parametrize(
    ("event", "meaning"),
    [
        (None, None),
        ({"autosize": True}, None),
        ({"xaxis.autorange": True, "yaxis.autorange": True}, RESET),
        ({"xaxis3.autorange": True}, RESET),
        ({"yaxis.range[0]": 1, "yaxis.range[1]": 2}, None),
        (
            {"xaxis.range[0]": "2026-11-22 10:05:00.5", "xaxis.range[1]": "2026-11-22 10:00"},
            ("2026-11-22T10:00:00+00:00", "2026-11-22T10:05:00.500000+00:00"),
        ),
        (
            {"xaxis4.range": ["2026-11-22 10:00", "2026-11-22 11:00"]},
            ("2026-11-22T10:00:00+00:00", "2026-11-22T11:00:00+00:00"),
        ),
    ],
)
def test_zoom_events(event: dict[str, Any] | None, meaning: Any) -> None:
    assert zoom_window(event) == meaning


def test_clicked_moments_are_utc() -> None:
    assert parse_moment("2026-11-22 10:00:03.25") == T0 + timedelta(seconds=3.25)
    assert parse_moment("2026-11-22T11:00:00+01:00") == T0
    assert parse_moment(T0.replace(tzinfo=None)) == T0


# --- pages' pure helpers ---------------------------------------------------------------


def test_alert_views() -> None:
    from mmlw.frontend.pages.alerts import select_alerts

    open_one = alert(1, T0, None)
    acked = alert(2, T0, None).model_copy(update={"acknowledged": True})
    closed = alert(3, T0, NOW, "resolved")
    everything = [open_one, acked, closed]
    assert [a.id for a in select_alerts(everything, "open")] == [1]
    assert [a.id for a in select_alerts(everything, "acknowledged")] == [2]
    assert [a.id for a in select_alerts(everything, "resolved")] == [3]
    assert [a.id for a in select_alerts(everything, "all")] == [1, 2, 3]


def test_machine_page_defaults_to_the_newest_anomaly() -> None:
    from mmlw.frontend.pages.machine_view import default_moment

    assert default_moment(scores_of([])) is None
    assert default_moment(scores_of([0.5, 2.0, 0.7])) == (T0 + timedelta(seconds=1)).isoformat()
    assert default_moment(scores_of([0.5, 0.7])) == (T0 + timedelta(seconds=1)).isoformat()
    # nothing flagged: the newest of the highest (its contributions are kept), not the last
    assert default_moment(scores_of([0.7, 0.5])) == T0.isoformat()


def test_downsampled_arrays_survive_the_round_trip() -> None:
    # plotly serialises numpy arrays compactly; the figure must still hold every value
    values = np.linspace(0.0, 5.0, 3_000).tolist()
    figure = score_figure(scores_of(values, threshold=4.0))
    assert len(trace(figure, "score").y) == 3_000
    assert len(trace(figure, "anomalous").y) == sum(v > 4.0 for v in values)


def test_sensor_markers_are_thinned_to_the_worst_per_slot() -> None:
    readings = readings_of([[float(i), 0.0] for i in range(1_000)])
    values = [2.0 + (i % 7) for i in range(1_000)]  # every reading anomalous
    times, marked = flagged_values(readings, scores_of(values), max_markers=10)
    assert len(times) == 10
    assert np.all(np.diff(times) > 0)
    # each slot of 100 readings keeps its highest score (i % 7 == 6)
    assert all(int(v) % 7 == 6 for v in marked[:, 0])
    every = flagged_values(readings, scores_of(values), max_markers=None)[0]
    assert len(every) == 1_000


def test_routes() -> None:
    from mmlw.frontend.app import route

    def ids(component: Any) -> set[str]:
        found = {component.id} if isinstance(getattr(component, "id", None), str) else set()
        children = getattr(component, "children", None)
        for child in children if isinstance(children, list) else [children]:
            if child is not None and not isinstance(child, str):
                found |= ids(child)
        return found

    assert "overview-body" in ids(route("/"))
    machine_page = route("/machines/pump%201", "?range=7d")
    assert {"score-graph", "sensor-graph", "contributions-graph"} <= ids(machine_page)
    assert machine_page.children[0].data == "pump 1"
    assert "alerts-body" in ids(route("/alerts", "?machine=pump-1"))

    def find(component: Any, wanted: str) -> Any:
        if getattr(component, "id", None) == wanted:
            return component
        children = getattr(component, "children", None)
        for child in children if isinstance(children, list) else [children]:
            found = None if child is None or isinstance(child, str) else find(child, wanted)
            if found is not None:
                return found
        return None

    assert find(route("/models/pump-1"), "models-machine").value == "pump-1"
    assert "jobs-body" in ids(route("/jobs/"))
    assert "No page" in str(route("/nope"))


def test_downsampled_sensor_panels_draw_only_their_own_extremes() -> None:
    # two sensors, 4 buckets of 10 readings: the rows are the union of both sensors'
    # per-bucket extremes, as the API sends them; each panel keeps its own
    n, buckets = 40, 4
    a = [float(i % 10) for i in range(n)]  # a saw: min at 0, max at 9 of each bucket
    b = [0.0] * n
    b[15] = 7.0  # one spike in bucket 1
    readings = readings_of([[x, y] for x, y in zip(a, b, strict=True)])
    flags = [i == 15 for i in range(n)]
    scores = scores_of([2.0 if f else 0.0 for f in flags])
    full = sensor_figure(readings, scores)
    thin = sensor_figure(readings, scores, buckets=buckets)
    full_a, thin_a = trace(full, "a"), trace(thin, "a")
    thin_b = trace(thin, "b")
    assert len(full_a.y) == n
    assert len(thin_a.y) <= 2 * buckets + 2 and len(thin_b.y) <= 2 * buckets + 2
    assert sorted(set(thin_a.y)) == [0.0, 9.0]  # every bucket's min and max of a
    assert max(thin_b.y) == 7.0  # the spike survives
    marks = [t for t in thin.data if t.mode == "markers"]
    assert list(marks[1].y) == [7.0]  # the anomaly's marker sits on b's drawn line
    assert list(marks[0].y) == pytest.approx(
        [np.interp(ms(T0 + timedelta(seconds=15)), list(thin_a.x), list(thin_a.y))]
    )


def test_figures_leave_room_for_what_plotly_would_push_the_margins_out_for() -> None:
    # a margin pushed out by the legend, date ticks or an axis title re-draws the figure
    score = score_figure(scores_of([0.5, 2.0]))
    sensors = sensor_figure(readings_of([[1.0, 2.0], [3.0, 4.0]]), scores_of([0.5, 2.0]))
    for figure in (score, sensors):
        assert figure.layout.margin.t >= 40 and figure.layout.margin.b >= 70
    assert score.layout.template.layout.plot_bgcolor == "white"  # plotly_white's look


def test_a_page_load_gets_its_page_with_the_layout() -> None:
    from dash import Dash

    from mmlw.frontend.app import opened

    app = Dash("test-routes")
    address, page = opened("http://dash.example:8050/machines/pump-1?range=7d", app) or ("", None)
    assert address == "/machines/pump-1?range=7d"
    assert page.children[0].data == "pump-1"  # the machine page's machine-id store
    assert opened(None, app) is None
    assert opened("http://dash.example:8050/", app) is not None
    prefixed = Dash("test-prefixed", requests_pathname_prefix="/dash/")
    assert opened("http://proxy.example/other/machines/pump-1", prefixed) is None
