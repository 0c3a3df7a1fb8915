"""Report: what a tuning run found, as files in its run directory.

`report.html` (readable offline: plotly.js is inlined) shows the objective per trial, the learning
curves of all trials, the best trial, parameter importances and one slice per parameter;
`trials.csv` has one row per trial; `best_hyperparameters.json` is the best trial's flat
hyperparameters (static + tuned), the file `scripts/train.py --hp-file` reads.
"""

from __future__ import annotations

import csv
import html
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from sagemaker_rl.contract import JobPaths
from sagemaker_rl.tuning import trials as record
from sagemaker_rl.tuning.trials import ATTR_DURATION, ATTR_FAILURE, ATTR_OUTPUTS, ATTR_RERUN_OF, ATTR_TRAINING_JOB

logger = logging.getLogger(__name__)

REPORT_FILE = "report.html"
TRIALS_FILE = "trials.csv"
BEST_FILE = "best_hyperparameters.json"


def write_outputs(
    study: optuna.Study, run_dir: Path, *, objective: str = "episode_reward_mean", html: bool = True
) -> dict[str, Path]:
    """Write trials.csv, best_hyperparameters.json (once a trial completed) and, if `html`, report.html."""
    trials = study.get_trials(deepcopy=False)
    files = {"trials": write_trials_csv(trials, run_dir / TRIALS_FILE)}
    best = best_trial(study)
    if best is not None:
        path = run_dir / BEST_FILE
        _write_atomic(path, json.dumps(record.hyperparameters(best), indent=2, sort_keys=True) + "\n")
        files["best_hyperparameters"] = path
    if html:
        files["report"] = write_html(study, run_dir / REPORT_FILE, objective=objective)
    return files


def best_trial(study: optuna.Study) -> FrozenTrial | None:
    """The best complete trial, or None when no trial completed."""
    return record.best(study.get_trials(deepcopy=False), study.direction)


def trial_rows(trials: Sequence[FrozenTrial]) -> list[dict[str, Any]]:
    """One row per trial: number, status, objective, iterations, duration, tuned values, failure reason."""
    replaced = record.replaced(trials)
    names = _tuned_names(trials)
    with_jobs = any(ATTR_TRAINING_JOB in trial.user_attrs for trial in trials)
    with_outputs = any(ATTR_OUTPUTS in trial.user_attrs for trial in trials)
    rows = []
    for trial in trials:
        tuned = record.tuned(trial)
        row: dict[str, Any] = {
            "trial": trial.number,
            "status": record.status(trial, replaced),
            "objective": trial.value if trial.state in (TrialState.COMPLETE, TrialState.PRUNED) else None,
            "iterations": trial.last_step,
            "duration_s": trial.user_attrs.get(ATTR_DURATION),
        }
        row.update({name: tuned.get(name) for name in names})
        if with_jobs:
            row[ATTR_TRAINING_JOB] = trial.user_attrs.get(ATTR_TRAINING_JOB)
        if with_outputs:  # on the cluster's storage: each a job's base directory, its model in model/
            row[ATTR_OUTPUTS] = " ".join(trial.user_attrs.get(ATTR_OUTPUTS) or [])
        row["rerun_of"] = trial.user_attrs.get(ATTR_RERUN_OF)
        row["failure"] = trial.user_attrs.get(ATTR_FAILURE, "")
        rows.append(row)
    return rows


def write_trials_csv(trials: Sequence[FrozenTrial], path: Path) -> Path:
    rows = trial_rows(trials)
    columns = list(rows[0]) if rows else ["trial", "status", "objective"]
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({key: _cell(value) for key, value in row.items()})
    tmp.replace(path)
    return path


def trials_table(study: optuna.Study, *, objective: str = "episode_reward_mean") -> str:
    """The trials as a fixed-width text table (short parameter names)."""
    rows = trial_rows(study.get_trials(deepcopy=False))
    if not rows:
        return "no trials"
    names = _tuned_names(study.get_trials(deepcopy=False))
    columns = ["trial", "status", "objective", "iterations", "duration_s", *names]
    headers = {column: column.rsplit(".", 1)[-1] for column in columns}
    headers["objective"] = objective
    table = [[headers[column] for column in columns]]
    for row in rows:
        table.append([_cell(row[column], digits=4) for column in columns])
    widths = [max(len(line[index]) for line in table) for index in range(len(columns))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip() for line in table]
    failures = [f"  trial {row['trial']}: {row['failure']}" for row in rows if row["status"] == "failed"]
    return "\n".join(lines + (["failed trials:", *failures] if failures else []))


def summary(
    study: optuna.Study,
    files: dict[str, Path],
    *,
    problem: str,
    objective: str = "episode_reward_mean",
    stopped_hint: str | None = None,
) -> str:
    """The text a tuning run ends with: trials table, best value and hyperparameters, files written,
    and how to train with the best ones (or, for a run that stopped early, `stopped_hint`)."""
    lines = [trials_table(study, objective=objective)]
    best = best_trial(study)
    if best is not None:
        lines.append(f"\nbest {objective}: {best.value:.6g}")
        lines.append(json.dumps(record.hyperparameters(best), indent=2, sort_keys=True))
        for output in best.user_attrs.get(ATTR_OUTPUTS) or []:
            lines.append(f"model of the best trial (on the cluster's storage): {JobPaths(Path(output)).model}")
    lines += [f"{label}: {path}" for label, path in files.items()]
    if stopped_hint:
        lines.append(f"\nstopped before the end; {stopped_hint}")
    elif "best_hyperparameters" in files:
        best_file = files["best_hyperparameters"]
        lines.append(f"\ntrain with them: python scripts/train.py --problem {problem} --hp-file {best_file}")
    return "\n".join(lines)


def write_html(study: optuna.Study, path: Path, *, objective: str = "episode_reward_mean") -> Path:
    """A self-contained HTML report (plotly.js inlined once)."""
    import plotly.io as pio

    trials = study.get_trials(deepcopy=False)
    best = best_trial(study)
    sections = [
        f"<h1>Tuning run {html.escape(study.study_name)}</h1>",
        _summary_html(trials, best, objective),
    ]
    figures = [
        ("Objective per trial", _objective_figure(trials, best, objective)),
        ("Learning curves", _curves_figure(trials, best, objective)),
        ("Parameter importance", _importance_figure(study)),
        ("Slices: objective against each parameter", _slices_figure(trials, objective)),
    ]
    inlined = False
    for title, figure in figures:
        sections.append(f"<h2>{html.escape(title)}</h2>")
        if isinstance(figure, str):
            sections.append(f"<p>{html.escape(figure)}</p>")
            continue
        sections.append(pio.to_html(figure, include_plotlyjs=not inlined, full_html=False, default_height="480px"))
        inlined = True
    sections.append("<h2>All trials</h2>" + _table_html(trial_rows(trials)))
    page = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Tuning report</title><style>"
        "body{font-family:sans-serif;margin:2em} table{border-collapse:collapse;font-size:90%}"
        "td,th{border:1px solid #ccc;padding:2px 6px;text-align:left} .failed{color:#a00}"
        "</style></head><body>" + "\n".join(sections) + "</body></html>\n"
    )
    _write_atomic(path, page)
    return path


def _summary_html(trials: Sequence[FrozenTrial], best: FrozenTrial | None, objective: str) -> str:
    counts = {label: n for label, n in record.counts(trials).items() if n}
    parts = [f"<p>{len(trials)} trials: " + ", ".join(f"{n} {label}" for label, n in sorted(counts.items())) + "</p>"]
    if best is None:
        parts.append("<p>No trial completed yet.</p>")
    else:
        parts.append(f"<h2>Best trial: {best.number} ({html.escape(objective)} = {best.value:.6g})</h2>")
        rows = [{"hyperparameter": key, "value": value} for key, value in sorted(record.hyperparameters(best).items())]
        parts.append(_table_html(rows))
    return "\n".join(parts)


def _objective_figure(trials: Sequence[FrozenTrial], best: FrozenTrial | None, objective: str) -> Any:
    import plotly.graph_objects as go

    scored = [
        trial for trial in trials if trial.state in (TrialState.COMPLETE, TrialState.PRUNED) and trial.value is not None
    ]
    if not scored:
        return "No trial has an objective value yet."
    figure = go.Figure()
    for state, symbol in ((TrialState.COMPLETE, "circle"), (TrialState.PRUNED, "x")):
        chosen = [trial for trial in scored if trial.state == state]
        if chosen:
            figure.add_trace(
                go.Scatter(
                    x=[trial.number for trial in chosen],
                    y=[trial.value for trial in chosen],
                    mode="markers",
                    marker={"symbol": symbol, "size": 9},
                    name=state.name.lower(),
                    text=[_hover(trial) for trial in chosen],
                    hoverinfo="text+y",
                )
            )
    complete = sorted((trial for trial in scored if trial.state == TrialState.COMPLETE), key=lambda t: t.number)
    if complete and best is not None:
        maximize = best.value == max(trial.value for trial in complete)  # type: ignore[type-var]
        running, xs, ys = None, [], []
        for trial in complete:
            value = trial.value
            assert value is not None
            running = value if running is None else (max(running, value) if maximize else min(running, value))
            xs.append(trial.number)
            ys.append(running)
        figure.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line={"shape": "hv"}, name="best so far"))
    figure.update_layout(xaxis_title="trial", yaxis_title=objective, margin={"t": 20})
    return figure


def _curves_figure(trials: Sequence[FrozenTrial], best: FrozenTrial | None, objective: str) -> Any:
    import plotly.graph_objects as go

    curves = [trial for trial in trials if trial.intermediate_values]
    if not curves:
        return "No trial has reported a value yet."
    figure = go.Figure()
    for trial in curves:
        steps = sorted(trial.intermediate_values)
        is_best = best is not None and trial.number == best.number
        figure.add_trace(
            go.Scatter(
                x=steps,
                y=[trial.intermediate_values[step] for step in steps],
                mode="lines+markers",
                name=f"trial {trial.number}{' (best)' if is_best else ''} [{trial.state.name.lower()}]",
                line={"width": 4 if is_best else 1.5},
                opacity=1.0 if is_best else 0.6,
                hovertext=_hover(trial),
            )
        )
    figure.update_layout(xaxis_title="training iteration", yaxis_title=objective, margin={"t": 20})
    return figure


def _importance_figure(study: optuna.Study) -> Any:
    import plotly.graph_objects as go

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(complete) < 2:
        return "Parameter importance needs at least two complete trials."
    try:
        importances = optuna.importance.get_param_importances(study)
    except (RuntimeError, ValueError) as error:
        logger.info("no parameter importances: %s", error)
        return f"Parameter importance is not available: {error}"
    if not importances:
        return "Parameter importance is not available: no parameter varied across complete trials."
    names = list(importances)[::-1]
    figure = go.Figure(go.Bar(x=[importances[name] for name in names], y=names, orientation="h"))
    figure.update_layout(xaxis_title="importance (fANOVA, share of objective variance)", margin={"t": 20})
    return figure


def _slices_figure(trials: Sequence[FrozenTrial], objective: str) -> Any:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    scored = [trial for trial in trials if trial.state == TrialState.COMPLETE and trial.value is not None]
    names = sorted({name for trial in scored for name in trial.params})
    if not scored or not names:
        return "Slices need complete trials with tuned parameters."
    figure = make_subplots(
        rows=1, cols=len(names), shared_yaxes=True, subplot_titles=[name.rsplit(".", 1)[-1] for name in names]
    )
    for column, name in enumerate(names, start=1):
        chosen = [trial for trial in scored if name in trial.params]
        figure.add_trace(
            go.Scatter(
                x=[_plain(trial.params[name]) for trial in chosen],
                y=[trial.value for trial in chosen],
                mode="markers",
                marker={
                    "color": [trial.number for trial in chosen],
                    "colorscale": "Viridis",
                    "size": 9,
                    "showscale": column == len(names),
                    "colorbar": {"title": "trial"},
                },
                text=[f"trial {trial.number}" for trial in chosen],
                name=name,
                showlegend=False,
            ),
            row=1,
            col=column,
        )
        distribution = chosen[0].distributions.get(name) if chosen else None
        if getattr(distribution, "log", False):
            figure.update_xaxes(type="log", row=1, col=column)
        figure.update_xaxes(title_text=name if name.startswith("1-") else "", row=1, col=column)
    figure.update_yaxes(title_text=objective, row=1, col=1)
    figure.update_layout(margin={"t": 40})
    return figure


def _table_html(rows: Sequence[dict[str, Any]]) -> str:
    if not rows:
        return "<p>No trials.</p>"
    columns = list(rows[0])
    head = "".join(f"<th>{html.escape(str(column))}</th>" for column in columns)
    body = []
    for row in rows:
        css = " class='failed'" if row.get("status") == "failed" else ""
        cells = "".join(f"<td>{html.escape(_cell(row[column], digits=6))}</td>" for column in columns)
        body.append(f"<tr{css}>{cells}</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _tuned_names(trials: Sequence[FrozenTrial]) -> list[str]:
    names: list[str] = []
    for trial in trials:
        names += [name for name in record.tuned(trial) if name not in names]
    return names


def _hover(trial: FrozenTrial) -> str:
    return f"trial {trial.number}<br>" + "<br>".join(
        f"{name.rsplit('.', 1)[-1]}={_cell(value, digits=4)}" for name, value in record.tuned(trial).items()
    )


def _plain(value: Any) -> Any:
    return value if isinstance(value, int | float) and not isinstance(value, bool) else str(value)


def _cell(value: Any, *, digits: int | None = None) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.{digits}g}" if digits else repr(value)
    if isinstance(value, list | dict):
        return json.dumps(value)
    return str(value)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
