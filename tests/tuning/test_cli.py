"""scripts/tune.py: flags, errors, and an end-to-end run with the real job (slow)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TUNE = REPO / "scripts" / "tune.py"
TRAIN = REPO / "scripts" / "train.py"


def _tune(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(TUNE), *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)


def test_dry_run_shows_the_resolved_config_and_sagemakers_ranges(tmp_path):
    done = _tune(
        "--dry-run",
        "--param",
        "rl.training.config.lr=Continuous:1e-5:1e-3:Logarithmic",
        "--static",
        "rl.training.stop.time_total_s=60",
        "--max-jobs",
        "4",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    config = json.loads(done.stdout)
    assert config["max_jobs"] == 4 and config["strategy"] == "Bayesian"
    assert list(config["parameters"]) == ["rl.training.config.lr"]  # --param replaces the default space
    assert config["ParameterRanges"]["ContinuousParameterRanges"] == [
        {
            "Name": "rl.training.config.lr",
            "MinValue": "1e-05",
            "MaxValue": "0.001",
            "ScalingType": "Logarithmic",
        }
    ]
    assert config["StaticHyperParameters"] == {"rl.training.stop.time_total_s": "60"}
    assert not (tmp_path / "runs").exists()  # a dry run writes nothing


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--param", "rl.training.config.lr=Continous:0:1"], "did you mean 'Continuous'"),
        (["--strategy", "Grid"], "Categorical parameters only"),
        (["--static", "rl.training.config.klcoeff=0.3"], "klcoeff"),
        (["--resume", "nowhere", "--strategy", "Random"], "only --max-jobs and --max-parallel-jobs"),
        (["--resume", "nowhere"], "is not a tuning run directory"),
        (["--warm-start", "nowhere"], "is not a tuning run directory"),
        (["--reevaluate-seeds", "0"], "reevaluate_seeds must be a whole number >= 1"),
        (["--train-budget", "15m"], "train_budget '15m' is ambiguous"),
        (["--train-budget", "2h", "--max-runtime", "1h"], "train_budget 2h does not fit in max_runtime_s 3600"),
        (["--train-budget", "1M", "--backend", "sagemaker"], "--train-budget"),
        (["--run-dir", "a-file"], "--run-dir"),
        (["--run-dir", "a-file/run"], "a-file/run (Not a directory): choose another --run-dir"),
    ],
)
def test_user_errors_exit_2_with_one_line(tmp_path, args, message):
    (tmp_path / "a-file").write_text("")
    done = _tune(*args, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith("error: ") and message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "nowhere").exists() and not (tmp_path / "runs").exists()  # nothing written


@pytest.mark.slow
def test_tune_reacher_end_to_end_with_the_real_job(tmp_path):
    """Two real trials in parallel, one tiny iteration each, then the best one and the default re-evaluated
    on two fresh seeds at the training budget (two iterations), within the run's max runtime; every job
    connects to the run's one Ray instance; the run's model is the answer's best job's; the answer then
    trains with train.py."""
    config = tmp_path / "tiny.yaml"
    config.write_text(
        "strategy: Bayesian\nmax_jobs: 2\nmax_parallel_jobs: 2\nreevaluate_top: 1\nreevaluate_seeds: 2\n"
        "train_budget: 4000\n"
        "parameters:\n  rl.training.config.kl_coeff: {type: Continuous, min_value: 0.5, max_value: 1.0}\n"
        "static:\n"
        "  rl.training.stop.training_iteration: 1\n"
        "  rl.training.config.train_batch_size_per_learner: 2000\n"
        "  rl.training.config.minibatch_size: 500\n"
        "  rl.training.config.num_epochs: 2\n"
        # 4 envs: an iteration of 2000 steps on one CPU then finishes episodes (150 steps), and prints a reward
        "  rl.training.config.num_envs_per_env_runner: 4\n"
    )
    run_dir = tmp_path / "run"
    started = time.monotonic()
    done = _tune("--problem", "reacher", "--config", str(config), "--run-dir", str(run_dir), "--max-runtime", "8m",
                 cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert time.monotonic() - started < 8 * 60 + 60
    assert "2/2 done (0 failed" in done.stdout and "re-evaluated 2 of 2 configurations" in done.stdout
    rows = list(csv.DictReader(open(run_dir / "trials.csv")))
    assert [row["status"] for row in rows] == ["complete"] * 4
    search = [row for row in rows if row["role"] == "search"]
    top = max(search, key=lambda row: float(row["objective"]))["trial"]
    assert len(search) == 2
    assert {row["role"] for row in rows} - {"search"} == {"re-evaluation of default", f"re-evaluation of trial {top}"}
    job_dirs = [run_dir / "trials" / f"{int(row['trial']):04d}" for row in search]
    job_dirs += [directory for row in rows if row["role"] != "search"
                 for directory in sorted((run_dir / "trials" / f"{int(row['trial']):04d}").glob("seed-*"))]
    assert len(job_dirs) == 6
    addresses = set()
    for job_dir in job_dirs:
        assert (job_dir / "output" / "success").exists()
        assert "episode_reward_mean: " in (job_dir / "stdout.log").read_text()
        log = (job_dir / "output" / "job.log").read_text()
        addresses.add(log.split("connected to the Ray instance at ")[1].split()[0])
    assert len(addresses) == 1  # every job joined the run's one instance instead of starting its own
    for row in search:
        sent = json.loads((run_dir / "trials" / f"{int(row['trial']):04d}" / "input/config/hyperparameters.json")
                          .read_text())
        assert sent["rl.training.config.kl_coeff"] == row["rl.training.config.kl_coeff"]
    # The instance is gone with the run: no process of it left, its session files removed.
    head_log = (run_dir / "ray-head.log").read_text()
    temp_dir = head_log.split("Process exit logs will be saved to: ")[1].split("/session")[0]
    assert not Path(temp_dir).exists() and not (run_dir / "ray-head.pid").exists()
    assert not [pid for pid in Path("/proc").glob("[0-9]*") if temp_dir in _cmdline(pid)]
    best = json.loads((run_dir / "best_hyperparameters.json").read_text())
    assert best["rl.training.stop.timesteps_total"] == 4000 and "rl.training.seed" not in best
    assert "rl.training.stop.training_iteration" not in best  # the trials' stop is not the user's budget
    for job_dir in job_dirs[2:]:  # trained two iterations of 2,000 env steps: the budget, not the trials' one
        steps = [int(line.split()[1]) for line in (job_dir / "stdout.log").read_text().splitlines()
                 if line.startswith("timesteps_total: ")]
        assert 4000 <= steps[-1] < 6000 and len(steps) == 2
    answer_jobs = {(job_dir / "model" / "policy.onnx").read_bytes() for job_dir in job_dirs[2:]}
    assert (run_dir / "model" / "policy.onnx").read_bytes() in answer_jobs
    assert "best by re-evaluation: " in done.stdout and "re-evaluated on seeds 10000, 10001" in done.stdout
    assert (run_dir / "report.html").stat().st_size > 1_000_000  # plotly.js inlined
    recorded = json.loads((run_dir / "tuning.json").read_text())
    assert "--config" in recorded["reproduce"]["command"] and recorded["static"]["rl.training.config.num_epochs"] == 2

    trained = subprocess.run(
        [
            sys.executable,
            str(TRAIN),
            "--problem",
            "reacher",
            "--hp-file",
            str(run_dir / "best_hyperparameters.json"),
            "--run-dir",
            str(tmp_path / "train"),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert trained.returncode == 0, trained.stdout + trained.stderr
    assert "episode_reward_mean: " in trained.stdout


@pytest.mark.slow
def test_asha_on_the_real_job_stops_trials_at_rungs_and_judges_the_rest_at_the_training_budget(tmp_path):
    """Four real trials under ASHA with a training budget of three iterations (rungs at 666, 2,000 and 6,000 env
    steps): a trial goes on only in the best third of its rung, a paused one is promoted from its checkpoint (here,
    once the budget allows no new trial, its rung's best); the answer is re-evaluated at the budget."""
    config = tmp_path / "asha.yaml"
    config.write_text(
        "strategy: ASHA\nmax_jobs: 4\nmax_parallel_jobs: 2\nreevaluate_top: 1\nreevaluate_seeds: 1\n"
        "train_budget: 6000\nsampler_seed: 1\n"
        "parameters:\n  rl.training.config.lr: {type: Continuous, min_value: 1.0e-5, max_value: 1.0e-2, "
        "scaling_type: Logarithmic}\n"
        "static:\n"
        "  rl.training.config.train_batch_size_per_learner: 2000\n"
        "  rl.training.config.minibatch_size: 500\n"
        "  rl.training.config.num_epochs: 2\n"
        "  rl.training.config.num_envs_per_env_runner: 4\n"
    )
    run_dir = tmp_path / "run"
    done = _tune("--problem", "reacher", "--config", str(config), "--run-dir", str(run_dir), cwd=tmp_path, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = list(csv.DictReader(open(run_dir / "trials.csv")))
    search = [row for row in rows if row["role"] == "search"]
    promoted = [row for row in rows if row["role"].startswith("continues trial ")]
    assert len(search) == 4 and {row["status"] for row in search + promoted} <= {"complete", "pruned"}
    for row in search + promoted:
        steps = int(row["env_steps"])
        assert steps >= 6000 if row["status"] == "complete" else steps < 6000
    assert any(row["status"] == "complete" for row in search + promoted)
    for row in promoted:  # its job resumed from its parent's last checkpoint, past the parent's last report
        parent, trial_dir = rows[int(row["role"].split()[-1])], run_dir / "trials" / f"{int(row['trial']):04d}"
        assert "Resumed from checkpoint_" in (trial_dir / "stdout.log").read_text()
        with (trial_dir / "output" / "intermediate" / "progress.csv").open() as handle:
            assert int(next(csv.DictReader(handle))["timesteps_total"]) > int(parent["env_steps"])
    assert [row["status"] for row in rows if row["role"].startswith("re-evaluation")] == ["complete", "complete"]
    assert json.loads((run_dir / "best_hyperparameters.json").read_text())["rl.training.stop.timesteps_total"] == 6000
    assert (run_dir / "model" / "policy.onnx").is_file()


def _cmdline(pid: Path) -> str:
    try:
        return (pid / "cmdline").read_bytes().decode(errors="replace")
    except OSError:  # ended meanwhile
        return ""


def test_help_lists_every_tuning_file_key(tmp_path):
    from sagemaker_rl.tuning.config import file_keys

    done = _tune("--help", cwd=tmp_path)
    listed = " ".join(done.stdout.split("Tuning file keys:")[1].split()).split(" (")[0].split(", ")
    assert listed == file_keys()


@pytest.mark.parametrize(("given", "seconds"), [("900", 900), ("90s", 90), ("30m", 1800), ("1.5h", 5400)])
def test_max_runtime_takes_a_duration(tmp_path, given, seconds):
    done = _tune("--dry-run", "--max-runtime", given, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["max_runtime_s"] == seconds


def test_a_malformed_duration_is_refused_by_the_parser(tmp_path):
    done = _tune("--max-runtime", "3x", cwd=tmp_path)
    assert done.returncode == 2 and "'3x' is not a duration: write e.g. 900, 30m or 2h" in done.stderr


_PENDULUM_PROBLEM = """\
name: my-pendulum
env: {id: Pendulum-v1, max_episode_steps: 100, kwargs: {g: 9.81}}
presets:
  fast: {rl.training.config.num_epochs: 2, rl.training.config.train_batch_size_per_learner: 1600,
         rl.training.config.minibatch_size: 400}
space:
  parameters: {rl.training.config.lr: {type: Continuous, min_value: 1.0e-4, max_value: 1.0e-3}}
  static: {rl.training.stop.training_iteration: 1}
"""


def test_an_env_or_a_problem_file_is_tuned_with_its_keys_as_static_values(tmp_path):
    problem = tmp_path / "pendulum.yaml"
    problem.write_text(_PENDULUM_PROBLEM)
    done = _tune("--problem-file", str(problem), "--dry-run", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    config = json.loads(done.stdout)
    assert config["problem"] is None and list(config["parameters"]) == ["rl.training.config.lr"]
    assert config["static"] == {"rl.training.stop.time_total_s": 60,  # the default space's, with the file's
                                "rl.training.stop.training_iteration": 1, "rl.env.id": "Pendulum-v1",
                                "rl.env.max_episode_steps": 100, "rl.env.kwargs": {"g": 9.81},
                                "rl.training.config.num_epochs": 2,
                                "rl.training.config.train_batch_size_per_learner": 1600,
                                "rl.training.config.minibatch_size": 400}
    done = _tune("--env", "CartPole-v1", "--env-kwargs", '{"sutton_barto_reward": true}', "--dry-run", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["static"]["rl.env.kwargs"] == {"sutton_barto_reward": True}


@pytest.mark.parametrize(("args", "message"), [
    (["--problem", "hopper", "--env", "Pendulum-v1"], "--problem and --env both name what to train: keep one"),
    (["--env-package", "my_robots"], "--env-package describes an env: add --env ID_OR_ENTRY_POINT"),
    (["--env", "Pendulum-v1", "--simulator", "mujoco"], "--simulator picks a problem's env: drop it with --env"),
    (["--env", "Pendulum-v1", "--code-dir", "nowhere"], "the code directory nowhere does not exist"),
    (["--problem-file", "nowhere.yaml"], "cannot read problem file nowhere.yaml"),
    (["--env", "Pendulm-v1"], "rl.env.id 'Pendulm-v1' is not a registered Gymnasium id (did you mean 'Pendulum-v1'?)"),
])
def test_contradicting_or_bad_env_flags_exit_2_before_anything_starts(tmp_path, args, message):
    done = _tune(*args, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_tune_a_problem_file_end_to_end_with_the_real_job(tmp_path):
    """A user's problem (a registered env outside the problem table), two real trials at once, and the answer's
    train command: everything the job needs is in the hyperparameters."""
    problem = tmp_path / "pendulum.yaml"
    problem.write_text(_PENDULUM_PROBLEM)
    run_dir = tmp_path / "run"
    done = _tune("--problem-file", str(problem), "--max-jobs", "2", "--reevaluate-top", "0", "--run-dir", str(run_dir),
                 cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2/2 done (0 failed" in done.stdout
    rows = list(csv.DictReader(open(run_dir / "trials.csv")))
    assert [row["status"] for row in rows] == ["complete"] * 2
    for trial in ("0000", "0001"):
        log = (run_dir / "trials" / trial / "stdout.log").read_text()
        assert "[Pendulum-v1] iter 1" in log
    best = json.loads((run_dir / "best_hyperparameters.json").read_text())
    assert best["rl.env.id"] == "Pendulum-v1" and best["rl.env.kwargs"] == {"g": 9.81}
    assert f"train with them: python scripts/train.py --hp-file {run_dir / 'best_hyperparameters.json'}" in done.stdout
