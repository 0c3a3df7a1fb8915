"""Progress: what each iteration reported, in our names, over the last 100 episodes, on the console and in logs.

RLlib's result becomes a Progress; the reward lines (metrics.py) and one progress line an iteration
go to the console, and every iteration is a row of output/intermediate/progress.csv and a point of
its TensorBoard files.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sagemaker_rl import metrics
from sagemaker_rl.contract import PROGRESS_CSV
from sagemaker_rl.errors import shorten
from sagemaker_rl.job.checkpoints import JobState
from sagemaker_rl.job.keys import ppo_key
from sagemaker_rl.job.learner import MODULE_ID

# The reward lines' mean, max and min are over the last 100 finished episodes (as the old API stack
# and Stable-Baselines3 report), whichever iterations they finished in; RLlib 2.60 reports each
# iteration's own episodes only, and nothing when none finished.
EPISODES_PER_MEAN = 100
# Learner statistics kept in progress.csv and TensorBoard (RLlib 2.60 result keys).
LEARNER_STATS = ("policy_loss", "vf_loss", "mean_kl_loss", "entropy", "curr_kl_coeff",
                 "default_optimizer_learning_rate")
LOSSES = ("total_loss", "policy_loss", "vf_loss")  # a non-finite one means the run diverged


@dataclass
class Progress:
    """What one iteration reported, in our names."""

    training_iteration: int
    timesteps_total: int
    time_total_s: float
    episode_reward_mean: float | None
    episode_reward_max: float | None
    episode_reward_min: float | None
    steps_this_iter: int
    time_this_iter_s: float
    episodes_this_iter: int
    learner: dict[str, float]
    evaluation_reward_mean: float | None = None  # this iteration's deterministic evaluation, when it made one


def read_progress(result: dict[str, Any], time_offset: float) -> Progress:
    """One iteration's RLlib result as a Progress (`time_offset`: the seconds trained before a restore)."""
    runners = result.get("env_runners", {})
    learner = result.get("learners", {}).get(MODULE_ID, {})

    def finite(value: Any) -> float | None:
        return float(value) if isinstance(value, int | float) and math.isfinite(value) else None

    return Progress(
        training_iteration=int(result["training_iteration"]),
        timesteps_total=int(runners.get("num_env_steps_sampled_lifetime")
                            or result.get("num_env_steps_sampled_lifetime") or 0),
        time_total_s=time_offset + float(result["time_total_s"]),
        episode_reward_mean=finite(runners.get("episode_return_mean")),
        episode_reward_max=finite(runners.get("episode_return_max")),
        episode_reward_min=finite(runners.get("episode_return_min")),
        steps_this_iter=int(runners.get("num_env_steps_sampled", 0)),
        time_this_iter_s=float(result.get("time_this_iter_s", 0.0)),
        episodes_this_iter=int(runners.get("num_episodes", 0)),
        learner={name: float(learner[name]) for name in LEARNER_STATS if finite(learner.get(name)) is not None},
    )


def over_recent_episodes(progress: Progress, state: JobState) -> Progress:
    """`progress` with mean, max and min over the last EPISODES_PER_MEAN episodes (kept in `state`)."""
    mean = progress.episode_reward_mean
    if mean is not None and progress.episodes_this_iter > 0:
        window = state.recent_episodes
        high, low = progress.episode_reward_max, progress.episode_reward_min
        window.append([mean, progress.episodes_this_iter, mean if high is None else high, mean if low is None else low])
        while sum(entry[1] for entry in window[1:]) >= EPISODES_PER_MEAN:
            window.pop(0)
    if not state.recent_episodes:
        return progress
    weighted_sum, weight_left = 0.0, float(EPISODES_PER_MEAN)
    for entry_mean, count, _, _ in reversed(state.recent_episodes):  # the oldest counts only in part
        weight = min(count, weight_left)
        weighted_sum += entry_mean * weight
        weight_left -= weight
    progress.episode_reward_mean = weighted_sum / (EPISODES_PER_MEAN - weight_left)
    progress.episode_reward_max = max(entry[2] for entry in state.recent_episodes)
    progress.episode_reward_min = min(entry[3] for entry in state.recent_episodes)
    return progress


def divergence(result: dict[str, Any]) -> str:
    """What became NaN or infinity in an iteration's result ('' if nothing did).

    A missing mean is no episode finished yet, and so is a NaN mean in an iteration that finished no
    episode (RLlib 2.60 reports one after earlier iterations did): only a mean over finished episodes
    that is not finite is a diverged return.
    """
    runners = result.get("env_runners", {})
    mean = runners.get("episode_return_mean")
    if runners.get("num_episodes", 0) and isinstance(mean, int | float) and not math.isfinite(mean):
        return f"{metrics.EPISODE_REWARD_MEAN} is {mean}"
    learner = result.get("learners", {}).get(MODULE_ID, {})
    for name in LOSSES:
        value = learner.get(name)
        if isinstance(value, int | float) and not math.isfinite(value):
            return f"the learner's {name} is {value}"
    return ""


def divergence_hint(diverged: str, ppo: dict[str, Any]) -> str:
    """What would help, given what diverged and the job's own PPO settings."""
    if diverged.startswith(metrics.EPISODE_REWARD_MEAN):  # returns are the env's rewards summed: no update made them
        return "check the env's rewards: an episode returned NaN or infinity"
    clip = ppo.get("grad_clip")
    clip_hint = f"set {ppo_key('grad_clip')} (e.g. 0.5)" if clip is None else \
        f"lower {ppo_key('grad_clip')} (now {clip:g})"
    return f"lower {ppo_key('lr')} (now {shorten(ppo.get('lr'))}) or {clip_hint}"


def report(problem: str, progress: Progress, *, best_reward: float | None) -> None:
    """Print the reward lines and the progress line of one iteration."""
    for line in metrics.format_lines(vars(progress)):
        print(line)
    reward = "n/a (no episode finished)" if progress.episode_reward_mean is None \
        else f"{progress.episode_reward_mean:.2f}"
    best = "" if best_reward is None else f" (best {best_reward:.2f})"
    rate = progress.steps_this_iter / max(progress.time_this_iter_s, 1e-9)
    print(f"[{problem}] iter {progress.training_iteration} | {progress.timesteps_total:,} steps | "
          f"{rate:,.0f} steps/s | reward {reward}{best} | {progress.time_total_s:.0f} s", flush=True)


class ProgressLog:
    """progress.csv and TensorBoard event files in output/intermediate (appended across restarts)."""

    COLUMNS = ("training_iteration", "timesteps_total", "time_total_s", "episode_reward_mean",
               "episode_reward_max", "episode_reward_min", "evaluation_reward_mean", "steps_this_iter",
               "time_this_iter_s", "episodes_this_iter", *LEARNER_STATS)

    def __init__(self, directory: Path, *, after_iteration: int = 0) -> None:
        self._csv_path = directory / PROGRESS_CSV
        self._tensorboard_dir = directory / "tensorboard"
        self._after = after_iteration  # the checkpoint's iteration: later rows were lost with a kill and rerun

    def __enter__(self) -> ProgressLog:
        from tensorboardX import SummaryWriter

        self._drop_rows_after(self._after)
        new = not self._csv_path.exists()
        self._csv_file = self._csv_path.open("a", newline="")
        self._csv = csv.DictWriter(self._csv_file, fieldnames=self.COLUMNS)
        if new:
            self._csv.writeheader()
        self._tensorboard = SummaryWriter(str(self._tensorboard_dir))
        return self

    def _drop_rows_after(self, iteration: int) -> None:
        """Keep each iteration once: the rows past the resumed checkpoint are written again by the rerun (and a file
        an earlier version wrote with other columns is rewritten with these)."""
        if not self._csv_path.exists():
            return
        with self._csv_path.open(newline="") as handle:
            reader = csv.DictReader(handle)
            rows = list(reader)
        kept = [row for row in rows if row.get("training_iteration", "").isdigit()
                and int(row["training_iteration"]) <= iteration]
        if len(kept) == len(rows) and tuple(reader.fieldnames or ()) == self.COLUMNS:
            return
        partial = self._csv_path.with_name(f".partial-{self._csv_path.name}")
        with partial.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=self.COLUMNS, restval="", extrasaction="ignore")
            writer.writeheader()
            writer.writerows(kept)
        partial.replace(self._csv_path)

    def write(self, progress: Progress) -> None:
        row = {name: value for name, value in vars(progress).items() if name != "learner"}
        row.update(progress.learner)
        self._csv.writerow({name: ("" if row.get(name) is None else row[name]) for name in self.COLUMNS})
        self._csv_file.flush()
        step = progress.timesteps_total
        for name, value in row.items():
            if isinstance(value, int | float) and name != "timesteps_total":
                group = "learner" if name in LEARNER_STATS else "ray/tune"
                self._tensorboard.add_scalar(f"{group}/{name}", value, step)
        self._tensorboard.flush()

    def __exit__(self, *exc: object) -> None:
        self._csv_file.close()
        self._tensorboard.close()
