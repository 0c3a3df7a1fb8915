"""The built images, run as SageMaker runs them (`IMAGE train` over a job directory), and pushed.

Run by `make image-test` (tests/image/run.sh), which builds `$IMAGE_TEST-cpu` and `$IMAGE_TEST-gpu`
and starts a registry at $REGISTRY. There is no GPU here: the GPU image runs the same job on the CPU,
and the test checks that its torch is the CUDA build.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, SDK_RAY_REGEX, TINY_PPO

IMAGE = os.environ["IMAGE_TEST"]
DOCKER = os.environ.get("DOCKER", "podman")
VARIANTS = ["cpu", "gpu"]


def run_image(image: str, base: Path | None, *args: str, env: dict[str, str] | None = None,
              timeout: float = 900) -> subprocess.CompletedProcess[str]:
    command = [DOCKER, "run", "--rm", "--shm-size=2g"]
    if base is not None:
        command += ["-v", f"{base}:/opt/ml"]
    for key, value in (env or {}).items():
        command += ["-e", f"{key}={value}"]
    return subprocess.run([*command, image, *args], capture_output=True, text=True, timeout=timeout)


def job_dir(tmp_path: Path, hyperparameters: dict[str, object]) -> Path:
    """A job directory holding only hyperparameters.json, encoded as SageMaker writes it."""
    config = tmp_path / "job" / "input" / "config"
    config.mkdir(parents=True)
    (config / "hyperparameters.json").write_text(json.dumps({k: json.dumps(v) for k, v in hyperparameters.items()}))
    return tmp_path / "job"


@pytest.mark.parametrize("variant", VARIANTS)
def test_train_runs_a_reacher_job_from_hyperparameters_json(tmp_path, variant):
    base = job_dir(tmp_path, {**TINY_PPO, "rl.training.stop.training_iteration": 2})
    result = run_image(f"{IMAGE}-{variant}", base, "train", env={"SAGEMAKER_PROGRAM": "train-reacher.py"})
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    rewards = re.findall(SDK_RAY_REGEX["episode_reward_mean"], result.stdout)
    assert len(rewards) == 2, result.stdout[-2000:]
    assert re.search(r"^training_iteration: 2$", result.stdout, re.M)
    model = base / "model"
    assert (model / "policy.onnx").stat().st_size > 1000
    params = json.loads((model / "params.json").read_text())["hyperparameters"]
    assert params["rl.training.config.train_batch_size_per_learner"] == 2000
    assert any((model / "checkpoint").iterdir())
    assert (base / "output" / "success").exists() and not (base / "output" / "failure").exists()
    assert (base / "output" / "intermediate" / "progress.csv").is_file()


def test_a_bad_hyperparameter_fails_the_job_with_the_reason(tmp_path):
    base = job_dir(tmp_path, {**TINY_PPO, "rl.training.config.lr": "fast"})
    result = run_image(f"{IMAGE}-cpu", base, "train", env={"SAGEMAKER_PROGRAM": "train-reacher.py"})
    assert result.returncode != 0
    reason = (base / "output" / "failure").read_text().splitlines()[0]
    assert "rl.training.config.lr" in reason and "fast" in reason, reason
    assert not (base / "model" / "policy.onnx").exists()


def test_a_stopped_container_checkpoints_the_job_within_30_s_and_resumes_there(tmp_path):
    """`docker stop` (as SageMaker's stop and a spot interruption) reaches the job through the image's init; the
    job started again on the same directory (a spot job's restart) continues from the checkpoint it saved."""
    base = job_dir(tmp_path, {**TINY_PPO, "rl.training.stop.time_total_s": 900, "rl.training.checkpoint_freq": 1000})
    name = f"sagemaker-rl-stop-test-{os.getpid()}"
    command = [DOCKER, "run", "--rm", "--name", name, "--shm-size=2g", "-v", f"{base}:/opt/ml",
               "-e", "SAGEMAKER_PROGRAM=train-reacher.py", f"{IMAGE}-cpu", "train"]
    job = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        progress = base / "output" / "intermediate" / "progress.csv"
        deadline = time.monotonic() + 600
        while not (progress.exists() and len(progress.read_text().splitlines()) >= 3):  # header + 2 iterations
            assert job.poll() is None and time.monotonic() < deadline, "the job did not train"
            time.sleep(1)
        started = time.monotonic()
        subprocess.run([DOCKER, "stop", "--time", "30", name], capture_output=True, timeout=120, check=True)
        stopped_in = time.monotonic() - started
        output = job.communicate(timeout=60)[0]
    finally:
        subprocess.run([DOCKER, "rm", "-f", name], capture_output=True, check=False)
        job.kill()
    assert stopped_in < 30, f"the container was killed after {stopped_in:.0f} s: {output[-2000:]}"
    assert any((base / "checkpoints").iterdir()), output[-2000:]  # the only checkpoint: the one the stop made
    reason = (base / "output" / "failure").read_text().splitlines()[0]
    assert "SIGTERM" in reason and "checkpoint was saved" in reason, reason
    # the spot drill: the same job started again on the same directory resumes from that checkpoint
    iterations = len((base / "output" / "intermediate" / "progress.csv").read_text().splitlines()) - 1
    hyperparameters = base / "input" / "config" / "hyperparameters.json"
    settings = {**json.loads(hyperparameters.read_text()), "rl.training.stop.training_iteration": str(iterations + 1)}
    hyperparameters.write_text(json.dumps(settings))
    again = run_image(f"{IMAGE}-cpu", base, "train", env={"SAGEMAKER_PROGRAM": "train-reacher.py"})
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert f"iteration {iterations}," in again.stdout and "Resumed from" in again.stdout, again.stdout[-2000:]
    assert re.search(rf"^training_iteration: {iterations + 1}$", again.stdout, re.M), again.stdout[-2000:]


def test_train_without_a_program_names_the_ones_there_are(tmp_path):
    base = job_dir(tmp_path, TINY_PPO)
    result = run_image(f"{IMAGE}-cpu", base, "train")
    assert result.returncode == 2
    reason = (base / "output" / "failure").read_text().splitlines()[0]
    assert "SAGEMAKER_PROGRAM" in reason and "train-hopper.py" in reason, reason


def test_the_cpu_image_has_cpu_torch_and_no_compiler():
    result = run_image(f"{IMAGE}-cpu", None, "sh", "-c",
                       "python -c 'import torch; print(torch.__version__, torch.version.cuda)'; command -v gcc")
    assert result.stdout.split()[:2] == ["2.13.0+cpu", "None"], result.stdout + result.stderr
    assert result.returncode != 0  # `command -v gcc` found nothing: the compiler stayed in the builder stage


def test_the_gpu_image_has_cuda_torch_which_falls_back_to_the_cpu_here():
    result = run_image(f"{IMAGE}-gpu", None, "python", "-c",
                       "import torch; print(torch.__version__, torch.version.cuda, torch.cuda.is_available())")
    assert result.returncode == 0, result.stderr
    version, cuda, available = result.stdout.split()
    assert version.startswith("2.13.0") and cuda != "None" and available == "False"


def test_make_push_puts_the_image_in_a_registry_it_can_be_pulled_from():
    registry = os.environ["REGISTRY"]
    pushed = subprocess.run(["make", "--no-print-directory", "push", "VARIANT=cpu", f"REGISTRY={registry}",
                             f"DOCKER={DOCKER}", f"COMMIT={os.environ['COMMIT']}"],
                            cwd=REPO, capture_output=True, text=True, timeout=900)
    assert pushed.returncode == 0, pushed.stdout[-2000:] + pushed.stderr[-2000:]
    remote = f"{registry}/{IMAGE}-cpu"
    local_id = _image_id(f"{IMAGE}-cpu")
    subprocess.run([DOCKER, "rmi", remote], capture_output=True, check=True)
    pulled = subprocess.run([DOCKER, "pull", "-q", remote], capture_output=True, text=True, timeout=900)
    assert pulled.returncode == 0, pulled.stderr
    assert _image_id(remote) == local_id
    result = run_image(remote, None, "python", "-c", "import sagemaker_rl.job; print('ok')")
    assert result.stdout.strip() == "ok", result.stderr


def _image_id(reference: str) -> str:
    return subprocess.run([DOCKER, "image", "inspect", "--format", "{{.Id}}", reference], capture_output=True,
                          text=True, check=True).stdout.strip()
