"""Tuners side by side on a job none was tuned on: ours, rl-zoo3's optimizer and Ray Tune (ASHA), each given the same
wall-clock budget on the same cores, one at a time; then every answer trained again on fresh seeds at the user's
training budget, its final policy evaluated deterministically.

    .venv/bin/python bench/peers.py --target Pendulum-v1 --budget-s 900 --train-steps 100000 [--seeds 5]
    .venv/bin/python bench/peers.py --resume bench/results/peers-Pendulum-v1-<time>.json   # the parts not done yet

A target is a problem row on a simulator (`hopper/roboschool`) or an env id (`Pendulum-v1`: the job's generic
default). The run is made of parts, each saved to the JSON (bench/results/peers-<target>-<time>.json) when it
ends, so a stopped run resumes where it was:

1. `tune:TOOL`, one tool at a time on `--cpus` cores for `--budget-s` seconds of wall time:
   - `ours`: `scripts/tune.py --strategy Bayesian` with its default space (`--ours-config FILE`: that file's),
     `--max-runtime BUDGET --train-budget STEPS`: its answer and the policy its run trained (model/); `ours-asha`:
     the same with `--strategy ASHA`, the default strategy of a run with a training budget
     (`tuning.config.default_strategy`); `ours-pbt`: the same with `--strategy PBT` (each member trains the
     training budget; the answer is its best member's last values, as Ray Tune PBT's);
   - `rl-zoo3`: `bench/peer_zoo.py optimize` (rl-zoo3's PPO sampler, TPE and median pruner, two jobs at a time);
   - `ray-tune-asha`: `bench/peer_raytune.py` (ASHA on env steps over the space our run searches: with
     `--ours-config FILE`, that file's);
   - `ray-tune-pbt`: `bench/peer_raytune.py --scheduler PBT` (Ray Tune's PBT over our PBT's space and population).
2. `train:ANSWER:SEED`: each answer trained again for `--train-steps` env steps on seeds 20000.. (no tool tuned on
   them), two at a time on one CPU each (a budget of env steps makes a result independent of speed): `default` (the
   job's own default), `ours`, `ours-asha`, `ours-pbt`, `ray-tune-asha`, `ray-tune-pbt` (its best member's last
   values) and `rl-zoo3-in-our-job` (its values where our names map) with our job (RLlib); `rl-zoo3` and `zoo-row`
   (rl-zoo3's hand-tuned ppo.yml row, when it has one) with SB3, their own trainer. Each final policy is run for
   `--episodes` deterministic episodes from seed 30000; `own-policy:TOOL` is our run's own model/ on the same
   episodes. An answer with an earlier one's trainer and values (ours, when its re-evaluation kept the default) takes
   that one's figures (`same_as`): a job on one CPU with a seed trains the same policy again.
3. `summary`: per answer the mean over seeds of the policies' mean returns, their spread (sample standard
   deviation), and the paired difference to the default and to every other answer with a 95% t interval.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import statistics
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from common import BENCH, REPO, Target, cores, job, load_average, run_child, target, tune

from sagemaker_rl.files import write_atomically
from sagemaker_rl.job import SEED_KEY, SIMULATOR_KEY, STOP_PREFIX
from sagemaker_rl.job.keys import CHECKPOINT_FREQ_KEY
from sagemaker_rl.tuning import asha
from sagemaker_rl.tuning.config import load_run_config
from sagemaker_rl.tuning.record import read
from sagemaker_rl.tuning.strategies import Strategy

OURS = {"ours": "Bayesian", "ours-asha": "ASHA", "ours-pbt": "PBT"}  # our tools and the strategy each runs
TOOLS = (*OURS, "rl-zoo3", "ray-tune-asha", "ray-tune-pbt")
TRAIN_SEED_BASE = 20_000  # above every seed the tools tune on (ours: < 10,000 in the search, 10,000.. re-evaluating)
EVALUATION_SEED = 30_000
JOB_TIMEOUT_S = 3600.0
STEPS_KEY = STOP_PREFIX + "timesteps_total"


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", default="Pendulum-v1", help="problem/simulator or env id (default: Pendulum-v1)")
    parser.add_argument("--budget-s", type=float, default=900, help="each tool's wall-clock budget (default: 900)")
    parser.add_argument("--train-steps", type=int, default=100_000, help="the user's training budget in env steps")
    parser.add_argument("--seeds", type=int, default=5, help="fresh seeds each answer is trained on (default: 5)")
    parser.add_argument("--episodes", type=int, default=100, help="deterministic episodes per policy (default: 100)")
    parser.add_argument("--tools", help=f"tools to run (default: {','.join(TOOLS)}; with --resume: the file's, or "
                        "these, e.g. to add one)")
    parser.add_argument("--cpus", type=int, default=cores(), help="cores each tool tunes on (default: all)")
    parser.add_argument("--resume", type=Path, help="a results file of an unfinished run: do the parts it lacks")
    parser.add_argument("--ours-config", help="a tuning file (its space) our runs use instead of the default space, "
                        "e.g. bench/studies/pbt-space.yaml")
    return parser.parse_args()


class Record:
    """The results file: the settings, then every part as it ends (rewritten whole, under a lock)."""

    def __init__(self, path: Path, data: dict[str, Any]) -> None:
        self.path, self.data, self._lock = path, data, threading.Lock()

    @classmethod
    def start(cls, args: argparse.Namespace) -> Record:
        if args.resume:
            data = json.loads(args.resume.read_text())
            data["tools"] = args.tools.split(",") if args.tools else data["tools"]
            data.pop("finished", None)
            return cls(args.resume, data)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        data = {"kind": "peers", "started": stamp, "command": " ".join(sys.argv), "target": args.target,
                "budget_s": args.budget_s, "train_steps": args.train_steps, "seeds": args.seeds,
                "episodes": args.episodes, "tools": (args.tools or ",".join(TOOLS)).split(","), "cpus": args.cpus,
                "machine_cores": cores(), "parts": {}}
        if args.ours_config:
            data["ours_config"] = args.ours_config
        return cls(BENCH / "results" / f"peers-{args.target.replace('/', '-')}-{stamp}.json", data)

    @property
    def work_dir(self) -> Path:
        return REPO / "runs" / self.path.stem

    def has(self, key: str) -> bool:
        """The part ended without a failure (a failed one runs again when the run resumes)."""
        return key in self.data["parts"] and "failure" not in self.data["parts"][key]

    def keep(self, key: str, value: dict[str, Any]) -> None:
        with self._lock:
            self.data["parts"][key] = value
            self._write()
        print(f"[{time.strftime('%H:%M:%S')}] {key}: {_short(value)}", flush=True)

    def finish(self, summary: dict[str, Any]) -> None:
        with self._lock:
            self.data.update(summary=summary, finished=time.strftime("%Y%m%d-%H%M%S"))
            self._write()

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(self.path, json.dumps(self.data, indent=1) + "\n")  # a killed run leaves a whole file


def _short(value: dict[str, Any]) -> str:
    shown = {key: value[key] for key in ("mean_return", "wall_s", "best_value", "trials", "failure") if key in value}
    return json.dumps(shown)


# ------------------------------------------------------------------------------------------------- tuning


def tune_ours(where: Target, record: Record, *, tool: str) -> dict[str, Any]:
    run_dir = record.work_dir / tool
    wall_s, code, _ = tune([*_child_target(where), *_ours_config(record),
                            "--max-runtime", f"{record.data['budget_s']:.0f}", "--train-budget",
                            str(record.data["train_steps"]), "--strategy", OURS[tool]], run_dir)
    best = run_dir / "best_hyperparameters.json"
    return {"exit_code": code, "wall_s": round(wall_s, 1), "run_dir": str(run_dir),
            "job_hyperparameters": json.loads(best.read_text()) if best.is_file() else None,
            "own_policy": str(run_dir / "model") if (run_dir / "model").is_dir() else None,
            **_search_figures(run_dir)}


def _search_figures(run_dir: Path) -> dict[str, Any]:
    """Our run's search trials (PBT: segments), those of them stopped at a rung, the ASHA promotions that continued
    one, the trials that trained the whole budget, and its best objective in the search (its own figure, as the
    peers')."""
    import optuna
    from optuna.trial import TrialState

    from sagemaker_rl.tuning.rundir import default_storage

    study = optuna.load_study(study_name=run_dir.name, storage=default_storage(run_dir))  # tune.py names it so
    searched = [trial for trial in study.get_trials(deepcopy=False) if read(trial).is_search]
    values = [trial.value for trial in searched if trial.state is TrialState.COMPLETE and trial.value is not None]
    figures = {"trials": sum(read(trial).uses_budget for trial in searched),
               "pruned": sum(trial.state is TrialState.PRUNED for trial in searched),
               "promotions": sum(not read(trial).uses_budget for trial in searched),
               "complete": len(values), "best_value": max(values, default=None)}
    config = load_run_config(run_dir)  # its first rung, as the run computed it
    if config.strategy is not Strategy.ASHA:
        return figures
    return figures | {"past_lone_rungs": past_lone_rungs(searched, config.hyperband_min_env_steps)}


def past_lone_rungs(trials: list[Any], min_resource: int) -> float | None:
    """The share of an ASHA search's env steps trained past a rung by a trial that went on with fewer than three
    values there (itself included) to be compared with: what Optuna's and Ray Tune's ASHA do with a rung's first
    trials, where ours waits (a promotion's training counts from its start, its parent's rung's values then)."""
    by_number = {trial.number: trial for trial in trials}
    reported: dict[int, list[float]] = {}  # rung -> when each value there was reported
    went_on: list[tuple[float, int, int]] = []  # (when, rung, env steps trained after it up to the next rung)
    total = 0
    for trial in trials:
        steps, parent = sorted(trial.intermediate_values), by_number.get(read(trial).parent)  # type: ignore[arg-type]
        if not steps or trial.datetime_start is None:
            continue
        begin = max(parent.intermediate_values, default=0) if parent is not None else 0
        total += steps[-1] - begin
        curve, start = read(trial).curve_s or {}, trial.datetime_start.timestamp()
        rung = 0
        while (step := asha.rung_step(min_resource, rung)) <= steps[-1]:
            following = asha.rung_step(min_resource, rung + 1)
            if begin < step:  # its own report at the rung
                at = min(value for value in steps if value >= step)
                when = start + float(curve.get(str(at), 0.0))
                reported.setdefault(rung, []).append(when)
                went_on.append((when, rung, max(0, min(steps[-1], following) - at)))
            elif begin < following:  # a promotion: it went on from its parent's report at this rung
                went_on.append((start, rung, min(steps[-1], following) - begin))
            rung += 1
    lone = sum(trained for when, rung, trained in went_on
               if sum(other <= when for other in reported.get(rung, [])) < asha.REDUCTION_FACTOR)
    return round(lone / total, 3) if total else None


def _child_target(where: Target) -> list[str]:
    return ["--problem", where.problem, "--simulator", where.env[SIMULATOR_KEY]] if where.problem else \
        ["--env", where.label]


def tune_zoo(where: Target, record: Record) -> dict[str, Any]:
    data = record.data
    return run_child("peer_zoo.py", ["optimize", *_child_target(where), "--budget-s", str(data["budget_s"]),
                                     "--n-jobs", "2", "--train-steps", str(data["train_steps"]),
                                     "--out", str(record.work_dir / "rl-zoo3")], timeout=data["budget_s"] + 900)


def tune_ray(where: Target, record: Record, *, scheduler: str) -> dict[str, Any]:
    data = record.data
    return run_child("peer_raytune.py", [*_child_target(where), "--budget-s", str(data["budget_s"]),
                                         "--cpus", str(data["cpus"]), "--train-steps", str(data["train_steps"]),
                                         "--scheduler", scheduler, *_ours_config(record),
                                         "--out", str(record.work_dir / f"ray-tune-{scheduler.lower()}")],
                     timeout=data["budget_s"] + 900)


def _ours_config(record: Record) -> list[str]:
    """The flag naming the tuning file whose space our runs and Ray Tune's search, when the run has one."""
    return ["--config", str(REPO / record.data["ours_config"])] if record.data.get("ours_config") else []


TUNERS: dict[str, Callable[[Target, Record], dict[str, Any]]] = {
    **{tool: functools.partial(tune_ours, tool=tool) for tool in OURS},
    "rl-zoo3": tune_zoo,
    "ray-tune-asha": functools.partial(tune_ray, scheduler="ASHA"),
    "ray-tune-pbt": functools.partial(tune_ray, scheduler="PBT")}


# ----------------------------------------------------------------------------------------------- training


def answers(record: Record) -> dict[str, tuple[str, Any]]:
    """Each answer to train again: its name -> (trainer, its hyperparameters): ("job", our keys) or ("sb3", a zoo
    row's values, or "zoo" for rl-zoo3's own row)."""
    parts = record.data["parts"]
    found: dict[str, tuple[str, Any]] = {"default": ("job", {})}
    in_our_job = {**{tool: tool for tool in (*OURS, "ray-tune-asha", "ray-tune-pbt")}, "rl-zoo3": "rl-zoo3-in-our-job"}
    for tool, name in in_our_job.items():
        values = parts.get(f"tune:{tool}", {}).get("job_hyperparameters")
        if values is not None:
            found[name] = ("job", {key: value for key, value in values.items() if not key.startswith(STOP_PREFIX)})
    if parts.get("tune:rl-zoo3", {}).get("hyperparameters") is not None:
        found["rl-zoo3"] = ("sb3", parts["tune:rl-zoo3"]["hyperparameters"])
    if "rl-zoo3" in record.data["tools"]:
        found["zoo-row"] = ("sb3", "zoo")
    return found


def same_values(found: dict[str, tuple[str, Any]], where: Target) -> dict[str, str]:
    """Each answer whose trainer and values an earlier answer has -> that answer (ours, when the re-evaluation kept
    the default). A job trained on one CPU with a seed gives the same policy again, so it is trained once."""
    first: dict[str, str] = {}
    same = {}
    for name, (trainer, values) in found.items():
        sent = {**where.env, **values} if trainer == "job" else values  # as train_with_job sends them
        original = first.setdefault(json.dumps([trainer, sent], sort_keys=True), name)
        if original != name:
            same[name] = original
    return same


def train_with_job(where: Target, values: dict[str, Any], seed: int, record: Record) -> dict[str, Any]:
    from sagemaker_rl.api import evaluate

    data = record.data
    hyperparameters = {**where.env, **values, SEED_KEY: seed, STEPS_KEY: data["train_steps"],
                       CHECKPOINT_FREQ_KEY: 1000}
    load = load_average()
    with job(where.problem, hyperparameters, cpus=1, timeout_s=JOB_TIMEOUT_S, prefix="peers-") as run:
        if run.failure is not None or not run.paths.model.is_dir():
            return {"failure": run.failure or "no model written", "wall_s": run.wall_s}
        result = evaluate(run.paths.model, episodes=data["episodes"], seed=EVALUATION_SEED)
    return {"mean_return": round(result.mean, 3), "std_return": round(statistics.pstdev(result.returns), 3),
            "wall_s": run.wall_s, "load_average": load}


def train_with_sb3(where: Target, values: Any, seed: int, record: Record) -> dict[str, Any]:
    data = record.data
    source = "zoo"
    if values != "zoo":
        source = str(record.work_dir / "rl-zoo3-answer.json")
        Path(source).write_text(json.dumps(values))
    return run_child("peer_zoo.py", ["retrain", *_child_target(where), "--hyperparameters", source,
                                     "--train-steps", str(data["train_steps"]), "--seed", str(seed),
                                     "--episodes", str(data["episodes"]), "--eval-seed", str(EVALUATION_SEED)],
                     timeout=JOB_TIMEOUT_S)


def _train(where: Target, record: Record, name: str, trainer: str, values: Any, seed: int) -> None:
    run = train_with_job if trainer == "job" else train_with_sb3
    record.keep(f"train:{name}:{seed}", {**_failing_softly(run, where, values, seed, record), "answer": name,
                                         "seed": seed})


def _failing_softly(run: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    """run(*args), or its failure: one failed part is a figure missing (run again on --resume), not a lost run."""
    try:
        return run(*args)
    except Exception as error:
        return {"failure": f"{type(error).__name__}: {' | '.join(str(error).strip().splitlines()[-3:])}"}


def evaluate_own_policies(record: Record) -> None:
    """The policy each of our runs trained itself, on the same episodes as the retrained ones."""
    from sagemaker_rl.api import evaluate

    for tool in OURS:
        model = record.data["parts"].get(f"tune:{tool}", {}).get("own_policy")
        if model is None or record.has(f"own-policy:{tool}"):
            continue
        result = evaluate(model, episodes=record.data["episodes"], seed=EVALUATION_SEED)
        record.keep(f"own-policy:{tool}", {"mean_return": round(result.mean, 3),
                                           "std_return": round(statistics.pstdev(result.returns), 3)})


# ------------------------------------------------------------------------------------------------ summary


def summary(record: Record) -> dict[str, Any]:
    """Per answer: mean over seeds, spread, and paired differences (95% t interval) to every other answer."""
    finals: dict[str, dict[int, float]] = {}
    for key, part in record.data["parts"].items():
        if key.startswith("train:") and "mean_return" in part:
            finals.setdefault(part["answer"], {})[part["seed"]] = part["mean_return"]
    rows = {}
    for name, by_seed in finals.items():
        values = list(by_seed.values())
        rows[name] = {"mean": round(statistics.fmean(values), 3), "seeds": len(values),
                      "spread": round(statistics.stdev(values), 3) if len(values) > 1 else None,
                      "versus": {other: _paired(by_seed, finals[other]) for other in finals if other != name}}
    return rows


def _paired(ours: dict[int, float], theirs: dict[int, float]) -> dict[str, Any] | None:
    """Mean paired difference over the seeds both have, with its 95% t interval."""
    from scipy import stats

    differences = [ours[seed] - theirs[seed] for seed in ours if seed in theirs]
    if len(differences) < 2:
        return None
    mean, spread = statistics.fmean(differences), statistics.stdev(differences)
    half = stats.t.ppf(0.975, len(differences) - 1) * spread / math.sqrt(len(differences))
    return {"difference": round(mean, 3), "low": round(mean - half, 3), "high": round(mean + half, 3),
            "seeds": len(differences)}


def main() -> int:
    args = _arguments()
    record = Record.start(args)
    where = target(record.data["target"])
    record.work_dir.mkdir(parents=True, exist_ok=True)
    for tool in record.data["tools"]:
        if tool not in TUNERS:
            raise SystemExit(f"--tools names {tool!r}: choose from {', '.join(TOOLS)}")
        if not record.has(f"tune:{tool}"):
            record.keep(f"tune:{tool}", {**_failing_softly(TUNERS[tool], where, record),
                                         "load_average_after": load_average()})
    evaluate_own_policies(record)
    seeds = range(TRAIN_SEED_BASE, TRAIN_SEED_BASE + record.data["seeds"])
    found = answers(record)
    same = same_values(found, where)
    pending = [(name, trainer, values, seed) for seed in seeds for name, (trainer, values) in found.items()
               if name not in same and not record.has(f"train:{name}:{seed}")]
    with ThreadPoolExecutor(max_workers=2) as pool:
        for future in [pool.submit(_train, where, record, *item) for item in pending]:
            future.result()
    for seed in seeds:
        for name, original in same.items():
            trained = record.data["parts"].get(f"train:{original}:{seed}")
            if not record.has(f"train:{name}:{seed}") and trained is not None and "failure" not in trained:
                record.keep(f"train:{name}:{seed}", {**trained, "answer": name, "same_as": original})
    record.finish(summary(record))
    print(json.dumps(record.data["summary"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
