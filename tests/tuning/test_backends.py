"""Backends: the runner a run's jobs use is recorded in its run directory and found there again on resume."""

from __future__ import annotations

import pytest

from sagemaker_rl.engine import ContainerSettings
from sagemaker_rl.tuning import TuningError, backends
from sagemaker_rl.tuning.container_runner import ContainerRunner


def test_the_ray_address_is_the_given_one_else_rays_own_variables_in_rays_order():
    environ = {"RAY_ADDRESS": "http://b:8265", "RAY_API_SERVER_ADDRESS": "http://a:8265"}
    assert backends.ray_address("http://given:8265", environ) == "http://given:8265"
    assert backends.ray_address(None, environ) == "http://a:8265"
    assert backends.ray_address(None, {"RAY_ADDRESS": "http://b:8265"}) == "http://b:8265"
    assert backends.ray_address(None, {}) == ""


def test_a_container_run_is_resumed_in_the_image_it_recorded_and_a_local_run_locally(tmp_path):
    settings = ContainerSettings(image="sagemaker-rl:0.1.0-cpu", engine="podman", instance_count=2, run_name="r")
    runner = backends.new_runner(tmp_path, container=settings)
    assert isinstance(runner, ContainerRunner)
    backends.record(runner, tmp_path)
    again = backends.runner_to_resume(tmp_path)
    assert isinstance(again, ContainerRunner) and again.settings == settings
    assert backends.runner_to_resume(tmp_path / "elsewhere") is None
    assert backends.new_runner(tmp_path) is None and backends.stopped_note(None) is None


def test_ray_needs_a_storage_path_and_pbt_one_this_machine_can_write(tmp_path):
    with pytest.raises(TuningError, match="--backend ray needs --storage-path"):
        backends.ray_cluster("http://127.0.0.1:1", None)
    with pytest.raises(TuningError, match="is not a directory this machine can write"):
        backends.check_pbt_storage(str(tmp_path / "missing"))
    backends.check_pbt_storage(str(tmp_path))
    backends.check_pbt_storage(None)
