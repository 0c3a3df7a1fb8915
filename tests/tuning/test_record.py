"""The trial record's schema: the stored keys never change, roles and statuses are types, one reader and writer."""

from __future__ import annotations

import dataclasses

import optuna
from optuna.trial import TrialState, create_trial

from sagemaker_rl.contract import FAILURE_LINE_LIMIT
from sagemaker_rl.tuning.record import (
    IDENTICAL,
    TRANSFER,
    Role,
    Status,
    TrialRecord,
    read,
    status,
    write,
)

# Every key a study written by an earlier version holds; renaming one would lose it on load.
STORED_KEYS = {
    "run_dir", "trial_dir", "tuned", "hyperparameters", "failure", "interrupted", "rerun_of", "duration_s",
    "seed_objectives", "training_job", "outputs", "seeds", "reevaluation_of", "warm_start_from", "curve_wall_s",
    "pbt_member", "pbt_generation", "pbt_parent", "pbt_exploited_from",
}


def _filled() -> TrialRecord:
    values = {"interrupted": True, "rerun_of": 1, "duration_s": 2.5, "member": 0, "generation": 1, "parent": 3,
              "exploited": 2, "reevaluation_of": 4, "warm_start": {"run": "/r", "trial": 1, "type": IDENTICAL},
              "seeds": [1], "seed_objectives": [1.0], "outputs": ["/o"], "tuned": {"a": 1},
              "hyperparameters": {"a": 1}, "curve_s": {"10": 1.0}}
    return TrialRecord(**{item.name: values.get(item.name, item.name) for item in dataclasses.fields(TrialRecord)})


def test_every_field_is_stored_under_the_key_earlier_studies_hold_and_reads_back():
    record = _filled()
    assert set(record.attrs()) == STORED_KEYS
    trial = create_trial(state=TrialState.COMPLETE, value=1.0, user_attrs=record.attrs())
    assert read(trial) == record
    assert read(create_trial(state=TrialState.COMPLETE, value=1.0)) == TrialRecord()  # no attributes: all None


def test_a_role_follows_from_the_record():
    assert TrialRecord().role is Role.SEARCH and TrialRecord().describe() == "search"
    assert TrialRecord(reevaluation_of=7).describe() == "re-evaluation of trial 7"
    assert TrialRecord(reevaluation_of="default").describe() == "re-evaluation of default"
    warm = TrialRecord(warm_start={"run": "/runs/parent", "trial": 3, "type": TRANSFER})
    assert warm.role is Role.WARM_START and warm.describe() == "warm start (parent trial 3)"
    segment = TrialRecord(member=1, generation=2, parent=5, exploited=0)
    assert segment.role is Role.SEGMENT and segment.describe() == "member 1, generation 2, from member 0's checkpoint"
    assert [record.is_search for record in (TrialRecord(), segment, warm)] == [True, True, False]
    assert [record.comparable for record in (TrialRecord(), warm, TrialRecord(warm_start={"type": IDENTICAL}),
                                             TrialRecord(reevaluation_of=1))] == [True, False, True, False]
    assert [record.replanned for record in (TrialRecord(), segment, TrialRecord(reevaluation_of=1))] == [
        False, True, True]


def test_a_segment_stores_its_parent_and_exploit_even_when_none():
    assert TrialRecord(member=0, generation=0).attrs() == {
        "pbt_member": 0, "pbt_generation": 0, "pbt_parent": None, "pbt_exploited_from": None}
    assert TrialRecord(rerun_of=3).attrs() == {"rerun_of": 3}


def test_the_writer_keeps_a_failure_to_its_line_limit_and_statuses_print_as_before():
    study = optuna.create_study()
    trial = study.ask()
    write(trial, failure="x" * 5000, interrupted=True)
    study.tell(trial, state=TrialState.FAIL)
    (frozen,) = study.trials
    assert len(frozen.user_attrs["failure"]) == FAILURE_LINE_LIMIT
    assert status(frozen, set()) is Status.INTERRUPTED and f"{status(frozen, set())}" == "interrupted"
    assert [str(item) for item in Status] == ["complete", "pruned", "failed", "running", "waiting", "interrupted"]
