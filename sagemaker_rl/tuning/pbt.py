"""Population-based training (Jaderberg et al. 2017) over the job contract, in synchronous generations.

A population of members trains in generations of `perturbation_interval` env steps. A member's
segment is one job (one trial of the study) that resumes from a checkpoint and trains until the
generation's boundary: its hyperparameters are the segment's, its counters (iteration, env steps,
training time) continue the checkpoint's. When every member's segment of a generation has ended,
the members are ranked by the segment's objective: each member of the bottom quantile (and every
member whose segment failed) takes the final checkpoint of a member of the top quantile (exploit:
weights, optimizer state, observation filter statistics, the job's counters) and perturbs the
donor's hyperparameters within the space (explore); the others continue from their own checkpoint
with their own values. Generations are synchronous so that a donor's checkpoint is always at the
boundary its taker continues from, and so that the plan follows from the study's record alone: a
resumed run plans the same segments, runs again only the segments that were running, and no member
loses more than one interval. The run ends with the best final member's trained model and its
hyperparameter schedule (`schedule.json`: which values from which env step, and whose weights).

Only settings a restored job uses live can be perturbed (`hyperparameters.LIVE_AFTER_RESTORE`,
verified in tests/job/test_restore.py); config.py refuses the others with the reason, and holds
PBT's defaults (interval, generations, population).
"""

from __future__ import annotations

import json
import math
import random
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from sagemaker_rl.files import write_atomically
from sagemaker_rl.job import SEED_KEY, STOP_PREFIX
from sagemaker_rl.tuning import bandit
from sagemaker_rl.tuning import direction as objective
from sagemaker_rl.tuning.ranking import final_member, segments
from sagemaker_rl.tuning.record import TrialRecord, read, tuned
from sagemaker_rl.tuning.rundir import SCHEDULE_FILE, publish_model
from sagemaker_rl.tuning.space import (
    CategoricalParameter,
    ContinuousParameter,
    IntegerParameter,
    Parameter,
    Scaling,
    SearchSpace,
    TuningError,
    from_unit,
)

# Ray Tune's PBT defaults, which the paper's experiments used too.
QUANTILE_FRACTION = 0.25  # the bottom quarter takes the top quarter's checkpoints
RESAMPLE_PROBABILITY = 0.25  # a numeric value is drawn anew from its range instead of perturbed
PERTURBATION_FACTORS = (0.8, 1.2)
STOP_KEY = STOP_PREFIX + "timesteps_total"  # a segment ends at its generation's boundary


@dataclass(frozen=True)
class Segment:
    """One member's job in one generation."""

    member: int
    generation: int
    tuned: dict[str, Any]  # real values of the tuned hyperparameters
    parent: int | None  # the trial whose final checkpoint it starts from (None: a fresh policy)
    exploited: int | None = None  # the member whose checkpoint it took at this boundary (None: its own)

    @property
    def record(self) -> TrialRecord:
        """What its trial records of it."""
        return TrialRecord(member=self.member, generation=self.generation, parent=self.parent,
                           exploited=self.exploited)


def segment_hyperparameters(space: SearchSpace, segment: Segment, *, interval: int) -> dict[str, Any]:
    """What a segment's job gets besides the space's values: the member's seed, the generation's boundary."""
    seed = int(space.static.get(SEED_KEY, 0)) + segment.member
    return {SEED_KEY: seed, STOP_KEY: (segment.generation + 1) * interval}


class Population:
    """Plans the segments of a PBT run from its trials: the next one to start, and when the run is done."""

    def __init__(
        self, space: SearchSpace, *, population: int, generations: int, direction: StudyDirection, seed: int,
        bandit: bool = False,
    ) -> None:
        self._space = space
        self._bandit = bandit  # PB2: the explorers' values chosen by bandit.py, not perturbed
        self._population = population
        self._generations = generations
        self._direction = direction
        self._seed = seed
        self.stopped: str | None = None  # why the population cannot go on (every member failed a generation)

    def next_segment(self, trials: Sequence[FrozenTrial]) -> Segment | None:
        """The next segment to start; None while the generation's segments still run, or when done."""
        planned = segments(trials)
        generation = max((key[1] for key in planned), default=0)
        current = [planned.get((member, generation)) for member in range(self._population)]
        missing = [member for member, trial in enumerate(current) if trial is None]
        if missing:
            plan = self._plan(generation, planned)
            return plan[missing[0]] if plan else None
        if any(not trial.state.is_finished() for trial in current if trial is not None):
            return None
        if generation + 1 >= self._generations or self.stopped:
            return None
        plan = self._plan(generation + 1, planned)
        return plan[0] if plan else None

    def _plan(self, generation: int, planned: Mapping[tuple[int, int], FrozenTrial]) -> list[Segment]:
        """Every member's segment of `generation`, decided from the one before (the same on every call)."""
        rng = random.Random(self._seed * 1_000_003 + generation)
        if generation == 0:
            return [Segment(member, 0, sample(self._space, rng), None) for member in range(self._population)]
        previous = [planned[(member, generation - 1)] for member in range(self._population)]
        complete = [trial for trial in previous if trial.state == TrialState.COMPLETE and _finite(trial.value)]
        continuing = {trial.number for trial in complete}
        if not complete:
            self.stopped = f"every member's job failed in generation {generation - 1}"
            return []
        ranked = objective.ranked(complete, self._direction, lambda trial: trial.value)  # type: ignore[arg-type, return-value]
        size = min(max(1, math.ceil(self._population * QUANTILE_FRACTION)), self._population // 2)
        top = ranked[:size]
        continuing -= {trial.number for trial in ranked[max(size, len(ranked) - size):]}  # the bottom, never the top
        donors = {member: rng.choice(top) for member, trial in enumerate(previous) if trial.number not in continuing}
        explored = self._explore(generation, planned, donors, rng)
        plan = []
        for member, trial in enumerate(previous):
            if member in donors:
                donor = donors[member]
                plan.append(Segment(member, generation, explored[member], donor.number,
                                    exploited=read(donor).member))
            else:
                plan.append(Segment(member, generation, tuned(trial), trial.number))
        return plan

    def _explore(self, generation: int, planned: Mapping[tuple[int, int], FrozenTrial],
                 donors: Mapping[int, FrozenTrial], rng: random.Random) -> dict[int, dict[str, Any]]:
        """Each exploring member's values, from its donor's: PB2's bandit where it has data, else perturbed."""
        if self._bandit:
            starts = [(generation, float(donor.value)) for donor in donors.values()]  # type: ignore[arg-type]
            chosen = bandit.choose(self._space, self._history(planned, generation), starts, rng)
            if chosen is not None:
                return dict(zip(donors, chosen, strict=True))
        return {member: explore(self._space, tuned(donor), rng) for member, donor in donors.items()}

    def _history(self, planned: Mapping[tuple[int, int], FrozenTrial], generation: int) -> list[bandit.Observation]:
        """The complete segments before `generation`: each one's gain over the objective it started from (its
        parent's; a first segment's first report)."""
        sign = objective.sign(self._direction)
        by_number = {trial.number: trial for trial in planned.values()}
        found = []
        for (_, ran), trial in sorted(planned.items(), key=lambda item: item[0][::-1]):  # by generation
            if ran >= generation or trial.state != TrialState.COMPLETE or not _finite(trial.value):
                continue
            parent = read(trial).parent
            start: float | None
            if parent is None:
                first = min(trial.intermediate_values, default=None)
                start = None if first is None else trial.intermediate_values[first]
            else:
                start = by_number[parent].value if parent in by_number else None
            if start is not None and trial.value is not None and _finite(start):
                found.append(bandit.Observation(ran, start, tuned(trial), sign * (trial.value - start)))
        return found


def explore(space: SearchSpace, values: Mapping[str, Any], rng: random.Random) -> dict[str, Any]:
    """Perturbed values: each numeric one drawn anew with RESAMPLE_PROBABILITY, else perturbed by a factor
    (`perturb`); a Categorical one drawn anew from its values."""
    explored = {}
    for parameter in space.parameters:
        value = values.get(parameter.name)
        if value is None or isinstance(parameter, CategoricalParameter) or rng.random() < RESAMPLE_PROBABILITY:
            explored[parameter.name] = sample_value(parameter, rng)
        else:
            explored[parameter.name] = perturb(parameter, value, rng.choice(PERTURBATION_FACTORS))
    return explored


def perturb(parameter: ContinuousParameter | IntegerParameter, value: float, factor: float) -> Any:
    """`value` times `factor` on the parameter's scale, kept in its range.

    Logarithmic and Linear multiply the value (Ray's rule); ReverseLogarithmic multiplies 1 - value
    (gamma 0.99 becomes 0.988 or 0.992); a Linear range that reaches below 0 moves by the factor's
    share of its width instead (a product would not move a value at 0 and would reverse a negative
    one). An Integer moves by at least 1.
    """
    low, high = parameter.min_value, parameter.max_value
    if parameter.scale is Scaling.REVERSE_LOGARITHMIC:
        moved = 1 - (1 - value) * factor
    elif parameter.scale is Scaling.LINEAR and low < 0:
        moved = value + (factor - 1) * (high - low)
    else:
        moved = value * factor
    if isinstance(parameter, IntegerParameter):
        step = round(moved) - value
        moved = value + (step if step else (1 if factor > 1 else -1))
        return int(min(high, max(low, moved)))
    return float(min(high, max(low, moved)))


def sample(space: SearchSpace, rng: random.Random) -> dict[str, Any]:
    """Values drawn from every range of `space` on its scale (a new member's)."""
    return {parameter.name: sample_value(parameter, rng) for parameter in space.parameters}


def sample_value(parameter: Parameter, rng: random.Random) -> Any:
    """A value drawn uniformly on the parameter's scale."""
    if isinstance(parameter, CategoricalParameter):
        return rng.choice(parameter.values)
    return from_unit(parameter, rng.random())


def start_from(parent_dir: Path, job_dir: Path) -> None:
    """Put the parent job's final checkpoint into a segment's checkpoints (its job resumes from it)."""
    from sagemaker_rl.contract import JobPaths
    from sagemaker_rl.job import latest_checkpoint

    _, checkpoint = latest_checkpoint(JobPaths(parent_dir).checkpoints)
    if checkpoint is None:
        raise TuningError(f"the parent job in {parent_dir} left no complete checkpoint to continue from")
    target = JobPaths(job_dir).checkpoints
    shutil.rmtree(target, ignore_errors=True)  # a segment run again starts from its parent, not its own progress
    target.mkdir(parents=True)
    shutil.copytree(checkpoint, target / checkpoint.name)


def lineage(trials: Sequence[FrozenTrial], last: FrozenTrial) -> list[FrozenTrial]:
    """The segments whose training the policy of `last` holds, first to last (across exploits)."""
    by_number = {trial.number: trial for trial in trials}
    chain = [last]
    while (parent := read(chain[-1]).parent) is not None:
        chain.append(by_number[parent])
    return chain[::-1]


def schedule(trials: Sequence[FrozenTrial], last: FrozenTrial) -> list[dict[str, Any]]:
    """The hyperparameter schedule of the policy of `last`: the values of each stretch of env steps."""
    entries, start = [], 0
    for trial in lineage(trials, last):
        record = read(trial)
        steps = sorted(trial.intermediate_values)
        end = steps[-1] if steps else start
        entry: dict[str, Any] = {
            "from_env_step": start, "to_env_step": end, "member": record.member,
            "generation": record.generation, "trial": trial.number, "objective": trial.value,
            "hyperparameters": tuned(trial),
        }
        if record.exploited is not None:
            entry["weights_from"] = {"member": record.exploited, "trial": record.parent}
        entries.append(entry)
        start = end
    return entries


def write_outputs(trials: Sequence[FrozenTrial], direction: StudyDirection, run_dir: Path) -> dict[str, Path]:
    """The best final member's model/ (ONNX included) and schedule.json in the run directory."""
    last = final_member(trials, direction)
    if last is None:
        return {}
    files = {}
    model = publish_model(read(last).files_dir, run_dir)
    if model is not None:
        files["model"] = model
    path = run_dir / SCHEDULE_FILE
    document = {"member": read(last).member, "trial": last.number, "objective": last.value,
                "schedule": schedule(trials, last)}
    write_atomically(path, json.dumps(document, indent=2, default=str) + "\n")
    files["schedule"] = path
    return files


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)
