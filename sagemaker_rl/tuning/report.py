"""Report: what a tuning run found, as files in its run directory.

`report.html` (readable offline: plotly.js is inlined) shows the answer, the re-evaluation on fresh
seeds beside the search, the objective per trial, the learning curves of all trials against env
steps and wall time, parameter importances (marked unreliable when the trials do not separate from
the seed noise the re-evaluation measured) and one slice per parameter; `trials.csv` has one row per
trial; `best_hyperparameters.json` is the answer's flat hyperparameters (static + tuned): the best
configuration by re-evaluation, or the search's best trial when there was none. It is the file
`scripts/train.py --hp-file` reads.
"""

from __future__ import annotations

import csv
import html
import io
import json
import logging
import shlex
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from sagemaker_rl.contract import JobPaths
from sagemaker_rl.files import write_atomically
from sagemaker_rl.job import final_evaluation
from sagemaker_rl.tuning import direction as objective_direction
from sagemaker_rl.tuning import record
from sagemaker_rl.tuning.budget import describe_length
from sagemaker_rl.tuning.ranking import answer, reevaluations
from sagemaker_rl.tuning.record import DEFAULT_CANDIDATE, Role, Status, read
from sagemaker_rl.tuning.rundir import BEST_FILE, MODEL_DIR, REPORT_FILE, TRIALS_FILE

logger = logging.getLogger(__name__)


def write_outputs(
    study: optuna.Study, run_dir: Path, *, objective: str = "episode_reward_mean", html: bool = True
) -> dict[str, Path]:
    """Write trials.csv, best_hyperparameters.json (once a trial completed) and, if `html`, report.html."""
    trials = study.get_trials(deepcopy=False)
    files = {"trials": write_trials_csv(trials, run_dir / TRIALS_FILE)}
    best = best_trial(study)
    if best is not None:
        path = run_dir / BEST_FILE
        write_atomically(path, json.dumps(record.hyperparameters(best), indent=2, sort_keys=True) + "\n")
        files["best_hyperparameters"] = path
    if html:
        files["report"] = write_html(study, run_dir / REPORT_FILE, objective=objective)
    return files


def best_trial(study: optuna.Study) -> FrozenTrial | None:
    """The run's answer (best by re-evaluation, else the search's best trial), or None when no trial completed."""
    return answer(study.get_trials(deepcopy=False), study.direction)


def reevaluation_rows(study: optuna.Study) -> list[dict[str, Any]]:
    """One row per re-evaluated candidate, best first: its search objective, mean and spread on the
    fresh seeds, each seed's value, and the gain over the default (mean difference; per seed, paired)."""
    trials = study.get_trials(deepcopy=False)
    found = reevaluations(trials)
    by_number = {trial.number: trial for trial in trials}
    default = found.get(DEFAULT_CANDIDATE)
    chosen = answer(trials, study.direction)
    rows: list[dict[str, Any]] = []
    for key, item in found.items():
        candidate = by_number.get(key) if isinstance(key, int) else None
        gain = paired = None
        if item.complete and default is not None and default.complete and key != DEFAULT_CANDIDATE:
            gain = objective_direction.gain(item.mean, default.mean, study.direction)  # type: ignore[arg-type]
            if item.seeds == default.seeds:
                paired = [objective_direction.gain(a, b, study.direction)
                          for a, b in zip(item.values, default.values, strict=True)]
        rows.append({
            "candidate": "default" if key == DEFAULT_CANDIDATE else f"trial {key}",
            "answer": "yes" if chosen is not None and chosen.number == item.trial.number else "",
            "status": record.status(item.trial, set()),
            "search_objective": candidate.value if candidate is not None else None,
            "mean": item.mean,
            "spread": item.spread,
            "per_seed": [round(value, 4) for value in item.values],
            "gain_over_default": gain,
            "gain_per_seed": [round(value, 4) for value in paired] if paired else None,
            "seeds": item.seeds,
            "trial": item.trial.number,
        })
    measured = objective_direction.ranked([row for row in rows if row["mean"] is not None], study.direction,
                                          lambda row: row["mean"])
    return measured + [row for row in rows if row["mean"] is None]


def seed_noise(study: optuna.Study) -> tuple[float | None, float | None]:
    """(spread of the search's objectives, seed noise): the standard deviation of the complete search
    trials' objectives, and the pooled standard deviation over seeds within the re-evaluated candidates."""
    trials = study.get_trials(deepcopy=False)
    values = [trial.value for trial in trials if read(trial).is_search and trial.state == TrialState.COMPLETE
              and trial.value is not None]
    spread = statistics.stdev(values) if len(values) > 1 else None
    groups = [item.values for item in reevaluations(trials).values() if item.complete and len(item.values) > 1]
    if not groups:
        return spread, None
    squares = sum(sum((value - statistics.fmean(group)) ** 2 for value in group) for group in groups)
    freedom = sum(len(group) - 1 for group in groups)
    return spread, (squares / freedom) ** 0.5


def trial_rows(trials: Sequence[FrozenTrial]) -> list[dict[str, Any]]:
    """One row per trial: number, status, objective, iterations, duration, tuned values, failure reason."""
    replaced = record.replaced(trials)
    names = _tuned_names(trials)
    records = [read(trial) for trial in trials]
    with_jobs = any(item.training_job is not None for item in records)
    with_outputs = any(item.outputs is not None for item in records)
    rows = []
    for trial, item in zip(trials, records, strict=True):
        tuned = record.tuned(trial)
        row: dict[str, Any] = {
            "trial": trial.number,
            "status": record.status(trial, replaced),
            "role": item.describe(),
            "objective": trial.value if trial.state in (TrialState.COMPLETE, TrialState.PRUNED) else None,
            "env_steps": trial.last_step,
            "duration_s": item.duration_s,
        }
        row.update({name: tuned.get(name) for name in names})
        if with_jobs:
            row["training_job"] = item.training_job
        if with_outputs:  # on the cluster's storage: each a job's base directory, its model in model/
            row["outputs"] = " ".join(item.outputs or [])
        row["rerun_of"] = item.rerun_of
        row["failure"] = item.failure or ""
        rows.append(row)
    return rows


def write_trials_csv(trials: Sequence[FrozenTrial], path: Path) -> Path:
    rows = trial_rows(trials)
    columns = list(rows[0]) if rows else ["trial", "status", "objective"]
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=columns)
    writer.writeheader()
    for row in rows:
        writer.writerow({key: _csv_cell(value) for key, value in row.items()})
    write_atomically(path, text.getvalue())
    return path


def trials_table(study: optuna.Study, *, objective: str = "episode_reward_mean") -> str:
    """The trials as a fixed-width text table (short parameter names)."""
    rows = trial_rows(study.get_trials(deepcopy=False))
    if not rows:
        return "no trials"
    names = _tuned_names(study.get_trials(deepcopy=False))
    columns = ["trial", "status", "objective", "env_steps", "duration_s", *names]
    if any(row["role"] != Role.SEARCH for row in rows):
        columns.insert(2, "role")
    headers = {column: column.rsplit(".", 1)[-1] for column in columns}
    headers["objective"] = objective
    table = [[headers[column] for column in columns]]
    for row in rows:
        table.append([_cell(row[column], digits=4) for column in columns])
    widths = [max(len(line[index]) for line in table) for index in range(len(columns))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip() for line in table]
    failures = [f"  trial {row['trial']}: {row['failure']}" for row in rows if row["status"] == Status.FAILED]
    return "\n".join(lines + (["failed trials:", *failures] if failures else []))


def _model_note(model: Path) -> str:
    """What the run's policy scored at its job's end, and where its own hyperparameters are (they may be another
    configuration's than the answer's: the run keeps its best-evaluated policy)."""
    value = final_evaluation(model)
    return "" if value is None else f" (its final evaluation {value:.6g}; {model / 'params.json'} says how it trained)"


def summary(
    study: optuna.Study,
    files: dict[str, Path],
    *,
    problem: str | None,
    objective: str = "episode_reward_mean",
    stopped_hint: str | None = None,
    code_dir: Path | None = None,
) -> str:
    """The text a tuning run ends with: trials table, the re-evaluation, the answer's hyperparameters,
    files written, and how to train with them (or, for a run that stopped early, `stopped_hint`)."""
    lines = [trials_table(study, objective=objective)]
    rows = reevaluation_rows(study)
    if rows:
        lines += ["", reevaluation_text(rows, objective)]
    best = best_trial(study)
    if best is not None:
        lines += _answer_text(best, objective)
    lines += [f"{label}: {path}{_model_note(path) if label == MODEL_DIR else ''}" for label, path in files.items()]
    if stopped_hint:
        lines.append(f"\nstopped before the end; {stopped_hint}")
    elif "best_hyperparameters" in files:
        best_file = files["best_hyperparameters"]
        target = [*(["--problem", problem] if problem else []), *(["--code-dir", str(code_dir)] if code_dir else [])]
        command = shlex.join(["python", "scripts/train.py", *target, "--hp-file", str(best_file)])
        lines.append(f"\ntrain with them: {command}")
        if best is not None and (length := describe_length(record.hyperparameters(best))):
            if read(best).role is Role.SEGMENT:  # the member learned on a schedule of values, not on these alone
                lines.append(f"(they train the best member's last values for {length} from scratch; the member "
                             "itself learned on schedule.json's values)")
            else:
                lines.append(f"(they train for {length}, the training the answer was judged at)")
    return "\n".join(lines)


def _answer_text(best: FrozenTrial, objective: str) -> list[str]:
    """How the answer was chosen, its hyperparameters and where its model is."""
    item = read(best)
    if item.role is Role.SEGMENT:
        how = (f"\nbest member of the last generation: {item.describe()} (trial {best.number}), "
               f"{objective} {best.value:.6g}; its model and hyperparameter schedule are in the run "
               "directory (model/, schedule.json)")
    elif item.role is Role.REEVALUATION:
        how = (f"\nbest by re-evaluation: {item.describe()[len('re-evaluation of '):]}, "
               f"{objective} {best.value:.6g} (mean over its fresh seeds)")
    else:
        how = f"\nbest {objective}: {best.value:.6g} (trial {best.number}; not re-evaluated)"
    lines = [how, json.dumps(record.hyperparameters(best), indent=2, sort_keys=True)]
    for output in item.outputs or []:
        lines.append(f"model of the best trial (on the cluster's storage): {JobPaths(Path(output)).model}")
    return lines


def reevaluation_text(rows: Sequence[dict[str, Any]], objective: str) -> str:
    """The re-evaluation as a fixed-width table with a line saying what was compared."""
    seeds: list[int] = next((row["seeds"] for row in rows if row["seeds"]), [])
    head = f"re-evaluated on seeds {', '.join(map(str, seeds))} (no search trial used them), {objective}:"
    columns = ["candidate", "answer", "search_objective", "mean", "spread", "gain_over_default", "per_seed",
               "gain_per_seed"]
    table = [["candidate", "answer", "search", "mean", "std", "gain", "per seed", "gain per seed"]]
    for row in rows:
        cells = [_cell(row[column], digits=4) for column in columns]
        if row["status"] != Status.COMPLETE:
            cells[3] = row["status"]
        table.append(cells)
    widths = [max(len(line[index]) for line in table) for index in range(len(columns))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip() for line in table]
    return "\n".join([head, *lines])


def write_html(study: optuna.Study, path: Path, *, objective: str = "episode_reward_mean") -> Path:
    """A self-contained HTML report (plotly.js inlined once)."""
    trials = study.get_trials(deepcopy=False)
    best = best_trial(study)
    sections = [
        f"<h1>Tuning run {html.escape(study.study_name)}</h1>",
        _summary_html(trials, best, objective),
    ]
    rows = reevaluation_rows(study)
    if rows:
        sections.append("<h2>Re-evaluation on fresh seeds</h2><p>" + html.escape(
            f"The search's best configurations and the default, each trained again with the trials' budget on "
            f"seeds {', '.join(map(str, rows[0]['seeds']))}, which no search trial used; gain = mean minus the "
            "default's mean (per seed: paired on the same seed).") + "</p>" + table_html(rows))
    sections += _figures_html(study, trials, best, objective)
    sections.append("<h2>All trials</h2>" + table_html(trial_rows(trials)))
    page = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Tuning report</title><style>"
        "body{font-family:sans-serif;margin:2em} table{border-collapse:collapse;font-size:90%}"
        "td,th{border:1px solid #ccc;padding:2px 6px;text-align:left} .failed{color:#a00}"
        "</style></head><body>" + "\n".join(sections) + "</body></html>\n"
    )
    write_atomically(path, page)
    return path


def _figures_html(
    study: optuna.Study, trials: Sequence[FrozenTrial], best: FrozenTrial | None, objective: str
) -> list[str]:
    """Each figure under its title (a figure that cannot be drawn says why)."""
    import plotly.io as pio

    roles = [read(trial) for trial in trials]
    search = [trial for trial, item in zip(trials, roles, strict=True) if item.is_search]
    population = [trial for trial, item in zip(trials, roles, strict=True) if item.role is Role.SEGMENT]
    lineage = [("Population: every member's curve, exploits marked", _lineage_figure(population, objective))]
    figures = [
        *(lineage if population else []),
        ("Objective per trial", _objective_figure(trials, best, study.direction, objective)),
        ("Learning curves against env steps", _curves_figure(trials, best, objective, wall_time=False)),
        ("Learning curves against wall time", _curves_figure(trials, best, objective, wall_time=True)),
        ("Parameter importance", _importance_figure(study, search)),
        ("Slices: objective against each parameter", _slices_figure(search, objective)),
    ]
    sections = []
    inlined = False
    for title, figure in figures:
        sections.append(f"<h2>{html.escape(title)}</h2>")
        if isinstance(figure, str):
            sections.append(f"<p>{html.escape(figure)}</p>")
            continue
        sections.append(pio.to_html(figure, include_plotlyjs=not inlined, full_html=False, default_height="480px"))
        inlined = True
    return sections


def _summary_html(trials: Sequence[FrozenTrial], best: FrozenTrial | None, objective: str) -> str:
    counts = {str(label): n for label, n in record.counts(trials).items() if n}
    parts = [f"<p>{len(trials)} trials: " + ", ".join(f"{n} {label}" for label, n in sorted(counts.items())) + "</p>"]
    if best is None:
        parts.append("<p>No trial completed yet.</p>")
    else:
        item = read(best)
        how = (f"the best member of the last generation: {item.describe()}" if item.role is Role.SEGMENT else
               "best by re-evaluation: " + item.describe()[len("re-evaluation of "):] + ", mean over fresh seeds"
               if item.role is Role.REEVALUATION else f"best trial {best.number}, not re-evaluated")
        parts.append(f"<h2>Answer ({html.escape(how)}): {html.escape(objective)} = {best.value:.6g}</h2>")
        rows = [{"hyperparameter": key, "value": value} for key, value in sorted(record.hyperparameters(best).items())]
        parts.append(table_html(rows))
    return "\n".join(parts)


def _objective_figure(
    trials: Sequence[FrozenTrial], best: FrozenTrial | None, direction: StudyDirection, objective: str
) -> Any:
    """Each trial's objective, and the best so far in the study's direction (the answer may be a
    re-evaluation scored on other seeds, so it cannot tell the direction)."""
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
        running = objective_direction.running_best([trial.value for trial in complete], direction)  # type: ignore[misc]
        figure.add_trace(go.Scatter(x=[trial.number for trial in complete], y=running, mode="lines",
                                    line={"shape": "hv"}, name="best so far"))
    figure.update_layout(xaxis_title="trial", yaxis_title=objective, margin={"t": 20})
    return figure


def _curves_figure(trials: Sequence[FrozenTrial], best: FrozenTrial | None, objective: str, *, wall_time: bool) -> Any:
    import plotly.graph_objects as go

    curves = [trial for trial in trials if trial.intermediate_values and (read(trial).curve_s is not None
                                                                           or not wall_time)]
    if not curves:
        return "No trial has reported a value yet."
    figure = go.Figure()
    for trial in curves:
        steps = sorted(trial.intermediate_values)
        seconds = read(trial).curve_s or {}
        if wall_time:
            steps = [step for step in steps if str(step) in seconds]
        is_best = best is not None and trial.number == best.number
        figure.add_trace(
            go.Scatter(
                x=[seconds[str(step)] for step in steps] if wall_time else steps,
                y=[trial.intermediate_values[step] for step in steps],
                mode="lines+markers",
                name=f"trial {trial.number}{' (answer)' if is_best else ''} [{read(trial).describe()}, "
                f"{trial.state.name.lower()}]",
                line={"width": 4 if is_best else 1.5},
                opacity=1.0 if is_best else 0.6,
                hovertext=_hover(trial),
            )
        )
    axis = "seconds since the trial started" if wall_time else "env steps"
    figure.update_layout(xaxis_title=axis, yaxis_title=objective, margin={"t": 20})
    return figure


def _lineage_figure(segments: Sequence[FrozenTrial], objective: str) -> Any:
    """Each PBT member's curve across its segments; an exploit is a dashed jump from the donor's last value."""
    import plotly.colors
    import plotly.graph_objects as go

    by_number = {trial.number: trial for trial in segments}
    palette = plotly.colors.qualitative.Plotly
    figure = go.Figure()
    records = {trial.number: read(trial) for trial in segments}
    members = sorted({item.member for item in records.values() if item.member is not None})
    for member in members:
        color = palette[member % len(palette)]
        own = sorted((trial for trial in segments if records[trial.number].member == member and
                      trial.intermediate_values), key=lambda trial: records[trial.number].generation or 0)
        steps: list[int | None] = []
        values: list[float | None] = []
        for trial in own:
            if records[trial.number].exploited is not None:  # its own curve ends here: a gap
                steps.append(None)
                values.append(None)
            for step in sorted(trial.intermediate_values):
                steps.append(step)
                values.append(trial.intermediate_values[step])
        figure.add_trace(go.Scatter(x=steps, y=values, mode="lines", name=f"member {member}",
                                    line={"color": color}, legendgroup=str(member)))
        for trial in own:
            item = records[trial.number]
            donor = by_number.get(item.parent) if item.parent is not None else None
            if item.exploited is None or donor is None or not donor.intermediate_values:
                continue
            end, start = max(donor.intermediate_values), min(trial.intermediate_values)
            figure.add_trace(go.Scatter(
                x=[end, start], y=[donor.intermediate_values[end], trial.intermediate_values[start]],
                mode="lines+markers", line={"dash": "dash", "color": color},
                marker={"symbol": ["circle", "star"], "size": 10},
                name=f"exploit: member {member} takes member {item.exploited}'s checkpoint",
                legendgroup=str(member), showlegend=False, hovertext=_hover(trial)))
    figure.update_layout(xaxis_title="env steps", yaxis_title=objective, margin={"t": 20})
    return figure


def _importance_figure(study: optuna.Study, search: Sequence[FrozenTrial]) -> Any:
    """fANOVA importances over the search trials, titled unreliable when their spread is within the
    seed noise the re-evaluation measured (the importances would then rank noise)."""
    import plotly.graph_objects as go

    complete = [trial for trial in search if trial.state == TrialState.COMPLETE]
    if len(complete) < 2:
        return "Parameter importance needs at least two complete trials."
    view = optuna.create_study(direction=study.direction)  # the search alone: re-evaluations have no parameters
    view.add_trials(complete)
    spread, noise = seed_noise(study)
    if noise is None or spread is None:
        verdict = "not checked against seed noise (no re-evaluation)"
    elif spread > 2 * noise:
        verdict = f"reliable: the trials' spread ({spread:.3g}) is over twice the seed noise ({noise:.3g})"
    else:
        verdict = (f"UNRELIABLE: the trials' spread ({spread:.3g}) is within twice the seed noise ({noise:.3g}); "
                   "the ranking may be noise")
    try:
        importances = optuna.importance.get_param_importances(view)
    except (RuntimeError, ValueError) as error:
        logger.info("no parameter importances: %s", error)
        return f"Parameter importance is not available: {error}"
    if not importances:
        return "Parameter importance is not available: no parameter varied across complete trials."
    names = list(importances)[::-1]
    figure = go.Figure(go.Bar(x=[importances[name] for name in names], y=names, orientation="h"))
    figure.update_layout(xaxis_title="importance (fANOVA, share of objective variance)", margin={"t": 40},
                         title={"text": verdict, "font": {"size": 13}})
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
        if getattr(distribution, "log", False):  # ticks as 1e-4, 3e-4, ... not plotly's bare mantissas
            figure.update_xaxes(type="log", dtick="D2", exponentformat="e", tickformat=".0e", row=1, col=column)
        figure.update_xaxes(title_text=name if name.startswith("1-") else "", row=1, col=column)
    figure.update_yaxes(title_text=objective, row=1, col=1)
    figure.update_layout(margin={"t": 40})
    return figure


def table_html(rows: Sequence[dict[str, Any]]) -> str:
    """Rows (e.g. `trial_rows`) as an HTML table, failed ones marked (a notebook shows a running study with it)."""
    if not rows:
        return "<p>No trials.</p>"
    columns = list(rows[0])
    head = "".join(f"<th>{html.escape(str(column))}</th>" for column in columns)
    body = []
    for row in rows:
        css = " class='failed'" if row.get("status") == Status.FAILED else ""
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


_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # a spreadsheet runs a cell starting so as a formula


def _csv_cell(value: Any) -> str:
    """A trials.csv cell: text that a spreadsheet would run as a formula is quoted with a leading '."""
    text = _cell(value)
    return "'" + text if isinstance(value, str) and text.startswith(_FORMULA_STARTS) else text
