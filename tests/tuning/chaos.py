"""Chaos over a whole tuning run: a real run of reacher (real jobs, its shared Ray instance, a re-evaluation; or
population-based training), killed with SIGKILL at random moments — the tuner, running jobs, the run's Ray
head — and resumed after each kill of the tuner, until it ends; a PBT run also has the newest checkpoint of
finished segments cut short on disk. Then the invariants are checked:

- the run ends with an answer: best_hyperparameters.json, model/policy.onnx, the report;
- no finished trial lost or changed: each trial seen finished at a kill has the same state and value at the end;
- no job run twice in the same place (one start in each job's output/job.log);
- the budget counted right: max_jobs search trials, not counting the interrupted ones run again (PBT: each
  segment ended once, all max_jobs of them unless the run said a generation's every member failed);
- nothing left behind: no process this run started, no Ray session directory of its own (with `--backend ray`:
  no Ray job of the run still running, no job process on the cluster);
- PBT: each segment continued from its parent's newest intact checkpoint (at most one interval lost).

With `--backend ray` the run's jobs are Ray jobs on a real two-node cluster started here (tests/ray_cluster.py,
token authentication on), and the targets are the tuner, the jobs' drivers and the worker node: SIGKILL to every
process of the node, as a machine that dies, which is then started again, as a cluster's autoscaler replaces it.

    .venv/bin/python tests/tuning/chaos.py --kills 30 [--strategy PBT | --backend ray] [--seed 0] [--run-dir DIR]

prints one line per kill and a JSON summary; `tests/tuning/test_chaos.py` runs a short one in CI.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import optuna

if __package__ in (None, ""):  # run as a script: the repository's own modules (tests.ray_cluster) importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from sagemaker_rl.job.checkpoints import _check_files
from sagemaker_rl.tuning.record import read
from sagemaker_rl.tuning.runners import PID_FILE as JOB_PID_FILE
from sagemaker_rl.tuning.shared_ray import PID_FILE as RAY_HEAD_PID_FILE
from tests.ray_cluster import FAST_HEALTH_CHECK, LocalCluster

REPO = Path(__file__).resolve().parents[2]
TUNE = REPO / "scripts" / "tune.py"
JOB_START_LINE = " INFO sagemaker_rl.job.entry: job "  # logged once at each start of a job
WORKER = "worker-1"  # the Ray cluster's node that dies (the head holds the cluster)
RAY_TEMP_ROOT = Path(tempfile.gettempdir(), f"sagemaker_rl-{os.getuid()}")  # shared_ray's temp dirs


def tuning_config(max_jobs: int, seed: int, strategy: str) -> dict:
    """A real run of short trials (3 iterations of 1,000 env steps, a checkpoint each), two jobs at a time; PBT:
    a population of 3 with segments of 3,000 env steps."""
    if strategy == "PBT":
        run = {"strategy": "PBT", "population": 3, "perturbation_interval": 3000, "max_jobs": max_jobs}
    else:
        run = {"strategy": strategy, "max_jobs": max_jobs, "reevaluate_top": 2, "reevaluate_seeds": 2,
               "static": {"rl.training.stop.training_iteration": 3}}
    return {
        "max_parallel_jobs": 2, "sampler_seed": seed, **run,
        "parameters": {"rl.training.config.lr": {"type": "Continuous", "min_value": 1e-4, "max_value": 3e-3,
                                                 "scaling_type": "Logarithmic"}},
        "static": {
            **run.pop("static", {}),
            "rl.training.checkpoint_freq": 1,
            "rl.training.config.train_batch_size_per_learner": 1000,
            "rl.training.config.minibatch_size": 250,
            "rl.training.config.num_epochs": 1,
            "rl.training.config.num_envs_per_env_runner": 4,
        },
    }


@dataclass
class Chaos:
    run_dir: Path
    rng: random.Random
    log: Path
    tuner: subprocess.Popen | None = None
    damage: bool = False  # a target more: the newest checkpoint of a finished job, cut short on disk
    cluster: LocalCluster | None = None  # --backend ray: the cluster the jobs run on
    kills: list[dict] = field(default_factory=list)
    damaged: list[Path] = field(default_factory=list)
    finished_seen: dict[int, tuple[str, float | None]] = field(default_factory=dict)
    tuner_exits: list[int] = field(default_factory=list)

    @property
    def jobs_dir(self) -> Path:
        """Where the jobs' directories are: the run's, or its directory on the cluster's storage."""
        return self.storage / self.run_dir.name if self.cluster else self.run_dir

    @property
    def storage(self) -> Path:
        assert self.cluster is not None
        return self.cluster.directory / "storage"

    @property
    def kinds(self) -> tuple[str, ...]:
        """The kinds of target."""
        if self.cluster:
            return ("tuner", "job", "worker node")
        return ("tuner", "job", "ray head", *(["checkpoint"] if self.damage else []))

    def start(self, config: Path) -> None:
        backend = ["--backend", "ray", "--address", self.cluster.dashboard_url,
                   "--storage-path", str(self.storage)] if self.cluster else []
        self._tune("--problem", "reacher", "--config", str(config), "--run-dir", str(self.run_dir), *backend)

    def resume(self) -> None:
        self._tune("--resume", str(self.run_dir))

    def _tune(self, *args: str) -> None:
        env = {**os.environ, **(self.cluster.auth_env if self.cluster else {})}  # a user's token, as Ray reads it
        with self.log.open("ab") as out:
            self.tuner = subprocess.Popen([sys.executable, str(TUNE), *args], stdin=subprocess.DEVNULL, stdout=out,
                                          stderr=subprocess.STDOUT, cwd=self.run_dir.parent, start_new_session=True,
                                          env=env)

    def targets(self) -> dict[str, list[int]]:
        """What can be killed now: the tuner, each running job, the run's Ray head or the cluster's worker node
        (pids); the checkpoints that can be damaged (indexes)."""
        found: dict[str, list[int]] = {kind: [] for kind in self.kinds}
        if self.tuner is not None and self.tuner.poll() is None:
            found["tuner"].append(self.tuner.pid)
        if self.cluster:
            found["job"] = self._drivers()
            found["worker node"] = self.cluster.pids(WORKER)
            return found
        for pid_file in self.run_dir.glob(f"trials/**/{JOB_PID_FILE}"):
            pid = _recorded_pid(pid_file)
            if pid and _alive(pid) and not (pid_file.parent / "output" / "success").exists():
                found["job"].append(pid)
        head = _recorded_pid(self.run_dir / RAY_HEAD_PID_FILE)
        if head and _alive(head):
            found["ray head"].append(head)
        if self.damage:
            found["checkpoint"] = [index for index, _ in enumerate(self._undamaged())]
        return found

    def _drivers(self) -> list[int]:
        """The cluster's job processes (a Ray job's driver runs the job's module)."""
        assert self.cluster is not None
        return [pid for pid in self.cluster.pids() if " -m sagemaker_rl.job" in _cmdline(pid)]

    def ray_jobs_running(self) -> list[str]:
        """The run's Ray jobs the cluster still runs."""
        assert self.cluster is not None
        from ray.job_submission import JobSubmissionClient

        client = JobSubmissionClient(self.cluster.dashboard_url, headers={
            "Authorization": f"Bearer {self.cluster.token_file.read_text()}"})
        return [f"Ray job {job.submission_id} {job.status}" for job in client.list_jobs()
                if (job.metadata or {}).get("sagemaker_rl_run") == self.run_dir.name and not job.status.is_terminal()]

    def _undamaged(self) -> list[Path]:
        """The newest checkpoint of each finished job, not damaged yet."""
        newest = [max(job.glob("checkpoints/checkpoint_*"), default=None)
                  for job in (success.parent.parent for success in self.run_dir.glob("trials/*/output/success"))]
        return [path for path in newest if path is not None and path not in self.damaged]

    def _cut(self, index: int) -> None:
        checkpoint = self._undamaged()[index]
        largest = max((path for path in checkpoint.rglob("*") if path.is_file()), key=lambda path: path.stat().st_size)
        largest.write_bytes(largest.read_bytes()[: largest.stat().st_size // 2])
        self.damaged.append(checkpoint)

    def kill_one(self) -> str | None:
        """SIGKILL a random target (a job or the Ray head with its process group); what was killed."""
        targets = {name: pids for name, pids in self.targets().items() if pids}
        if not targets:
            return None
        # The target killed least so far (a random one of those): a short run still meets every kind.
        fewest = min(sum(kill["target"] == name for kill in self.kills) for name in targets)
        name = self.rng.choice(sorted(name for name in targets
                                      if sum(kill["target"] == name for kill in self.kills) == fewest))
        pid = self.rng.choice(targets[name])
        self.snapshot()
        try:
            if name == "checkpoint":
                self._cut(pid)
            elif name == "worker node":
                assert self.cluster is not None
                self.cluster.kill_node(WORKER)
            elif name == "tuner" or self.cluster:  # a Ray job's driver: its group is Ray's, not the job's
                os.kill(pid, signal.SIGKILL)
            else:
                os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            return None
        self.kills.append({"at_s": round(time.monotonic(), 1), "target": name, "pid": pid})
        if name == "tuner":
            assert self.tuner is not None
            self.tuner.wait()
            self.resume()
        elif name == "worker node":  # a new machine in the dead one's place
            assert self.cluster is not None
            self.cluster.restart_node(WORKER)
        return name

    def snapshot(self) -> None:
        """Remember every finished trial's state and value, to check later that none was lost or changed."""
        for trial in _trials(self.run_dir):
            if trial.state.is_finished() and trial.number not in self.finished_seen:
                self.finished_seen[trial.number] = (trial.state.name, trial.value)


def run(kills: int, *, max_jobs: int, seed: int, run_dir: Path, gap_s: tuple[float, float], timeout_s: float,
        strategy: str = "Bayesian", backend: str = "local") -> dict:
    """The chaos run; its summary with the invariants (name -> problems found, empty when it holds)."""
    if backend == "ray":
        with LocalCluster(nodes=2, cpus_per_node=1, env=FAST_HEALTH_CHECK) as cluster:
            return _run(kills, max_jobs=max_jobs, seed=seed, run_dir=run_dir, gap_s=gap_s, timeout_s=timeout_s,
                        strategy=strategy, cluster=cluster)
    return _run(kills, max_jobs=max_jobs, seed=seed, run_dir=run_dir, gap_s=gap_s, timeout_s=timeout_s,
                strategy=strategy, cluster=None)


def _run(kills: int, *, max_jobs: int, seed: int, run_dir: Path, gap_s: tuple[float, float], timeout_s: float,
         strategy: str, cluster: LocalCluster | None) -> dict:
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    config = run_dir.parent / "chaos-config.json"
    config.write_text(json.dumps(tuning_config(max_jobs, seed, strategy)))
    before_pids = set(_pids())
    before_sessions = set(_ray_sessions())
    chaos = Chaos(run_dir, random.Random(seed), run_dir.parent / "chaos-tuner.log", damage=strategy == "PBT",
                  cluster=cluster)
    started = time.monotonic()
    chaos.start(config)
    deadline = started + timeout_s
    while time.monotonic() < deadline:
        assert chaos.tuner is not None
        if chaos.tuner.poll() is not None:
            chaos.tuner_exits.append(chaos.tuner.returncode)
            if chaos.tuner.returncode in (0, 2) or len(chaos.tuner_exits) > kills + 3:
                break  # done, or refused (a user error: resuming would not help)
            chaos.resume()  # it ended on its own with an error: resumed, and counted against the run
            continue
        if len(chaos.kills) < kills and time.monotonic() > started + 8:
            time.sleep(chaos.rng.uniform(*gap_s))
            if (name := chaos.kill_one()) is not None:
                print(f"[{time.monotonic() - started:6.1f} s] kill {len(chaos.kills)}: {name}", flush=True)
        else:
            time.sleep(0.5)
    else:
        if chaos.tuner is not None and chaos.tuner.poll() is None:
            os.kill(chaos.tuner.pid, signal.SIGINT)
            chaos.tuner.wait(120)
    time.sleep(3)  # processes the tuner ended a moment ago
    return {
        "kills": len(chaos.kills),
        "by_target": {name: sum(kill["target"] == name for kill in chaos.kills) for name in chaos.kinds},
        "tuner_exits": chaos.tuner_exits,
        "wall_s": round(time.monotonic() - started, 1),
        "trials": _counts(run_dir),
        "invariants": check(chaos, max_jobs, before_pids, before_sessions),
    }


def check(chaos: Chaos, max_jobs: int, before_pids: set[int], before_sessions: set[Path]) -> dict[str, list[str]]:
    """Each invariant's problems (none when it holds)."""
    run_dir = chaos.run_dir
    problems: dict[str, list[str]] = {}
    problems["ended with an answer"] = [] if chaos.tuner_exits[-1:] == [0] else [f"tuner exits {chaos.tuner_exits}"]
    problems["ended with an answer"] += [f"no {name}" for name in ("best_hyperparameters.json", "model/policy.onnx",
                                                                   "report.html") if not (run_dir / name).is_file()]
    after = {trial.number: trial for trial in _trials(run_dir)}
    problems["no finished trial lost or changed"] = [
        f"trial {number} was {state} {value}, now {after[number].state.name} {after[number].value}"
        for number, (state, value) in chaos.finished_seen.items()
        if number not in after or (after[number].state.name, after[number].value) != (state, value)]
    problems["no job run twice"] = [
        f"{log.parent.parent} started {starts} times" for log in chaos.jobs_dir.glob("trials/**/output/job.log")
        if (starts := log.read_text(errors="replace").count(JOB_START_LINE)) > 1]
    if chaos.damage:  # PBT: each (member, generation) segment ended once (complete, or failed), not interrupted
        ended = [(read(trial).member, read(trial).generation) for trial in after.values()
                 if trial.state.is_finished() and not read(trial).interrupted]
        # A generation whose every member failed ends the population early, and the run says so.
        died = "population-based training stopped: every member" in chaos.log.read_text(errors="replace")
        problems["the budget counted right"] = [] if len(ended) == len(set(ended)) and (
            len(ended) == max_jobs or died and len(ended) < max_jobs) else [
            f"{len(set(ended))} segments ended ({len(ended)} trials), {max_jobs} budgeted"]
        problems["segments continued from their parent's newest intact checkpoint"] = _continued(after.values())
    else:
        search = [trial for trial in after.values() if read(trial).reevaluation_of is None]
        replaced = {read(trial).rerun_of for trial in search}
        counted = [trial for trial in search if trial.number not in replaced]
        problems["the budget counted right"] = [] if len(counted) == max_jobs else [
            f"{len(counted)} search trials counted, {max_jobs} budgeted"]
    cluster_pids = set(chaos.cluster.pids()) if chaos.cluster else set()  # the cluster's own: the user's
    problems["nothing left behind"] = [
        f"pid {pid}: {_cmdline(pid)[:160]}" for pid in sorted(set(_pids()) - before_pids - cluster_pids)
        if _alive(pid) and _ours(pid)] + [f"{path}" for path in sorted(set(_ray_sessions()) - before_sessions)]
    if chaos.cluster:
        problems["nothing left behind"] += chaos.ray_jobs_running() + [
            f"job process {pid} on the cluster: {_cmdline(pid)[:160]}" for pid in chaos._drivers()]
    return problems


def _continued(trials) -> list[str]:
    """Segments that did not resume from their parent's newest checkpoint, or the one before it when the newest
    was damaged (at most one checkpoint interval lost); or that started from a damaged copy."""
    by_number = {trial.number: trial for trial in trials}
    problems = []
    for trial in trials:
        record = read(trial)
        if record.parent is None or trial.state.name != "COMPLETE":
            continue
        parent_dir = Path(str(read(by_number[record.parent]).trial_dir))
        parent_checkpoints = sorted(parent_dir.glob("checkpoints/checkpoint_*"))
        log = Path(str(record.trial_dir), "stdout.log").read_text(errors="replace")
        resumed = [line.split(":")[0].removeprefix("Resumed from ") for line in log.splitlines()
                   if line.startswith("Resumed from ")]
        allowed = [path.name for path in parent_checkpoints[-2:]]
        if not resumed or resumed[0] not in allowed:
            problems.append(f"trial {trial.number} resumed from {resumed[:1] or 'nothing'}, not one of {allowed}")
            continue
        try:
            _check_files(Path(str(record.trial_dir), "checkpoints", resumed[0]))
        except (OSError, ValueError) as error:
            problems.append(f"trial {trial.number} started from a damaged checkpoint: {error}")
    return problems


def _counts(run_dir: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    for trial in _trials(run_dir):
        role = "reevaluation" if read(trial).reevaluation_of is not None else "search"
        key = f"{role} {trial.state.name.lower()}"
        counts[key] = counts.get(key, 0) + 1
    return counts


def _trials(run_dir: Path) -> list[optuna.trial.FrozenTrial]:
    try:
        run = json.loads((run_dir / "tuning.json").read_text())["run"]
        return optuna.load_study(study_name=run["study_name"], storage=run["storage"]).get_trials(deepcopy=False)
    except (OSError, ValueError, KeyError):  # not written yet, or being rewritten
        return []


def _recorded_pid(pid_file: Path) -> int | None:
    try:
        return int(json.loads(pid_file.read_text())["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _pids() -> list[int]:
    return [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()]


def _alive(pid: int) -> bool:
    """Running, not a zombie waiting for its parent."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _ours(pid: int) -> bool:
    """A process of the product: a tuner, a job, a standby process or a Ray process."""
    return any(word in _cmdline(pid) for word in ("sagemaker_rl", "tune.py", "ray", "raylet", "gcs_server"))


def _ray_sessions() -> list[Path]:
    """Ray session directories: the shared instances' and those of jobs that start their own Ray."""
    return [*RAY_TEMP_ROOT.glob("ray-*/session_2*"), *Path(tempfile.gettempdir(), "ray").glob("session_2*")]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=30)
    parser.add_argument("--max-jobs", type=int, help="the run's budget (default: one trial per kill, at least 8)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--strategy", default="Bayesian", help="Bayesian (default, TPE), Random or PBT")
    parser.add_argument("--backend", default="local", choices=["local", "ray"],
                        help="ray: the jobs run on a two-node Ray cluster started here, whose worker node dies")
    parser.add_argument("--run-dir", type=Path, default=Path(tempfile.mkdtemp(prefix="chaos-"), "run"))
    parser.add_argument("--timeout-s", type=float, default=3600)
    args = parser.parse_args()
    summary = run(args.kills, max_jobs=args.max_jobs or max(8, args.kills), seed=args.seed, run_dir=args.run_dir,
                  gap_s=(2.0, 10.0), timeout_s=args.timeout_s, strategy=args.strategy, backend=args.backend)
    print(json.dumps(summary, indent=2))
    return 0 if not any(summary["invariants"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
