"""Real short PPO jobs through the job contract (subprocesses, as SageMaker would start them)."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from sagemaker_rl.job.hyperparameters import parse_hyperparameters
from tests.conftest import REPO, SDK_RAY_REGEX, TINY_PPO, job_env, run_entrypoint, write_hyperparameters

pytestmark = pytest.mark.slow

ALLOWED_STDOUT = re.compile(
    r"^((episode|evaluation)_reward_(mean|max|min): \S+|timesteps_total: \d+|training_iteration: \d+"
    r"|\[reacher\] iter \d+ \|.*|Stopped: .*|Resumed from .*|Model written to .*)$")


GSDE_LOG_STD = -1.5
# A short real job of each preset (`fast` has the observation filter, `seed` has none), and `fast` with gSDE.
VARIANTS = {"fast": {"rl.training.preset": "fast"}, "seed": {"rl.training.preset": "seed"},
            "gsde": {"rl.training.gsde_resample_steps": 4, "rl.training.initial_log_std": GSDE_LOG_STD}}


@pytest.fixture(scope="module", params=list(VARIANTS))
def finished_job(request, tmp_path_factory):
    base = tmp_path_factory.mktemp(f"job-{request.param}")
    home = tmp_path_factory.mktemp("home")
    write_hyperparameters(base, {**TINY_PPO, **VARIANTS[request.param],
                                 "rl.training.stop.training_iteration": 2,
                                 "rl.training.checkpoint_freq": 1, "rl.training.seed": 7,
                                 "rl.training.config.kl_coeff": 0.75})
    result = run_entrypoint("reacher", base, home)
    return base, home, result


def filter_from_checkpoint(checkpoint: Path, env=None):
    """RLlib's own MeanStdFilter connector for `env` (default: reacher's), restored from the checkpoint; None
    without one."""
    from ray.rllib.connectors.env_to_module import MeanStdFilter

    from sagemaker_rl.job.envs import make_env

    path = checkpoint / "env_runner" / "env_to_module_connector" / "MeanStdFilter"
    if not path.is_dir():
        return None
    env = env or make_env("reacher")
    connector = MeanStdFilter()  # spaces given to the constructor trip on its own order of initialisation
    connector.input_observation_space, connector.input_action_space = env.observation_space, env.action_space
    connector.restore_from_path(path)
    return connector


def _filter_count(checkpoint: Path) -> int:
    (stats,) = filter_from_checkpoint(checkpoint).get_state()[None]["running_stats"]
    return int(stats["num_pushes"])


def test_job_succeeds_and_prints_reward_lines_sagemaker_can_read(finished_job):
    base, _, result = finished_job
    assert result.returncode == 0, result.stderr[-3000:]
    assert (base / "output" / "success").exists() and not (base / "output" / "failure").exists()
    for name, regex in SDK_RAY_REGEX.items():
        values = [float(m.group(1)) for m in re.finditer(regex, result.stdout)]
        assert len(values) == 2, f"{name}: one line per iteration expected"
    assert re.findall(r"^training_iteration: (\d+)$", result.stdout, re.M) == ["1", "2"]


def test_job_console_is_quiet(finished_job):
    _, _, result = finished_job
    unexpected = [line for line in result.stdout.splitlines() if not ALLOWED_STDOUT.match(line)]
    assert unexpected == []  # no pybullet banner, no Ray or RLlib chatter on stdout
    assert len(result.stderr.splitlines()) <= 3, result.stderr


def test_job_writes_model_intermediate_outputs_and_nothing_in_home(finished_job):
    base, home, _ = finished_job
    model = base / "model"
    assert (model / "checkpoint" / "rllib_checkpoint.json").is_file()
    assert (model / "policy.onnx").stat().st_size > 10_000
    params = json.loads((model / "params.json").read_text())
    assert params["problem"] == "reacher" and params["simulator"] == "roboschool"
    assert params["hyperparameters"]["rl.training.config.kl_coeff"] == 0.75
    preset = params["hyperparameters"]["rl.training.preset"]
    expected_filter = {"fast": "MeanStdFilter", "seed": "NoFilter"}[preset]
    assert params["hyperparameters"]["rl.training.config.observation_filter"] == expected_filter
    summary = json.loads((model / "result.json").read_text())
    assert summary["training_iteration"] == 2 and summary["timesteps_total"] >= 4000
    rows = list(csv.DictReader((base / "output" / "intermediate" / "progress.csv").open()))
    assert [row["training_iteration"] for row in rows] == ["1", "2"]
    assert list((base / "output" / "intermediate" / "tensorboard").glob("events.out.tfevents.*"))
    assert sorted(p.name for p in (base / "checkpoints").iterdir()) == ["checkpoint_000001", "checkpoint_000002"]
    assert not (home / "ray_results").exists()


def test_onnx_policy_matches_rllibs_deterministic_actions(finished_job):
    import torch
    from ray.rllib.core.rl_module.rl_module import RLModule
    from ray.rllib.utils.spaces.space_utils import unsquash_action

    from sagemaker_rl.job.envs import make_env
    from sagemaker_rl.job.export import OnnxPolicy

    base, _, _ = finished_job
    checkpoint = base / "model" / "checkpoint"
    module = RLModule.from_checkpoint(checkpoint / "learner_group" / "learner" / "rl_module" / "default_policy")
    preset = json.loads((base / "model" / "params.json").read_text())["hyperparameters"]["rl.training.preset"]
    obs_filter = filter_from_checkpoint(checkpoint)
    assert (obs_filter is not None) == (preset == "fast")
    env = make_env("reacher", seed=0)
    observations = []
    obs, _ = env.reset(seed=0)
    for _ in range(100):  # real observations along a random trajectory
        observations.append(obs)
        obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            obs, _ = env.reset()
    batch = np.asarray(observations, dtype=np.float32)
    # What RLlib feeds its module: the observations through its own filter, statistics frozen.
    filtered = batch if obs_filter is None else np.stack(
        [obs_filter._filters[None](row, update=False) for row in batch])
    assert obs_filter is None or np.abs(filtered - batch).max() > 0.1  # the filter does change the input
    with torch.no_grad():
        dist_inputs = module.forward_inference({"obs": torch.from_numpy(filtered)})["action_dist_inputs"]
        dist = module.get_inference_action_dist_cls().from_logits(dist_inputs)
        expected = unsquash_action(dist.to_deterministic().sample().numpy(), env.action_space)
    actual = OnnxPolicy(base / "model" / "policy.onnx")(batch)  # raw observations
    np.testing.assert_allclose(actual, expected, atol=1e-5)
    assert np.ptp(actual, axis=0).max() > 0  # the policy is not constant: the comparison means something


def test_the_initial_log_std_is_the_presets(finished_job):
    from ray.rllib.core.rl_module.rl_module import RLModule

    base, _, _ = finished_job
    hyperparameters = json.loads((base / "model" / "params.json").read_text())["hyperparameters"]
    preset = hyperparameters["rl.training.preset"]
    initial = parse_hyperparameters({"rl.training.preset": preset}, "reacher").initial_log_std
    module = RLModule.from_checkpoint(
        base / "model" / "checkpoint" / "learner_group" / "learner" / "rl_module" / "default_policy")
    if "rl.training.gsde_resample_steps" in hyperparameters:  # the noise matrices' scale instead, the job's value
        assert type(module).__name__ == "GsdePPOTorchRLModule" and not hasattr(module.pi, "log_std")
        np.testing.assert_allclose(module.sde_log_std.detach().numpy(), GSDE_LOG_STD, atol=0.1)
        return
    log_std = module.pi.log_std.detach().numpy()
    # Two tiny iterations move it a little from where it started (RLlib's own start is 0).
    np.testing.assert_allclose(log_std, 0.0 if initial is None else initial, atol=0.1)
    assert preset == "seed" or initial is not None and abs(initial) > 0.3  # far enough from 0 to tell apart


KL_TARGET = 1e-5  # far below these jobs' KL (~0.005): the coefficient grows x1.5 on every update


def test_resume_after_kill_9_continues_iterations_env_steps_and_filter_statistics(tmp_path, home):
    write_hyperparameters(tmp_path, {**TINY_PPO, "rl.training.stop.training_iteration": 5,
                                     "rl.training.checkpoint_freq": 1, "rl.training.config.use_kl_loss": True,
                                     "rl.training.config.kl_target": KL_TARGET})
    command = [sys.executable, str(REPO / "entrypoints" / "train-reacher.py")]
    process = subprocess.Popen(command, env=job_env(tmp_path, home), stdout=subprocess.PIPE, text=True,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    checkpoints = tmp_path / "checkpoints"
    deadline = time.monotonic() + 300
    while not (checkpoints / "checkpoint_000002" / "job_state.json").exists():
        assert process.poll() is None, "the job ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)  # the job and its Ray processes, with no chance to clean up
    process.wait()
    saved = max(json.loads(p.read_text())["training_iteration"] for p in checkpoints.glob("*/job_state.json"))
    state = json.loads((checkpoints / f"checkpoint_{saved:06d}" / "job_state.json").read_text())
    killed_count = _filter_count(checkpoints / f"checkpoint_{saved:06d}" / "algorithm")  # the resume prunes it

    result = run_entrypoint("reacher", tmp_path, home)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"Resumed from checkpoint_{saved:06d}: iteration {saved}" in result.stdout
    iterations = [int(v) for v in re.findall(r"^training_iteration: (\d+)$", result.stdout, re.M)]
    assert iterations == list(range(saved + 1, 6))  # continues, does not restart at 1
    steps = [int(v) for v in re.findall(r"^timesteps_total: (\d+)$", result.stdout, re.M)]
    assert steps[0] > state["timesteps_total"]
    # The observation filter's statistics continue: they count every observation of the whole job
    # (one per env step, plus one per episode start), not only those since the resume.
    final_count = _filter_count(tmp_path / "model" / "checkpoint")
    assert killed_count >= state["timesteps_total"]
    assert final_count >= steps[-1] > killed_count
    # PPO's adaptive KL coefficient is not in RLlib's checkpoint: the job saves the one its next
    # update would have used, and the resumed job's first iteration starts from exactly that. RLlib
    # reports the coefficient after the iteration's adaptation (x1.5 above twice the KL target), so
    # the row holds the saved value adapted once.
    rows = list(csv.DictReader((tmp_path / "output" / "intermediate" / "progress.csv").open()))
    first_after_resume = next(row for row in rows if int(row["training_iteration"]) == saved + 1)
    assert float(first_after_resume["mean_kl_loss"]) > 2 * KL_TARGET
    assert float(first_after_resume["curr_kl_coeff"]) == pytest.approx(1.5 * state["kl_coeff"], rel=1e-6), state
    assert state["kl_coeff_setting"] == 1.0  # the preset's kl_coeff, which it adapted from
    assert state["kl_coeff"] != state["kl_coeff_setting"]  # it adapted: a restart from the setting would show


def test_a_newest_checkpoint_damaged_on_disk_is_skipped_and_the_job_resumes_from_the_one_before(tmp_path, home):
    write_hyperparameters(tmp_path, {**TINY_PPO, "rl.training.stop.training_iteration": 2,
                                     "rl.training.checkpoint_freq": 1})
    assert run_entrypoint("reacher", tmp_path, home).returncode == 0
    newest = tmp_path / "checkpoints" / "checkpoint_000002"
    largest = max((path for path in newest.rglob("*") if path.is_file()), key=lambda path: path.stat().st_size)
    largest.write_bytes(largest.read_bytes()[: largest.stat().st_size // 2])  # as a crash of the machine leaves it
    write_hyperparameters(tmp_path, {**TINY_PPO, "rl.training.stop.training_iteration": 3,
                                     "rl.training.checkpoint_freq": 1})
    result = run_entrypoint("reacher", tmp_path, home)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Resumed from checkpoint_000001: iteration 1" in result.stdout
    assert f"skipping damaged checkpoint {newest}" in result.stderr + (tmp_path / "output" / "job.log").read_text()
    iterations = [int(v) for v in re.findall(r"^training_iteration: (\d+)$", result.stdout, re.M)]
    assert iterations == [2, 3]


@pytest.fixture
def small_disk(tmp_path):
    """checkpoints/ of a job in tmp_path on a tmpfs of 500 KiB: one reacher checkpoint (~320 KiB) fits, two do not."""
    checkpoints = tmp_path / "checkpoints"
    checkpoints.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=500k", "tmpfs", str(checkpoints)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"a tmpfs cannot be mounted here (root and CAP_SYS_ADMIN needed): {mounted.stderr.strip()}")
    yield checkpoints
    subprocess.run(["umount", "-l", str(checkpoints)], check=True)


def test_a_full_disk_during_a_checkpoint_is_one_sentence_and_the_job_resumes_once_there_is_room(
        tmp_path, home, small_disk):
    write_hyperparameters(tmp_path, {**TINY_PPO, "rl.training.stop.training_iteration": 3,
                                     "rl.training.checkpoint_freq": 1})
    full = run_entrypoint("reacher", tmp_path, home)
    assert full.returncode == 1
    reason = (tmp_path / "output" / "failure").read_text().splitlines()[0]
    assert reason.startswith(f"the disk holding {small_disk} is full: writing checkpoint_000002 failed ("), reason
    assert reason.endswith("free space there or keep fewer checkpoints (rl.training.keep_checkpoints); the ones "
                           "before it are kept"), reason
    assert sorted(path.name for path in small_disk.iterdir()) == ["checkpoint_000001"]  # no half-written one

    subprocess.run(["mount", "-o", "remount,size=8m", str(small_disk)], check=True)
    resumed = run_entrypoint("reacher", tmp_path, home)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Resumed from checkpoint_000001: iteration 1" in resumed.stdout
    assert (tmp_path / "output" / "success").is_file() and (tmp_path / "model" / "policy.onnx").is_file()


def test_entrypoint_runs_under_sagemaker_trainings_train_command(tmp_path, home):
    """The toolkit's `train`, as a SageMaker container runs it: code in <base>/code, SAGEMAKER_PROGRAM."""
    import shutil

    (tmp_path / "code").mkdir()
    shutil.copy(REPO / "entrypoints" / "train-reacher.py", tmp_path / "code")
    write_hyperparameters(tmp_path, {**TINY_PPO, "rl.training.stop.training_iteration": 1,
                                     "sagemaker_program": "train-reacher.py",
                                     "sagemaker_submit_directory": str(tmp_path / "code")})
    (tmp_path / "input" / "config" / "resourceconfig.json").write_text(
        json.dumps({"current_host": "algo-1", "hosts": ["algo-1"]}))
    # SM_STUDIO_LOCAL_MODE skips the toolkit's DNS wait for "algo-1", which only SageMaker resolves.
    env = job_env(tmp_path, home, SAGEMAKER_PROGRAM="train-reacher.py", SM_STUDIO_LOCAL_MODE="true")
    train = Path(sys.executable).with_name("train")
    result = subprocess.run([str(train)], env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.search(SDK_RAY_REGEX["episode_reward_mean"], result.stdout)
    assert (tmp_path / "model" / "policy.onnx").is_file() and (tmp_path / "output" / "success").is_file()


def test_evaluate_runs_deterministic_episodes_of_the_exported_policy(finished_job):
    base, home, _ = finished_job
    result = subprocess.run([sys.executable, str(REPO / "entrypoints" / "evaluate.py"), "--model-dir",
                             str(base / "model"), "--episodes", "2"], capture_output=True, text=True,
                            timeout=300, env=job_env(base, home))
    assert result.returncode == 0, result.stderr[-2000:]
    numbers = dict(re.findall(r"^(mean|max|min) return: (-?[\d.]+)$", result.stdout, re.M))
    assert float(numbers["min"]) <= float(numbers["mean"]) <= float(numbers["max"])


def test_a_job_evaluates_its_policy_deterministically_at_its_interval_and_at_its_end(tmp_path, home):
    from sagemaker_rl.job.evaluation import evaluate, evaluation_seed

    write_hyperparameters(tmp_path, {**TINY_PPO, "rl.training.stop.training_iteration": 3, "rl.training.seed": 7,
                                     "rl.training.evaluation_interval": 4000, "rl.training.evaluation_episodes": 2})
    result = run_entrypoint("reacher", tmp_path, home)
    assert result.returncode == 0, result.stderr[-3000:]
    # 2,000 env steps an iteration: iteration 2 passes 4,000, iteration 3 is the last
    blocks = re.findall(r"((?:^\w+: \S+\n)+?)training_iteration: (\d+)$", result.stdout, re.M)
    evaluated = {int(iteration): float(re.search(r"^evaluation_reward_mean: (\S+)$", lines, re.M).group(1))
                 for lines, iteration in blocks if "evaluation_reward_mean" in lines}
    assert sorted(evaluated) == [2, 3]
    with (tmp_path / "output" / "intermediate" / "progress.csv").open(newline="") as handle:
        column = [row["evaluation_reward_mean"] for row in csv.DictReader(handle)]
    assert column[0] == "" and [float(value) for value in column[1:]] == pytest.approx([evaluated[2], evaluated[3]],
                                                                                      rel=1e-5)  # printed: 6 digits
    # the last evaluation is the exported policy's, on the same episodes (ONNX Runtime's float32 arithmetic and
    # torch's differ in the last bits, which 2 x 150 reacher steps carry into the third digit)
    exported = evaluate(tmp_path / "model", episodes=2, seed=evaluation_seed(7))
    assert evaluated[3] == pytest.approx(exported.mean, rel=0.01)


def test_a_job_evaluates_the_policy_it_ends_with_and_its_model_keeps_the_figure(finished_job):
    base, _, result = finished_job
    assert result.returncode == 0, result.stderr[-3000:]
    blocks = re.findall(r"((?:^\w+: \S+\n)+?)training_iteration: (\d+)$", result.stdout, re.M)
    evaluated = {int(iteration): float(re.search(r"^evaluation_reward_mean: (\S+)$", lines, re.M).group(1))
                 for lines, iteration in blocks if "evaluation_reward_mean" in lines}
    assert list(evaluated) == [2]  # no interval: its last iteration only
    kept = json.loads((base / "model" / "result.json").read_text())["evaluation_reward_mean"]
    assert kept == pytest.approx(evaluated[2], rel=1e-5)  # printed: 6 digits


def test_evaluate_names_a_directory_without_a_model(tmp_path):
    result = subprocess.run([sys.executable, str(REPO / "entrypoints" / "evaluate.py"), "--model-dir",
                             str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "params.json does not exist" in result.stderr


@pytest.mark.parametrize("problem, simulator", [("hopper", "roboschool"), ("humanoid", "mujoco")])
def test_each_entrypoint_trains_one_tiny_iteration(tmp_path, home, problem, simulator):
    write_hyperparameters(tmp_path, {**TINY_PPO, "rl.env.simulator": simulator,
                                     "rl.training.config.train_batch_size_per_learner": 1000,
                                     "rl.training.config.batch_mode": "truncate_episodes",
                                     "rl.training.stop.training_iteration": 1, "rl.training.evaluation_episodes": 0})
    result = run_entrypoint(problem, tmp_path, home)
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.findall(r"^training_iteration: (\d+)$", result.stdout, re.M) == ["1"]
    assert "evaluation_reward_mean" not in result.stdout  # 0 evaluation episodes: none
    params = json.loads((tmp_path / "model" / "params.json").read_text())
    assert (params["problem"], params["simulator"]) == (problem, simulator)
    # Their fast preset anneals lr from 3e-4: the first update already uses the schedule's value.
    (row,) = csv.DictReader((tmp_path / "output" / "intermediate" / "progress.csv").open())
    (start, first), (end, last) = parse_hyperparameters({"rl.env.simulator": simulator}, problem).ppo["lr"]
    expected = first + (last - first) * int(row["timesteps_total"]) / (end - start)
    assert float(row["default_optimizer_learning_rate"]) == pytest.approx(expected, rel=1e-6)
    assert float(row["default_optimizer_learning_rate"]) < first


def test_sigterm_checkpoints_the_iteration_and_fails_with_the_reason(tmp_path, home):
    """SageMaker stops a job (and a spot instance warns it) with SIGTERM: keep the work done so far."""
    write_hyperparameters(tmp_path, {**TINY_PPO, "rl.training.stop.training_iteration": 50,
                                     "rl.training.checkpoint_freq": 100})
    command = [sys.executable, str(REPO / "entrypoints" / "train-reacher.py")]
    process = subprocess.Popen(command, env=job_env(tmp_path, home), stdout=subprocess.PIPE, text=True,
                               stderr=subprocess.DEVNULL)
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith("training_iteration: "):
            break
    process.send_signal(signal.SIGTERM)
    out, _ = process.communicate(timeout=300)
    assert process.returncode != 0
    assert "SIGTERM" in (tmp_path / "output" / "failure").read_text().splitlines()[0]
    states = (tmp_path / "checkpoints").glob("*/job_state.json")
    saved = [json.loads(state.read_text())["training_iteration"] for state in states]
    assert saved and max(saved) >= 1  # the checkpoint_freq of 100 was never reached: SIGTERM saved it


def test_sigterm_during_an_iteration_too_long_to_finish_keeps_the_last_completed_one(tmp_path, home):
    """A stop gives the job seconds, not an iteration's minutes: the iteration still running rl.training.stop_grace_s
    after SIGTERM is cut short and the one before it checkpointed, from which the job resumes."""
    batch = 24_000  # one CPU: an iteration of several seconds
    settings = {**TINY_PPO, "rl.training.config.train_batch_size_per_learner": batch,
                "rl.training.config.minibatch_size": 4000, "rl.training.config.num_epochs": 1,
                "rl.training.stop.training_iteration": 50, "rl.training.checkpoint_freq": 100,
                "rl.training.stop_grace_s": 1}
    write_hyperparameters(tmp_path, settings)
    command = [sys.executable, str(REPO / "entrypoints" / "train-reacher.py")]
    env = {**job_env(tmp_path, home), "SM_NUM_CPUS": "1"}
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True, stderr=subprocess.DEVNULL)
    assert process.stdout is not None
    iteration_started = time.monotonic()
    for line in process.stdout:
        if line.startswith("training_iteration: "):
            iteration_s, iteration_started = time.monotonic() - iteration_started, time.monotonic()
            break
    time.sleep(0.5)  # into iteration 2
    process.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    process.communicate(timeout=300)
    ended_in = time.monotonic() - signalled
    assert process.returncode != 0
    reason = (tmp_path / "output" / "failure").read_text().splitlines()[0]
    assert reason.startswith("the job received SIGTERM; it kept the checkpoint of iteration 1, the last it "
                             "completed"), reason
    assert "rl.training.stop_grace_s" in reason
    assert ended_in < iteration_s, f"ended {ended_in:.1f} s after SIGTERM; an iteration takes {iteration_s:.1f} s"
    (checkpoint,) = (tmp_path / "checkpoints").glob("checkpoint_*")
    assert json.loads((checkpoint / "job_state.json").read_text())["timesteps_total"] == batch
    write_hyperparameters(tmp_path, {**settings, "rl.training.stop.training_iteration": 2})
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "Resumed from checkpoint_000001: iteration 1, 24,000 env steps" in again.stdout, again.stdout[-2000:]
    assert re.findall(r"^training_iteration: (\d+)$", again.stdout, re.M) == ["2"]


def test_an_iteration_that_finishes_no_episode_is_not_a_divergence(tmp_path, home):
    """The seed's names on one CPU: 16 env copies of 125 steps an iteration against reacher's 150-step episodes,
    so iteration 7 (steps 750-875 of each copy) finishes none, and RLlib 2.60 reports its mean as NaN."""
    write_hyperparameters(tmp_path, {"rl.training.config.train_batch_size": 2000,
                                     "rl.training.config.sgd_minibatch_size": 500,
                                     "rl.training.config.num_epochs": 1,
                                     "rl.training.stop.training_iteration": 8})
    result = run_entrypoint("reacher", tmp_path, home, SM_NUM_CPUS="1")
    assert result.returncode == 0, result.stderr[-2000:]
    rows = list(csv.DictReader((tmp_path / "output" / "intermediate" / "progress.csv").open()))
    assert [int(row["training_iteration"]) for row in rows] == list(range(1, 9))
    quiet = rows[6]
    assert int(quiet["episodes_this_iter"]) == 0 and quiet["episode_reward_mean"] == rows[5]["episode_reward_mean"]
