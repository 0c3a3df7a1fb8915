"""Checkpoints on disk: the newest complete one is found, and the job state file keeps its format."""

from __future__ import annotations

import dataclasses
import json

from sagemaker_rl.job.checkpoints import (
    CHECKPOINT_PREFIX,
    JOB_STATE_FILE,
    JobState,
    _kl_coeff_to_continue,
    latest_checkpoint,
)
from sagemaker_rl.job.hyperparameters import parse_hyperparameters

# The job_state.json fields of checkpoints written so far: a resume reads them back into JobState.
STATE_FIELDS = ["training_iteration", "timesteps_total", "time_total_s", "kl_coeff", "kl_coeff_setting",
                "best_reward", "recent_episodes", "last_reward", "network"]


def test_the_newest_complete_checkpoint_is_resumed_and_an_incomplete_one_skipped(tmp_path):
    for iteration, complete in ((5, True), (10, True), (15, False)):
        directory = tmp_path / f"{CHECKPOINT_PREFIX}{iteration:06d}"
        directory.mkdir()
        if complete:
            (directory / JOB_STATE_FILE).write_text(json.dumps(vars(JobState(training_iteration=iteration))))
    state, checkpoint = latest_checkpoint(tmp_path)
    assert checkpoint == tmp_path / f"{CHECKPOINT_PREFIX}000010" and state.training_iteration == 10
    assert latest_checkpoint(tmp_path / "none") == (JobState(), None)


def test_the_job_state_file_keeps_its_fields():
    assert [field.name for field in dataclasses.fields(JobState)] == STATE_FIELDS


def test_the_adapted_kl_coeff_continues_only_under_the_setting_it_adapted_from():
    job = parse_hyperparameters({"rl.training.config.kl_coeff": 0.3}, "reacher")
    assert _kl_coeff_to_continue(JobState(kl_coeff=0.45, kl_coeff_setting=0.3), job) == 0.45
    assert _kl_coeff_to_continue(JobState(kl_coeff=0.45, kl_coeff_setting=None), job) == 0.45  # an older state
    assert _kl_coeff_to_continue(JobState(kl_coeff=0.45, kl_coeff_setting=0.2), job) is None  # PBT changed it
    assert _kl_coeff_to_continue(JobState(), job) is None
