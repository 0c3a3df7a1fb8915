"""`scripts/tune.py --backend ray` on a real two-node Ray cluster on this machine, with the real job.

Each node has one CPU, so two trials of one CPU each run side by side, one per node. The cluster is
started by the tests (`tests/ray_cluster.py`) and stopped by them, down to its last process. It requires
its token, which the tuner gets as a user gives it (RAY_AUTH_MODE and RAY_AUTH_TOKEN_PATH in its environment).
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from sagemaker_rl.job.env_runner import LeanEnvRunner
from sagemaker_rl.tuning import ray_jobs
from sagemaker_rl.tuning.ray_jobs import JOB_FILE
from tests.conftest import TINY_PPO
from tests.ray_cluster import FAST_HEALTH_CHECK, LocalCluster

REPO = Path(__file__).resolve().parents[2]
TUNE = REPO / "scripts" / "tune.py"


def _space(path: Path, *, iterations: int, reevaluate: int = 0) -> Path:
    """A tiny study: kl_coeff tuned, TINY_PPO's small real iterations (4 envs: episodes finish on one CPU);
    `reevaluate`: the best that many and the default trained again on one fresh seed."""
    path.write_text(json.dumps({
        "strategy": "Random",
        "sampler_seed": 1,
        "reevaluate_top": reevaluate,
        "reevaluate_seeds": 1,
        "parameters": {"rl.training.config.kl_coeff": {"type": "Continuous", "min_value": 0.5, "max_value": 1.0}},
        "static": {"rl.training.stop.training_iteration": iterations, **TINY_PPO},
    }))
    return path


def _tune(cluster: LocalCluster, storage: Path, *args: str) -> list[str]:
    return [sys.executable, str(TUNE), "--problem", "reacher", "--backend", "ray", "--address",
            cluster.dashboard_url, "--storage-path", str(storage), *args]


def _headers(cluster: LocalCluster) -> dict[str, str]:
    return {"Content-Type": "application/json", "Authorization": f"Bearer {cluster.token_file.read_text()}"}


def _client(cluster: LocalCluster):
    from ray.job_submission import JobSubmissionClient

    return JobSubmissionClient(cluster.dashboard_url, headers=_headers(cluster))


def _state(cluster: LocalCluster):
    from ray.util.state import StateApiClient

    return StateApiClient(cluster.dashboard_url, headers=_headers(cluster))


def _study(run_dir: Path) -> optuna.Study:
    data = json.loads((run_dir / "tuning.json").read_text())
    return optuna.load_study(study_name=data["run"]["study_name"], storage=data["run"]["storage"])


def _job_ids(run_dir: Path) -> dict[str, str]:
    """Ray job id of each trial directory that started its job."""
    return {path.parent.name: json.loads(path.read_text())["job_id"] for path in run_dir.glob(f"trials/*/{JOB_FILE}")}


def _wait_for(predicate, timeout: float = 300, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def _running(cluster: LocalCluster, run_dir: Path, count: int) -> bool:
    ids = _job_ids(run_dir)
    client = _client(cluster)
    return len(ids) >= count and sum(client.get_job_status(i) == "RUNNING" for i in ids.values()) >= count


def _run_jobs(cluster: LocalCluster, run_dir: Path) -> list:
    """The cluster's jobs of this run (trial jobs, not the check job)."""
    return [job for job in _client(cluster).list_jobs()
            if (job.metadata or {}).get("sagemaker_rl_run") == run_dir.name
            and not job.submission_id.startswith("check-")]


def _job_processes(cluster: LocalCluster) -> list[int]:
    """Live job processes (drivers) of the cluster."""
    alive = []
    for pid in cluster.pids():
        try:
            if b"sagemaker_rl.job" in Path(f"/proc/{pid}/cmdline").read_bytes():
                alive.append(pid)
        except OSError:
            continue
    return alive


@pytest.fixture(scope="module")
def cluster():
    # One try at a runtime env Ray cannot set up, not Ray's 3 (each makes a virtualenv): the tests' time only.
    with LocalCluster(nodes=2, cpus_per_node=1, env={**FAST_HEALTH_CHECK, "RUNTIME_ENV_RETRY_TIMES": "1"}) as started, \
            pytest.MonkeyPatch.context() as patch:
        for name, value in started.auth_env.items():  # what the tuners started here inherit
            patch.setenv(name, value)
        yield started
    assert started.pids() == [], "the cluster left processes behind"
    assert not started.directory.exists()


def test_an_unreachable_cluster_is_one_sentence_with_the_fix(tmp_path):
    done = subprocess.run([sys.executable, str(TUNE), "--backend", "ray", "--address", "http://127.0.0.1:9",
                           "--storage-path", str(tmp_path / "s"), "--run-dir", str(tmp_path / "run")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error: cannot reach the Ray cluster's Jobs API at http://127.0.0.1:9")
    assert "--address" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("storage", "message"), [
    ("s3://bucket/prefix", "is a URI"),
    ("relative/dir", "must be an absolute directory"),
])
def test_a_storage_path_that_is_not_a_directory_is_refused_before_connecting(tmp_path, storage, message):
    done = subprocess.run([sys.executable, str(TUNE), "--backend", "ray", "--address", "http://127.0.0.1:9",
                           "--storage-path", storage], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 2 and message in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_ray_options_without_the_ray_backend_are_refused(tmp_path):
    done = subprocess.run([sys.executable, str(TUNE), "--storage-path", "/x"], capture_output=True, text=True,
                          timeout=60, cwd=tmp_path)
    assert done.returncode == 2 and "--storage-path applies to --backend ray" in done.stderr


@pytest.mark.parametrize(("token", "refusal"), [(None, "requires a token and none was given"),
                                                ("0" * 64, "refused the token given")])
def test_a_missing_or_wrong_token_is_one_sentence_with_the_fix(cluster, tmp_path, token, refusal):
    env = {name: value for name, value in os.environ.items() if not name.startswith("RAY_AUTH")}
    env["HOME"] = str(tmp_path)  # no ~/.ray/auth_token of the user's
    if token:
        env["RAY_AUTH_TOKEN"] = token
    done = subprocess.run(_tune(cluster, tmp_path / "storage", "--run-dir", str(tmp_path / "run")), env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.strip() == (f"error: the Ray cluster at {cluster.dashboard_url} {refusal}: put the "
                                   "cluster's token in $RAY_AUTH_TOKEN, in a file named by $RAY_AUTH_TOKEN_PATH, "
                                   "or in ~/.ray/auth_token (`ray get-auth-token` on the head prints it)")
    assert not (tmp_path / "run").exists()


def test_the_users_token_is_read_where_rays_own_clients_look_in_their_order(tmp_path, monkeypatch):
    from sagemaker_rl.tuning.ray_jobs import _user_token

    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".ray").mkdir()
    (tmp_path / ".ray" / "auth_token").write_text("from-home\n")
    (tmp_path / "named").write_text("from-path\n")
    assert _user_token({}) == "from-home"
    assert _user_token({"RAY_AUTH_TOKEN_PATH": str(tmp_path / "named")}) == "from-path"
    assert _user_token({"RAY_AUTH_TOKEN_PATH": str(tmp_path / "named"), "RAY_AUTH_TOKEN": "from-env"}) == "from-env"
    assert _user_token({"RAY_AUTH_TOKEN_PATH": str(tmp_path / "missing")}) is None  # named: no fallback, as Ray


def test_a_storage_path_the_cluster_cannot_write_fails_before_the_run_starts(cluster, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    done = subprocess.run(_tune(cluster, blocker / "storage", "--run-dir", str(tmp_path / "run")),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "is not writable on the cluster" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_a_new_run_named_as_a_run_on_the_storage_is_refused_before_it_starts(cluster, tmp_path):
    storage = cluster.directory / "storage"
    (storage / "taken").mkdir(parents=True, exist_ok=True)  # an earlier run's trials, e.g. from another machine
    done = subprocess.run(_tune(cluster, storage, "--run-dir", str(tmp_path / "taken")), capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "already holds a run named taken" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "taken").exists()


def test_a_code_dir_whose_requirements_do_not_install_is_refused_once_before_the_run_with_pips_words(cluster,
                                                                                                      tmp_path):
    """Every job would set up the same runtime env and fail the same way, each after Ray's retries: the check
    job before the run installs it first."""
    code = tmp_path / "code"
    code.mkdir()
    (code / "requirements.txt").write_text("a requirement pip cannot read ==\n")
    done = subprocess.run(_tune(cluster, cluster.directory / "storage", "--code-dir", str(code), "--run-dir",
                                str(tmp_path / "run")), capture_output=True, text=True, timeout=900)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.startswith(f"error: the Ray cluster at {cluster.dashboard_url} cannot run our jobs: "
                                  "runtime_env setup failed"), done.stderr
    assert done.stderr.strip().endswith(" pip: Invalid requirement: 'a requirement pip cannot read ==' (line 1 of "
                                        "requirements.txt)"), done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and not (tmp_path / "run").exists()


@pytest.mark.slow
@pytest.mark.timeout(1800)  # a loaded machine starts a cluster and its jobs slowly
def test_pbt_on_the_cluster_continues_an_exploited_member_from_its_donors_checkpoint_on_the_storage(
        cluster, tmp_path):
    run_dir, storage = tmp_path / "pbt-run", cluster.directory / "storage"  # the storage keys runs by name
    storage.mkdir(exist_ok=True)
    statics = [arg for key, value in TINY_PPO.items() for arg in ("--static", f"{key}={value}")]
    done = subprocess.run(_tune(cluster, storage, "--strategy", "PBT", "--population", "2", "--max-jobs", "4",
                                "--perturbation-interval", "4000", "--sampler-seed", "2", "--run-dir", str(run_dir),
                                *statics), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    trials = _study(run_dir).trials
    assert len(trials) == 4 and all(trial.state == TrialState.COMPLETE for trial in trials)
    (taker,) = [trial for trial in trials if trial.user_attrs["pbt_exploited_from"] is not None]
    donor = next(trial for trial in trials if trial.number == taker.user_attrs["pbt_parent"])
    taker_dir = Path(taker.user_attrs["outputs"][0])
    assert taker_dir == storage / run_dir.name / "trials" / f"{taker.number:04d}"  # it ran on the storage
    log = (run_dir / "trials" / f"{taker.number:04d}" / "stdout.log").read_text()
    donor_state = json.loads(sorted((Path(donor.user_attrs["outputs"][0]) / "checkpoints").glob(
        "checkpoint_*/job_state.json"))[-1].read_text())
    assert f"iteration {donor_state['training_iteration']}, {donor_state['timesteps_total']:,} env steps" in log
    assert (run_dir / "model" / "policy.onnx").is_file() and (run_dir / "schedule.json").is_file()
    assert len({job.driver_node_id for job in _run_jobs(cluster, run_dir)}) == 2


@pytest.mark.slow
@pytest.mark.timeout(1800)  # a loaded machine starts a cluster and its jobs slowly
def test_tiny_tuning_runs_on_both_nodes_and_resume_after_kill_9_reattaches_to_running_jobs(cluster, tmp_path):
    run_dir, storage = tmp_path / "run", cluster.directory / "storage"
    command = _tune(cluster, storage, "--config", str(_space(tmp_path / "space.json", iterations=3, reevaluate=1)),
                    "--max-jobs", "4", "--max-parallel-jobs", "2", "--run-dir", str(run_dir))
    tuner = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    _wait_for(lambda: _running(cluster, run_dir, 2), what="two running Ray jobs")
    tuner.kill()  # kill -9: the tuner leaves its trials RUNNING and their Ray jobs running on
    tuner.communicate()
    before = _job_ids(run_dir)
    client = _client(cluster)
    still_running = {name for name, job_id in before.items() if client.get_job_status(job_id) == "RUNNING"}
    assert still_running, "no job ran on after the tuner was killed"

    resumed = subprocess.run([sys.executable, str(TUNE), "--resume", str(run_dir)], capture_output=True, text=True,
                             timeout=600)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "reattached to the jobs of trial(s)" in resumed.stdout
    trials = _study(run_dir).trials  # 4 searched, then the best and the default on a fresh seed
    assert len(trials) == 6 and all(trial.state == TrialState.COMPLETE for trial in trials)
    assert not any("rerun_of" in trial.user_attrs for trial in trials)  # followed again, not run again
    after = _job_ids(run_dir)
    assert {name: after[name] for name in before} == before  # the same Ray jobs, reattached by their ids
    jobs = _run_jobs(cluster, run_dir)
    assert sorted(job.submission_id for job in jobs) == sorted(after.values())  # one Ray job per trial, no more
    assert all(job.status == "SUCCEEDED" for job in jobs)
    assert len({job.driver_node_id for job in jobs}) == 2  # the trials ran on both nodes

    rows = {int(row["trial"]): row for row in csv.DictReader(open(run_dir / "trials.csv"))}
    for trial in trials:  # the objective is the job's last reward line, read from its log
        log = (run_dir / "trials" / f"{trial.number:04d}" / "stdout.log").read_text()
        last = [line for line in log.splitlines() if line.startswith("episode_reward_mean: ")][-1]
        assert trial.value == pytest.approx(float(last.split()[1]))
        assert len(trial.intermediate_values) == 3  # one value an iteration, none lost or doubled by the resume
        output = Path(rows[trial.number]["outputs"])  # the report names where the model is, on the storage
        assert output == storage / run_dir.name / "trials" / f"{trial.number:04d}"
        assert (output / "model" / "policy.onnx").is_file() and (output / "output" / "success").exists()
    best = json.loads((run_dir / "best_hyperparameters.json").read_text())
    assert best["rl.training.stop.training_iteration"] == 3
    assert "model of the best trial (on the cluster's storage)" in resumed.stdout
    assert (run_dir / "report.html").is_file()
    assert _job_processes(cluster) == []


@pytest.mark.slow
@pytest.mark.timeout(1800)  # a loaded machine starts a cluster and its jobs slowly
def test_a_trial_with_two_cpus_holds_exactly_two_and_ctrl_c_stops_its_ray_job(cluster, tmp_path):
    from ray.util.state.common import ListApiOptions, StateResource

    run_dir = tmp_path / "two-cpu-run"
    # One trial at a time on the cluster's 2 CPUs: the driver holds one, its one env runner the other.
    command = _tune(cluster, cluster.directory / "storage", "--config",
                    str(_space(tmp_path / "space.json", iterations=50)), "--max-jobs", "2",
                    "--max-parallel-jobs", "1", "--run-dir", str(run_dir))
    tuner = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.default_int_handler))
    _wait_for(lambda: _running(cluster, run_dir, 1), what="a running Ray job")
    job_id = _job_ids(run_dir)["0000"]
    client = _client(cluster)

    def runner_actor():
        options = ListApiOptions(filters=[("class_name", "=", LeanEnvRunner.__name__), ("state", "=", "ALIVE")],
                                 detail=True)
        actors = _state(cluster).list(StateResource.ACTORS, options=options, raise_on_missing_output=True)
        return actors[0] if actors else None

    _wait_for(lambda: runner_actor() is not None, what="the trial's env runner")
    assert client.get_job_info(job_id).driver_node_id != runner_actor().node_id  # placed on the other node's CPU

    def cpu_usage() -> str:
        status = subprocess.run([str(Path(sys.executable).with_name("ray")), "status", "--address",
                                 cluster.gcs_address], capture_output=True, text=True,
                                env=cluster.node_env("status"), timeout=60).stdout
        return next((line.strip() for line in status.splitlines() if line.strip().endswith(" CPU")), status)

    # The driver's CPU and its runner's: the trial's 2, no more (the cluster has 2). `ray status` reports
    # usage a few seconds late: a CI run once saw 1.0/2.0 with the runner alive.
    _wait_for(lambda: cpu_usage() == "2.0/2.0 CPU", timeout=30, what="ray status to show 2.0/2.0 CPU in use")

    os.kill(tuner.pid, signal.SIGINT)
    output, _ = tuner.communicate(timeout=120)
    assert tuner.returncode == 130, output
    assert f"stopped 1 Ray job(s) on {cluster.dashboard_url}: {job_id}" in output
    assert f"--resume {run_dir}" in output
    assert client.get_job_status(job_id) == "STOPPED"
    assert [t.user_attrs.get("interrupted") for t in _study(run_dir).trials] == [True]
    _wait_for(lambda: _job_processes(cluster) == [], timeout=30, what="the job's processes to end")


@pytest.mark.slow
@pytest.mark.timeout(1800)  # a loaded machine starts a cluster and its jobs slowly
def test_a_job_whose_node_dies_carries_rays_reason_and_its_trial_runs_again(tmp_path, monkeypatch):
    """A machine lost (a spot node, a crash) is no fault of the trial's values: the trial runs again on the nodes
    left, outside the budget, as a trial lost with the local run's Ray instance."""
    with LocalCluster(nodes=2, cpus_per_node=1, env=FAST_HEALTH_CHECK) as doomed:
        for name, value in doomed.auth_env.items():
            monkeypatch.setenv(name, value)
        run_dir = tmp_path / "run"
        command = _tune(doomed, doomed.directory / "storage", "--config",
                        str(_space(tmp_path / "space.json", iterations=4)), "--max-jobs", "3",
                        "--max-parallel-jobs", "2", "--run-dir", str(run_dir))
        tuner = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        _wait_for(lambda: _running(doomed, run_dir, 2), what="two running Ray jobs")
        client = _client(doomed)
        head = _head_node(doomed)
        on_worker = [name for name, job_id in _job_ids(run_dir).items()
                     if client.get_job_info(job_id).driver_node_id != head]
        assert len(on_worker) == 1  # one trial a node
        doomed.kill_node("worker-1")
        output, _ = tuner.communicate(timeout=600)
        assert tuner.returncode == 0, output
        rows = {f"{int(row['trial']):04d}": row for row in csv.DictReader(open(run_dir / "trials.csv"))}
        dead = rows[on_worker[0]]
        assert dead["status"] == "interrupted"
        assert "node" in dead["failure"].lower() and "is dead" in dead["failure"].lower(), dead["failure"]
        assert sorted(row["status"] for row in rows.values()) == ["complete"] * 3 + ["interrupted"]
        rerun = next(trial for trial in _study(run_dir).trials if trial.user_attrs.get("rerun_of") == int(on_worker[0]))
        assert rerun.state == TrialState.COMPLETE
        assert all(job.status.is_terminal() for job in _run_jobs(doomed, run_dir))
    assert doomed.pids() == []


def _head_node(cluster: LocalCluster) -> str:
    from ray.util.state.common import ListApiOptions, StateResource

    nodes = _state(cluster).list(StateResource.NODES, options=ListApiOptions(detail=True), raise_on_missing_output=True)
    return next(node.node_id for node in nodes if node.is_head_node)


def test_a_ray_job_with_a_code_dir_imports_the_users_module_in_its_driver_and_its_workers(cluster, tmp_path):
    from sagemaker_rl.tuning.ray_jobs import CODE_SNAPSHOT, RayCluster, RayJobRunner

    code = tmp_path / "my_code"
    code.mkdir()
    (code / "user_mod.py").write_text("VALUE = 41\n")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    runner = RayJobRunner(RayCluster(cluster.dashboard_url, str(cluster.directory / "storage")), run_dir)
    snapshot = runner.code_snapshot(code)
    (code / "user_mod.py").write_text("VALUE = 0\n")  # an edit after the run's first job: not in its snapshot
    assert snapshot == run_dir / CODE_SNAPSHOT and runner.code_snapshot(code) == snapshot
    probe = ("import ray, user_mod; ray.init(); "
             "print('driver', user_mod.VALUE, 'worker', ray.get(ray.remote(lambda: __import__('user_mod').VALUE + 1)"
             ".options(num_cpus=0).remote()))")
    job_id = runner._submit(f"python -c {probe!r}", env={}, cpus=0, name="code-dir", code_dir=snapshot)
    deadline = time.monotonic() + 180
    while runner._client.get_job_status(job_id) not in ("SUCCEEDED", "FAILED", "STOPPED"):
        assert time.monotonic() < deadline, "the job did not end"
        time.sleep(0.5)
    logs = runner._client.get_job_logs(job_id)
    assert runner._client.get_job_status(job_id) == "SUCCEEDED", logs
    assert "driver 41 worker 42" in logs


class _LogLost:
    """The real Jobs API client, but every log comes back empty, as Ray returned it for some jobs that succeeded
    on a 2-node cluster (the job's own outputs on the storage were whole)."""

    def __init__(self, client) -> None:
        self._client = client

    def get_job_logs(self, job_id: str) -> str:
        return ""

    def __getattr__(self, name: str):
        return getattr(self._client, name)


def test_a_job_whose_log_ray_lost_is_read_from_what_it_wrote_on_the_storage(cluster, tmp_path):
    from sagemaker_rl.tuning import JobSpec
    from sagemaker_rl.tuning.ray_jobs import RayCluster, RayJobRunner

    run_dir = tmp_path / "log-lost"  # a name of its own on the storage the module's runs share
    (run_dir / "trials" / "0000").mkdir(parents=True)
    storage = cluster.directory / "storage"
    runner = RayJobRunner(RayCluster(cluster.dashboard_url, str(storage)), run_dir, client=_LogLost(_client(cluster)))
    spec = JobSpec(run_dir / "trials" / "0000", "reacher", {**TINY_PPO, "rl.training.stop.training_iteration": 2},
                   num_cpus=1, metric="episode_reward_mean")
    job = runner.start(spec)
    assert job.wait(300)
    status = job.poll()
    assert status.failure is None and [record.iteration for record in status.values] == [1, 2]
    rows = list(csv.DictReader((Path(runner.remote_dir(spec.base_dir)) / "output/intermediate/progress.csv").open()))
    assert [record.value for record in status.values] == [float(row["episode_reward_mean"]) for row in rows]
    assert [record.env_steps for record in status.values] == [int(row["timesteps_total"]) for row in rows]


def test_a_job_that_fails_before_it_can_say_why_carries_rays_words_and_its_last_output(cluster, tmp_path):
    """An import that fails before the job's own error handling (a package the cluster lacks): Ray's message ends at
    "last available logs:", so the failure adds the log's last line."""
    from sagemaker_rl.tuning import JobSpec
    from sagemaker_rl.tuning.ray_jobs import RayCluster, RayJob, RayJobRunner

    run_dir = tmp_path / "import-fails"
    (run_dir / "trials" / "0000").mkdir(parents=True)
    runner = RayJobRunner(RayCluster(cluster.dashboard_url, str(cluster.directory / "storage")), run_dir)
    spec = JobSpec(run_dir / "trials" / "0000", "reacher", {}, num_cpus=1, metric="episode_reward_mean")
    job_id = runner._submit("python -c 'import a_package_the_cluster_lacks'", env={}, cpus=0, name="import-fails")
    job = RayJob(spec, runner._client, job_id, remote_dir=runner.remote_dir(spec.base_dir))
    assert job.wait(120)  # it ended by itself
    failure = job.poll().failure
    assert failure == ("the Ray job failed (exit code 1): Job entrypoint command failed with exit code 1; last "
                       "output: ModuleNotFoundError: No module named 'a_package_the_cluster_lacks'"), failure


def test_a_submission_the_cluster_refuses_for_now_is_made_again_and_other_refusals_are_not(monkeypatch):
    """Stand-in submissions: a real cluster cannot be made to answer "No available agent" on demand (it did right
    after it came up, in a run by hand). Bounded: after the last wait the refusal is the job's failure."""
    monkeypatch.setattr(ray_jobs, "SUBMIT_RETRY_WAITS_S", (0.0, 0.0, 0.0))
    busy = RuntimeError("Request failed with status code 500: No available agent to submit job, please try again "
                        "later.")
    answers: list[object] = [busy, busy, "raysubmit_1"]

    def submit() -> str:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return str(answer)

    assert ray_jobs.submit_with_retries(submit) == "raysubmit_1" and not answers
    answers[:] = [busy] * 5
    with pytest.raises(RuntimeError, match="No available agent"):
        ray_jobs.submit_with_retries(submit)
    assert len(answers) == 1  # one attempt, then one more per wait
    answers[:] = [RuntimeError("Request failed with status code 400: bad runtime_env"), "raysubmit_2"]
    with pytest.raises(RuntimeError, match="bad runtime_env"):
        ray_jobs.submit_with_retries(submit)
    assert answers == ["raysubmit_2"]  # not tried again
