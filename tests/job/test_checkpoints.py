"""Checkpoints on disk: the newest complete one is found, and the job state file keeps its format."""

from __future__ import annotations

import dataclasses
import json

from sagemaker_rl.job.checkpoints import (
    CHECKPOINT_PREFIX,
    FILES_FILE,
    JOB_STATE_FILE,
    JobState,
    _file_list,
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


def _checkpoint(directory, iteration: int, payload: bytes) -> None:
    """A checkpoint as save_checkpoint lays it out: the algorithm's files, their list, the state last."""
    checkpoint = directory / f"{CHECKPOINT_PREFIX}{iteration:06d}"
    (checkpoint / "algorithm" / "learner").mkdir(parents=True)
    (checkpoint / "algorithm" / "learner" / "module_state.pt").write_bytes(payload)
    (checkpoint / FILES_FILE).write_text(json.dumps(_file_list(checkpoint)))
    (checkpoint / JOB_STATE_FILE).write_text(json.dumps(vars(JobState(training_iteration=iteration))))


def test_a_checkpoint_cut_short_or_damaged_on_disk_is_skipped_for_the_one_before_it(tmp_path, caplog):
    for iteration in (1, 2, 3):
        _checkpoint(tmp_path, iteration, bytes(range(256)) * iteration)
    weights = tmp_path / f"{CHECKPOINT_PREFIX}000003" / "algorithm" / "learner" / "module_state.pt"
    weights.write_bytes(weights.read_bytes()[:100])  # cut short, as by a crash of the machine
    state, checkpoint = latest_checkpoint(tmp_path)
    assert checkpoint == tmp_path / f"{CHECKPOINT_PREFIX}000002" and state.training_iteration == 2
    assert "skipping damaged checkpoint" in caplog.text and "has 100 bytes, 768 when written" in caplog.text

    damaged = bytearray((tmp_path / f"{CHECKPOINT_PREFIX}000002" / "algorithm/learner/module_state.pt").read_bytes())
    damaged[7] ^= 0xFF  # same size, other content
    (tmp_path / f"{CHECKPOINT_PREFIX}000002" / "algorithm/learner/module_state.pt").write_bytes(bytes(damaged))
    (tmp_path / f"{CHECKPOINT_PREFIX}000001" / JOB_STATE_FILE).write_text('{"training_iteration": ')  # cut short
    assert latest_checkpoint(tmp_path) == (JobState(), None)
    assert "module_state.pt differs from what was written" in caplog.text


def test_a_checkpoint_without_a_file_list_is_resumed_as_it_is(tmp_path):
    _checkpoint(tmp_path, 4, b"weights")
    (tmp_path / f"{CHECKPOINT_PREFIX}000004" / FILES_FILE).unlink()  # written before the list existed
    assert latest_checkpoint(tmp_path)[0].training_iteration == 4
