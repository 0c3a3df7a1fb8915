"""Benchmark 6: the Ray backend's scaling, one node against two.

The same small study (Random strategy, `trials` trials, then the default re-evaluation of the best one
and the default on 3 fresh seeds; each job a fixed amount of work: a few iterations of a small batch, so
wall time measures throughput, not a time budget) runs through
`scripts/tune.py --backend ray` on a real local cluster of 1 node and then of 2 nodes, each node limited
to `cpus_per_node` CPUs, one trial per node's CPUs at a time. Wall time is from the tuner's start to its
end (the storage check job included); the ratio is 1 node / 2 nodes (goal: >= 1.8).

On one machine the "nodes" share its cores: with 2 cores and 1 CPU per node, the 2-node run has every
core busy with trials while Ray's own processes (GCS, raylets, dashboard, agents) and the tuner compete
for them, so its ratio is a floor of what separate machines give.

    .venv/bin/python bench/ray_scaling.py [--trials 4] [--cpus-per-node 1] [--iterations 3]
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import REPO, child_env, cores, emit, load_average

JOB = {  # a small fixed amount of work per trial (4 envs: episodes finish within an iteration on one CPU)
    "rl.training.config.train_batch_size_per_learner": 4000,
    "rl.training.config.minibatch_size": 1000,
    "rl.training.config.num_epochs": 4,
    "rl.training.config.num_envs_per_env_runner": 4,
}


def measure(problem: str = "reacher", *, trials: int = 4, cpus_per_node: int = 1, iterations: int = 3,
            nodes: tuple[int, ...] = (1, 2)) -> dict[str, Any]:
    sys.path.insert(0, str(REPO))  # tests/ray_cluster.py: the tests' real local cluster
    from tests.ray_cluster import LocalCluster

    runs = []
    for count in nodes:
        with LocalCluster(nodes=count, cpus_per_node=cpus_per_node) as cluster, \
                tempfile.TemporaryDirectory(prefix="srl-bench-") as scratch:
            space = Path(scratch) / "space.json"
            space.write_text(json.dumps({
                "strategy": "Random", "sampler_seed": 0,
                "reevaluate_top": 1, "reevaluate_seeds": 3,  # the default re-evaluation: 6 more jobs, 10 in all
                "parameters": {"rl.training.config.kl_coeff": {"type": "Continuous", "min_value": 0.5,
                                                               "max_value": 1.0}},
                "static": {"rl.training.stop.training_iteration": iterations, **JOB},
            }))
            run_dir = Path(scratch) / "run"
            load = load_average()
            start = time.perf_counter()
            done = subprocess.run(
                [sys.executable, str(REPO / "scripts" / "tune.py"), "--problem", problem, "--backend", "ray",
                 "--address", cluster.dashboard_url, "--storage-path", str(cluster.directory / "storage"),
                 "--config", str(space), "--max-jobs", str(trials), "--max-parallel-jobs", str(count),
                 "--run-dir", str(run_dir)],
                env=child_env(**cluster.auth_env), capture_output=True, text=True, timeout=3600, check=False)
            wall = time.perf_counter() - start
            if done.returncode != 0:
                raise RuntimeError(f"the {count}-node study failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
            rows = list(csv.DictReader(open(run_dir / "trials.csv")))
            runs.append({"nodes": count, "cpus_per_node": cpus_per_node, "wall_s": round(wall, 1),
                         "trial_durations_s": [float(row["duration_s"]) for row in rows],
                         "complete": sum(row["status"] == "complete" for row in rows),
                         "load_average_before": load, "load_average_after": load_average()})
    one, two = runs[0]["wall_s"], runs[-1]["wall_s"]
    return {"problem": problem, "trials": trials, "iterations": iterations, "job": JOB, "cores": cores(),
            "runs": runs, "speedup": round(one / two, 2) if len(runs) > 1 else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--problem", default="reacher")
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--cpus-per-node", type=int, default=1)
    parser.add_argument("--iterations", type=int, default=3)
    args = parser.parse_args()
    emit(measure(args.problem, trials=args.trials, cpus_per_node=args.cpus_per_node, iterations=args.iterations))


if __name__ == "__main__":
    main()
