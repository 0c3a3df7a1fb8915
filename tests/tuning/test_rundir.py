"""The run directory's layout and lock."""

from __future__ import annotations

import pytest

from sagemaker_rl.tuning import TuningError, rundir


def test_default_storage_is_sqlite_in_the_run_directory(tmp_path):
    assert rundir.default_storage(tmp_path) == f"sqlite:///{tmp_path / 'study.db'}"
    assert rundir.trial_dir(tmp_path, 12) == tmp_path / "trials" / "0012"
    assert rundir.job_dirs(tmp_path, 1) == [tmp_path]
    assert rundir.job_dirs(tmp_path, 2) == [tmp_path / "seed-0", tmp_path / "seed-1"]


def test_the_lock_admits_one_tuner_and_tuning_json_is_written_whole(tmp_path):
    assert not rundir.is_held(tmp_path) and not rundir.is_run_dir(tmp_path)
    with pytest.raises(TuningError, match="is not a tuning run directory"):
        rundir.read_config_file(tmp_path)
    with rundir.locked(tmp_path):
        assert rundir.is_held(tmp_path)
        with pytest.raises(TuningError, match="another tuner is running"):
            with rundir.locked(tmp_path):
                pass
        rundir.write_config_file(tmp_path, {"problem": "reacher"})
    assert not rundir.is_held(tmp_path)
    assert rundir.read_config_file(tmp_path) == {"problem": "reacher"} and rundir.is_run_dir(tmp_path)
    assert sorted(path.name for path in tmp_path.iterdir()) == [".lock", "tuning.json"]  # no partial file left
