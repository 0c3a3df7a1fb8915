"""The Benchmarks page and the README's headline figures, generated from the JSON files in bench/results/.

    .venv/bin/python bench/pages.py [--headline] [--results DIR]

A figure exists once, in a result file; this module only reads and formats. Every table names the file
its figures come from, and every file in the results directory is rendered by some section: a file of
an unknown shape, or one no section renders, raises ResultFormatError naming it. Each kind of result is
shown from its newest file (a full run before a `--quick` one), older files of the kind in a history
table. Output depends on the files only (sorted, fixed formatting), so a test can compare the README's
headline block with `headline()`.
"""

from __future__ import annotations

import json
import math
import re
import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from common import BENCH, REPO, ours_on_its_env

RESULTS = BENCH / "results"
_T = TypeVar("_T")
_SUITE_KEYS = {"started", "quick", "machine", "commit", "load_average", "raw", "throughput", "learner",
               "time_to_reward", "tuner", "trial_start", "ray", "finished"}  # bench/run.py's record
_NOTE_KEYS = {"note", "how", "commit", "started", "finished"}  # added by hand to a part run on its own
_OLD_REWARD_KEYS = {"problem", "simulator", "targets", "ours", "sb3"}  # time to reward before the seeds (Nov 2026)
_REREAD_S = 0.5  # generic_default.py rewrites its file in place after every run: a read may catch it half written


class ResultFormatError(ValueError):
    """A result file whose shape no section knows, or that no section renders."""


@dataclass(frozen=True)
class _Result:
    path: Path
    kind: str
    data: Any

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def quick(self) -> bool:
        return "-quick" in self.path.stem or (isinstance(self.data, dict) and self.data.get("quick") is True)

    @property
    def date(self) -> str:
        """From the file name (every writer stamps it): `2026-12-03 08:35` or `2026-12-01`."""
        found = re.search(r"(\d{4})(\d{2})(\d{2})(?:-(\d{2})(\d{2})\d{2})?", self.path.stem)
        if not found:
            return "—"
        year, month, day, hour, minute = found.groups()
        return f"{year}-{month}-{day}" + (f" {hour}:{minute}" if hour else "")

    @property
    def shown(self) -> str:
        """The file as a page names it: relative to the repository when it is inside it."""
        return str(self.path.relative_to(REPO)) if self.path.is_relative_to(REPO) else str(self.path)

    @property
    def commit(self) -> str:
        return str(self.data.get("commit", "—")) if isinstance(self.data, dict) else "—"


@dataclass(frozen=True)
class _Section:
    title: str
    body: str
    files: tuple[str, ...]  # the result files whose figures it renders


# ----------------------------------------------------------------------------------------------- public face


def benchmark_page(results: Path = RESULTS) -> str:
    """Markdown of the docs site's Benchmarks page: each kind's newest result in tables, older ones in a history."""
    loaded = _load(results)
    sections = _all_sections(loaded)
    rendered = {name for section in sections for name in section.files}
    missing = [result.name for result in loaded if result.name not in rendered]
    if missing:
        raise ResultFormatError(f"{', '.join(missing)} in {results}: no section renders it (a result without any "
                                "part bench/pages.py knows); add a section or remove the file")
    parts = ["# Benchmarks", _INTRO] + [f"## {section.title}\n\n{section.body}" for section in sections]
    parts.append("## Result files\n\n" + _table(["file", "date", "rendered in"], [
        [f"`{result.shown}`", result.date, ", ".join(s.title for s in sections if result.name in s.files)]
        for result in loaded]))
    return "\n\n".join(parts) + "\n"


def headline(results: Path = RESULTS) -> str:
    """3-7 Markdown bullets of the headline figures for the README, each naming its result file."""
    benchmark_page(results)  # every file's shape checked: a headline comes only from results the page renders
    loaded = _load(results)
    bullets = [line for make in _HEADLINES if (line := make(loaded)) is not None]
    return "\n".join(f"- {line}" for line in bullets) + "\n"


# ------------------------------------------------------------------------------------------------- loading


def _load(results: Path) -> list[_Result]:
    """Every *.json in `results`, sorted by name, each with its kind; ResultFormatError for an unknown shape."""
    if not results.is_dir():
        raise ResultFormatError(f"results directory {results} does not exist: pass the directory of the JSON files")
    return [_read(path) for path in sorted(results.glob("*.json"))]


def _read(path: Path) -> _Result:
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError:
        time.sleep(_REREAD_S)
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise ResultFormatError(f"{path}: not valid JSON ({error})") from error
    kind = _kind(data)
    if kind is None:
        shape = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise ResultFormatError(f"{path}: unknown result shape (top level {shape}); bench/pages.py knows "
                                f"{', '.join(_KINDS)}: add a section for it (or an adapter for an old schema)")
    for record in data if isinstance(data, list) else [data]:
        extra = set(record) - _FIELDS[kind]
        if extra:
            raise ResultFormatError(f"{path}: unknown field(s) {', '.join(sorted(extra))} in a {kind} result "
                                    f"({_KINDS[kind]}); known: {', '.join(sorted(_FIELDS[kind]))}: render them in "
                                    "bench/pages.py")
    return _Result(path, kind, data)


_KINDS = {
    "suite": "bench/run.py's <time>.json (raw, throughput, time_to_reward, tuner, ray)",
    "time-to-reward": "bench/time_to_reward.measure's result on its own (<time>-hopper.json)",
    "ray": "bench/ray_scaling.py's result on its own (<time>-ray.json)",
    "tuning-gain": "bench/tuning_gain.py's list of studies",
    "pbt-vs-search": "bench/pbt_vs_search.py's list of runs",
    "main-job": "bench/pbt_vs_search.py --suite main-job's list of runs",
    "generic-default": "bench/generic_default.py's record",
    "peers": "bench/peers.py's record",
    "humanoid": "bench/humanoid.py's record",
}


# a row of bench/pbt_vs_search.py, either suite (the answer's hyperparameters are kept, not shown)
_TUNING_RUN_KEYS = {"strategy", "run_dir", "wall_s", "load_before", "load_after", "trials", "answer_trial",
                    "answer_objective", "policy_env_steps", "policy_training_s", "evaluation_mean", "evaluation_std",
                    "episodes", "repeat", "error", "suite", "answer"}
_FIELDS = {  # the top-level fields (of each item, for a list) each kind may have: another is a figure not shown
    "suite": _SUITE_KEYS,
    "time-to-reward": {"problem", "simulator", "targets", "cap_s", "seeds", "runs"} | _NOTE_KEYS,
    "ray": {"problem", "trials", "iterations", "job", "cores", "runs", "speedup"} | _NOTE_KEYS,
    "tuning-gain": {"study", "exit_code", "wall_s", "load_average_before", "search_trials", "search_range", "answer",
                    "answer_mean", "default_mean", "gain", "gain_per_seed", "gain_spread", "seeds", "reevaluation",
                    "run_dir"},
    "pbt-vs-search": _TUNING_RUN_KEYS,
    "main-job": _TUNING_RUN_KEYS,
    "generic-default": {"started", "command", "quick", "budget_s", "cpus", "machine_cores", "choose_seeds",
                        "report_seeds", "choice_problems", "report_problems", "discrete", "configs", "runs", "scores",
                        "choice", "finished"} | _NOTE_KEYS,
    "peers": {"kind", "command", "target", "budget_s", "train_steps", "seeds", "episodes", "tools", "cpus",
              "machine_cores", "parts", "summary", "ours_config"} | _NOTE_KEYS,
    "humanoid": {"problem", "simulator", "cpus", "choose_cap_s", "cap_s", "targets", "configs", "choose", "curves",
                 "winner", "fast_is_winner"} | _NOTE_KEYS,
}


def _kind(data: Any) -> str | None:
    if isinstance(data, list) and data and all(isinstance(item, dict) for item in data):
        if all("study" in item and "reevaluation" in item for item in data):
            return "tuning-gain"
        if all("strategy" in item and "wall_s" in item for item in data):
            return "main-job" if all(item.get("suite") == "main-job" for item in data) else "pbt-vs-search"
        return None
    if not isinstance(data, dict):
        return None
    if data.get("kind") == "peers":
        return "peers"
    if {"choose", "curves", "configs"} <= data.keys():
        return "humanoid"
    if {"choice_problems", "report_problems", "configs", "runs"} <= data.keys():
        return "generic-default"
    if {"runs", "speedup"} <= data.keys():
        return "ray"
    if {"problem", "targets", "cap_s", "runs"} <= data.keys():
        return "time-to-reward"
    if {"started", "machine", "load_average"} <= data.keys():
        return "suite"
    return None


def _of(loaded: list[_Result], kind: str, part: str | None = None) -> list[_Result]:
    return [result for result in loaded if result.kind == kind and (part is None or part in result.data)]


def _newest(results: list[_Result]) -> _Result:
    """The last full run (files sort by time stamp), else the last `--quick` one."""
    full = [result for result in results if not result.quick]
    return (full or results)[-1]


def _checked(result: _Result, render: Callable[..., _T], *args: Any) -> _T:
    """render(*args), with a missing or mistyped field reported as the file's shape, never as a bare KeyError."""
    try:
        return render(*args)
    except (KeyError, TypeError, IndexError, AttributeError, ValueError) as error:
        if isinstance(error, ResultFormatError):
            raise
        raise ResultFormatError(f"{result.path}: a {result.kind} result without the shape its writer gives "
                                f"({type(error).__name__}: {error}); {_KINDS[result.kind]}") from error


# ---------------------------------------------------------------------------------------------- formatting


def _table(header: list[str], rows: list[list[str]]) -> str:
    def cells(row: list[str]) -> str:
        return "| " + " | ".join(str(cell).replace("|", "\\|") for cell in row) + " |"

    return "\n".join([cells(header), "|" + "---|" * len(header), *(cells(row) for row in rows)])


def _from(result: _Result, *more: str) -> str:
    details = [f"commit {result.commit}" if result.commit != "—" else "", *more]
    extra = "; ".join(detail for detail in details if detail)
    return f"From `{result.shown}`" + (f" ({extra})" if extra else "") + ":"


def _rate(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f}"


def _ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f} s"


def _number(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def _loads(values: Iterable[float | None]) -> str:
    """A range of 1-minute load averages, `0.4–1.7`."""
    known = sorted(value for value in values if value is not None)
    if not known:
        return "—"
    return f"{known[0]:.1f}" if f"{known[0]:.1f}" == f"{known[-1]:.1f}" else f"{known[0]:.1f}–{known[-1]:.1f}"


def _spread(values: Iterable[float | None], digits: int = 1) -> str:
    """`median [min, max]` of the known values, or —."""
    known = sorted(value for value in values if value is not None)
    if not known:
        return "—"
    return f"{statistics.median(known):.{digits}f} [{known[0]:.{digits}f}, {known[-1]:.{digits}f}]"


def _target(value: float) -> str:
    return f"{value:,g}"


# ---------------------------------------------------------------------------------------------- throughput

_INTRO = """\
Every figure on this page is generated by `bench/pages.py` from a JSON file in `bench/results/`, and each
table names its file. The machines are shared and noisy: compare ratios measured in the same run, and read
the 1-minute load average recorded with each part.

```bash
make bench                        # the suite (bench/run.py); installs SB3 into .venv
make bench BENCH_ARGS=--quick     # smoke run, a few minutes, noisy
.venv/bin/python bench/run.py --only raw,throughput --simulators roboschool
```"""

_THROUGHPUT_METHOD = """\
`bench/run.py` measures, in one run and side by side, the raw `env.step` rate of every problem and
simulator — one process, random actions, the env the jobs train on (`bench/raw.py`) — and our job's env
steps per second on reacher, sampling only and end to end (`bench/throughput.py`). The algorithm is built
as the job builds it; PPO's sample call is timed in-process with `perf_counter` and each `algo.train()` call
end to end (RLlib's own timers are moving averages), over steady iterations after a warm-up one. A ratio is
the rate ÷ (the raw rate × the cores sampling). Variants of our defaults show what each one buys, and RLlib's
default `PPOConfig()` runs beside them; "ours ÷ this" is our first row's end-to-end rate ÷ this row's."""


def _throughput_section(loaded: list[_Result]) -> _Section | None:
    used = [result for result in _of(loaded, "suite") if "raw" in result.data or "throughput" in result.data]
    if not used:
        return None
    parts = [_THROUGHPUT_METHOD]
    with_raw = [result for result in used if "raw" in result.data]
    if with_raw:
        parts.append(_checked(_newest(with_raw), _raw_table, _newest(with_raw)))
    with_throughput = [result for result in used if "throughput" in result.data]
    if with_throughput:
        newest = _newest(with_throughput)
        parts.append(_checked(newest, _throughput_table, newest))
    if len(used) > 1:
        rows = [_checked(result, _throughput_history_row, result) for result in used]
        parts.append("Every run, its first row (our defaults of the time) on the first simulator:\n\n" + _table(
            ["file", "date", "commit", "CPU", "raw reacher/roboschool", "row", "sampling/s (ratio)",
             "end to end/s (ratio)", "load average"], rows))
    return _Section("Throughput", "\n\n".join(parts), tuple(result.name for result in used))


def _raw_table(result: _Result) -> str:
    raw = result.data["raw"]
    simulators = list(dict.fromkeys(simulator for by_simulator in raw.values() for simulator in by_simulator))
    rows = [[problem, *(_rate(raw[problem].get(simulator)) for simulator in simulators)] for problem in raw]
    load = result.data["load_average"].get("raw")
    return (_from(result, f"load average {_loads([load])}") + " raw simulator `env.step`/s, one process\n\n"
            + _table(["problem", *simulators], rows))


def _sampling_ratios(result: _Result, item: dict[str, Any]) -> tuple[float | None, float | None]:
    limit = result.data.get("raw", {}).get(item["problem"], {}).get(item["simulator"])
    cap = limit * item["sampling_cores"] if limit else None
    return ((item["sampling_steps_per_s"] / cap, item["end_to_end_steps_per_s"] / cap) if cap else (None, None))


def _throughput_table(result: _Result) -> str:
    items = result.data["throughput"]
    loads = result.data["load_average"]
    rows = []
    for item in items:
        sampling, end_to_end = _sampling_ratios(result, item)
        rows.append([
            f"{item['problem']}/{item['simulator']}", item["label"],
            f"{item['num_env_runners']} × {item['num_envs_per_env_runner']}",
            f"{item['train_batch_size_per_learner']}/{item['num_epochs']}/{item['minibatch_size']}",
            str(item["torch_threads"]),
            f"{_rate(item['sampling_steps_per_s'])} ({_ratio(sampling)})",
            f"{_rate(item['end_to_end_steps_per_s'])} ({_ratio(end_to_end)})",
            _number(item["learning_s_per_iteration"]),
            "" if (ours := ours_on_its_env(items, item)) is item
            else _ratio(ours["end_to_end_steps_per_s"] / item["end_to_end_steps_per_s"]),
            _loads([loads.get(f"throughput {item['problem']}/{item['simulator']}: {item['label']}")])])
    machine = result.data["machine"]
    return (_from(result, f"{machine['cores']} cores, {machine['cpu']}") + " env steps/s of a PPO job\n\n" + _table(
        ["env", "settings", "runners × envs", "batch/epochs/minibatch", "learner threads", "sampling/s (ratio)",
         "end to end/s (ratio)", "learn s/iteration", "ours ÷ this", "load average"], rows))


def _throughput_history_row(result: _Result) -> list[str]:
    raw = result.data.get("raw", {}).get("reacher", {}).get("roboschool")
    items = result.data.get("throughput", [])
    loads = [value for key, value in result.data["load_average"].items() if key.startswith(("raw", "throughput"))]
    if not items:
        return [f"`{result.name}`", result.date, result.commit, result.data["machine"]["cpu"], _rate(raw),
                "—", "—", "—", _loads(loads)]
    first = items[0]
    sampling, end_to_end = _sampling_ratios(result, first)
    return [f"`{result.name}`", result.date, result.commit, result.data["machine"]["cpu"], _rate(raw),
            f"{first['label']}, {first['problem']}/{first['simulator']}",
            f"{_rate(first['sampling_steps_per_s'])} ({_ratio(sampling)})",
            f"{_rate(first['end_to_end_steps_per_s'])} ({_ratio(end_to_end)})", _loads(loads)]


# ------------------------------------------------------------------------------------------ time to reward

_REWARD_METHOD = {
    "reacher": """\
Wall time from process start (imports, Ray start-up and env construction included) to a mean return over
the last 100 episodes of each target, several seeds each (`bench/run.py --seeds`), every run capped at the
same wall time (`--cap-s`) (`bench/time_to_reward.py`). Runs go two at a time, one per core, each pair
started together so that both share the machine's state: our `fast` preset on one CPU beside
Stable-Baselines3 PPO with rl-zoo3's tuned ReacherBulletEnv-v0 row on one core (`bench/sb3_ppo.py --settings
zoo`), then the `seed` preset (the original scripts' values), then the `fast` preset alone with both cores.
Both trainers stop on a training clock of the cap and the race counts only the reward lines within the cap
of process start; in a median a miss counts as slower than every hit, and a median on a miss is —. Each run
ends with its policy's deterministic mean return on episode seeds no run trains on (the same for both
trainers): the figure a user keeps. Times move between hosts more than ratios: compare ratios within a run.""",
    "hopper": """\
`make bench BENCH_ARGS=--long` (or `--only hopper`) adds hopper/roboschool to the time-to-reward part: the
`fast` preset with 2 CPUs, one seed at a time, each up to a long cap and stopping at the top target; timed as on
reacher (from process start, the mean return over the last 100 episodes).""",
}
_REWARD_METHOD_OTHER = "Timed as reacher's time to reward (`bench/time_to_reward.py`)."
_PEER = "SB3"  # the row a time is compared with: time_to_reward.py's SB3 labels start with it


def _reward_entries(loaded: list[_Result]) -> list[tuple[_Result, dict[str, Any]]]:
    """(file, time-to-reward entry) of every suite part and every entry run on its own, files in order."""
    entries: list[tuple[_Result, dict[str, Any]]] = []
    for result in loaded:
        if result.kind == "time-to-reward":
            entries.append((result, result.data))
        elif result.kind == "suite" and "time_to_reward" in result.data:
            part = result.data["time_to_reward"]
            entries += [(result, entry) for entry in (part if isinstance(part, list)
                                                      else [_checked(result, _old_reward, result)])]
    return entries


def _old_reward(result: _Result) -> dict[str, Any]:
    """The schema before seeds (one run per trainer, keys `ours` and `sb3`) as today's."""
    entry = result.data["time_to_reward"]
    if set(entry) != _OLD_REWARD_KEYS:
        raise ResultFormatError(f"{result.path}: time_to_reward has keys {sorted(entry)}: neither a list of "
                                f"bench/time_to_reward.measure results nor the old {sorted(_OLD_REWARD_KEYS)}")
    loads = result.data["load_average"]
    runs = {"ours (job defaults of the time)": [{**entry["ours"], "seed": None,
                                                 "load_average": loads.get("time to reward: ours")}],
            "SB3 PPO (settings not recorded)": [{**entry["sb3"], "seed": None,
                                                 "load_average": loads.get("time to reward: Stable-Baselines3 PPO")}]}
    return {"problem": entry["problem"], "simulator": entry["simulator"], "targets": entry["targets"],
            "cap_s": entry["ours"]["cap_s"], "seeds": [], "runs": runs}


def _reached(run: dict[str, Any], target: float) -> dict[str, Any] | None:
    return run["reached"][str(float(target))]


def _median_seconds(runs: list[dict[str, Any]], target: float, cap_s: float) -> float | None:
    """Median seconds to `target` as bench/run.py's table has it: a miss is slower than any hit; None when the
    median falls on a miss."""
    hits = [_reached(run, target) for run in runs]
    median = statistics.median(hit["seconds"] if hit else math.inf for hit in hits) if hits else math.inf
    return min(median, cap_s) if math.isfinite(median) else None


def _peer(entry: dict[str, Any]) -> str | None:
    return next((label for label in entry["runs"] if label.startswith(_PEER)), None)


def _reward_sections(loaded: list[_Result]) -> list[_Section]:
    by_problem: dict[str, list[tuple[_Result, dict[str, Any]]]] = {}
    for result, entry in _reward_entries(loaded):
        by_problem.setdefault(_checked(result, dict.__getitem__, entry, "problem"), []).append((result, entry))
    order = sorted(by_problem, key=lambda problem: (problem != "reacher", problem))
    return [_reward_section(problem, by_problem[problem]) for problem in order]


def _reward_section(problem: str, entries: list[tuple[_Result, dict[str, Any]]]) -> _Section:
    newest_result = _newest([result for result, _ in entries])
    result, entry = [(r, e) for r, e in entries if r is newest_result][-1]
    parts = [_REWARD_METHOD.get(problem, _REWARD_METHOD_OTHER), _checked(result, _reward_tables, result, entry)]
    if len(entries) > 1:
        rows = [_checked(r, _reward_history_row, r, e) for r, e in entries]
        parts.append("Every run: median time to the top target, and ÷ the SB3 row's median where the run has one:\n\n"
                     + _table(["file", "date", "commit", "env", "cap", "load average", "median to the top target"],
                              rows))
    title = "Time to reward" if problem == "reacher" else f"Time to reward: {problem}"
    return _Section(title, "\n\n".join(parts), tuple(dict.fromkeys(r.name for r, _ in entries)))


def _reward_tables(result: _Result, entry: dict[str, Any]) -> str:
    targets, cap, runs = entry["targets"], entry["cap_s"], entry["runs"]
    peer = _peer(entry)
    rows = []
    for label, seeds in runs.items():
        cells = [label]
        for target in targets:
            reached = sum(1 for run in seeds if _reached(run, target))
            cells.append(f"{_seconds(_median_seconds(seeds, target, cap))} ({reached}/{len(seeds)})")
        cells += [_spread(run["best_mean_return"] for run in seeds), _spread(run.get("final_return") for run in seeds)]
        rows.append(cells)
    where = f"{entry['problem']}/{entry['simulator']}"
    note = "".join(f" Note in the file: {entry[key]}" for key in ("note", "how") if entry.get(key))
    text = [_from(result, f"cap {_seconds(cap)}") + f" time to a mean return on {where}, median over seeds "
            f"(seeds that reached it).{note}\n\n" + _table(
                ["trainer", *(f"reach {_target(t)}" for t in targets), "best mean return, median [min, max]",
                 "final policy, deterministic, median [min, max]"], rows)]
    if peer:
        text.append(f"Median time ÷ the median of `{peer}` (same file):\n\n" + _table(
            ["trainer", *(_target(t) for t in targets)],
            [[label, *(_ratio(_versus_peer(seeds, runs[peer], t, cap)) for t in targets)]
             for label, seeds in runs.items() if label != peer]))
    text.append("Per seed:\n\n" + _table(
        ["trainer", "seed", *(f"reach {_target(t)}" for t in targets), f"env steps to {_target(targets[-1])}",
         "env steps at the end", "best mean return", "final policy", "load average"],
        [_seed_row(label, run, targets) for label, seeds in runs.items() for run in seeds]))
    return "\n\n".join(text)


def _versus_peer(runs: list[dict[str, Any]], peer: list[dict[str, Any]], target: float, cap: float) -> float | None:
    mine, theirs = _median_seconds(runs, target, cap), _median_seconds(peer, target, cap)
    return mine / theirs if mine is not None and theirs else None


def _seed_row(label: str, run: dict[str, Any], targets: list[float]) -> list[str]:
    top = _reached(run, targets[-1])
    return [label, "—" if run.get("seed") is None else str(run["seed"]),
            *(_seconds((_reached(run, t) or {}).get("seconds")) for t in targets),
            _rate(top["env_steps"]) if top else "—", _rate(run["env_steps"]), _number(run["best_mean_return"]),
            _number(run.get("final_return")), _loads([run.get("load_average")])]


def _reward_history_row(result: _Result, entry: dict[str, Any]) -> list[str]:
    top, cap, peer = entry["targets"][-1], entry["cap_s"], _peer(entry)
    figures = []
    for label, runs in entry["runs"].items():
        figure = f"{label}: {_seconds(_median_seconds(runs, top, cap))}"
        if peer and label != peer:
            figure += f" (÷ SB3 {_ratio(_versus_peer(runs, entry['runs'][peer], top, cap))})"
        figures.append(figure)
    loads = [run.get("load_average") for runs in entry["runs"].values() for run in runs]
    return [f"`{result.name}`", result.date, result.commit, f"{entry['problem']}/{entry['simulator']}",
            _seconds(cap), _loads(loads), f"to {_target(top)}: " + "; ".join(figures)]


# ------------------------------------------------------------------------------------------- tuner overhead

_TUNER_METHOD = """\
`bench/tuner_overhead.py` (part `tuner` of `bench/run.py`) times a small tuning run (Random strategy, trials
one at a time, each a very short job) from `run_tuning` to its return, then the same job alone as a process,
as the tuner starts it. Overhead per trial = tuning wall time ÷ trials − the lone job's wall time: the tuner's
own work plus what a job costs more under the tuner (negative when the run's shared Ray instance saves more
than the tuner costs). A trial's wall time minus its training time is what a trial's budget is planned with."""


def _tuner_section(loaded: list[_Result]) -> _Section | None:
    used = _of(loaded, "suite", "tuner")
    if not used:
        return None
    rows = [_checked(result, _tuner_row, result) for result in used]
    body = (f"{_TUNER_METHOD}\n\nEvery run, the newest last:\n\n" + _table(
        ["file", "date", "trials", "CPUs a job", "tuning wall", "per trial", "lone job", "overhead per trial",
         "trial wall − training", "load average"], rows))
    return _Section("Tuner overhead", body, tuple(result.name for result in used))


def _tuner_row(result: _Result) -> list[str]:
    tuner = result.data["tuner"]
    minus = tuner.get("trial_wall_minus_training_s")
    return [f"`{result.name}`", result.date, str(tuner["trials"]), str(tuner["cpus_per_job"]),
            f"{tuner['tuning_wall_s']:.1f} s", f"{tuner['wall_per_trial_s']:.1f} s",
            f"{min(tuner['lone_job_s']):.1f} s", f"{tuner['overhead_per_trial_s']:.1f} s "
            f"({tuner['overhead_fraction']:.0%})", "not recorded" if minus is None else
            ", ".join(f"{value:.1f}" for value in minus) + " s", _loads([result.data["load_average"].get(
                "tuner overhead")])]


_START_METHOD = """\
`bench/trial_start.py` (part `tuner` of `bench/run.py`) runs the same small study three times in the shape of
`make tune`: trials of a fixed training time, 2 at a time on 1 CPU each. Jobs start as `python -m
sagemaker_rl.job` (as before standby processes), as a fresh standby process per job ("cold": imports and first
uses inside the trial), and as the tuner's default, where each slot keeps a job process on standby with that
done (`sagemaker_rl/job/standby/`). Per trial: its wall time, from the tuner creating it until its result is
recorded (model/ with policy.onnx written), minus its training time (the job's own time_total_s). The first
trial of each slot also waits for the run's Ray instance and finds no spare yet, so the median is over the
trials after them. Goal (issue 30): at most 2 s."""


_LEARNER_METHOD = """\
`bench/learner.py` (part `learner` of `bench/run.py`) times the job's PPO update alone: the learner built as
the job builds it for the problem's `fast` preset, once with the lean minibatch loop (`rl.training.learner`,
the default) and once with RLlib's, with the same weights, in one process with the job's one learner thread.
Each updates from the same sampled batches, from the same state every time, the two in turn (so a change in
the machine's load falls on both alike). Both give the same weights to the bit
(`tests/job/test_lean_learner.py`); a figure is the median seconds of `learner.update`, the learner
connectors' advantage estimation included. The batches come from a freshly built policy: short episodes
(hopper's fall within tens of steps) make the connectors' share larger than later in training."""


def _learner_section(loaded: list[_Result]) -> _Section | None:
    used = _of(loaded, "suite", "learner")
    if not used:
        return None
    rows = [row for result in used for row in _checked(result, _learner_rows, result)]
    body = f"{_LEARNER_METHOD}\n\nEvery run, the newest last:\n\n" + _table(
        ["file", "date", "commit", "problem", "batch/epochs/minibatch", "lean s per update", "RLlib's s per update",
         "lean ÷ RLlib's", "load average"], rows)
    return _Section("The learner's update", body, tuple(result.name for result in used))


def _learner_rows(result: _Result) -> list[list[str]]:
    loads = result.data["load_average"]
    return [[f"`{result.name}`", result.date, result.commit, f"{item['problem']}/{item['simulator']}",
             f"{item['train_batch_size_per_learner']}/{item['num_epochs']}/{item['minibatch_size']}",
             _spread(item["update_s"]["lean"], 3), _spread(item["update_s"]["rllib"], 3),
             _ratio(item["lean_over_rllib"]), _loads([loads.get(f"learner {item['problem']}")])]
            for item in result.data["learner"]]


def _trial_start_section(loaded: list[_Result]) -> _Section | None:
    used = _of(loaded, "suite", "trial_start")
    if not used:
        return None
    rows = [_checked(result, _trial_start_row, result) for result in used]
    body = (f"{_START_METHOD}\n\nEvery run, the newest last:\n\n" + _table(
        ["file", "date", "commit", "trials", "each trial, by start", "median after each slot's first",
         "load average"], rows))
    return _Section("Trial start-up", body, tuple(result.name for result in used))


def _trial_start_row(result: _Result) -> list[str]:
    start = result.data["trial_start"]
    runs, medians = start["runs"], start["median_extra_after_first_s"]
    return [f"`{result.name}`", result.date, result.commit,
            f"{start['trials']} × {start['training_s']:.0f} s, {start['parallel']} at a time",
            "; ".join(f"{mode}: " + ", ".join(f"{value:.1f}" for value in run["extra_s"]) + " s"
                      for mode, run in runs.items()),
            ", ".join(f"{mode} {value:.1f} s" for mode, value in medians.items()),
            _loads(run["load_average"] for run in runs.values())]


# ----------------------------------------------------------------------------------------- generic default

_GENERIC_METHOD = """\
`bench/generic_default.py` chooses the `generic` preset (for a problem without a row of its own) by
measurement. Every run is a fresh job started as a user starts it, stopped by its training clock; its figure
is the mean return (last 100 episodes) at its last iteration, and runs go seed by seed, problem by problem,
config by config so that a drift in the machine's load falls on every config alike. First it chooses: each
candidate on the choice problems; a candidate's score is the mean over problems of its returns normalized
per problem ((x − min) ÷ (max − min) over every run of that problem), and the best score is the choice. Then
it reports: the choice against RLlib's default `PPOConfig` and the original scripts' values (preset `seed`)
on other problems. The file is rewritten after every run, so a running benchmark shows here in part."""


@dataclass(frozen=True)
class _GenericPlan:
    candidates: list[str]
    baselines: list[str]
    choose_runs: list[dict[str, Any]]
    report_runs: list[dict[str, Any]]
    choosing: int  # runs the choose phase plans
    reporting: int

    @property
    def expected(self) -> int:
        return self.choosing + self.reporting


def _generic_plan(data: dict[str, Any]) -> _GenericPlan:
    """The record's phases: its first runs choose (candidates × choice problems × seeds), the rest report."""
    from generic_default import RLLIB_BASELINE, SEED_BASELINE

    baselines = [name for name in data["configs"] if name in (RLLIB_BASELINE, SEED_BASELINE.name)]
    candidates = [name for name in data["configs"] if name not in baselines]
    choosing = len(data["choice_problems"]) * len(candidates) * len(data["choose_seeds"])
    reporting = len(data["report_problems"]) * (1 + len(baselines)) * len(data["report_seeds"])
    runs = data["runs"]
    return _GenericPlan(candidates, baselines, runs[:choosing], runs[choosing:], choosing, reporting)


def _finals(runs: list[dict[str, Any]], problem: str, config: str) -> list[float]:
    return [run["final_return"] for run in runs if run["target"] == problem and run["config"] == config
            and run["final_return"] is not None]


def _mean_spread(values: list[float]) -> str:
    """`mean [min..max] (n)`, as bench/generic_default.py prints it."""
    return f"{statistics.fmean(values):.1f} [{min(values):.1f}..{max(values):.1f}] ({len(values)})" if values else "—"


def _versus(chosen: list[float], other: list[float]) -> tuple[str, str]:
    """chosen ÷ other (of the means; inverted reading when both are negative) and chosen − other."""
    if not chosen or not other:
        return "—", "—"
    a, b = statistics.fmean(chosen), statistics.fmean(other)
    if a < 0 and b < 0:
        quotient = f"{a / b:.2f} (both < 0: < 1 is better)"
    else:
        quotient = f"{a / b:.2f}" if b > 0 and a >= 0 else "— (signs differ)"
    return quotient, f"{a - b:+.1f}"


def _generic_tables(result: _Result) -> str:
    data, plan = result.data, _generic_plan(result.data)
    done = len(data["runs"])
    state = "finished" if "finished" in data else "running or stopped: the file holds the runs done so far"
    parts = [_from(result, f"started {data['started']}") + f" **{done} of {plan.expected} runs done** ({state}); "
             f"each run {data['budget_s']:g} training seconds on {data['cpus']} CPUs; choosing seeds "
             f"{data['choose_seeds']}, reporting seeds {data['report_seeds']}; command "
             f"`python {' '.join(data['command'][1:])}`"
             + ("; `--quick` smoke settings, which decide nothing" if result.quick else "") + "."]
    parts.append(_choice_table(data, plan))
    parts.append(_report_table(data, plan))
    parts.append("Every run:\n\n" + _table(
        ["#", "problem", "config", "seed", "final mean return", "iterations", "env steps", "wall", "exit",
         "load average", "failure"],
        [[str(number), run["target"], run["config"], str(run["seed"]), _number(run["final_return"], 2),
          str(run["iterations"]), _rate(run["env_steps"]), _seconds(run["wall_s"]), str(run["exit_code"]),
          _loads([run["load_average"]]), run.get("failure") or ""] for number, run in enumerate(data["runs"], 1)]))
    parts.append("The configs, as the file records where their values come from:\n\n" + "\n".join(
        f"- `{name}`: {config['source']}" for name, config in data["configs"].items()))
    return "\n\n".join(parts)


def _choice_table(data: dict[str, Any], plan: _GenericPlan) -> str:
    scores = data.get("scores", {})
    choice = (f"the choice is **`{data['choice']}`**" if "choice" in data else
              f"no choice yet ({len(plan.choose_runs)} of {plan.choosing} choosing runs done)")
    rows = [[name, *(_mean_spread(_finals(plan.choose_runs, problem, name)) for problem in data["choice_problems"]),
             _ratio(scores.get(name)) if name in scores else "—"] for name in plan.candidates]
    return (f"Choose: final mean return, mean [min..max] (seeds); {choice}.\n\n"
            + _table(["candidate", *data["choice_problems"], "score"], rows))


def _report_table(data: dict[str, Any], plan: _GenericPlan) -> str:
    chosen = data.get("choice")
    if chosen is None:
        return "Report: after the choice."
    rows = []
    for problem in data["report_problems"]:
        mine = _finals(plan.report_runs, problem, chosen)
        for config in [chosen, *plan.baselines]:
            finals = _finals(plan.report_runs, problem, config)
            quotient, difference = ("", "") if config == chosen else _versus(mine, finals)
            rows.append([problem, config, _mean_spread(finals), quotient, difference])
    return (f"Report: final mean return, mean [min..max] (seeds), `{chosen}` against the baselines "
            f"({len(plan.report_runs)} of {plan.reporting} reporting runs done):\n\n"
            + _table(["problem", "config", "final mean return", f"{chosen} ÷ this", f"{chosen} − this"], rows))


def _generic_history_row(result: _Result) -> list[str]:
    data, plan = result.data, _generic_plan(result.data)
    return [f"`{result.name}`", result.date, f"{data['budget_s']:g} s" + (" (quick)" if result.quick else ""),
            f"{len(data['runs'])} of {plan.expected}", str(data.get("choice", "—")),
            _loads(run["load_average"] for run in data["runs"])]


# ------------------------------------------------------------------------------------------- tuning gain

_GAIN_METHOD = """\
`bench/tuning_gain.py` runs whole tuning runs of reacher, one candidate default study after another
(`bench/studies/`), each with the tuner's own re-evaluation: the run's answer and the default configuration
trained again for the trial budget on the same fresh seeds (no trial used them), in the same run, so they
share the machine's conditions. The gain is the answer's mean over those seeds − the default's; when no
trial beat the default on the fresh seeds the answer is the default and the gain 0. The default local study
(`scripts/tune.py` with no flag) is the candidate whose answer gained the most. One run per study: a seed's
luck moves a short trial's return by several points, so the ranking of close studies could change."""


def _best_study(studies: list[dict[str, Any]]) -> dict[str, Any]:
    return max(studies, key=lambda study: (study["gain"] if study["gain"] is not None else float("-inf")))


def _gain_table(result: _Result) -> str:
    studies, rows = result.data, []
    best = _best_study(studies)
    for study in studies:
        default = next((row for row in study["reevaluation"] if row["candidate"] == "default"), None)
        others = [row for row in study["reevaluation"] if row["candidate"] != "default"]
        low_high = study["search_range"]
        rows.append([
            f"`{study['study']}`", f"{study['wall_s'] / 60:.1f} min", _loads([study["load_average_before"]]),
            f"{study['search_trials']} ({low_high[0]:.1f} … {low_high[1]:.1f})" if low_high else "0",
            "; ".join(f"{row['candidate']}: " + ", ".join(f"{gain:+.1f}" for gain in row["gain_per_seed"] or [])
                      for row in others) or "—",
            f"{default['mean']:.1f} ± {default['spread']:.1f}" if default and default["spread"] is not None else "—",
            str(study["answer"]) + (f" (tune.py exit {study['exit_code']})" if study["exit_code"] else ""),
            ("**{}**" if study is best else "{}").format(_signed(study["gain"]))])
    seeds = studies[0]["seeds"]
    return (_from(result) + f" fresh seeds {seeds}; the largest gain in bold\n\n" + _table(
        ["study", "wall", "load average before", "search trials (objective range)",
         "re-evaluated trial − default, per seed", "default on the fresh seeds, mean ± sd", "answer",
         "answer − default (mean)"], rows) + _study_notes(result, studies))


def _signed(value: float | None) -> str:
    return "—" if value is None else f"{value:+.2f}"


def _study_notes(result: _Result, studies: list[dict[str, Any]]) -> str:
    """Each study's own first comment line, from its file beside the results directory (bench/studies/)."""
    notes = []
    for study in studies:
        path = result.path.parent.parent / "studies" / f"{study['study']}.yaml"
        if path.is_file():
            lines = path.read_text().splitlines()
            comment = [line.lstrip("# ") for line in lines[:next((i for i, line in enumerate(lines)
                                                                  if not line.startswith("#")), len(lines))]]
            notes.append(f"- `{study['study']}` (`bench/studies/{path.name}`): {' '.join(comment)}")
    return "\n\n" + "\n".join(notes) if notes else ""


def _gain_history_row(result: _Result) -> list[str]:
    best = _best_study(result.data)
    return [f"`{result.name}`", result.date, _loads(study["load_average_before"] for study in result.data),
            f"`{best['study']}` {_signed(best['gain'])}"]


# ------------------------------------------------------------------------------------------ PBT vs search

_PBT_METHOD = """\
`bench/pbt_vs_search.py` runs whole tuning runs of reacher, one strategy after another (their order turns
with each repeat), with budgets of about the same wall time: Bayesian and Random search a number of
fixed-length trials two at a time without re-evaluation, PBT (and PB2, PBT whose explore is a bandit) trains a
population for a number of generations two at a time. The policy each run ends with (PBT, PB2: the best final
member's `model/`; a search: its best trial's `model/`) is then evaluated on fresh episode seeds,
deterministic actions: its mean return ± the spread over episodes. A PBT member's training is not thrown away
at the end of a trial, so its policy holds its lineage's training time where a search's best holds one
trial's."""

_MAIN_JOB_METHOD = """\
`bench/pbt_vs_search.py --suite main-job` asks what the README's main job (`make tune`) should do with its ~15
minutes on 2 cores. It runs whole tuning runs of reacher one after another (their order turns with each
repeat): the default study as it was (`scripts/tune.py --problem reacher`: 60-s trials, the re-evaluation at
60 s), and runs planned to end within `--max-runtime 15m`: Bayesian and ASHA searches whose answer is
re-evaluated at a 150-s training budget (`--train-budget 150s`), and PBT and PB2 with their default population
and generations. The policy each run ends with (its `model/`) is evaluated on fresh episode seeds,
deterministic actions: its mean return ± the spread over episodes. "policy's trial" is the run's answer, with
its objective (a re-evaluation's: the mean over its fresh seeds). The first run's ASHA arm (2026-12-05) lost its
answer's re-evaluation to the max runtime, so its policy is the default's: the search had timed a new trial by
its early-stopped ones, and one trained its whole budget; a new trial is now timed as a whole one."""


_POPULATION_STRATEGIES = {"PBT", "PB2"}


def _pbt_table(result: _Result) -> str:
    rows = []
    for run in result.data:
        if "error" in run:
            rows.append([run["strategy"], str(run.get("repeat", "—")), _seconds(run["wall_s"]), "—", "—", "—", "—",
                         "—", f"failed: {run['error']}"])
            continue
        rows.append([run["strategy"], str(run["repeat"]), _seconds(run["wall_s"]),
                     _loads([run["load_before"], run["load_after"]]), str(run["trials"]),
                     f"{run['answer_trial']} ({run['answer_objective']:.2f})",
                     _rate(run["policy_env_steps"]), _seconds(run["policy_training_s"]),
                     f"{run['evaluation_mean']:.2f} ± {run['evaluation_std']:.2f} ({run['episodes']} episodes)"])
    return (_from(result) + " in the order they ran\n\n" + _table(
        ["strategy", "repeat", "wall", "load average", "trials", "policy's trial (its objective)",
         "the policy's env steps", "its training time",
         "return on fresh seeds"], rows))


def _pbt_by_repeat(runs: list[dict[str, Any]]) -> dict[int, dict[str, float]]:
    """{repeat: {strategy: the policy's mean return on fresh seeds}} of the runs that ended with one."""
    table: dict[int, dict[str, float]] = {}
    for run in runs:
        if "evaluation_mean" in run:
            table.setdefault(run["repeat"], {})[run["strategy"]] = run["evaluation_mean"]
    return dict(sorted(table.items()))


def _pbt_history_row(result: _Result) -> list[str]:
    per_repeat = _pbt_by_repeat(result.data)
    figures = "; ".join(f"repeat {repeat}: " + ", ".join(f"{name} {value:.2f}" for name, value in sorted(row.items()))
                        for repeat, row in per_repeat.items())
    loads = [run.get(key) for run in result.data for key in ("load_before", "load_after")]
    return [f"`{result.name}`", result.date, _loads(loads), figures]


# ----------------------------------------------------------------------------------------- Ray scaling

_RAY_METHOD = """\
`bench/ray_scaling.py` (part `ray` of `bench/run.py`) runs the same small study (Random strategy, then the
default re-evaluation; each job a fixed amount of work, so wall time measures throughput) through
`scripts/tune.py --backend ray` on a real local cluster of 1 node and then of 2 nodes, the same CPUs per
node. The speed-up is the 1-node wall time ÷ the 2-node one. On one machine the "nodes" share its cores with
Ray's own processes (GCS, raylets, dashboard, agents) and the tuner, so an uncontended figure there is a
floor of what separate machines give; read the load averages beside it."""


def _ray_entries(loaded: list[_Result]) -> list[tuple[_Result, dict[str, Any]]]:
    return [(result, result.data if result.kind == "ray" else result.data["ray"]) for result in loaded
            if result.kind == "ray" or (result.kind == "suite" and "ray" in result.data)]


def _ray_section(loaded: list[_Result]) -> _Section | None:
    entries = _ray_entries(loaded)
    if not entries:
        return None
    newest_result = _newest([result for result, _ in entries])
    entry = next(e for r, e in entries if r is newest_result)
    parts = [_RAY_METHOD, _checked(newest_result, _ray_table, newest_result, entry)]
    if len(entries) > 1:
        parts.append("Every run:\n\n" + _table(["file", "date", "load average", "speed-up"], [
            [f"`{r.name}`", r.date, _loads(_ray_loads(e)), f"{_ratio(e['speedup'])}×"] for r, e in entries]))
    return _Section("Ray backend scaling", "\n\n".join(parts), tuple(r.name for r, _ in entries))


def _ray_loads(entry: dict[str, Any]) -> list[float | None]:
    return [run.get(key) for run in entry["runs"] for key in ("load_average_before", "load_average_after")]


def _ray_table(result: _Result, entry: dict[str, Any]) -> str:
    rows = [[str(run["nodes"]), str(run["cpus_per_node"]), _seconds(run["wall_s"]),
             f"{run['complete']} of {len(run['trial_durations_s'])}",
             ", ".join(f"{value:.0f}" for value in run["trial_durations_s"]) + " s",
             _loads([run["load_average_before"], run["load_average_after"]])] for run in entry["runs"]]
    note = f" Note in the file: {entry['note']}" if entry.get("note") else ""
    return (_from(result, f"{entry['cores']} cores") + f" the {entry['trials']}-trial study, {entry['iterations']} "
            f"iterations a job: **{_ratio(entry['speedup'])}×** with 2 nodes.{note}\n\n" + _table(
                ["nodes", "CPUs a node", "wall", "jobs complete", "job durations", "load average before, after"],
                rows))


# ------------------------------------------------------------------------------------------------- peers

_PEERS_METHOD = """\
`bench/peers.py` runs tuners side by side on a job none of them was tuned on, each with the same wall-clock budget
on the same cores, one at a time: ours (`scripts/tune.py` with its default space, `--max-runtime` and
`--train-budget`, with `--strategy Bayesian` and with `--strategy ASHA`), rl-zoo3's optimizer (`bench/peer_zoo.py`:
its PPO sampler, TPE and median pruner), Ray Tune with ASHA over our default space and Ray Tune with PBT over our
PBT's space and population (`bench/peer_raytune.py`). Then every answer is trained again for the user's training
budget on fresh seeds no tool tuned on, two at a time on one CPU each (a budget of env steps makes a result
independent of speed): the untuned default, ours, Ray Tune's (PBT's: its best member's last values) and rl-zoo3's
values where our names map with our job (RLlib); rl-zoo3's answer and its hand-tuned `ppo.yml` row with SB3, their
own trainer. Each final policy runs deterministic episodes on the same seeds; a figure is the mean over the training
seeds of the policies' mean returns, with their spread (sample standard deviation) and the paired difference to the
default and to ours (ASHA), our default strategy with a training budget (95% t interval over the seeds). Last, the
policy each of our runs trained itself. rl-zoo3's optimizer trains every trial for the whole budget, its two jobs as
threads of one process; Ray Tune's trials are actors of one Ray instance, ours a process each (a start-up per
trial)."""


_ANSWER_NAMES = {"default": "untuned default", "ours": "ours (Bayesian)", "ours-asha": "ours (ASHA)",
                 "ours-pbt": "ours (PBT)", "ray-tune-asha": "Ray Tune ASHA", "ray-tune-pbt": "Ray Tune PBT",
                 "rl-zoo3": "rl-zoo3's optimizer (SB3)", "rl-zoo3-in-our-job": "rl-zoo3's answer in our job",
                 "zoo-row": "rl-zoo3's hand-tuned row (SB3)"}


_DEFAULT_STRATEGY_ANSWER = "ours-asha"  # the answer of our default strategy with a training budget


def _answer_name(name: str) -> str:
    return _ANSWER_NAMES.get(name, name)


def _peers_tables(result: _Result) -> str:
    data, parts = result.data, result.data["parts"]
    state = "finished" if "finished" in data else "running or stopped: the parts done so far"
    head = (_from(result, f"started {data['started']}") + f" {data['target']}, {data['budget_s']:g} s of tuning per "
            f"tool on {data['cpus']} CPUs, answers trained for {data['train_steps']:,} env steps on {data['seeds']} "
            f"fresh seeds, {data['episodes']} deterministic episodes per policy ({state})."
            + (f" Our runs searched the space of `{data['ours_config']}`." if data.get("ours_config") else "")
            + (f" {data['note']}" if data.get("note") else ""))
    tuning = [[tool, _seconds(part.get("wall_s")), _trials_cell(part), _number(part.get("best_value")),
               _loads([part.get("load_average_after")]), part.get("failure", "")]
              for tool in data["tools"] if (part := parts.get(f"tune:{tool}")) is not None]
    rows = [[_answer_name(name), _number(row["mean"]), _number(row["spread"]), str(row["seeds"]),
             _interval(row["versus"].get("default")), _interval(row["versus"].get(_DEFAULT_STRATEGY_ANSWER))]
            for name, row in sorted(data.get("summary", {}).items(), key=lambda item: -item[1]["mean"])]
    own = [f"{key.split(':', 1)[1]} {part['mean_return']:.1f}" for key, part in parts.items()
           if key.startswith("own-policy:") and "mean_return" in part]
    tail = f"The policy our run trained itself (one policy each): {', '.join(own)}." if own else ""
    return "\n\n".join(filter(None, [head, _table(["tool", "wall", "trials", "its own best", "load after", "failure"],
                                                  tuning),
                                      _table(["answer", "mean return", "spread", "seeds", "− default",
                                              f"− {_answer_name(_DEFAULT_STRATEGY_ANSWER)}"],
                                             rows) if rows else "", tail]))


def _interval(paired: dict[str, Any] | None) -> str:
    return "—" if not paired else f"{paired['difference']:+.1f} [{paired['low']:+.1f}, {paired['high']:+.1f}]"


def _trials_cell(part: dict[str, Any]) -> str:
    """A tool's trials, and how many continued a paused one (our ASHA's promotions), e.g. `31 (+6 promotions)`."""
    promotions = part.get("promotions")
    return f"{part.get('trials', '—')}" + (f" (+{promotions} promotions)" if promotions else "")


def _peers_finished(result: _Result) -> bool:
    """A peers run that ended with its summary (the only kind quoted or gathered across runs)."""
    return "finished" in result.data and bool(result.data.get("summary"))


def _peers_shown(results: list[_Result]) -> _Result:
    """Of one target's runs, the one its figures are quoted from: the newest finished run of our default space (a run
    whose arms searched another space, `ours_config`, is an experiment), else the newest finished, else the newest."""
    finished = [result for result in results if _peers_finished(result)]
    return _newest([result for result in finished if not result.data.get("ours_config")] or finished or results)


def _peers_history_row(result: _Result) -> list[str]:
    summary = result.data.get("summary", {})
    best = max(summary, key=lambda name: summary[name]["mean"], default="—")
    return [f"`{result.name}`", result.date, result.data["target"], f"{result.data['budget_s']:g} s", best]


_PEERS_RUNS_METHOD = """\
One run of a tuner is one draw: its answer moves with the run's luck. Each row gathers the distinct runs of one
answer across every finished `bench/peers.py` file of our default space with the same target, budget, training
budget, seeds, episodes and cores (a file that copies another's parts for a tool counts that tool's run once): the mean
over runs of the answer's mean return on the fresh seeds, the lowest and highest run, and every run's figure with the
date of its file (our code changed between runs: a run measures the code of its date). A row "TOOL's own policy" is
the policy each of that tool's runs trained itself (one policy a run), on the same episodes."""


_OWN_POLICY = "'s own policy"  # the row of a tool's runs' own policies: `ours (ASHA)'s own policy`


def _peers_runs_section(loaded: list[_Result]) -> _Section | None:
    """Per comparable set of peers files, every answer's distinct runs (`_answer_runs`)."""
    used = [result for result in _of(loaded, "peers")
            if _peers_finished(result) and not result.data.get("ours_config")]
    groups: dict[tuple[Any, ...], list[_Result]] = {}
    for result in used:
        data = result.data
        key = (data["target"], data["budget_s"], data["train_steps"], data["seeds"], data["episodes"], data["cpus"])
        groups.setdefault(key, []).append(result)
    tables = []
    for (target_, budget_s, train_steps, *_), results in sorted(groups.items(), key=lambda item: str(item[0])):
        runs = _checked(results[-1], _answer_runs, results)
        rows = []
        for name, dated in sorted(runs.items(), key=lambda item: (item[0].endswith(_OWN_POLICY),  # answers first
                                                                  -statistics.fmean(mean for mean, _ in item[1]))):
            means = [mean for mean, _ in dated]
            rows.append([_answer_name(name), str(len(means)), _number(statistics.fmean(means)), _number(min(means)),
                         _number(max(means)), ", ".join(f"{mean:.0f} ({date})" for mean, date in dated)])
        tables.append(f"### {target_}\n\n{len(results)} files, {budget_s:g} s of tuning per tool, answers trained for "
                      f"{train_steps:,} env steps.\n\n"
                      + _table(["answer", "runs", "mean over runs", "lowest run", "highest run", "each run"], rows))
    if not tables:
        return None
    return _Section("Tuners across runs", "\n\n".join([_PEERS_RUNS_METHOD, *tables]),
                    tuple(result.name for result in used))


def _answer_runs(results: list[_Result]) -> dict[str, list[tuple[float, str]]]:
    """Each answer's mean return in each distinct run with the date of the first file holding it, oldest first, and
    each of our runs' own policy (`TOOL's own policy`). A tool's run is its `tune:` part (a copied part is the same
    run); an answer no tool tuned (the default, rl-zoo3's row) is its training parts."""
    runs: dict[str, dict[str, tuple[float, str]]] = {}
    for result in results:
        parts = result.data["parts"]
        figures = [(name, row["mean"], parts.get(f"tune:{name.removesuffix('-in-our-job')}"))
                   for name, row in result.data["summary"].items()]
        figures += [(_answer_name(key.split(':', 1)[1]) + _OWN_POLICY, part["mean_return"],
                     parts.get(f"tune:{key.split(':', 1)[1]}"))
                    for key, part in parts.items() if key.startswith("own-policy:") and "mean_return" in part]
        for name, mean, tune in figures:
            identity = json.dumps(tune if tune is not None else
                                  {key: part for key, part in parts.items() if key.startswith(f"train:{name}:")},
                                  sort_keys=True)
            runs.setdefault(name, {}).setdefault(identity, (mean, result.date))
    return {name: list(means.values()) for name, means in runs.items()}


def _kind_section(loaded: list[_Result], kind: str, title: str, method: str, tables: Any,
                  history: tuple[list[str], Any], per: str | None = None,
                  shown: Callable[[list[_Result]], _Result] = _newest) -> _Section | None:
    """A section of one result kind: its method, the tables of the file `shown` picks (default: the newest; with
    `per`, a field: of each value of it, under its own heading), then a row per file when there are more."""
    used = _of(loaded, kind)
    if not used:
        return None
    parts = [method]
    if per is None:
        chosen = shown(used)
        parts.append(_checked(chosen, tables, chosen))
    else:
        for value in sorted({str(result.data[per]) for result in used}):
            chosen = shown([result for result in used if str(result.data[per]) == value])
            parts.append(f"### {value}\n\n" + _checked(chosen, tables, chosen))
    header, row = history
    if len(used) > 1:
        parts.append("Every run:\n\n" + _table(header, [_checked(result, row, result) for result in used]))
    return _Section(title, "\n\n".join(parts), tuple(result.name for result in used))


# ---------------------------------------------------------------------------------------------- humanoid

_HUMANOID_METHOD = """\
`bench/humanoid.py` chooses humanoid/roboschool's `fast` preset by measurement and then measures it against
the `seed` preset (the original `train-humanoid.py`'s values) over an hour. Every run is a fresh job with
both cores, started as a user starts it and stopped by its training clock; its curve is the mean return over
the last 100 episodes at each iteration, timed from process start. First each candidate runs for the
choosing cap and the best mean return at its end wins; then the `seed` preset and the `fast` preset (which
`problems.py` sets to the winner between the stages) run for the full cap. The final policy's return is its
deterministic return on seeds no run trains on. One seed each: an hour a run is what this machine affords,
so each figure is a sample, not a distribution, and a close choice between candidates decides little."""
_CURVE_STEP_S = 300.0  # the curve table's rows: every 5 minutes


def _humanoid_tables(result: _Result) -> str:
    from humanoid import at  # the writer's own reading of a curve at a mark

    data = result.data
    state = "finished" if "finished" in data else "running or stopped: the runs done so far"
    parts = [_from(result, f"started {data['started']}") + f" {data['problem']}/{data['simulator']} on "
             f"{data['cpus']} CPUs, seed 0 ({state})." + (f" {data['note']}" if "note" in data else "")]
    winner = data.get("winner")
    parts.append(f"Choose: each candidate for {_seconds(data['choose_cap_s'])}; "
                 + (f"the winner is **`{winner}`**." if winner else "no winner yet.") + "\n\n" + _table(
                     ["candidate", "mean return at the cap", "env steps", "best", "final policy", "exit", "load"],
                     [_humanoid_row(name, run) for name, run in data["choose"].items()]))
    if data["curves"]:
        marks = sorted({int(mark) for run in data["curves"].values() for mark in run["at_marks"]})
        rows = [[f"`{name}`", *(_at(run["at_marks"].get(str(mark))) for mark in marks),
                 _number(run["best_mean_return"]), _number(run["final_return"]), str(run["exit_code"]),
                 _rate(_steps_per_s(run)), _loads([run["load_average"]])]
                for name, run in data["curves"].items()]
        same = {True: " The `fast` run's values are the winner's.",
                False: " **The `fast` run's values are not the winner's.**"}.get(data.get("fast_is_winner"), "")
        parts.append(f"Curves: each preset for {_seconds(data['cap_s'])}, the mean return at each mark (env steps)."
                     + same + "\n\n" + _table(["preset", *(f"at {mark / 60:.0f} min" for mark in marks), "best",
                                                 "final policy", "exit", "env steps/s end to end", "load"], rows))
        steps = [_CURVE_STEP_S * (k + 1) for k in range(int(data["cap_s"] // _CURVE_STEP_S))]
        parts.append("The curves:\n\n" + _table(
            ["minute", *(f"`{name}`" for name in data["curves"])],
            [[f"{seconds / 60:.0f}", *(_at(at(run["curve"], seconds)) for run in data["curves"].values())]
             for seconds in steps]))
    parts.append("The configs, as the file records where their values come from:\n\n" + "\n".join(
        f"- `{name}`: {config['source']}" for name, config in data["configs"].items()))
    return "\n\n".join(parts)


def _humanoid_row(name: str, run: dict[str, Any]) -> list[str]:
    last = run["curve"][-1] if run["curve"] else None
    return [f"`{name}`", _number(last and last[2]), _rate(last and last[1]), _number(run["best_mean_return"]),
            _number(run["final_return"]), str(run["exit_code"]), _loads([run["load_average"]])]


def _at(point: dict[str, Any] | None) -> str:
    return "—" if point is None else f"{point['mean_return']:,.1f} ({point['env_steps'] / 1e6:.2f}M)"


def _steps_per_s(run: dict[str, Any]) -> float | None:
    return run["curve"][-1][1] / run["curve"][-1][0] if run["curve"] else None


def _humanoid_history_row(result: _Result) -> list[str]:
    curves = result.data["curves"]
    return [f"`{result.name}`", result.date, str(result.data.get("winner", "—")),
            *(_number(curves[name]["best_mean_return"]) if name in curves else "—" for name in ("fast", "seed"))]


# (kind, title, method, the newest file's tables, (history header, history row)[, per, shown]) of the sections of that
# shape
_ONE_KIND_SECTIONS = (
    ("generic-default", "Generic default", _GENERIC_METHOD, _generic_tables,
     (["file", "date", "budget", "runs done", "choice", "load average"], _generic_history_row)),
    ("tuning-gain", "Tuning gain", _GAIN_METHOD, _gain_table,
     (["file", "date", "load average", "largest gain"], _gain_history_row)),
    ("pbt-vs-search", "PBT vs search", _PBT_METHOD, _pbt_table,
     (["file", "date", "load average", "return on fresh seeds, per repeat"], _pbt_history_row)),
    ("main-job", "The main job's 15 minutes", _MAIN_JOB_METHOD, _pbt_table,
     (["file", "date", "load average", "return on fresh seeds, per repeat"], _pbt_history_row)),
    ("peers", "Tuners side by side", _PEERS_METHOD, _peers_tables,
     (["file", "date", "target", "budget per tool", "best answer"], _peers_history_row), "target", _peers_shown),
    ("humanoid", "Humanoid", _HUMANOID_METHOD, _humanoid_tables,
     (["file", "date", "winner", "fast: best", "seed: best"], _humanoid_history_row)),
)


def _all_sections(loaded: list[_Result]) -> list[_Section]:
    return [section for section in (_throughput_section(loaded), _learner_section(loaded), *_reward_sections(loaded),
                                    _tuner_section(loaded),
                                    _trial_start_section(loaded),
                                    *(_kind_section(loaded, *kind) for kind in _ONE_KIND_SECTIONS),
                                    _peers_runs_section(loaded), _ray_section(loaded)) if section is not None]


# ----------------------------------------------------------------------------------------------- headline


def _throughput_headline(loaded: list[_Result]) -> str | None:
    used = [result for result in _of(loaded, "suite", "throughput") if "raw" in result.data]
    if not used:
        return None
    result = _newest(used)
    items = result.data["throughput"]
    first = items[0]
    sampling, end_to_end = _sampling_ratios(result, first)
    rllib = next((item for item in items if item.get("setting") == "rllib" and item["simulator"] ==
                  first["simulator"]), None)
    versus = (f"; {first['end_to_end_steps_per_s'] / rllib['end_to_end_steps_per_s']:.1f}× RLlib's default "
              "`PPOConfig` end to end" if rllib else "")
    return (f"Throughput of our job on {first['problem']}/{first['simulator']}, {first['label']}: "
            f"{_rate(first['sampling_steps_per_s'])} env steps/s sampling, {_ratio(sampling)} of the raw simulator's "
            f"rate × the {first['sampling_cores']} cores sampling, and {_rate(first['end_to_end_steps_per_s'])} end "
            f"to end ({_ratio(end_to_end)}){versus} (`{result.shown}`).")


def _reward_headline(loaded: list[_Result], problem: str) -> str | None:
    entries = [(result, entry) for result, entry in _reward_entries(loaded) if entry["problem"] == problem]
    if not entries:
        return None
    newest = _newest([result for result, _ in entries])
    entry = [e for r, e in entries if r is newest][-1]
    top, cap, runs, peer = entry["targets"][-1], entry["cap_s"], entry["runs"], _peer(entry)
    figures = []
    for label, seeds in runs.items():
        median = _median_seconds(seeds, top, cap)
        if label == peer or median is None:
            continue
        ratio = _versus_peer(seeds, runs[peer], top, cap) if peer else None
        figures.append(f"{label} {_seconds(median)}" + (f" ({_ratio(ratio)} of SB3's time)" if ratio else ""))
    if not figures:
        return None
    if peer:
        figures.insert(0, f"{peer} {_seconds(_median_seconds(runs[peer], top, cap))}")
    seeds = len(next(iter(runs.values())))
    return (f"Time to a mean return of {_target(top)} on {problem}/{entry['simulator']}, median of {seeds} "
            f"seeds: {'; '.join(figures)} (`{newest.shown}`).")


def _gain_headline(loaded: list[_Result]) -> str | None:
    used = _of(loaded, "tuning-gain")
    if not used:
        return None
    result = _newest(used)
    best = _best_study(result.data)
    if not best["gain"]:
        return (f"Tuning gain on reacher: no candidate study's answer beat the default on fresh seeds "
                f"(`{result.shown}`).")
    per_seed = ", ".join(f"{gain:+.1f}" for gain in best["gain_per_seed"])
    return (f"Tuning gain on reacher: a {best['wall_s'] / 60:.0f}-minute tuning run of the `{best['study']}` study "
            f"found a configuration {best['gain']:+.2f} mean return above the default on {len(best['seeds'])} fresh "
            f"seeds (per seed {per_seed}) (`{result.shown}`).")


def _main_job_headline(loaded: list[_Result]) -> str | None:
    used = _of(loaded, "main-job")
    if not used:
        return None
    result = _newest(used)
    arms: dict[str, list[dict[str, Any]]] = {}
    for run in result.data:
        if "evaluation_mean" in run:
            arms.setdefault(run["strategy"], []).append(run)
    if not arms:
        return None
    ranked = sorted(arms.items(), key=lambda item: -statistics.mean(run["evaluation_mean"] for run in item[1]))
    figures = ", ".join(name + " " + " and ".join(f"{run['evaluation_mean']:.2f} ± {run['evaluation_std']:.2f} in "
                                                    f"{run['wall_s']:.0f} s" for run in runs) for name, runs in ranked)
    repeats = len({run.get("repeat") for runs in arms.values() for run in runs})
    return (f"The main job's 15 minutes on reacher, the policy each kind of run ends with on fresh episode seeds "
            f"(± over episodes; {repeats} repeat{'s' if repeats > 1 else ''}): {figures} (`{result.shown}`).")


def _pbt_headline(loaded: list[_Result]) -> str | None:
    used = _of(loaded, "pbt-vs-search")
    if not used:
        return None
    result = _newest(used)
    per_repeat = [row for row in _pbt_by_repeat(result.data).values()
                  if "PBT" in row and set(row) - _POPULATION_STRATEGIES]
    if not per_repeat:
        return None
    pbt = " and ".join(f"{row['PBT']:.2f}" for row in per_repeat)
    pb2 = [f"{row['PB2']:.2f}" for row in per_repeat if "PB2" in row]
    best = " and ".join(f"{max(v for k, v in row.items() if k not in _POPULATION_STRATEGIES):.2f}"
                        for row in per_repeat)
    with_pb2 = f", PB2's {' and '.join(pb2)}" if pb2 else ""
    return (f"PBT against search on reacher at about equal wall time: the policy PBT ends with returns {pbt} on "
            f"fresh episode seeds ({len(per_repeat)} repeats){with_pb2}, the best search's {best} (`{result.shown}`).")


def _generic_headline(loaded: list[_Result]) -> str | None:
    """Only a finished, full run: a partial one changes with every run it adds."""
    from generic_default import RLLIB_BASELINE

    used = [result for result in _of(loaded, "generic-default")
            if not result.quick and "finished" in result.data and "choice" in result.data]
    if not used:
        return None
    result = _newest(used)
    data, plan = result.data, _generic_plan(result.data)
    chosen = data["choice"]
    figures = []
    for problem in data["report_problems"]:
        mine, theirs = _finals(plan.report_runs, problem, chosen), _finals(plan.report_runs, problem, RLLIB_BASELINE)
        if mine and theirs:
            figures.append(f"{problem} {statistics.fmean(mine):.1f} vs {statistics.fmean(theirs):.1f}")
    return (f"Generic default (`{chosen}`, chosen by measurement) against RLlib's default `PPOConfig`, mean final "
            f"return after {data['budget_s']:g} training seconds on {data['cpus']} CPUs: {'; '.join(figures)} "
            f"(`{result.shown}`).") if figures else None


def _peers_headline(loaded: list[_Result]) -> str | None:
    """Only finished runs, of each target the one `_peers_shown` picks: the answers' means on fresh seeds, best
    first."""
    finished = [result for result in _of(loaded, "peers") if _peers_finished(result)]
    shown = {target: _peers_shown([result for result in finished if result.data["target"] == target])
             for target in {result.data["target"] for result in finished}}
    if not shown:
        return None
    clauses = []
    for target, result in sorted(shown.items()):
        data = result.data
        ranked = sorted(data["summary"].items(), key=lambda item: -item[1]["mean"])
        figures = ", ".join(f"{_answer_name(name)} {row['mean']:.1f}" for name, row in ranked)
        space = f"; our runs searched `{data['ours_config']}`'s space" if data.get("ours_config") else ""
        clauses.append(f"on {target} ({_default_of(target)}; {data['budget_s']:g} s each on {data['cpus']} cores, "
                       f"answers trained again for {data['train_steps']:,} env steps on {data['seeds']} fresh "
                       f"seeds{space}): {figures} (`{result.shown}`)")
    return ("Tuners side by side, mean return of the final policies " + "; ".join(clauses) + ". One run of each tool "
            "is one draw: every run's figure is in Benchmarks, Tuners across runs.")


def _default_of(label: str) -> str:
    """Whether the untuned default of a target was chosen on it (a problem's own preset) or not (generic)."""
    from common import target

    from sagemaker_rl.job.keys import SIMULATOR_KEY
    from sagemaker_rl.job.problems import GENERIC, default_preset, get_preset

    chosen = target(label)
    preset = GENERIC if chosen.problem is None else get_preset(chosen.problem, chosen.env[SIMULATOR_KEY],
                                                                default_preset(chosen.problem))
    return "no default of ours chosen on it" if preset is GENERIC else "its default is its own `fast` preset"


def _humanoid_headline(loaded: list[_Result]) -> str | None:
    """Only a finished run: both presets at every mark."""
    used = [result for result in _of(loaded, "humanoid") if "finished" in result.data]
    if not used:
        return None
    result = _newest(used)
    figures = []
    for name, run in result.data["curves"].items():
        marks = [f"{point['mean_return']:,.0f} at {int(mark) / 60:.0f} min"
                 for mark, point in run["at_marks"].items() if point is not None]
        figures.append(f"`{name}` preset {' and '.join(marks)}")
    data = result.data
    return (f"Humanoid/{data['simulator']} on {data['cpus']} CPUs, one seed, mean return from process start: "
            f"{'; '.join(figures)} (`{result.shown}`).")


_HEADLINES: list[Callable[[list[_Result]], str | None]] = [
    _throughput_headline,
    lambda loaded: _reward_headline(loaded, "reacher"),
    lambda loaded: _peers_headline(loaded) or _gain_headline(loaded),  # tuners side by side, once measured
    lambda loaded: _main_job_headline(loaded) or _pbt_headline(loaded),  # the main job's arms, once measured
    lambda loaded: _reward_headline(loaded, "hopper"),
    _humanoid_headline,
    _generic_headline,
]


def main() -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--headline", action="store_true", help="the README's headline bullets instead of the page")
    parser.add_argument("--results", type=Path, default=RESULTS, help="directory of the JSON results")
    args = parser.parse_args()
    try:
        print(headline(args.results) if args.headline else benchmark_page(args.results), end="")
    except ResultFormatError as error:
        parser.exit(1, f"bench/pages.py: {error}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
