"""The user's code in the built image: the run's bundle is the toolkit's submit directory, its requirements.txt
is installed (offline: a wheel inside the code directory) and the job trains the env it defines."""

from __future__ import annotations

import time
import zipfile
from pathlib import Path

import pytest

from sagemaker_rl.contract import STDOUT_LOG
from sagemaker_rl.engine import ContainerSettings
from sagemaker_rl.tuning.container_runner import ContainerRunner
from sagemaker_rl.tuning.runners import JobSpec
from tests.conftest import CORRIDOR_ENV, TINY_PPO
from tests.image.test_image import DOCKER, IMAGE

_ENV = CORRIDOR_ENV.format(imports='import tinypkg', reward='tinypkg.REWARD * float(action)')


def _wheel(directory: Path) -> str:
    """A pure-Python wheel of `tinypkg`, made by hand: pip installs it with no index and no build step."""
    name = "tinypkg-1.0-py3-none-any.whl"
    files = {"tinypkg/__init__.py": "REWARD = 0.5\n",
             "tinypkg-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: tinypkg\nVersion: 1.0\n",
             "tinypkg-1.0.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: hand\nRoot-Is-Purelib: true\n"
                                            "Tag: py3-none-any\n"}
    record = "tinypkg-1.0.dist-info/RECORD"
    files[record] = "".join(f"{path},,\n" for path in [*files, record])
    with zipfile.ZipFile(directory / name, "w") as wheel:
        for path, text in files.items():
            wheel.writestr(path, text)
    return name


@pytest.mark.slow
def test_a_job_in_the_image_installs_the_code_dirs_requirements_and_trains_its_env(tmp_path):
    code = tmp_path / "my_code"
    code.mkdir()
    (code / "user_envs.py").write_text(_ENV)
    (code / "requirements.txt").write_text(f"--no-index\n./{_wheel(code)}\n")
    runner = ContainerRunner(ContainerSettings(image=f"{IMAGE}-cpu", engine=DOCKER, run_name=tmp_path.name))
    hyperparameters = {"rl.env.id": "user_envs:Corridor", "rl.training.stop.training_iteration": 1, **TINY_PPO,
                       "rl.training.config.train_batch_size_per_learner": 200, "rl.training.config.minibatch_size": 100}
    job_dir = tmp_path / "run" / "trials" / "0000"
    job_dir.mkdir(parents=True)
    job = runner.start(JobSpec(job_dir, None, hyperparameters, num_cpus=2, code_dir=code))
    deadline = time.monotonic() + 600
    while not (status := job.poll()).done and time.monotonic() < deadline:
        time.sleep(1)
    job.wait(5)
    log = (job_dir / STDOUT_LOG).read_text(errors="replace")
    assert status.done and status.failure is None, log[-3000:]
    assert (tmp_path / "run" / "sourcedir.tar.gz").is_file()  # one bundle per run, in the run directory
    assert (job_dir / "code" / "train-env.py").is_file() and (job_dir / "code" / "user_envs.py").is_file()
    assert status.values and 0.0 <= status.values[-1].value <= 10.0  # 20 steps of reward 0 or 0.5
