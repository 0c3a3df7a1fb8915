"""bench/pages.py: the Benchmarks page and the headline render every result file, and only from the files."""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"


@pytest.fixture
def pages(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(BENCH))  # bench/ is not a package: its modules import each other by name
    return importlib.import_module("pages")


def _write(directory: Path, name: str, data: Any) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(json.dumps(data))
    return path


def _reward_run(seed: int, reached: dict[str, float | None], *, best: float, final: float | None = None,
                steps: int = 400_000, load: float = 1.25) -> dict[str, Any]:
    return {"exit_code": 0, "reached": {key: None if seconds is None else {"seconds": seconds, "env_steps": steps}
                                        for key, seconds in reached.items()},
            "best_mean_return": best, "cap_s": 400.0, "wall_s": 300.0, "env_steps": steps, "final_return": final,
            "curve": [], "seed": seed, "load_average": load, "side_by_side": 2}


def _throughput(label: str, setting: str, sampling: int, end_to_end: int) -> dict[str, Any]:
    return {"label": label, "setting": setting, "problem": "reacher", "simulator": "roboschool", "cpus": 2,
            "num_env_runners": 2, "num_envs_per_env_runner": 8, "sampling_cores": 2,
            "train_batch_size_per_learner": 8192, "num_epochs": 12, "minibatch_size": 1024,
            "batch_mode": "truncate_episodes", "fcnet_hiddens": [64, 64], "torch_threads": 1, "build_s": 5.0,
            "iterations": [], "sampling_steps_per_s": sampling, "end_to_end_steps_per_s": end_to_end,
            "learning_s_per_iteration": 0.55, "wall_s": 20.0}


def _suite() -> dict[str, Any]:
    targets = ["10.0", "17.0"]
    runs = {"fast preset, 1 CPU": [_reward_run(seed, dict(zip(targets, times, strict=True)), best=17.4, final=16.75)
                                   for seed, times in enumerate([(60.0, 123.4), (70.0, 130.0), (50.0, 110.0)])],
            "SB3 PPO, rl-zoo3 row, 1 thread": [_reward_run(seed, {"10.0": 100.0, "17.0": 246.8}, best=18.0)
                                               for seed in range(3)]}
    return {
        "started": "2026-12-05T10:00:00", "quick": False, "machine": {"cores": 2, "cpu": "Test CPU", "python": "3.11"},
        "commit": "abc1234", "load_average": {"raw": 0.5, "tuner overhead": 0.75, "end": 1.0},
        "raw": {"reacher": {"roboschool": 10000, "mujoco": 20000}},
        "throughput": [_throughput("ours (fast preset)", "ours", 4321, 3210),
                       _throughput("RLlib defaults", "rllib", 1000, 321)],
        "time_to_reward": [{"problem": "reacher", "simulator": "roboschool", "targets": [10.0, 17.0], "cap_s": 400.0,
                            "seeds": [0, 1, 2], "runs": runs}],
        "tuner": {"problem": "reacher", "trials": 4, "cpus_per_job": 2, "job": {}, "tuning_wall_s": 118.4,
                  "wall_per_trial_s": 29.6, "trial_durations_s": [27.0] * 4, "lone_job_s": [25.0, 26.0],
                  "trial_wall_minus_training_s": [3.5] * 4, "overhead_per_trial_s": 4.6, "overhead_fraction": 0.184,
                  "cores": 2},
        "ray": {"problem": "reacher", "trials": 4, "iterations": 3, "job": {}, "cores": 2, "speedup": 1.87,
                "runs": [{"nodes": n, "cpus_per_node": 1, "wall_s": wall, "trial_durations_s": [40.0], "complete": 1,
                          "load_average_before": 1.0, "load_average_after": 2.0} for n, wall in ((1, 467.5),
                                                                                                (2, 250.0))]},
        "finished": "2026-12-05T11:00:00",
    }


def _hopper() -> dict[str, Any]:
    runs = [_reward_run(seed, {"1000.0": 240.0, "2000.0": seconds}, best=2001.0, steps=900_000)
            for seed, seconds in ((0, 555.5), (1, 600.0))]
    return {"problem": "hopper", "simulator": "roboschool", "targets": [1000.0, 2000.0], "cap_s": 1800.0,
            "seeds": [0, 1], "runs": {"fast preset, 2 CPUs": runs}, "commit": "def5678", "how": "a hand-run note"}


def _tuning_gain() -> list[dict[str, Any]]:
    def study(name: str, gain: float) -> dict[str, Any]:
        default = {"candidate": "default", "answer": "", "status": "complete", "search_objective": None,
                   "mean": 5.0, "spread": 1.5, "per_seed": [4.0, 5.0, 6.0], "gain_over_default": None,
                   "gain_per_seed": None, "seeds": [10000, 10001, 10002], "trial": 9}
        answer = {**default, "candidate": "trial 3", "answer": "yes", "mean": 5.0 + gain,
                  "gain_per_seed": [gain - 1, gain, gain + 1], "trial": 8}
        return {"study": name, "exit_code": 0, "wall_s": 930, "load_average_before": 2.0, "search_trials": 8,
                "search_range": [-1.0, 9.0], "answer": "trial 3", "answer_mean": 5.0 + gain, "default_mean": 5.0,
                "gain": gain, "gain_per_seed": [gain - 1, gain, gain + 1], "gain_spread": 1.0,
                "seeds": [10000, 10001, 10002], "reevaluation": [answer, default], "run_dir": "/tmp/x"}

    return [study("small", 0.5), study("large", 3.21)]


def _pbt() -> list[dict[str, Any]]:
    return [{"strategy": strategy, "run_dir": "/tmp/x", "wall_s": 500.0, "load_before": 1.0, "load_after": 2.0,
             "trials": 16, "answer_trial": 3, "answer_objective": 9.5, "policy_env_steps": 327680,
             "policy_training_s": 150.0, "evaluation_mean": mean, "evaluation_std": 5.67, "episodes": 50, "repeat": 0}
            for strategy, mean in (("PBT", 12.34), ("PB2", 15.0), ("Bayesian", 4.56), ("Random", 7.89))]


def _main_job() -> list[dict[str, Any]]:
    return [{**run, "strategy": f"{run['strategy']} 15m", "suite": "main-job", "answer": {"rl.training.lr": 1e-3}}
            for run in _pbt()]


def _generic(*, finished: bool) -> dict[str, Any]:
    def run(target: str, config: str, seed: int, final: float | None) -> dict[str, Any]:
        return {"target": target, "config": config, "seed": seed, "final_return": final, "iterations": 30,
                "env_steps": 300000, "wall_s": 140.0, "exit_code": 0 if final is not None else 1,
                "load_average": 1.5, "curve": [], "resolved": {},
                "failure": None if final is not None else "the job diverged"}

    configs = {name: {"name": name, "hyperparameters": {}, "source": f"where {name} comes from"}
               for name in ("generic", "sb3-zoo", "rllib-default", "seed")}
    record = {"started": "2026-12-05T09:00:00", "command": ["bench/generic_default.py"], "quick": False,
              "budget_s": 100.0, "cpus": 2, "machine_cores": 2, "choose_seeds": [0], "report_seeds": [0],
              "choice_problems": ["walker2d/roboschool"], "report_problems": ["Pendulum-v1"], "discrete": {},
              "configs": configs, "runs": [run("walker2d/roboschool", "generic", 0, 543.21),
                                           run("walker2d/roboschool", "sb3-zoo", 0, None)]}
    if finished:
        record["runs"] += [run("Pendulum-v1", "generic", 0, -234.5), run("Pendulum-v1", "rllib-default", 0, -1200.0),
                           run("Pendulum-v1", "seed", 0, -600.0)]
        record.update(scores={"generic": 1.0, "sb3-zoo": 0.0}, choice="generic", finished="2026-12-05T09:30:00")
    return record


def _old_suite() -> dict[str, Any]:
    """bench/run.py's record of November 2026: time_to_reward one run per trainer, keys `ours` and `sb3`."""
    def run(best: float) -> dict[str, Any]:
        return {"exit_code": -9, "reached": {"0.0": {"seconds": 321.0, "env_steps": 1000}, "18.0": None},
                "best_mean_return": best, "cap_s": 600.0, "wall_s": 598.0, "env_steps": 9000, "curve": []}

    return {"started": "2026-11-24T03:00:00", "quick": False, "machine": {"cores": 2, "cpu": "Old CPU"},
            "commit": "0ld0000", "load_average": {"time to reward: ours": 6.5},
            "time_to_reward": {"problem": "reacher", "simulator": "roboschool", "targets": [0.0, 18.0],
                               "ours": run(-2.98), "sb3": run(-0.92)}}


def _peers(*, finished: bool) -> dict[str, Any]:
    def trained(answer: str, seed: int, value: float) -> dict[str, Any]:
        return {"mean_return": value, "std_return": 1.0, "wall_s": 90.0, "load_average": 1.5, "answer": answer,
                "seed": seed}

    record = {"kind": "peers", "started": "20261205-130000", "command": "bench/peers.py", "target": "Pendulum-v1",
              "budget_s": 900, "train_steps": 100000, "seeds": 2, "episodes": 100, "tools": ["ours", "rl-zoo3"],
              "cpus": 2, "machine_cores": 2,
              "parts": {"tune:ours": {"wall_s": 801.0, "trials": 16, "pruned": 0, "best_value": -246.1,
                                      "load_average_after": 2.8},
                        "tune:rl-zoo3": {"failure": "RuntimeError: no trial finished", "load_average_after": 1.9},
                        "train:ours:20000": trained("ours", 20000, -300.0),
                        "train:ours:20001": trained("ours", 20001, -400.0),
                        "train:default:20000": trained("default", 20000, -1100.0),
                        "train:default:20001": trained("default", 20001, -1000.0),
                        "own-policy:ours": {"mean_return": -250.5, "std_return": 3.0}}}
    if finished:
        paired = {"difference": 700.0, "low": 65.0, "high": 1335.0, "seeds": 2}
        record["summary"] = {"ours": {"mean": -350.0, "seeds": 2, "spread": 70.7, "versus": {"default": paired}},
                             "default": {"mean": -1050.0, "seeds": 2, "spread": 70.7, "versus": {}}}
        record["finished"] = "20261205-140000"
    return record


def _humanoid(*, finished: bool) -> dict[str, Any]:
    def run(points: list[list[float]], final: float) -> dict[str, Any]:
        marks = {"1800": None, "3600": None}
        for mark in marks:
            before = [point for point in points if point[0] <= int(mark)]
            marks[mark] = before and {"seconds": before[-1][0], "env_steps": before[-1][1],
                                      "mean_return": before[-1][2]} or None
        return {"exit_code": 0, "reached": {}, "best_mean_return": max(point[2] for point in points), "cap_s": 3600.0,
                "wall_s": 3650.0, "env_steps": points[-1][1], "final_return": final, "curve": points,
                "resolved": {"rl.training.config.lr": 2.5e-4}, "at_marks": marks, "load_average": 2.1}

    record: dict[str, Any] = {
        "started": "2026-12-05T07:27:37", "problem": "humanoid", "simulator": "roboschool", "cpus": 2,
        "choose_cap_s": 600.0, "cap_s": 3600.0, "targets": [500.0, 3500.0],
        "configs": {name: {"hyperparameters": {}, "source": f"where {name} comes from"}
                    for name in ("generic", "zoo-row", "seed", "fast")},
        "choose": {"generic": run([[300.0, 400_000, 40.0], [590.0, 900_000, 61.5]], 55.0),
                   "zoo-row": run([[300.0, 400_000, 45.0], [595.0, 910_000, 77.25]], 70.0)},
        "curves": {"seed": run([[400.0, 320_000, 20.0], [1790.0, 1_600_000, 33.3], [3500.0, 3_200_000, 48.8]], 50.0)},
        "winner": "zoo-row", "note": "a note on the seed run"}
    if finished:
        record["curves"]["fast"] = run([[300.0, 400_000, 45.0], [1700.0, 2_500_000, 456.7],
                                        [3590.0, 5_000_000, 1234.5]], 1300.0)
        record.update(fast_is_winner=True, finished="2026-12-05T10:00:00")
    return record


@pytest.fixture
def results(tmp_path: Path) -> Path:
    directory = tmp_path / "results"
    _write(directory, "20261124-033551.json", _old_suite())
    _write(directory, "20261205-110000.json", _suite())
    _write(directory, "20261205-120000-hopper.json", _hopper())
    _write(directory, "tuning-gain-20261205.json", _tuning_gain())
    _write(directory, "pbt-vs-search-20261205.json", _pbt())
    _write(directory, "main-job-20261205-140000.json", _main_job())
    _write(directory, "generic-default-20261205-090000.json", _generic(finished=True))
    _write(directory, "generic-default-20261206-090000.json", _generic(finished=False))
    _write(directory, "peers-Pendulum-v1-20261205-130000.json", _peers(finished=True))
    hopper = _peers(finished=True)
    hopper.update(target="hopper/roboschool", budget_s=600, train_steps=300000)
    hopper["summary"]["ours"]["mean"], hopper["summary"]["default"]["mean"] = 1200.0, 1500.0
    _write(directory, "peers-hopper-roboschool-20261205-150000.json", hopper)
    _write(directory, "humanoid-20261205.json", _humanoid(finished=True))
    return directory


def _rendered_in(page: str) -> dict[str, str]:
    """The page's index: {file: the sections that render it}."""
    index = page.split("## Result files", 1)[1]
    return {match[1].rsplit("/", 1)[-1]: match[2] for match in re.finditer(r"^\| `([^`]+)` \| [^|]+ \| (.*) \|$",
                                                                          index, re.MULTILINE)}


def test_every_result_file_in_bench_results_is_rendered_by_a_section(pages):
    page = pages.benchmark_page()
    rendered = _rendered_in(page)
    for path in sorted((BENCH / "results").glob("*.json")):
        assert rendered.get(path.name), f"{path.name} is rendered by no section"
        assert page.count(path.name) >= 2  # the index, and the table or caption its figures are in


def test_the_headline_of_bench_results_is_3_to_7_bullets_each_naming_its_file(pages):
    lines = pages.headline().splitlines()
    assert 3 <= len(lines) <= 7
    for line in lines:
        assert line.startswith("- ")
        names = re.findall(r"`bench/results/([^`]+\.json)`", line)  # the peers bullet names a file per target
        assert names and all((BENCH / "results" / name).is_file() for name in names), line


def test_each_kind_renders_its_figures_and_names_its_file(pages, results):
    page = pages.benchmark_page(results)
    for figure in ["10,000", "4,321 (0.22)", "3,210 (0.16)", "| 10.00 |",  # raw, ratios to raw × 2, ours ÷ RLlib
                   "123 s (3/3)", "247 s (3/3)", "| 0.50 |", "16.8 [16.8, 16.8]",  # time to 17, ÷ SB3, final
                   "to 18: ours (job defaults of the time): — (÷ SB3 —)",  # the old schema, in the history
                   "556 s", "578 s (2/2)", "a hand-run note",  # hopper: seed 0, the median
                   "4.6 s (18%)", "3.5, 3.5, 3.5, 3.5 s",  # tuner overhead
                   "**1.87×**", "468 s",  # Ray scaling
                   "**+3.21**", "trial 3: +2.2, +3.2, +4.2",  # tuning gain
                   "12.34 ± 5.67", "4.56 ± 5.67",  # PBT vs search
                   "| PB2 15m | 0 | 500 s |",  # the main job's arms
                   "**2 of 5 runs done**", "543.2 [543.2..543.2] (1)", "the job diverged",  # generic, partial
                   "| ours | 801 s | 16 | -246.1 | 2.8 |  |", "RuntimeError: no trial finished",  # peers: tuning
                   "| ours (Bayesian) | -350.0 | 70.7 | 2 | +700.0 [+65.0, +1335.0] | — |",  # the answers
                   "trained itself (one policy each): ours -250.5",
                   "the winner is **`zoo-row`**", "| `zoo-row` | 77.2 | 910,000 | 77.2 | 70.0 | 0 | 2.1 |",  # humanoid
                   "| `fast` | 456.7 (2.50M) | 1,234.5 (5.00M) | 1,234.5 | 1,300.0 | 0 | 1,393 | 2.1 |",
                   "a note on the seed run",
                   "| 30 | 33.3 (1.60M) | 456.7 (2.50M) |", "The `fast` run's values are the winner's.",
                   ]:
        assert figure in page, figure
    for name in ["20261205-110000.json", "20261205-120000-hopper.json", "tuning-gain-20261205.json",
                 "pbt-vs-search-20261205.json", "main-job-20261205-140000.json",
                 "generic-default-20261206-090000.json"]:
        assert f"From `{results / name}`" in page  # the newest of each kind is the one its tables come from
    assert set(_rendered_in(page)) == {path.name for path in results.glob("*.json")}
    assert page == pages.benchmark_page(results)


def test_the_old_time_to_reward_schema_renders_as_todays(pages, tmp_path):
    _write(tmp_path / "results", "20261124-033551.json", _old_suite())
    page = pages.benchmark_page(tmp_path / "results")
    assert "| ours (job defaults of the time) | 321 s (1/1) | — (0/1) | -3.0 [-3.0, -3.0] | — |" in page
    assert "| SB3 PPO (settings not recorded) | 321 s (1/1) | — (0/1) | -0.9 [-0.9, -0.9] | — |" in page


def test_a_finished_generic_default_run_reports_the_choice_against_rllibs_default(pages, results):
    (results / "generic-default-20261206-090000.json").unlink()
    page = pages.benchmark_page(results)
    assert "the choice is **`generic`**" in page
    assert "0.20 (both < 0: < 1 is better) | +965.5" in page  # -234.5 against RLlib's -1200.0
    assert "Pendulum-v1 -234.5 vs -1200.0" in pages.headline(results)


def test_a_running_humanoid_benchmark_shows_the_runs_done_and_no_headline(pages, tmp_path):
    _write(tmp_path / "results", "20261205-110000.json", _suite())
    _write(tmp_path / "results", "humanoid-20261205.json", _humanoid(finished=False))
    page = pages.benchmark_page(tmp_path / "results")
    assert "(running or stopped: the runs done so far)" in page and "| `seed` | 33.3 (1.60M) | 48.8 (3.20M) |" in page
    assert "| 60 | 48.8 (3.20M) |" in page
    assert "Humanoid" not in pages.headline(tmp_path / "results")


def test_the_headline_names_each_figures_file(pages, results):
    text = pages.headline(results)
    lines = text.splitlines()
    assert 3 <= len(lines) <= 7
    assert "`seed` preset 33 at 30 min and 49 at 60 min; `fast` preset 457 at 30 min and 1,234 at 60 min" in text
    assert "4,321 env steps/s sampling, 0.22" in lines[0] and "10.0× RLlib's default" in lines[0]
    assert "fast preset, 1 CPU 123 s (0.50 of SB3's time)" in lines[1]
    assert ("The main job's 15 minutes on reacher, the policy each kind of run ends with on fresh episode seeds (± "
            "over episodes; 1 repeat): PB2 15m 15.00 ± 5.67 in 500 s, PBT 15m 12.34 ± 5.67 in 500 s, Random 15m 7.89 "
            "± 5.67 in 500 s, Bayesian 15m 4.56 ± 5.67 in 500 s") in text  # best first
    assert "PBT ends with returns" not in text  # the main job's arms take the PBT-vs-search bullet's place
    assert "Pendulum-v1 -234.5 vs -1200.0" in text  # the finished generic run, not the newer partial one
    # in the tuning gain's place:
    assert ("mean return of the final policies on Pendulum-v1 (no default of ours chosen on it; 900 s each on 2 "
            "cores, answers trained again for 100,000 env steps on 2 fresh seeds): ours (Bayesian) -350.0, "
            "untuned default -1050.0") in text
    assert ("; on hopper/roboschool (its default is its own `fast` preset; 600 s each on 2 cores, answers trained "
            "again for 300,000 env steps on 2 fresh seeds): untuned default 1500.0, ours (Bayesian) "
            "1200.0") in text
    assert all(f"`{results}/" in line for line in lines)
    assert text == pages.headline(results)


def test_pbt_against_search_is_in_the_headline_until_the_main_jobs_arms_are_measured(pages, results):
    (results / "main-job-20261205-140000.json").unlink()
    # today's bench writes each row's suite and answer into a pbt-vs-search file too
    _write(results, "pbt-vs-search-20261205.json", [{**run, "suite": "pbt-vs-search", "answer": {}} for run in _pbt()])
    text = pages.headline(results)
    assert "PBT ends with returns 12.34" in text and "PB2's 15.00, the best search's 7.89" in text  # PB2 no search
    assert "The main job's 15 minutes" not in text


def test_an_unknown_shape_raises_an_error_naming_the_file(pages, tmp_path):
    path = _write(tmp_path / "results", "mystery-20261205.json", {"speed": 12.5})
    with pytest.raises(pages.ResultFormatError, match=re.escape(str(path)) + ".*unknown result shape"):
        pages.benchmark_page(tmp_path / "results")


def test_an_unknown_field_raises_rather_than_being_dropped(pages, tmp_path):
    path = _write(tmp_path / "results", "20261205-110000.json", {**_suite(), "gpu": {"steps_per_s": 1}})
    with pytest.raises(pages.ResultFormatError, match=re.escape(str(path)) + ".*unknown field.*gpu"):
        pages.benchmark_page(tmp_path / "results")


def test_a_missing_field_raises_an_error_naming_the_file(pages, tmp_path):
    suite = _suite()
    del suite["throughput"][0]["sampling_steps_per_s"]
    path = _write(tmp_path / "results", "20261205-110000.json", suite)
    with pytest.raises(pages.ResultFormatError, match=re.escape(str(path)) + ".*sampling_steps_per_s"):
        pages.benchmark_page(tmp_path / "results")


def test_a_file_no_section_renders_raises(pages, tmp_path):
    path = _write(tmp_path / "results", "20261205-110000.json",
                  {"started": "2026-12-05T10:00:00", "machine": {"cores": 2, "cpu": "x"}, "load_average": {}})
    with pytest.raises(pages.ResultFormatError, match=re.escape(path.name) + ".*no section renders it"):
        pages.benchmark_page(tmp_path / "results")


def test_the_script_prints_the_page_and_the_headline(pages, results):
    for flags, expected in (([], pages.benchmark_page(results)), (["--headline"], pages.headline(results))):
        done = subprocess.run([sys.executable, str(BENCH / "pages.py"), *flags, "--results", str(results)],
                              capture_output=True, text=True, check=True, cwd=REPO)
        assert done.stdout == expected


def test_a_newer_quick_run_goes_to_the_history_and_the_tables_come_from_the_full_run(pages, tmp_path):
    _write(tmp_path / "results", "20261205-110000.json", _suite())
    quick = {**_suite(), "quick": True, "throughput": [_throughput("ours (fast preset)", "ours", 999, 888)]}
    _write(tmp_path / "results", "20261206-110000-quick.json", quick)
    page = pages.benchmark_page(tmp_path / "results")
    assert f"From `{tmp_path / 'results' / '20261205-110000.json'}` (commit abc1234; 2 cores, Test CPU)" in page
    assert "| `20261206-110000-quick.json` | 2026-12-06 11:00 |" in page and "999 (0.05)" in page
    assert "4,321 env steps/s" in pages.headline(tmp_path / "results")


def _peers_table_file(page: str, target: str) -> str:
    """The file the target's table on the Benchmarks page is quoted from."""
    section = page.split(f"### {target}\n", 1)[1]
    return re.search(r"peers-[^`/ ]+\.json", section).group(0)


def test_the_peers_headline_and_table_take_the_newest_finished_run_of_each_target(pages, results):
    newer = _peers(finished=True)
    newer["summary"]["ours"]["mean"] = -111.0
    _write(results, "peers-Pendulum-v1-20261206-130000.json", newer)
    _write(results, "peers-Pendulum-v1-20261207-130000.json", _peers(finished=False))  # running: not a headline
    text = pages.headline(results)
    assert "ours (Bayesian) -111.0" in text and "peers-Pendulum-v1-20261206-130000.json" in text
    assert "peers-Pendulum-v1-20261205-130000.json" not in text
    assert "searched" not in text
    assert _peers_table_file(pages.benchmark_page(results), "Pendulum-v1") == "peers-Pendulum-v1-20261206-130000.json"
    newer["ours_config"] = "bench/studies/pbt-space.yaml"  # our arms on another space: the shipped run's figures
    _write(results, "peers-Pendulum-v1-20261206-130000.json", newer)
    assert "peers-Pendulum-v1-20261205-130000.json" in pages.headline(results)
    assert _peers_table_file(pages.benchmark_page(results), "Pendulum-v1") == "peers-Pendulum-v1-20261205-130000.json"
    (results / "peers-Pendulum-v1-20261205-130000.json").unlink()  # none other: shown, and its space said
    assert "2 fresh seeds; our runs searched `bench/studies/pbt-space.yaml`'s space): " in pages.headline(results)


def test_across_runs_a_tool_run_copied_into_a_later_file_counts_once_and_a_new_run_adds_one(pages, tmp_path):
    first = _peers(finished=True)
    _write(tmp_path / "results", "peers-Pendulum-v1-20261205-130000.json", first)
    copied = _peers(finished=True)  # the same tune:ours and default parts: nothing run again
    _write(tmp_path / "results", "peers-Pendulum-v1-20261206-130000.json", copied)
    rerun = _peers(finished=True)  # ours tuned again; the default's training parts copied
    rerun["parts"]["tune:ours"] = {**rerun["parts"]["tune:ours"], "wall_s": 812.0}
    rerun["summary"]["ours"]["mean"] = -150.0
    _write(tmp_path / "results", "peers-Pendulum-v1-20261207-130000.json", rerun)
    _write(tmp_path / "results", "peers-Pendulum-v1-20261208-130000.json", _peers(finished=False))  # not finished
    section = pages.benchmark_page(tmp_path / "results").split("## Tuners across runs", 1)[1]
    assert "3 files, 900 s of tuning per tool" in section
    assert ("| ours (Bayesian) | 2 | -250.0 | -350.0 | -150.0 | -350 (2026-12-05 13:00), -150 (2026-12-07 13:00) |"
            in section)
    assert "| untuned default | 1 | -1,050.0 | -1,050.0 | -1,050.0 | -1050 (2026-12-05 13:00) |" in section
    assert "| ours (Bayesian)'s own policy | 2 | -250.5 |" in section


@pytest.mark.parametrize(("scheduler", "config", "names"), [
    ("ASHA", None, ["rl.training.config.lr", "rl.training.initial_log_std", "rl.training.config.gamma"]),
    ("PBT", None, ["rl.training.config.lr", "rl.training.config.gamma", "rl.training.config.lambda_",
                   "rl.training.config.clip_param"]),
    ("ASHA", "bench/studies/wide-space.yaml", ["rl.training.config.lr", "rl.training.initial_log_std",
                                               "rl.training.config.gamma", "rl.training.config.minibatch_size"]),
])
def test_ray_tunes_peer_searches_the_space_our_run_searches(monkeypatch, scheduler, config, names):
    monkeypatch.syspath_prepend(str(BENCH))
    peer = importlib.import_module("peer_raytune")
    from argparse import Namespace

    args = Namespace(problem=None, scheduler=scheduler, config=config and REPO / config)
    space = peer.our_space(args, {"rl.env.id": "Pendulum-v1"})
    assert space.names == names
    sampled = peer.search_space(space)  # Ray Tune's terms: a Categorical one as tune.choice
    assert {key.removeprefix(peer.REVERSED) for key in sampled} == {*names, "rl.training.seed"}


def test_the_share_trained_past_a_rung_with_too_few_to_compare_counts_what_went_on_alone(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    peers = importlib.import_module("peers")
    import datetime

    import optuna

    def trial(number: int, values: dict[int, float], at_s: float, **attrs: Any) -> optuna.trial.FrozenTrial:
        made = optuna.trial.create_trial(state=optuna.trial.TrialState.PRUNED, intermediate_values=values,
                                         user_attrs={"curve_wall_s": {str(step): 1.0 for step in values}, **attrs})
        made.number, made.datetime_start = number, datetime.datetime.fromtimestamp(at_s)
        return made

    # Rungs at 1,000, 3,000 and 9,000 env steps. Trial 0 went on past 1,000 alone (2,000 steps to the next rung),
    # trial 1 stopped there, trial 2 went on as the third there (not alone), trial 3 continues trial 1 (promoted
    # from 1,000 when three values were there): 3,000 + 1,000 + 3,000 + 2,000 steps in all, 2,000 of them alone.
    trials = [trial(0, {1000: 1.0, 3000: 3.0}, 0.0), trial(1, {1000: 2.0}, 10.0),
              trial(2, {1000: 0.0, 3000: 1.0}, 20.0), trial(3, {3000: 4.0}, 30.0, pbt_parent=1)]
    assert peers.past_lone_rungs(trials, 1000) == round(2000 / 9000, 3)
