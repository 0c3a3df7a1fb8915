"""Report: trials.csv, best_hyperparameters.json and an offline HTML report, from an in-memory study."""

from __future__ import annotations

import csv
import json
import re

import optuna
from optuna.distributions import FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial

from sagemaker_rl.tuning import report
from sagemaker_rl.tuning.record import TrialRecord

optuna.logging.set_verbosity(optuna.logging.WARNING)
DISTRIBUTIONS = {
    "rl.training.config.kl_coeff": FloatDistribution(0.5, 1.0),
    "rl.training.config.num_epochs": IntDistribution(3, 50, log=True),
}
STATIC = {"rl.training.stop.time_total_s": 120}


def _trial(state: TrialState, kl: float, epochs: int, curve: list[float], **attrs) -> optuna.trial.FrozenTrial:
    params = {"rl.training.config.kl_coeff": kl, "rl.training.config.num_epochs": epochs}
    return create_trial(
        state=state,
        value=curve[-1] if state in (TrialState.COMPLETE, TrialState.PRUNED) else None,
        params=params,
        distributions=DISTRIBUTIONS,
        intermediate_values=dict(enumerate(curve, start=1)),
        user_attrs={"tuned": params, "hyperparameters": {**STATIC, **params}, "duration_s": 12.5, **attrs},
    )


def _study() -> optuna.Study:
    study = optuna.create_study(direction="maximize", study_name="fake-run")
    study.add_trial(_trial(TrialState.COMPLETE, 0.6, 10, [-20.0, -12.0, -8.0]))
    study.add_trial(_trial(TrialState.COMPLETE, 0.9, 30, [-18.0, -9.0, -4.5]))
    study.add_trial(_trial(TrialState.PRUNED, 0.7, 5, [-30.0, -29.0]))
    study.add_trial(_trial(TrialState.FAIL, 0.8, 40, [-25.0], failure="the job failed: RuntimeError: boom"))
    study.add_trial(_trial(TrialState.COMPLETE, 0.5, 3, [-22.0, -15.0, -11.0]))
    study.add_trial(_trial(TrialState.FAIL, 0.55, 7, [-21.0], interrupted=True))
    return study


def test_outputs_are_written_for_a_study(tmp_path):
    files = report.write_outputs(_study(), tmp_path)
    assert set(files) == {"trials", "best_hyperparameters", "report"}
    rows = list(csv.DictReader(open(tmp_path / "trials.csv")))
    assert [row["status"] for row in rows] == [
        "complete",
        "complete",
        "pruned",
        "failed",
        "complete",
        "interrupted",
    ]
    assert rows[3]["failure"] == "the job failed: RuntimeError: boom"
    assert float(rows[1]["objective"]) == -4.5 and rows[1]["rl.training.config.num_epochs"] == "30"
    assert json.loads((tmp_path / "best_hyperparameters.json").read_text()) == {
        "rl.training.stop.time_total_s": 120,
        "rl.training.config.kl_coeff": 0.9,
        "rl.training.config.num_epochs": 30,
    }


def test_html_report_is_self_contained_and_shows_every_part(tmp_path):
    path = report.write_html(_study(), tmp_path / "report.html")
    page = path.read_text()
    assert "<script src=" not in page  # no CDN: plotly.js is inlined
    assert page.count("plotly.js v") == 1  # once, not per figure
    for heading in (
        "Answer (best trial 1, not re-evaluated)",
        "Objective per trial",
        "Learning curves",
        "Parameter importance",
        "Slices",
        "All trials",
    ):
        assert heading in page
    assert "trial 4 (answer)" not in page and "trial 1 (answer)" in page  # the answer's curve is marked
    assert "RuntimeError: boom" in page
    assert "Parameter importance is not available" not in page  # computed from the three complete trials
    assert "importance (fANOVA" in page


def test_report_of_a_study_without_complete_trials_says_so(tmp_path):
    study = optuna.create_study(direction="maximize", study_name="empty")
    study.add_trial(_trial(TrialState.FAIL, 0.8, 40, [-25.0], failure="no reward line"))
    files = report.write_outputs(study, tmp_path)
    assert "best_hyperparameters" not in files
    page = files["report"].read_text()
    assert "No trial completed yet" in page and "at least two complete trials" in page
    assert "no reward line" in report.trials_table(study)


def test_text_table_lists_trials_and_failures():
    table = report.trials_table(_study())
    lines = table.splitlines()
    assert lines[0].split() == [
        "trial",
        "status",
        "episode_reward_mean",
        "env_steps",
        "duration_s",
        "kl_coeff",
        "num_epochs",
    ]
    assert lines[2].split()[:3] == ["1", "complete", "-4.5"]
    assert "trial 3: the job failed: RuntimeError: boom" in table


def _best_so_far(page: str) -> tuple[list[float], list[float]]:
    found = re.search(r'"name":"best so far","x":\[([^\]]*)\],"y":\[([^\]]*)\]', page)
    assert found is not None
    return [float(x) for x in found[1].split(",")], [float(y) for y in found[2].split(",")]


def test_the_best_so_far_line_follows_the_studys_direction_when_the_answer_is_a_reevaluation(tmp_path):
    study = _study()  # maximize: search objectives -8, -4.5 and -11
    for key, per_seed in ((1, [-9.0, -10.0]), ("default", [-12.0, -12.0])):  # fresh seeds score lower
        study.add_trial(create_trial(state=TrialState.COMPLETE, value=sum(per_seed) / 2, user_attrs=TrialRecord(
            reevaluation_of=key, seeds=[10_000, 10_001], seed_objectives=per_seed, tuned={},
            hyperparameters=STATIC).attrs()))
    assert report.best_trial(study).number == 6  # the answer: trial 1's re-evaluation, below the search's best
    xs, ys = _best_so_far(report.write_html(study, tmp_path / "report.html").read_text())
    assert xs == [0, 1, 4, 6, 7]
    assert ys == [-8.0, -4.5, -4.5, -4.5, -4.5]  # the maximum so far, not the minimum


def test_the_best_so_far_line_of_a_minimizing_study_tracks_the_minimum(tmp_path):
    study = optuna.create_study(direction="minimize", study_name="fake-run")
    for trial in _study().trials:
        study.add_trial(trial)
    xs, ys = _best_so_far(report.write_html(study, tmp_path / "report.html").read_text())
    assert (xs, ys) == ([0, 1, 4], [-8.0, -8.0, -11.0])
