"""The container engine's side of a job, with a stand-in engine command that records what it is asked (the real
engines run in tests/image)."""

from __future__ import annotations

import re
from pathlib import Path

from sagemaker_rl import contract, engine
from sagemaker_rl.engine import ContainerSettings, JobContainers


def _fake_engine(tmp_path: Path) -> tuple[str, Path]:
    """An executable that appends its arguments to a log and succeeds, as `podman`/`docker` would (no output)."""
    log = tmp_path / "engine.log"
    engine = tmp_path / "engine"
    engine.write_text(f'#!/bin/sh\necho "$@" >> {log}\n')
    engine.chmod(0o755)
    return str(engine), log


def test_the_hosts_of_a_multi_host_job_share_a_token_file_of_their_own_never_on_the_command_line(tmp_path):
    engine, log = _fake_engine(tmp_path)
    settings = ContainerSettings(image="sagemaker-rl:test", engine=engine, instance_count=2)
    job = JobContainers(tmp_path / "job", "reacher", settings, cpus_per_host=1)
    job.write_inputs({"rl.training.stop.training_iteration": 1})
    head, others = job.start(None)
    for process in (head, *others):
        process.wait()
    files = [job.paths(host).ray_token_file for host in job.hosts]
    assert [file.stat().st_mode & 0o777 for file in files] == [0o600, 0o600]
    tokens = {file.read_text() for file in files}
    assert len(tokens) == 1 and re.fullmatch(r"[0-9a-f]{64}", token := tokens.pop())
    assert files[0] == tmp_path / "job" / "input" / "config" / contract.RAY_TOKEN_FILE
    assert re.search(r"^run ", log.read_text(), re.M) and token not in log.read_text()
    job.remove()
    assert not any(file.exists() for file in files)


def test_a_single_host_job_gets_no_token_file(tmp_path):
    engine, _ = _fake_engine(tmp_path)
    job = JobContainers(tmp_path / "job", "reacher", ContainerSettings(image="i", engine=engine), cpus_per_host=1)
    job.write_inputs({})
    head, _ = job.start(None)
    head.wait()
    assert not job.paths("algo-1").ray_token_file.exists()


def test_a_job_with_the_users_code_gets_the_runs_bundle_mounted_and_named_as_the_submit_directory(tmp_path):
    bundle = tmp_path / "sourcedir.tar.gz"
    bundle.write_bytes(b"")
    settings = ContainerSettings(image="sagemaker-rl:test", engine="podman", instance_count=2)
    job = JobContainers(tmp_path / "job", None, settings, cpus_per_host=1, code_bundle=bundle)
    job.write_inputs({"rl.env.id": "my_pkg.envs:MyRobot"})
    for host in job.hosts:
        written = contract.read_hyperparameters(job.paths(host))
        assert contract.decode_value(written[contract.SUBMIT_DIRECTORY_KEY]) == engine.SUBMIT_MOUNT
        assert contract.decode_value(written[contract.PROGRAM_KEY]) == "train-env.py"
        command = job._run_command(host)
        assert f"{bundle}:/opt/sagemaker-rl/submit/sourcedir.tar.gz:ro" in command
        assert "SAGEMAKER_PROGRAM=train-env.py" in command
    plain = JobContainers(tmp_path / "plain", "reacher", settings, cpus_per_host=1)
    assert "SAGEMAKER_PROGRAM=train-reacher.py" in plain._run_command("algo-1")
    assert not any("/opt/sagemaker-rl/submit" in part for part in plain._run_command("algo-1"))
