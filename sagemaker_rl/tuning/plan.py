"""Plan: a tuning run's phases and the work each asks for next — pure functions of the trial records.

A run is an ordered list of phases; the next work is the first phase's that has some. The search
(the budget's trials, sampled by the strategy) comes first, then the re-evaluation (the search's
best configurations and the default on fresh seeds); strategy PBT has one phase instead, its
population's generations. Every decision reads the study's trials (and whether this tuner still
runs a search trial) and nothing else, so a resumed run plans the same work and tests need no
processes. A new phase (a final training at the full budget, a completion criterion) is a `Phase`
here and an entry in `make_plan`; only a new kind of work also needs its starter (`tuner._Tuner._begin`).
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from sagemaker_rl.contract import JobPaths
from sagemaker_rl.job import final_evaluation, trained_stop
from sagemaker_rl.tuning import asha, pbt
from sagemaker_rl.tuning import direction as objective
from sagemaker_rl.tuning.budget import TrainBudget
from sagemaker_rl.tuning.completion import Criteria, completion_reason
from sagemaker_rl.tuning.config import (
    JOB_START_S,
    REEVALUATION_SEED_BASE,
    REEVALUATION_SHARE,
    TuningConfig,
    reevaluation_jobs,
    reevaluation_rounds,
)
from sagemaker_rl.tuning.ranking import Candidate, answer, candidates, fresh_seeds, reevaluations, segments
from sagemaker_rl.tuning.record import DEFAULT_CANDIDATE, Role, counted, read, trial_job_dirs
from sagemaker_rl.tuning.rundir import publish_model
from sagemaker_rl.tuning.strategies import Strategy


@dataclass(frozen=True)
class View:
    """What a plan decides from: the study's trials, its direction, and whether a search trial still runs here."""

    trials: Sequence[FrozenTrial]
    direction: StudyDirection
    searching: bool = False
    elapsed_s: float = 0.0  # since this tuner started the run


@dataclass(frozen=True)
class Sample:
    """Start a search trial sampled by the strategy (or a waiting rerun)."""


@dataclass(frozen=True)
class Promote:
    """Continue a paused ASHA trial from its checkpoint (asha.py)."""

    trial: FrozenTrial


@dataclass(frozen=True)
class StartSegment:
    """Start a PBT segment, from its parent's final checkpoint."""

    segment: pbt.Segment


@dataclass(frozen=True)
class Retrain:
    """Train configurations again, each as one trial of one job per seed (a re-evaluation)."""

    candidates: list[Candidate]
    seeds: list[int]


Work = Sample | Promote | StartSegment | Retrain


class Phase:
    """A step of a run; a subclass says what work it asks for, the rest is optional."""

    def next(self, view: View) -> Work | None:
        """The work to start now (None: none now, or the phase is done)."""
        raise NotImplementedError

    def describe(self) -> str:
        """Its part of the line the run starts with."""
        return ""

    def progress(self, view: View) -> str:
        """Its part of the progress line ('' for none)."""
        return ""

    def stopped(self) -> str | None:
        """Why it ended before its work was done, if it did."""
        return None

    def outputs(self, trials: Sequence[FrozenTrial], direction: StudyDirection, run_dir: Path) -> dict[str, Path]:
        """Files it writes in the run directory at the end of the run."""
        return {}


def search_has_room(trials: Sequence[FrozenTrial], budget: int) -> bool:
    """A rerun is waiting, or the budget has room for a new search trial."""
    return any(trial.state == TrialState.WAITING for trial in trials) or counted(trials) < budget


@dataclass(frozen=True)
class SearchEnd:
    """When the search starts no more trials: its budget is used, or a completion criterion is met."""

    budget: int
    criteria: Criteria = Criteria()
    max_runtime_s: float | None = None  # the run's wall-clock budget
    top: int = 0  # configurations the re-evaluation trains after the search besides the default (0: no re-evaluation)
    reevaluation_seeds: tuple[int, int] = (1, 1)  # the fewest and the most fresh seeds it trains each on
    parallel: int = 1  # jobs at a time
    seeds: int = 1  # jobs per search trial
    training: TrainBudget | None = None  # what the re-evaluation trains (None: as long as a trial's job)
    trials_at_training: bool = False  # a search trial not stopped early trains at `training` too (strategy ASHA)

    def has_room(self, view: View) -> bool:
        """A rerun is waiting, or the budget has room for a new search trial and no criterion is met."""
        if any(trial.state == TrialState.WAITING for trial in view.trials):
            return True
        return search_has_room(view.trials, self.budget) and self.completed(view) is None

    def completed(self, view: View) -> str | None:
        return completion_reason(view.trials, view.direction, self.criteria, budget=self.budget) or \
            self.out_of_time(view)

    def reevaluation_seed_count(self, view: View) -> int:
        """Fresh seeds per re-evaluated configuration: a started re-evaluation's; else, within the configured range,
        the most whose rounds of jobs fit in REEVALUATION_SHARE of the max runtime, timed by the search's trials."""
        finished = _timed_search_trials(view.trials)
        job_s = self._reevaluation_job_s(finished, self._trial_s(finished)) if finished else None
        return self._seed_count(view.trials, job_s)

    def _seed_count(self, trials: Sequence[FrozenTrial], job_s: float | None) -> int:
        fewest, most = self.reevaluation_seeds
        started = reevaluations(trials)
        if started:
            return len(next(iter(started.values())).seeds)
        if fewest == most or self.max_runtime_s is None or job_s is None:
            return most
        rounds = int(self.max_runtime_s * REEVALUATION_SHARE // job_s)
        return min(most, max(fewest, rounds * self.parallel // (self.top + 1)))

    def out_of_time(self, view: View, share: float = 1.0) -> str | None:
        """Another trial (and the re-evaluation after it) would not end within the run's max runtime (`share`: the
        part of a trial's training it does, for a promotion)."""
        finished = _timed_search_trials(view.trials)
        if self.max_runtime_s is None or not finished:
            return None
        trial_s = self._trial_s(finished)
        job_s = self._reevaluation_job_s(finished, trial_s)
        if self.trials_at_training:  # a trial that is not stopped early trains as long as a re-evaluation job
            trial_s = max(trial_s, job_s)
        rounds = reevaluation_rounds(self.top, self._seed_count(view.trials, job_s), self.parallel)
        if view.elapsed_s + share * trial_s + rounds * job_s <= self.max_runtime_s:
            return None
        after = " and the re-evaluation after it" if rounds else ""
        return f"the run's max runtime ({self.max_runtime_s:g} s) leaves no time for another trial{after}"

    @staticmethod
    def _trial_s(finished: Sequence[FrozenTrial]) -> float:
        """A new search trial's wall time: as long as the trials that were not stopped early (their median), or,
        while every one was stopped early, the longest so far (early-stopped ones would underestimate it)."""
        whole = [read(trial).duration_s or 0.0 for trial in finished if trial.state == TrialState.COMPLETE]
        return statistics.median(whole) if whole else max(read(trial).duration_s or 0.0 for trial in finished)

    def _reevaluation_job_s(self, finished: Sequence[FrozenTrial], trial_s: float) -> float:
        """A re-evaluation job's expected wall time, from the search trials' durations and env-step rates."""
        training = self.training
        # A trial of several seeds has several jobs, timed together: its curve does not time one job.
        measured = [cost for trial in finished if self.seeds == 1 and (cost := _job_cost(trial)) is not None]
        overhead_s = statistics.median(start for start, _ in measured) if measured else JOB_START_S
        if training is not None and training.seconds is not None:
            return training.seconds + overhead_s
        if training is not None and training.env_steps is not None:
            steps = training.env_steps
            if measured:  # each trial's own start-up and rate: a job's time is not proportional to its steps
                return statistics.median(start + steps / rate for start, rate in measured)
            rates = [trial.last_step * self.seeds / (read(trial).duration_s or 1.0)
                     for trial in finished if trial.last_step]
            if rates:
                return steps / statistics.median(rates) + JOB_START_S
        return trial_s / self.seeds  # a re-evaluation job is as long as a trial's


def _timed_search_trials(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    """The search's finished trials with a recorded wall time (a promotion's is only part of its training)."""
    return [trial for trial in trials if trial.state.is_finished() and read(trial).uses_budget
            and read(trial).duration_s]


def _job_cost(trial: FrozenTrial) -> tuple[float, float] | None:
    """A finished trial's job as (seconds besides training, env steps per second): the rate between its first and
    last report, the rest of its wall time start-up and exit; None without two reports."""
    curve = sorted((int(step), seconds) for step, seconds in (read(trial).curve_s or {}).items())
    duration = read(trial).duration_s
    if len(curve) < 2 or not duration:
        return None
    (first, first_s), (last, last_s) = curve[0], curve[-1]
    if last <= first or last_s <= first_s:
        return None
    rate = (last - first) / (last_s - first_s)
    return max(0.0, duration - last / rate), rate


@dataclass
class Search(Phase):
    """The budget's trials, sampled by the strategy, until a completion criterion is met."""

    label: str  # what is tuned: the problem or the env
    end: SearchEnd
    asha_min_resource: int | None = None  # strategy ASHA's first rung: paused trials are promoted before new ones
    _completed: str | None = None

    def next(self, view: View) -> Work | None:
        if self.asha_min_resource and (paused := self._promotion(view)) is not None:
            return Promote(paused)
        if self.end.has_room(view):
            return Sample()
        if search_has_room(view.trials, self.end.budget):  # the budget had room: a criterion ended the search
            self._completed = self._completed or self.end.completed(view)
        return None

    def _promotion(self, view: View) -> FrozenTrial | None:
        """ASHA's next paused trial to continue: while new trials may start, one in its rung's top third; after
        that (the budget is used, or the time left holds no new trial) also a rung's best, if its rest fits in
        the time, so that the search's best configurations train to the end. None once a criterion is met."""
        end, min_resource = self.end, self.asha_min_resource
        assert min_resource is not None
        if any(trial.state == TrialState.WAITING for trial in view.trials):
            return None  # a rerun takes the next trial the study gives
        sampling = end.has_room(view)
        if not sampling and completion_reason(view.trials, view.direction, end.criteria, budget=end.budget):
            return None
        paused = asha.promotion(view.trials, view.direction, min_resource, closing=not sampling)
        if paused is None or sampling:
            return paused
        trained = max(paused.intermediate_values, default=0)
        share = 1.0 - trained / end.training.env_steps if end.training and end.training.env_steps else 1.0
        return None if end.out_of_time(view, share) else paused

    def describe(self) -> str:
        return f"tuning {self.label}: {self.end.budget} trials"

    def stopped(self) -> str | None:
        return f"the search ended before its budget: {self._completed}" if self._completed else None


@dataclass
class Reevaluation(Phase):
    """The search's `top` best configurations and the default, trained again on the same fresh seeds."""

    top: int
    end: SearchEnd
    default: dict[str, object]
    training: TrainBudget | None = None  # trained at this budget (None: as the search's trials are)

    def _due(self, view: View) -> bool:
        return bool(self.top) and not self.end.has_room(view)

    def next(self, view: View) -> Work | None:
        """The default as soon as the search has started its last trial (it depends on no result; a slot the
        last search trials leave free trains it), the best trials when every search trial has ended."""
        if not self._due(view):
            return None
        started = reevaluations(view.trials)
        plan = candidates(view.trials, view.direction, top=self.top, default=self.default)
        if len(plan) == 1 and not view.searching:  # no search trial completed: nothing to compare the default with
            return None
        due = [candidate for candidate in plan
               if candidate.key not in started and (not view.searching or candidate.key == DEFAULT_CANDIDATE)]
        if not due:
            return None
        if self.training is not None:
            due = [dataclasses.replace(candidate, hyperparameters=self.training.apply(candidate.hyperparameters))
                   for candidate in due]
        seeds = self.end.reevaluation_seed_count(view)
        return Retrain(due, fresh_seeds(view.trials, seeds, base=REEVALUATION_SEED_BASE))

    def describe(self) -> str:
        if not self.top:
            return ""
        at = f" at {self.training.describe()}" if self.training else ""
        fewest, most = self.end.reevaluation_seeds
        which = f", then the best {self.top} and the default on"
        if fewest == most:
            return f"{which} {most} fresh seeds{at} ({reevaluation_jobs(self.top, most)} jobs)"
        return f"{which} {fewest} to {most} fresh seeds{at} (as many as fit in {REEVALUATION_SHARE} of the max runtime)"

    def progress(self, view: View) -> str:
        if not self._due(view):
            return ""
        done = sum(item.trial.state.is_finished() for item in reevaluations(view.trials).values())
        return f"; re-evaluated {done} of {self.top + 1} configurations"

    def outputs(self, trials: Sequence[FrozenTrial], direction: StudyDirection, run_dir: Path) -> dict[str, Path]:
        """The run's trained policy: of the jobs that trained with the stop of the answer's re-evaluation (every
        re-evaluation's, and the search trials' that ran in full), the one whose policy evaluated best at its end;
        without evaluations, the answer's re-evaluation job with the best objective."""
        found = next((item for item in reevaluations(trials).values() if item.complete
                      and item.trial.number == getattr(answer(trials, direction), "number", None)), None)
        if found is None:
            return {}
        scored = zip(trial_job_dirs(found.trial), found.values, strict=False)
        best_job = objective.best(scored, direction, lambda item: item[1])
        if best_job is None:
            return {}
        model = publish_model(_best_evaluated(trials, like=best_job[0]) or best_job[0], run_dir)
        return {"model": model} if model else {}


def _best_evaluated(trials: Sequence[FrozenTrial], *, like: Path) -> Path | None:
    """Of the complete trials' jobs that trained with the stop of the job in `like`, the one whose final
    deterministic evaluation is best (None: none evaluated). An evaluation is a return: higher is better."""
    stop = trained_stop(JobPaths(like).model)
    evaluated = [(job_dir, value) for trial in trials if trial.state == TrialState.COMPLETE
                 and read(trial).role is not Role.WARM_START for job_dir in trial_job_dirs(trial)
                 if trained_stop(model := JobPaths(job_dir).model) == stop
                 and (value := final_evaluation(model)) is not None]
    return max(evaluated, key=lambda item: item[1])[0] if evaluated else None


@dataclass
class Generations(Phase):
    """Strategy PBT: the population's segments, generation by generation."""

    population: pbt.Population
    text: str
    generations: int

    def next(self, view: View) -> Work | None:
        segment = self.population.next_segment(view.trials)
        return StartSegment(segment) if segment is not None else None

    def describe(self) -> str:
        return self.text

    def progress(self, view: View) -> str:
        planned = [read(trial).generation or 0 for trial in segments(view.trials).values()]
        return f"; generation {max(planned, default=0) + 1} of {self.generations}"

    def stopped(self) -> str | None:
        return f"population-based training stopped: {self.population.stopped}" if self.population.stopped else None

    def outputs(self, trials: Sequence[FrozenTrial], direction: StudyDirection, run_dir: Path) -> dict[str, Path]:
        """The best final member's model and hyperparameter schedule."""
        return pbt.write_outputs(trials, direction, run_dir)


@dataclass
class Plan:
    """A run's phases, in order."""

    phases: list[Phase] = field(default_factory=list)

    def next(self, view: View) -> Work | None:
        """The first phase's work that has some now."""
        for phase in self.phases:
            work = phase.next(view)
            if work is not None:
                return work
        return None

    def describe(self) -> str:
        return "".join(phase.describe() for phase in self.phases)

    def progress(self, view: View) -> str:
        return "".join(phase.progress(view) for phase in self.phases)

    def stopped(self) -> str | None:
        """Why the plan ended before its work was done (every PBT member failed a generation), if it did."""
        return next((reason for phase in self.phases if (reason := phase.stopped())), None)

    def outputs(self, trials: Sequence[FrozenTrial], direction: StudyDirection, run_dir: Path) -> dict[str, Path]:
        """Files the phases write at the end of the run (PBT: the best final member's model and schedule)."""
        files: dict[str, Path] = {}
        for phase in self.phases:
            files.update(phase.outputs(trials, direction, run_dir))
        return files


def make_plan(config: TuningConfig, direction: StudyDirection) -> Plan:
    """The phases of a run of `config`."""
    if config.strategy.population_based:
        population = pbt.Population(config.space, population=config.population_size,
                                    generations=config.generations, direction=direction,
                                    seed=config.sampler_seed or 0, bandit=config.strategy is Strategy.PB2)
        kind = "population-based bandits (PB2)" if config.strategy is Strategy.PB2 else "population-based training"
        text = (f"{kind} of {config.label}: {config.population_size} members, "
                f"{config.generations} generations of {config.generation_env_steps:,} env steps "
                f"({config.budget} jobs)")
        return Plan([Generations(population, text, config.generations)])
    asha_at_training = config.strategy is Strategy.ASHA and config.training is not None
    end = SearchEnd(config.budget, config.completion, config.max_runtime_s, config.reevaluate_top,
                    config.reevaluation_seeds, config.max_parallel_jobs, config.seeds, config.training,
                    trials_at_training=asha_at_training)
    return Plan([
        Search(config.label, end, config.hyperband_min_env_steps if config.strategy is Strategy.ASHA else None),
        Reevaluation(config.reevaluate_top, end, dict(config.space.static), config.training),
    ])
