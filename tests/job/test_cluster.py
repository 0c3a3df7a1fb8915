"""A multi-host job's hosts as resourceconfig.json names them (the cluster itself: tests/image/test_multihost.py)."""

from __future__ import annotations

import os

import pytest

from sagemaker_rl.errors import UserError
from sagemaker_rl.job.cluster import Hosts, hosts_of, timeout_from


def test_the_first_host_is_the_head():
    hosts = hosts_of({"current_host": "algo-2", "hosts": ["algo-1", "algo-2"]})
    assert hosts == Hosts("algo-2", ("algo-1", "algo-2"))
    assert hosts.head == "algo-1" and hosts.multi and not hosts.is_head
    assert not hosts_of({"current_host": "algo-1", "hosts": ["algo-1"]}).multi


@pytest.mark.parametrize(("resources", "expected"), [
    ({"current_host": "algo-1", "hosts": []}, "hosts must be a list of host names, got []"),
    ({"current_host": "algo-1", "hosts": "algo-1"}, "hosts must be a list of host names, got 'algo-1'"),
    ({"current_host": "algo-3", "hosts": ["algo-1", "algo-2"]}, "current_host 'algo-3' is not one of its hosts"),
])
def test_a_resource_config_that_does_not_name_the_hosts_is_refused_with_the_fix(resources, expected):
    with pytest.raises(UserError, match="resourceconfig.json") as error:
        hosts_of(resources)
    assert expected in str(error.value)


@pytest.mark.parametrize(("raw", "expected"), [
    ({}, 300.0), ({"rl.training.cluster_timeout_s": "15"}, 15.0), ({"rl.training.cluster_timeout_s": 2.5}, 2.5),
    ({"rl.training.cluster_timeout_s": "soon"}, 300.0), ({"rl.training.cluster_timeout_s": "0"}, 300.0),
])
def test_the_cluster_timeout_is_read_before_the_job_parses_its_hyperparameters(raw, expected):
    assert timeout_from(raw) == expected


def test_the_hosts_use_the_token_their_launcher_gave_and_say_so_when_there_is_none(tmp_path, monkeypatch, caplog):
    from sagemaker_rl import contract
    from sagemaker_rl.job.cluster import use_token

    for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH", "RAY_AUTH_TOKEN"):  # as they were, after the test
        monkeypatch.delenv(name, raising=False)
    use_token(tmp_path / "none")  # SageMaker: no shared token
    assert "RAY_AUTH_MODE" not in os.environ
    assert [record.getMessage().split(":")[0] for record in caplog.records] == [
        "the job's Ray cluster runs without token authentication"]
    token = tmp_path / contract.RAY_TOKEN_FILE
    contract.write_ray_token(token)
    use_token(token)
    assert os.environ["RAY_AUTH_MODE"] == "token" and os.environ["RAY_AUTH_TOKEN_PATH"] == str(token)
