"""A multi-host job of the image, laid out as SageMaker lays it out: one Ray cluster, or a clear failure.

The test starts the containers itself (not through sagemaker_rl.engine), as SageMaker and its SDK's
local mode do: `algo-1` and `algo-2` on one network, each with its own /opt/ml tree whose
resourceconfig.json lists both hosts and names the current one.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import TINY_PPO
from tests.image.test_image import DOCKER, IMAGE

HOSTS = ["algo-1", "algo-2"]


class Network:
    """A network of containers named as SageMaker names its hosts; everything it started is removed at the end."""

    def __init__(self) -> None:
        self.name = f"sagemaker-rl-test-{secrets.token_hex(4)}"
        self.containers: list[str] = []
        subprocess.run([DOCKER, "network", "create", self.name], check=True, capture_output=True)

    def start(self, host: str, base: Path, *command: str) -> subprocess.Popen[str]:
        """Host `host` with `base` as its /opt/ml, running `command` (default: the job, as SageMaker runs it)."""
        name = f"{self.name}-{host}"
        self.containers.append(name)
        run = [DOCKER, "run", "--rm", "--name", name, "--hostname", host, "--network", self.name,
               "--network-alias", host, "--cpus", "1", "--shm-size=2g", "-v", f"{base}:/opt/ml",
               "-e", "SAGEMAKER_PROGRAM=train-reacher.py", f"{IMAGE}-cpu", *(command or ["train"])]
        return subprocess.Popen(run, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def close(self) -> None:
        for name in self.containers:  # one at a time: one already gone (--rm) fails a command naming several
            subprocess.run([DOCKER, "kill", name], capture_output=True)  # rm -f would wait for SIGTERM first
            subprocess.run([DOCKER, "rm", "-f", name], capture_output=True)
        subprocess.run([DOCKER, "network", "rm", self.name], capture_output=True)


@pytest.fixture
def network():
    net = Network()
    yield net
    net.close()


def host_dir(tmp_path: Path, host: str, hyperparameters: dict[str, object]) -> Path:
    """/opt/ml of one host: hyperparameters.json as SageMaker writes it and a resourceconfig.json naming it."""
    config = tmp_path / host / "input" / "config"
    config.mkdir(parents=True)
    (config / "hyperparameters.json").write_text(json.dumps({k: json.dumps(v) for k, v in hyperparameters.items()}))
    resource = {"current_host": host, "hosts": HOSTS, "network_interface_name": "eth0"}
    (config / "resourceconfig.json").write_text(json.dumps(resource))
    (config / "inputdataconfig.json").write_text("{}")  # no data channels
    return tmp_path / host


def finish(process: subprocess.Popen[str], timeout: float = 600) -> tuple[int, str]:
    output, _ = process.communicate(timeout=timeout)
    return process.returncode, output


def merged_output(bases: dict[str, Path], into: Path) -> Path:
    """Every host's output/ copied into one, in host order, as the SDK's local mode makes output.tar.gz (a later
    host's file replaces an earlier host's of the same name)."""
    for host in HOSTS:
        shutil.copytree(bases[host] / "output", into, dirs_exist_ok=True)
    return into


def test_two_hosts_form_one_ray_cluster_and_only_the_head_writes_the_model(tmp_path, network):
    hyperparameters = {**TINY_PPO, "rl.training.stop.training_iteration": 2}
    bases = {host: host_dir(tmp_path, host, hyperparameters) for host in HOSTS}
    worker = network.start("algo-2", bases["algo-2"])  # the worker first: it waits for the head
    head = network.start("algo-1", bases["algo-1"])
    head_code, head_out = finish(head)
    worker_code, worker_out = finish(worker, timeout=120)
    assert head_code == 0, head_out[-4000:]
    assert worker_code == 0, worker_out[-4000:]
    # One cluster: 1 CPU per host; the head's env runners run on both hosts.
    assert "Ray cluster: 2 hosts (algo-1, algo-2), 2 CPUs" in head_out, head_out[-4000:]
    assert re.search(r"^env runners per host: algo-1 1, algo-2 1$", head_out, re.M), head_out[-4000:]
    assert re.search(r"^training_iteration: 2$", head_out, re.M)
    assert "joined the Ray cluster of algo-1" in worker_out and "left the cluster" in worker_out, worker_out[-3000:]
    assert not re.search(r"^training_iteration: ", worker_out, re.M)  # the worker did not train
    assert (bases["algo-1"] / "model" / "policy.onnx").is_file()
    assert json.loads((bases["algo-1"] / "model" / "result.json").read_text())["training_iteration"] == 2
    assert not (bases["algo-2"] / "model").exists() or not any((bases["algo-2"] / "model").iterdir())
    # Each host's outcome and log under its own names: the head's under the contract's, algo-2's in output/algo-2.
    own = {"algo-1": bases["algo-1"] / "output", "algo-2": bases["algo-2"] / "output" / "algo-2"}
    for host in HOSTS:
        assert (own[host] / "success").exists() and not (own[host] / "failure").exists()
    assert sorted(path.name for path in (bases["algo-2"] / "output").iterdir() if path.is_file()) == []
    merged = merged_output(bases, tmp_path / "merged")
    assert (merged / "success").exists() and not (merged / "failure").exists()
    assert " on algo-1 of algo-1, algo-2 " in (merged / "job.log").read_text()  # the head's, not replaced by algo-2's
    assert " on algo-2 of algo-1, algo-2 " in (merged / "algo-2" / "job.log").read_text()


def test_a_head_that_fails_after_the_cluster_formed_fails_the_merged_output(tmp_path, network):
    """The worker leaves cleanly when the head ends: its success must not sit beside the head's failure."""
    hyperparameters = {**TINY_PPO, "rl.training.config.num_env_runners": 3}  # 3 CPUs: the cluster has 2
    bases = {host: host_dir(tmp_path, host, hyperparameters) for host in HOSTS}
    worker = network.start("algo-2", bases["algo-2"])
    head = network.start("algo-1", bases["algo-1"])
    (head_code, head_out), (worker_code, worker_out) = finish(head), finish(worker, timeout=120)
    assert head_code != 0, head_out[-3000:]
    assert worker_code == 0, worker_out[-3000:]
    merged = merged_output(bases, tmp_path / "merged")
    reason = (merged / "failure").read_text().splitlines()[0]
    assert reason.startswith("the job asks for 3 CPUs") and "but has 2" in reason, reason
    assert not (merged / "success").exists() and (merged / "algo-2" / "success").exists()


def test_a_host_that_never_comes_fails_every_side_within_the_timeout(tmp_path, network):
    """On three networks at once: algo-2 never starts; algo-2 is up but never runs the job; algo-1 never starts."""
    hyperparameters = {**TINY_PPO, "rl.training.cluster_timeout_s": 15}
    bases = {case: host_dir(tmp_path / case, host, hyperparameters)
             for case, host in (("no-worker", "algo-1"), ("idle-worker", "algo-1"), ("no-head", "algo-2"))}
    idle, headless = Network(), Network()
    try:
        started = time.monotonic()
        processes = {"no-worker": network.start("algo-1", bases["no-worker"]),
                     "idle-worker": idle.start("algo-1", bases["idle-worker"]),
                     "no-head": headless.start("algo-2", bases["no-head"])}
        idle.start("algo-2", tmp_path, "sleep", "300")  # resolves on the network, but no Ray joins from it
        outcomes = {case: finish(process, timeout=300) for case, process in processes.items()}
        elapsed = time.monotonic() - started
    finally:
        idle.close()
        headless.close()
    own = {"no-worker": "output", "idle-worker": "output", "no-head": "output/algo-2"}  # the head's, or algo-2's own
    reasons = {case: (bases[case] / own[case] / "failure").read_text().splitlines()[0] for case in bases}
    for case, (code, output) in outcomes.items():
        assert code == 1, output[-3000:]
        assert f"ERROR: {reasons[case]}" in output  # the reason, on the console too, and where it is kept
        assert "in SageMaker SDK local mode" in output and "output.tar.gz" in output
        assert "rl.training.cluster_timeout_s" in reasons[case], reasons[case]
        assert not (bases[case] / "model" / "policy.onnx").exists()
    missing = "the Ray head on algo-1 saw 1 of 2 hosts within 15 s (missing: algo-2"
    assert reasons["no-worker"].startswith(f"{missing}, which does not resolve)"), reasons["no-worker"]
    assert reasons["idle-worker"].startswith(f"{missing})"), reasons["idle-worker"]
    unreachable = "host algo-2 could not reach the Ray head algo-1:6379 within 15 s (algo-1 does not resolve)"
    assert reasons["no-head"].startswith(unreachable), reasons["no-head"]
    assert elapsed < 150, f"the failing hosts took {elapsed:.0f} s"
