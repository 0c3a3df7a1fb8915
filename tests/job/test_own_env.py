"""A user's own env: `rl.env.*` hyperparameters, any Gymnasium env or module:Class, and every way an env goes wrong.

The user's code is a real package written to a temporary directory; the bad-env cases run through the real
job entry point (`python -m sagemaker_rl.job`) and must end with one sentence in output/failure.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import gymnasium
import numpy as np
import pytest

from sagemaker_rl.contract import JobPaths, write_inputs
from sagemaker_rl.errors import USER_ERROR_EXIT, UserError
from sagemaker_rl.job import child_env, job_command
from sagemaker_rl.job.envs import EnvCodeMissing, EnvError, make, observation_layout, probe
from sagemaker_rl.job.hyperparameters import EnvSettings, parse_hyperparameters

REPO = Path(__file__).resolve().parents[2]

# The user's package: a goal-conditioned arm with Dict observations, a Discrete corridor, and an env whose faults
# its keyword arguments choose.
_ROBOTS = '''
import time

import gymnasium as gym
import numpy as np


class Reach(gym.Env):
    """Move a point to a goal: Dict observations, as goal-conditioned robot envs have."""

    def __init__(self, render_mode=None, size=1.0):
        self.size = size
        box = gym.spaces.Box(-size, size, (2,), np.float32)
        self.observation_space = gym.spaces.Dict({"observation": box, "desired_goal": box,
                                                  "phase": gym.spaces.Discrete(3)})
        self.action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)

    def _obs(self):
        return {"observation": self.point, "desired_goal": self.goal, "phase": self.steps % 3}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.point = self.np_random.uniform(-self.size, self.size, 2).astype(np.float32)
        self.goal = self.np_random.uniform(-self.size, self.size, 2).astype(np.float32)
        self.steps = 0
        return self._obs(), {}

    def step(self, action):
        self.point = np.clip(self.point + 0.1 * np.asarray(action, np.float32), -self.size, self.size)
        self.steps += 1
        distance = float(np.linalg.norm(self.point - self.goal))
        return self._obs(), -distance, distance < 0.05, False, {}


class Faulty(gym.Env):
    """Fine until step `after`, then the fault named by `fault`."""

    def __init__(self, render_mode=None, fault="", after=0):
        if fault == "init":
            raise ValueError("no robot on port 7")
        self.fault, self.after = fault, after
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
        self.action_space = gym.spaces.Discrete(2) if fault == "discrete" else gym.spaces.Box(-1, 1, (1,))

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        if self.fault == "reset":
            raise RuntimeError("gripper not homed")
        self.steps = 0
        return np.zeros(3, np.float32), {}

    def step(self, action):
        self.steps += 1
        obs, reward = np.zeros(3, np.float32), 1.0
        if self.steps > self.after:
            if self.fault == "step":
                raise RuntimeError("joint 2 over its limit")
            if self.fault == "nan_obs":
                obs[1] = np.nan
            if self.fault == "nan_reward":
                reward = float("nan")
            if self.fault == "shape":
                obs = np.zeros(5, np.float32)
            if self.fault == "hang":
                time.sleep(3600)
        return obs, reward, False, False, {}
'''


@pytest.fixture(scope="module")
def code_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The user's code: a package `my_robots`, importable in this process and in the jobs started here."""
    directory = tmp_path_factory.mktemp("code")
    (directory / "my_robots").mkdir()
    (directory / "my_robots" / "__init__.py").write_text(textwrap.dedent(_ROBOTS))
    sys.path.insert(0, str(directory))
    yield directory
    sys.path.remove(str(directory))


def test_env_keys_become_the_jobs_env_settings() -> None:
    job = parse_hyperparameters({"rl.env.id": "Pendulum-v1", "rl.env.kwargs": '{"g": 9.0}',
                                 "rl.env.kwargs.max_speed": "7", "rl.env.max_episode_steps": "150"}, None)
    assert job.env == EnvSettings("Pendulum-v1", None, {"g": 9.0, "max_speed": 7}, 150)
    assert job.preset == "generic" and job.stop.timesteps_total == 1_000_000
    # a problem's env, with a time limit of the user's
    hopper = parse_hyperparameters({"rl.env.max_episode_steps": 500, "rl.env.simulator": "mujoco"}, "hopper")
    assert hopper.env == EnvSettings("Hopper-v5", None, {}, 500)


@pytest.mark.parametrize(("raw", "problem", "message"), [
    ({}, None, "no environment: set rl.env.id to a Gymnasium id"),
    ({"rl.env.id": "Pendulum-v1"}, "reacher", "rl.env.id names the env of a job without a problem, but this job "
                                              "trains reacher"),
    ({"rl.env.id": "Pendulum-v1", "rl.env.simulator": "mujoco"}, None, "rl.env.simulator picks a problem's env"),
    ({"rl.env.id": "Pendulum-v1", "rl.env.kwarg": "{}"}, None, "unknown env setting 'rl.env.kwarg' (did you mean "
                                                               "'rl.env.kwargs'?)"),
    ({"rl.env.id": "Pendulum-v1", "rl.env.package": "my robots"}, None, "rl.env.package must be an importable"),
    ({"rl.env.id": "Pendulum-v1", "rl.env.max_episode_steps": "0"}, None, "rl.env.max_episode_steps must be a whole"),
    ({"rl.env.id": "Pendulum-v1", "rl.env.kwargs": "[1]"}, None, "rl.env.kwargs must be a JSON object"),
    ({"rl.env.simulator": "mujoco"}, "humanoid_flagrun", "problem humanoid_flagrun has no mujoco env: choose the "
                                                         "simulator roboschool"),
])
def test_bad_env_keys_fail_in_one_sentence(raw: dict, problem: str | None, message: str) -> None:
    with pytest.raises(UserError, match=None) as error:
        parse_hyperparameters(raw, problem)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_dict_observations_are_flattened_in_the_written_order(code_dir: Path) -> None:
    env = make(EnvSettings("my_robots:Reach"), seed=0)
    obs, _ = env.reset(seed=1)
    assert env.observation_space.shape == obs.shape == (7,)
    layout = observation_layout(env.unwrapped.observation_space)
    # gymnasium's flatten order: Dict keys sorted; a Discrete part one-hot
    assert [(row["path"], row["offset"], row["size"], row["encoding"]) for row in layout] == [
        ("desired_goal", 0, 2, "values"), ("observation", 2, 2, "values"), ("phase", 4, 3, "one-hot")]
    raw = env.unwrapped._obs()
    np.testing.assert_array_equal(obs[0:2], raw["desired_goal"])
    np.testing.assert_array_equal(obs[2:4], raw["observation"])
    assert env.spec.max_episode_steps == 1000  # registered without a limit: the default one


def test_probe_tells_discrete_actions_and_says_the_time_limit_it_applies(code_dir: Path,
                                                                        caplog: pytest.LogCaptureFixture) -> None:
    facts = probe(EnvSettings("my_robots:Faulty", kwargs={"fault": "discrete"}))
    assert facts.discrete_actions and facts.reward_threshold is None
    assert "Faulty has no time limit: its episodes end after 1000 steps (set rl.env.max_episode_steps" in caplog.text
    job = parse_hyperparameters({"rl.env.id": "my_robots:Faulty"}, None, facts)
    assert job.initial_log_std is None and not job.ppo["model_config"]["free_log_std"]
    explicit = parse_hyperparameters({"rl.env.id": "my_robots:Faulty", "rl.training.initial_log_std": -1}, None, facts)
    assert explicit.initial_log_std is None  # with a notice: the default search space holds it
    assert "rl.training.initial_log_std shapes a Gaussian policy's noise; Faulty has Discrete actions, so it has " \
           "no effect" in caplog.text
    cartpole = probe(EnvSettings("CartPole-v1"))
    assert cartpole.reward_threshold == 475.0  # a job stops there by default
    assert parse_hyperparameters({"rl.env.id": "CartPole-v1"}, None, cartpole).stop.episode_reward_mean == 475.0


@pytest.mark.parametrize(("settings", "kind", "message"), [
    (EnvSettings("Pendulm-v1"), UserError, "rl.env.id 'Pendulm-v1' is not a registered Gymnasium id (did you mean "
                                           "'Pendulum-v1'?)"),
    (EnvSettings("CartPole-v1", package="no_such_robots"), EnvCodeMissing,
     "rl.env.package 'no_such_robots' failed to import: ModuleNotFoundError: No module named 'no_such_robots'"),
    (EnvSettings("not_my_robots:Reach"), EnvCodeMissing, "module 'not_my_robots' was not found: give the directory"),
    (EnvSettings("my_robots:Rech"), UserError, "my_robots has no 'Rech' (did you mean 'Reach'?)"),
    (EnvSettings("my_robots:Faulty", kwargs={"fault": "init"}), EnvError,
     "the env Faulty raised in its constructor: ValueError: no robot on port 7 (__init__.py:"),
    (EnvSettings("my_robots:Faulty", kwargs={"fault": "reset"}), EnvError,
     "the env Faulty raised in reset: RuntimeError: gripper not homed (__init__.py:"),
    (EnvSettings("my_robots:Faulty", kwargs={"fault": "step"}), EnvError,
     "the env Faulty raised in step: RuntimeError: joint 2 over its limit"),
    (EnvSettings("my_robots:Faulty", kwargs={"fault": "nan_obs"}), EnvError,
     "the env Faulty returned a non-finite observation from step: [0.0, nan, 0.0]"),
    (EnvSettings("my_robots:Faulty", kwargs={"fault": "nan_reward"}), EnvError,
     "the env Faulty returned the reward nan from step: rewards must be finite numbers"),
    (EnvSettings("my_robots:Faulty", kwargs={"fault": "shape"}), EnvError,
     "the env Faulty returned an observation of shape (5,) and dtype float32 from step, but its observation space "
     "holds (3,) numbers"),
    (EnvSettings("my_robots:Faulty", kwargs={"grip": 1}), EnvError,
     "the env Faulty raised in its constructor: TypeError: Faulty.__init__() got an unexpected keyword argument"),
])
def test_a_bad_env_is_one_sentence_naming_it(code_dir: Path, settings: EnvSettings, kind: type,
                                             message: str) -> None:
    with pytest.raises(kind) as error:
        probe(settings)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_tuple_observations_are_flattened_and_other_spaces_refused_by_name() -> None:
    assert make(EnvSettings("Blackjack-v1")).observation_space.shape == (32 + 11 + 2,)  # a Tuple of Discretes
    gymnasium.register("SagemakerRlTest/Text-v0", entry_point=lambda **_: _Env(gymnasium.spaces.Text(8)))
    with pytest.raises(EnvError, match=r"has the observation space Text\(.*\): a job takes Box, Discrete"):
        make(EnvSettings("SagemakerRlTest/Text-v0"))
    gymnasium.register("SagemakerRlTest/Multi-v0", entry_point=lambda **_: _Env(action=gymnasium.spaces.MultiDiscrete(
        [2, 3])))
    with pytest.raises(EnvError, match=r"has the action space MultiDiscrete\(\[2 3\]\): PPO here takes a float Box "
                                       r"or a Discrete\(n\) starting at 0"):
        make(EnvSettings("SagemakerRlTest/Multi-v0"))


class _Env(gymnasium.Env):
    def __init__(self, observation: gymnasium.Space | None = None, action: gymnasium.Space | None = None) -> None:
        self.observation_space = observation or gymnasium.spaces.Box(-1, 1, (2,))
        self.action_space = action or gymnasium.spaces.Discrete(2)


def _job(tmp_path: Path, code_dir: Path, hyperparameters: dict, *, problem: str | None = None,
         timeout: float = 240) -> tuple[subprocess.CompletedProcess[str], JobPaths]:
    paths = JobPaths(tmp_path)
    write_inputs(paths, hyperparameters)
    done = subprocess.run([sys.executable, *job_command(problem)], capture_output=True, text=True, timeout=timeout,
                          env=child_env(code_dir, SAGEMAKER_BASE_DIR=str(tmp_path), SM_NUM_CPUS="2"), check=False)
    return done, paths


@pytest.mark.parametrize(("hyperparameters", "failure"), [
    ({"rl.env.id": "my_robots:Faulty", "rl.env.kwargs.fault": "step"},
     "the env Faulty raised in step: RuntimeError: joint 2 over its limit"),
    ({"rl.env.id": "Pendulm-v1"}, "rl.env.id 'Pendulm-v1' is not a registered Gymnasium id"),
    ({"rl.env.id": "CartPole-v1", "rl.env.package": "no_such_robots"}, "rl.env.package 'no_such_robots' failed"),
    ({"rl.env.id": "my_robots:Faulty", "rl.env.kwargs.fault": "nan_obs"}, "returned a non-finite observation"),
])
def test_a_bad_env_ends_the_real_job_before_training_with_its_sentence(tmp_path: Path, code_dir: Path,
                                                                      hyperparameters: dict, failure: str) -> None:
    done, paths = _job(tmp_path, code_dir, hyperparameters)
    assert done.returncode == USER_ERROR_EXIT, done.stderr[-2000:]
    assert failure in paths.failure_file.read_text().splitlines()[0]
    assert not paths.checkpoints.exists() or not any(paths.checkpoints.iterdir())


@pytest.mark.slow
def test_a_step_that_never_returns_ends_the_job_by_its_stall_watchdog(tmp_path: Path, code_dir: Path) -> None:
    done, paths = _job(tmp_path, code_dir, {"rl.env.id": "my_robots:Faulty", "rl.env.kwargs.fault": "hang",
                                            "rl.training.stall_timeout_s": 5})
    assert done.returncode != 0
    assert "no progress" in paths.failure_file.read_text().splitlines()[0]


@pytest.mark.slow
def test_a_fault_during_training_ends_the_job_with_the_envs_sentence(tmp_path: Path, code_dir: Path) -> None:
    """NaN rewards only after the check's 200 steps (each copy steps 1024 / 16 an iteration): an env runner raises."""
    done, paths = _job(tmp_path, code_dir, {"rl.env.id": "my_robots:Faulty", "rl.env.kwargs.fault": "nan_reward",
                                            "rl.env.kwargs.after": 250, "rl.training.stop.training_iteration": 8,
                                            "rl.training.config.train_batch_size_per_learner": 1024,
                                            "rl.training.config.minibatch_size": 512})
    assert done.returncode != 0
    first = paths.failure_file.read_text().splitlines()[0]
    assert "the env Faulty returned the reward nan from step: rewards must be finite numbers" in first, first


@pytest.mark.slow
def test_discrete_cartpole_trains_exports_and_evaluates(tmp_path: Path) -> None:
    """A registered env outside the problem table with Discrete actions, through scripts/train.py, then its ONNX
    policy: it takes the observations and gives the env's actions, the same as the checkpoint's greedy ones."""
    run_dir = tmp_path / "run"
    done = subprocess.run([sys.executable, "scripts/train.py", "--env", "CartPole-v1", "--run-dir", str(run_dir),
                           "--hp", "rl.training.stop.timesteps_total=30000", "--hp", "rl.training.seed=0"],
                          cwd=REPO, capture_output=True, text=True, timeout=300, env=child_env(), check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "[CartPole-v1] iter" in done.stdout
    model = run_dir / "model"
    params = json.loads((model / "params.json").read_text())
    assert params["env"]["id"] == "CartPole-v1" and params["problem"] is None
    assert json.loads((model / "observation.json").read_text())["observation"][0]["size"] == 4
    import torch
    from ray.rllib.core.rl_module.rl_module import RLModule

    from sagemaker_rl.job.export import OnnxPolicy
    from tests.job.test_training import filter_from_checkpoint

    env = make(EnvSettings("CartPole-v1"), seed=0)
    observations = [env.reset(seed=0)[0]]
    for _ in range(99):  # real observations along a random trajectory
        obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
        observations.append(env.reset()[0] if terminated or truncated else obs)
    batch = np.asarray(observations, dtype=np.float32)
    actions = OnnxPolicy(model / "policy.onnx")(batch)  # raw observations
    # The checkpoint's module on what RLlib feeds it (its own filter, statistics frozen): the most likely action.
    module = RLModule.from_checkpoint(model / "checkpoint" / "learner_group" / "learner" / "rl_module" /
                                      "default_policy")
    obs_filter = filter_from_checkpoint(model / "checkpoint", env)
    filtered = np.stack([obs_filter._filters[None](row, update=False) for row in batch])
    with torch.no_grad():
        logits = module.forward_inference({"obs": torch.from_numpy(filtered)})["action_dist_inputs"].numpy()
    assert actions.shape == (100,) and actions.dtype == np.int64
    np.testing.assert_array_equal(actions, logits.argmax(axis=1))
    assert set(actions.tolist()) == {0, 1}  # the policy is not constant: the comparison means something
    evaluated = subprocess.run([sys.executable, "entrypoints/evaluate.py", "--model-dir", str(model),
                                "--episodes", "2"], cwd=REPO, capture_output=True, text=True, timeout=120,
                               env=child_env(), check=False)
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    assert "mean return:" in evaluated.stdout


@pytest.mark.slow
def test_the_users_dict_env_trains_from_its_code_dir(tmp_path: Path, code_dir: Path) -> None:
    """module:Class from a directory given with --code-dir (importable in the job and its env runners)."""
    run_dir = tmp_path / "run"
    env = {key: value for key, value in child_env().items() if key != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "scripts/train.py", "--env", "my_robots:Reach", "--code-dir",
                           str(code_dir), "--max-episode-steps", "50", "--run-dir", str(run_dir),
                           "--hp", "rl.training.stop.training_iteration=2"],
                          cwd=REPO, capture_output=True, text=True, timeout=300, env=env, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    layout = json.loads((run_dir / "model" / "observation.json").read_text())["observation"]
    assert [row["path"] for row in layout] == ["desired_goal", "observation", "phase"]
    params = json.loads((run_dir / "model" / "params.json").read_text())
    assert params["env"] == {"id": "my_robots:Reach", "package": None, "kwargs": {}, "max_episode_steps": 50}


def test_the_check_runs_the_env_before_a_run_and_skips_code_it_cannot_see(code_dir: Path) -> None:
    from sagemaker_rl.job import check_hyperparameters

    assert check_hyperparameters(None, [{"rl.env.id": "my_robots:Reach"}], code_dir=code_dir) is None
    refused = check_hyperparameters(None, [{"rl.env.id": "my_robots:Reach"},
                                           {"rl.env.id": "my_robots:Faulty", "rl.env.kwargs.fault": "reset"}],
                                    code_dir=code_dir)
    assert refused is not None and refused[0] == 1 and "raised in reset: RuntimeError: gripper not homed" in refused[1]
    # code only in the image: checked there, not here
    assert check_hyperparameters(None, [{"rl.env.id": "not_my_robots:Arm"}], envs_here=False) is None
    missing = check_hyperparameters(None, [{"rl.env.id": "not_my_robots:Arm"}])
    assert missing is not None and "module 'not_my_robots' was not found" in missing[1]
