"""Tuning gain: what a whole tuning run buys over the default configuration, per candidate study.

    .venv/bin/python bench/tuning_gain.py [--studies seed-space,focused,...] [--out FILE]

Each study in bench/studies/ runs as `scripts/tune.py --config STUDY` with the tuner's own
re-evaluation: the run's answer and the default configuration are trained again for the trial budget
on the same fresh seeds (no trial used them), in the same run, alternating, so they share the
machine's conditions. Printed per study: wall time, trials, the answer, the answer's and the
default's mean over the fresh seeds, the gain and the per-seed (paired) gains. The default local
study (`scripts/tune.py` with no flag) is the one with the largest gain; the README quotes the table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from common import BENCH, REPO, load_average, tune

STUDIES = BENCH / "studies"


def run_study(study: Path, run_dir: Path) -> dict[str, Any]:
    from sagemaker_rl.tuning import report
    from sagemaker_rl.tuning.record import read

    load = load_average()
    wall_s, exit_code, loaded = tune(["--problem", "reacher", "--config", str(study)], run_dir)
    rows = report.reevaluation_rows(loaded)
    answer = next((row for row in rows if row["answer"]), None)
    default = next((row for row in rows if row["candidate"] == "default"), None)
    gains = answer["gain_per_seed"] if answer and answer["gain_per_seed"] else []
    search = [t.value for t in loaded.get_trials(deepcopy=False) if t.value is not None and read(t).is_search]
    return {
        "study": study.stem,
        "exit_code": exit_code,
        "wall_s": round(wall_s),
        "load_average_before": load,
        "search_trials": len(search),
        "search_range": [round(min(search), 2), round(max(search), 2)] if search else None,
        "answer": answer["candidate"] if answer else None,
        "answer_mean": answer["mean"] if answer else None,
        "default_mean": default["mean"] if default else None,
        "gain": (answer["mean"] - default["mean"]) if answer and default and answer["mean"] is not None
        and default["mean"] is not None else None,
        "gain_per_seed": gains,
        "gain_spread": statistics.stdev(gains) if len(gains) > 1 else None,
        "seeds": answer["seeds"] if answer else None,
        "reevaluation": rows,
        "run_dir": str(run_dir),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--studies", default=",".join(sorted(path.stem for path in STUDIES.glob("*.yaml"))))
    stamp = time.strftime("%Y%m%d-%H%M%S")
    parser.add_argument("--out", type=Path, default=BENCH / "results" / f"tuning-gain-{stamp}.json")
    parser.add_argument("--runs", type=Path, default=REPO / "runs" / "bench-tuning-gain")
    args = parser.parse_args()
    results = []
    for name in args.studies.split(","):
        run_dir = args.runs / f"{name}-{time.strftime('%H%M%S')}"
        result = run_study(STUDIES / f"{name}.yaml", run_dir)
        results.append(result)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2, default=str) + "\n")
        gains = ", ".join(f"{gain:+.2f}" for gain in result["gain_per_seed"])
        print(
            f"{name}: {result['wall_s'] / 60:.1f} min, {result['search_trials']} trials {result['search_range']}, "
            f"answer {result['answer']} {_num(result['answer_mean'])} vs default {_num(result['default_mean'])}: "
            f"gain {_num(result['gain'], signed=True)} (per seed {gains or '-'})",
            flush=True,
        )
    print(f"results: {args.out}")
    return 0


def _num(value: float | None, *, signed: bool = False) -> str:
    return "-" if value is None else (f"{value:+.2f}" if signed else f"{value:.2f}")


if __name__ == "__main__":
    sys.exit(main())
