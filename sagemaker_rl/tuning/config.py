"""Tuning config: the budget, strategy, objective and space of a tuning run, from flags or a file.

A tuning file (YAML or JSON) holds the same keys as `TuningConfig` plus `parameters` and `static`
for the search space (SageMaker's `ParameterRanges` / `StaticHyperParameters` are read as well).
Order: defaults -> file -> flags. The run directory's `tuning.json` is such a file: `record_run`
writes it (the config as given, where the run keeps its study, how to reproduce it) and
`load_run_config` reads it back for `--resume` and warm starts. The tuner's defaults live here too.
"""

from __future__ import annotations

import dataclasses
import math
import os
import shlex
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, ClassVar, Literal

import optuna

from sagemaker_rl import metrics
from sagemaker_rl.contract import decode_value
from sagemaker_rl.errors import check_count, did_you_mean, shorten
from sagemaker_rl.job import (
    ENV_ID_KEY,
    EVALUATION_EPISODES_KEY,
    EVALUATION_INTERVAL_KEY,
    INITIAL_LOG_STD_KEY,
    SEED_KEY,
    STOP_GRACE_KEY,
    STOP_PREFIX,
    get_problem,
    not_live_reason,
    ppo_key,
    target_label,
)
from sagemaker_rl.tuning import asha
from sagemaker_rl.tuning.budget import TrainBudget, parse_train_budget
from sagemaker_rl.tuning.completion import Criteria
from sagemaker_rl.tuning.direction import of_objective_type
from sagemaker_rl.tuning.record import IDENTICAL, WARM_START_TYPES
from sagemaker_rl.tuning.rundir import (
    CONFIG_FILE,
    default_storage,
    is_run_dir,
    read_config_file,
    write_config_file,
)
from sagemaker_rl.tuning.space import (
    ContinuousParameter,
    Scaling,
    SearchSpace,
    TuningError,
    finite_number,
    from_parameter_ranges,
    load_file,
    parse_space,
)
from sagemaker_rl.tuning.strategies import (
    EarlyStopping,
    Strategy,
    check_strategy,
    parse_early_stopping,
    parse_strategy,
)

# The default study, chosen by measurement (bench/tuning_gain.py, docs/benchmarks.md, "Tuning gain"): of four
# candidate studies in the same 15-minute budget on 2 cores, this one's answer beat the default
# configuration on fresh seeds by the most. 20 trials of 60 training seconds, 2 at a time, are 10
# rounds of ~71 s (start-up, up to one more iteration, the export); the re-evaluation (the best trial
# and the default on 3 fresh seeds: 6 jobs) 3 more: ~16 min.
DEFAULT_MAX_JOBS = 20
# Strategy ASHA stops most trials at its first rung (a ninth of the full length): its budget of trials is larger,
# about 26 full trials' worth of env steps, so a run's max runtime rather than the count usually ends it.
DEFAULT_ASHA_MAX_JOBS = 100
DEFAULT_MAX_PARALLEL_JOBS = 2
DEFAULT_TIME_PER_TRIAL_S = 60
DEFAULT_REEVALUATE_TOP = 1
DEFAULT_REEVALUATE_SEEDS = 3
# A run with a max runtime and no reevaluate_seeds re-evaluates on as many seeds (1 to 3) as fit in this share of it:
# at three seeds a short run spent most of its time re-evaluating and left its search few trials, and its answer
# trailed the peers' (docs/benchmarks.md, "Tuners side by side, half_cheetah").
REEVALUATION_SHARE = Fraction(1, 3)
MAX_WARM_START_PARENTS = 5  # SageMaker's limit
MAX_SEEDS = 100  # seeds a trial or a re-evaluated configuration trains on, and configurations re-evaluated
OBJECTIVE_METRICS = (metrics.EPISODE_REWARD_MEAN, metrics.EPISODE_REWARD_MAX, metrics.EPISODE_REWARD_MIN,
                     metrics.EVALUATION_REWARD_MEAN)
OBJECTIVE_TYPES = ("Maximize", "Minimize")
DEFAULT_HYPERBAND_MIN_ENV_STEPS = 25_000  # about 3 iterations of the fast preset's 8,192-step batch
# A job's wall time beyond its training (imports, Ray, build, export): an upper end of what `make tune` trials
# measured (docs/benchmarks.md); the run's budget reserves it for each round of re-evaluation jobs.
JOB_START_S = 20
REEVALUATION_SEED_BASE = 10_000  # re-evaluations use the first seeds from here that no trial used
# Strategy PBT's (and PB2's) defaults.
DEFAULT_PERTURBATION_INTERVAL = 50_000  # env steps: ~6 iterations of the fast preset, ~30 s on one core
DEFAULT_GENERATIONS = 10  # the default budget: population x generations segments
MIN_POPULATION = 4  # fewer members leave nobody to exploit but one


# The ranges both default spaces search, around the fast preset's values.
_LR = ContinuousParameter(ppo_key("lr"), 5e-4, 5e-3, Scaling.LOGARITHMIC)
_GAMMA = ContinuousParameter(ppo_key("gamma"), 0.98, 0.999, Scaling.REVERSE_LOGARITHMIC)


def default_pbt_space() -> SearchSpace:
    """The default space of strategy PBT: settings a restored job uses live, around the fast preset's
    values (the default space's initial_log_std only sets a new policy's, so it is not here)."""
    return SearchSpace(
        (
            _LR,
            _GAMMA,
            ContinuousParameter(ppo_key("lambda_"), 0.9, 0.999, Scaling.REVERSE_LOGARITHMIC),
            ContinuousParameter(ppo_key("clip_param"), 0.1, 0.4),
        )
    )


def default_space() -> SearchSpace:
    """The default study's space: the three knobs that mattered most when the fast preset was found
    (initial log std, lr, gamma), around the preset's values (bench/studies/focused-60s.yaml), on every target:
    wider ranges for a job without a tuned preset measured worse (bench/studies/wide-space.yaml,
    docs/benchmarks.md). The seed's space is spaces/seed.yaml."""
    return SearchSpace(
        (
            _LR,
            ContinuousParameter(INITIAL_LOG_STD_KEY, -1.5, 0.5),
            _GAMMA,
        ),
        {STOP_PREFIX + "time_total_s": DEFAULT_TIME_PER_TRIAL_S},
    )


@dataclass(frozen=True)
class TuningConfig:
    """Everything a tuning run needs; validated when built."""

    problem: str | None = "reacher"  # key of problems.PROBLEMS (None: the env the static rl.env.* keys name)
    space: SearchSpace = field(default_factory=default_space)  # ranges and static hyperparameters
    max_jobs: int | None = None  # trials in the run (None: see budget)
    max_parallel_jobs: int = DEFAULT_MAX_PARALLEL_JOBS  # jobs running at once; they share the cores
    # Bayesian, Random, Grid, Hyperband, PBT, PB2 or ASHA (None: default_strategy's choice, made when built)
    strategy: Strategy = None  # type: ignore[assignment]
    early_stopping: EarlyStopping = EarlyStopping.OFF  # Off, or Auto (median of running averages)
    objective_metric: str = metrics.EPISODE_REWARD_MEAN  # the reward line the objective is read from
    objective_type: str = "Maximize"  # Maximize or Minimize
    objective_last_k: int = 1  # objective = mean of the last K values (1 = the last, as SageMaker)
    seeds: int = 1  # jobs per trial, each with its own rl.training.seed; objective = their mean
    run_dir: Path | None = None  # where the study, trials and report go (None: runs/tune-<problem>-<time>)
    storage: str | None = None  # SQLAlchemy URL of the study (None: SQLite in the run directory)
    study_name: str | None = None  # name of the study in the storage (None: the run directory's name)
    sampler_seed: int | None = None  # seed of the sampler (None: drawn and recorded)
    num_cpus: int | None = None  # cores shared by parallel jobs (None: those this process may use)
    # Hyperband's resource: env steps locally; on SageMaker, training iterations (reported values), as it counts.
    hyperband_min_resource: int | None = None  # fewest a trial gets (None: 25,000 env steps; SageMaker: 1)
    hyperband_max_resource: int | None = None  # most (None: the first finished trial's)
    reevaluate_top: int = DEFAULT_REEVALUATE_TOP  # re-evaluate the K best configurations and the default (0: off)
    # fresh seeds each re-evaluated configuration trains on (None: with max_runtime_s, as many as fit in
    # REEVALUATION_SHARE of it, 1 to DEFAULT_REEVALUATE_SEEDS, decided once trials have timed a job; else the latter)
    reevaluate_seeds: int | None = None
    warm_start: tuple[str, ...] = ()  # parent run directories whose finished trials seed the study
    warm_start_type: str = IDENTICAL  # IdenticalDataAndAlgorithm or TransferLearning (SageMaker's types)
    population: int | None = None  # strategy PBT: members (None: one per core, at least 4)
    perturbation_interval: int | None = None  # strategy PBT: env steps of a generation (None: generation_env_steps)
    check_hyperparameters: bool = True  # check every key with the job's own parser before starting
    # Completion criteria (SageMaker's TuningJobCompletionCriteria): the search may end before its budget.
    target_objective: float | None = None  # a trial reaching this objective ends the search
    max_jobs_not_improving: int | None = None  # this many finished trials without a 1% improvement end it (>= 3)
    complete_on_convergence: bool = False  # end the search when it has converged (completion.py)
    max_runtime_s: int | None = None  # the whole run's wall-clock budget (SageMaker's MaxRuntimeInSeconds)
    train_budget: str | None = None  # the training the answer is for (budget.py): the re-evaluation trains at it
    code_dir: Path | None = None  # the user's code (their env), travelling with every job as SageMaker's source_dir

    def __post_init__(self) -> None:
        object.__setattr__(self, "_given_space", self.space)  # before the strategy's checks adapt it (PBT, ASHA)
        if self.problem is not None:
            get_problem(self.problem)
        elif ENV_ID_KEY not in self.space.static:
            raise TuningError(f"nothing to tune: name a problem (--problem) or an env (--env, or {ENV_ID_KEY} in "
                              "the static values)")
        if self.code_dir is not None:
            object.__setattr__(self, "code_dir", Path(self.code_dir))
        object.__setattr__(self, "early_stopping", parse_early_stopping(self.early_stopping))
        named = None if self.strategy is None else parse_strategy(self.strategy)
        object.__setattr__(self, "_named_strategy", named)
        object.__setattr__(self, "strategy", named or default_strategy(self.train_budget, self.early_stopping))
        _check_kinds(self)
        _check_warm_start(self)
        if self.strategy.population_based:
            _check_pbt(self)
        check_strategy(self.strategy, self.early_stopping, self.space)
        _check_train_budget(self)
        if self.objective_metric not in OBJECTIVE_METRICS:
            raise TuningError(
                f"objective_metric {self.objective_metric!r} is not a reward line"
                f"{did_you_mean(self.objective_metric, OBJECTIVE_METRICS)}: "
                f"use one of {', '.join(OBJECTIVE_METRICS)}"
            )
        if self.objective_metric == metrics.EVALUATION_REWARD_MEAN:
            _check_evaluations(self)
        if self.objective_type not in OBJECTIVE_TYPES:
            raise TuningError(
                f"objective_type {self.objective_type!r} is not one of {', '.join(OBJECTIVE_TYPES)}"
                f"{did_you_mean(self.objective_type, OBJECTIVE_TYPES)}"
            )
        if self.seeds > 1 and SEED_KEY in self.space.names:
            raise TuningError(f"{SEED_KEY} cannot be tuned when seeds > 1: each trial sets it per seed")
        if self.run_dir is not None:
            object.__setattr__(self, "run_dir", Path(self.run_dir).absolute())

    _named_strategy: ClassVar[Strategy | None]  # each config's own, set by __post_init__
    _given_space: ClassVar[SearchSpace]  # likewise

    @property
    def named_strategy(self) -> Strategy | None:
        """The strategy this config was given (None: `strategy` is default_strategy's choice)."""
        return self._named_strategy

    def rebuilt(self, **changes: Any) -> TuningConfig:
        """This config with `changes`, built from what it was given: a strategy it was not given is chosen again,
        and the space is adapted to the strategy anew."""
        changes.setdefault("strategy", self.named_strategy)
        changes.setdefault("space", self._given_space)
        return dataclasses.replace(self, **changes)

    @property
    def completion(self) -> Criteria:
        """The search's completion criteria."""
        return Criteria(self.target_objective, self.max_jobs_not_improving, self.complete_on_convergence)

    @property
    def reevaluation_seeds(self) -> tuple[int, int]:
        """The fewest and the most fresh seeds a re-evaluated configuration trains on (the same when fixed)."""
        if self.reevaluate_seeds is not None:
            return self.reevaluate_seeds, self.reevaluate_seeds
        return (1 if self.max_runtime_s is not None else DEFAULT_REEVALUATE_SEEDS), DEFAULT_REEVALUATE_SEEDS

    @property
    def training(self) -> TrainBudget | None:
        """The parsed train_budget (None: the trials' own stop)."""
        return None if self.train_budget is None else parse_train_budget(self.train_budget)

    @property
    def population_size(self) -> int:
        """Strategy PBT's members."""
        return self.population or max(MIN_POPULATION, self.total_cpus)  # a member per core

    @property
    def generations(self) -> int:
        """Strategy PBT's generations: the budget's segments, a member's each."""
        return self.budget // self.population_size

    @property
    def generation_env_steps(self) -> int:
        """Strategy PBT's env steps per generation: perturbation_interval, else an env-step training budget split
        over the generations (a member trains the budget), else DEFAULT_PERTURBATION_INTERVAL."""
        if self.perturbation_interval is not None:
            return self.perturbation_interval
        steps = self.training.env_steps if self.training is not None else None
        return DEFAULT_PERTURBATION_INTERVAL if steps is None else _members_interval(steps, self.generations)

    @property
    def budget(self) -> int:
        """Trials in the run (strategy PBT: segments, population x generations)."""
        if self.strategy.population_based:
            return self.max_jobs or self.population_size * DEFAULT_GENERATIONS
        if self.strategy is Strategy.GRID:
            size = self.space.grid_size()
            return min(self.max_jobs, size) if self.max_jobs else size
        return self.max_jobs or (DEFAULT_ASHA_MAX_JOBS if self.strategy is Strategy.ASHA else DEFAULT_MAX_JOBS)

    @property
    def total_cpus(self) -> int:
        """The cores the parallel jobs share."""
        return self.num_cpus or len(os.sched_getaffinity(0))

    @property
    def cpus_per_job(self) -> int:
        """SM_NUM_CPUS of each job: the cores split between the parallel jobs."""
        return max(1, self.total_cpus // self.max_parallel_jobs)

    @property
    def hyperband_min_env_steps(self) -> int:
        """The fewest env steps Hyperband or ASHA gives a trial (ASHA at a training budget of env steps: a ninth of
        it, so that a trial meets three rungs)."""
        budget = self.training
        if self.hyperband_min_resource is None and self.strategy is Strategy.ASHA and budget and budget.env_steps:
            return max(1, budget.env_steps // asha.REDUCTION_FACTOR**2)
        return self.hyperband_min_resource or DEFAULT_HYPERBAND_MIN_ENV_STEPS

    @property
    def direction(self) -> Literal["maximize", "minimize"]:
        return of_objective_type(self.objective_type)

    @property
    def label(self) -> str:
        """What the run tunes, in names: the problem, or the env's id without its module (file-name safe)."""
        return target_label(self.problem, self.space.static)

    def resolved(self) -> TuningConfig:
        """This config with run directory, storage, study name and sampler seed filled in."""
        run_dir = self.run_dir or Path("runs", f"tune-{self.label}-{time.strftime('%Y%m%d-%H%M%S')}").absolute()
        storage = self.storage or default_storage(run_dir)
        seed = self.sampler_seed if self.sampler_seed is not None else int.from_bytes(os.urandom(4), "big") >> 1
        return self.rebuilt(
            run_dir=run_dir,
            storage=storage,
            study_name=self.study_name or run_dir.name,
            sampler_seed=seed,
            population=self.population_size if self.strategy.population_based else self.population,
        )

    def to_dict(self) -> dict[str, Any]:
        """The config in the tuning-file format (what `config_from_mapping` reads back)."""
        data: dict[str, Any] = {"problem": self.problem, **self.space.to_dict()}
        for item in dataclasses.fields(self):
            if item.name in ("problem", "space"):
                continue
            value = getattr(self, item.name)
            if isinstance(value, tuple):
                value = list(value)
            data[item.name] = str(value) if isinstance(value, Path | Strategy | EarlyStopping) else value
        return data


def default_strategy(train_budget: str | None, early_stopping: EarlyStopping) -> Strategy:
    """The strategy of a run that names none: ASHA when it has a training budget to judge trials at (its rungs
    are fractions of it) and does not ask for early stopping Auto (which ASHA replaces), else Bayesian.

    Chosen by measurement on problems no default of ours was chosen on (bench/peers.py; docs/benchmarks.md,
    "Tuners side by side"). Without a training budget, trials have the space's own length, where the default
    study was chosen with Bayesian (bench/tuning_gain.py); a SageMaker tuning job takes no training budget, so
    it keeps SageMaker's own default, Bayesian.
    """
    if train_budget is not None and early_stopping is EarlyStopping.OFF:
        return Strategy.ASHA
    return Strategy.BAYESIAN


def unread_evaluation(
    config: TuningConfig, hyperparameters: Mapping[str, Any], *, generation: int | None = None
) -> dict[str, Any]:
    """What a search trial's job (or PBT's segment of `generation`) gets besides `hyperparameters`: no evaluation
    of its final policy (`rl.training.evaluation_episodes=0`) when nothing would read it, so that its episodes
    cost the trial nothing. Read are: every evaluation of a run that ranks on them or whose static values set
    them; a search trial's when it trains with the re-evaluation's stop (its policy may be the run's model/);
    the last generation's segments'."""
    if config.objective_metric == metrics.EVALUATION_REWARD_MEAN or _EVALUATION_KEYS & set(config.space.static):
        return {}
    training = config.training
    at_reevaluations_stop = training is None or training.apply(hyperparameters) == hyperparameters
    read = generation == config.generations - 1 if generation is not None else (
        bool(config.reevaluate_top) and at_reevaluations_stop)
    return {} if read else {EVALUATION_EPISODES_KEY: 0}


def paused_at_once(config: TuningConfig) -> dict[str, Any]:
    """What an ASHA search trial's job gets besides its hyperparameters: `rl.training.stop_grace_s=0`, so that a job
    a rung pauses keeps its last completed iteration's checkpoint (a promotion continues from it) and ends at once,
    instead of finishing the iteration in progress (most paused trials are never continued). Not when the static
    values set a grace."""
    if config.strategy is not Strategy.ASHA or STOP_GRACE_KEY in config.space.static:
        return {}
    return {STOP_GRACE_KEY: 0}


def reevaluation_jobs(top: int, seeds: int) -> int:
    """Jobs a re-evaluation of the `top` best and the default on `seeds` seeds adds after the search."""
    return (top + 1) * seeds if top else 0


def reevaluation_rounds(top: int, seeds: int, parallel: int) -> int:
    """Rounds of `parallel` jobs that re-evaluation takes."""
    return math.ceil(reevaluation_jobs(top, seeds) / parallel)


def _check_train_budget(config: TuningConfig) -> None:
    """A training budget is one, the run has a re-evaluation to train at it, and (a time) it fits the max runtime;
    with strategy ASHA it is also the search trials' full length."""
    if config.train_budget is None:
        return
    budget = parse_train_budget(config.train_budget)
    object.__setattr__(config, "train_budget", str(config.train_budget).strip())  # a file's 1000000 is text too
    if config.strategy.population_based:
        _check_members_train_budget(config, budget)
        return
    if not config.reevaluate_top:
        raise TuningError("train_budget is the budget the re-evaluation trains at: set reevaluate_top to 1 or more")
    if config.strategy is Strategy.ASHA:  # a search trial that is not stopped early trains the whole budget
        object.__setattr__(config, "space", SearchSpace(config.space.parameters, budget.apply(config.space.static)))
    if config.max_runtime_s is None or budget.seconds is None:
        return  # an env-step budget's time is known once trials ran (plan.SearchEnd)
    fewest = config.reevaluation_seeds[0]
    rounds = reevaluation_rounds(config.reevaluate_top, fewest, config.max_parallel_jobs)
    needed = rounds * (budget.seconds + JOB_START_S)
    if needed > config.max_runtime_s:
        lower = "train_budget or reevaluate_seeds" if fewest > 1 else "train_budget"
        raise TuningError(
            f"train_budget {config.train_budget} does not fit in max_runtime_s {config.max_runtime_s}: the "
            f"re-evaluation alone ({reevaluation_jobs(config.reevaluate_top, fewest)} jobs, {config.max_parallel_jobs} "
            f"at a time) takes ~{needed:,} s; lower {lower}, or raise max_runtime_s")


def _check_members_train_budget(config: TuningConfig, budget: TrainBudget) -> None:
    """Strategy PBT's answer is its best member, so a training budget is each member's whole training: the
    generations split it into the perturbation interval."""
    if budget.env_steps is None:
        raise TuningError(f"strategy {config.strategy} splits a member's training into generations of env steps: "
                          f"give train_budget in env steps (e.g. 300k), not {config.train_budget}")
    if config.perturbation_interval is not None:
        interval = _members_interval(budget.env_steps, config.generations)
        raise TuningError(f"train_budget sets strategy {config.strategy}'s perturbation_interval (train_budget / "
                          f"generations: {interval:,}): give one of the two")


def _members_interval(env_steps: int, generations: int) -> int:
    """A generation's env steps when each member trains `env_steps` in `generations` (rounded up: at least all)."""
    return math.ceil(env_steps / generations)


def _check_warm_start(config: TuningConfig) -> None:
    """The warm start's parents are a list of at most five, of a type SageMaker knows."""
    parents = config.warm_start
    if isinstance(parents, str | Path):
        parents = (parents,)
    if not isinstance(parents, list | tuple) or not all(isinstance(p, str | Path) and str(p) for p in parents):
        raise TuningError(f"warm_start must be a list of parent runs (run directories or tuning job names), "
                          f"got {shorten(config.warm_start)}")
    object.__setattr__(config, "warm_start", tuple(str(parent) for parent in parents))
    if config.warm_start_type not in WARM_START_TYPES:
        raise TuningError(
            f"warm_start_type {config.warm_start_type!r} is not one of {', '.join(WARM_START_TYPES)}"
            f"{did_you_mean(str(config.warm_start_type), WARM_START_TYPES)}"
        )
    if len(config.warm_start) > MAX_WARM_START_PARENTS:
        raise TuningError(
            f"warm_start names {len(config.warm_start)} parent runs; SageMaker allows at most "
            f"{MAX_WARM_START_PARENTS}: keep the {MAX_WARM_START_PARENTS} most relevant"
        )


def _check_evaluations(config: TuningConfig) -> None:
    """Every job of a run whose objective is its evaluations makes them (every job evaluates at its end): ASHA's
    also at its first rung's env steps unless told otherwise (every rung is a multiple of it)."""
    static = config.space.static
    if EVALUATION_INTERVAL_KEY not in static and config.strategy is Strategy.ASHA:
        static = {**static, EVALUATION_INTERVAL_KEY: config.hyperband_min_env_steps}
        object.__setattr__(config, "space", SearchSpace(config.space.parameters, static))
    if decode_value(static.get(EVALUATION_EPISODES_KEY)) == 0:
        raise TuningError(f"objective_metric {metrics.EVALUATION_REWARD_MEAN} is printed by jobs that evaluate, but "
                          f"the static {EVALUATION_EPISODES_KEY} is 0: drop it or set it to 1 or more")


def _check_kinds(config: TuningConfig) -> None:
    """Each setting has the kind of value its field says (a tuning file may hold anything)."""
    for name in ("max_parallel_jobs", "objective_last_k"):
        check_count(name, getattr(config, name))
    for name in ("seeds", "reevaluate_seeds", "reevaluate_top"):
        check_count(name, getattr(config, name), minimum=0 if name == "reevaluate_top" else 1, maximum=MAX_SEEDS,
                    optional=name == "reevaluate_seeds")
    for name in ("max_jobs", "num_cpus", "hyperband_min_resource", "hyperband_max_resource", "max_runtime_s",
                 "perturbation_interval"):
        check_count(name, getattr(config, name), optional=True)
    check_count("population", config.population, minimum=2, optional=True)
    check_count("sampler_seed", config.sampler_seed, minimum=0, maximum=2**32 - 1, optional=True)
    for name in ("storage", "study_name", "run_dir", "code_dir"):
        value = getattr(config, name)
        if value is not None and (not isinstance(value, str | Path) or not str(value).strip()):
            raise TuningError(f"{name} must be text (a {name.replace('_', ' ')}), got {shorten(value)}")
    check_count("max_jobs_not_improving", config.max_jobs_not_improving, minimum=3, optional=True)
    if config.target_objective is not None and not finite_number(config.target_objective):
        raise TuningError(f"target_objective must be a finite number, got {shorten(config.target_objective)}")
    for name in ("check_hyperparameters", "complete_on_convergence"):
        if not isinstance(getattr(config, name), bool):
            raise TuningError(f"{name} must be true or false, got {shorten(getattr(config, name))}")


_SPACE_KEYS = ("parameters", "static", "ParameterRanges", "StaticHyperParameters")
_EVALUATION_KEYS = {EVALUATION_EPISODES_KEY, EVALUATION_INTERVAL_KEY}
_RECORD_KEYS = ("reproduce", "run")  # written into tuning.json by the tuner; not read as settings


def file_keys() -> list[str]:
    """The settings a tuning file holds: TuningConfig's fields, the space as parameters and static, objective."""
    fields = [item.name for item in dataclasses.fields(TuningConfig) if item.name not in ("problem", "space")]
    return ["problem", "parameters", "static", *fields, "objective"]


def config_from_mapping(data: Mapping[str, Any], *, base: TuningConfig | None = None) -> TuningConfig:
    """A config from a tuning file's mapping, on top of `base` (default: the defaults).

    `parameters` replace the base's parameters when given; `static` values are added to the base's.
    """
    base = base or TuningConfig()
    fields = {item.name for item in dataclasses.fields(TuningConfig)} - {"space"}
    known = sorted({*file_keys(), *_SPACE_KEYS, *_RECORD_KEYS})
    for key in data:
        if key not in known:
            raise TuningError(
                f"unknown tuning setting {key!r}{did_you_mean(str(key), known)}: use one of {', '.join(known)}"
            )
    changes: dict[str, Any] = {key: data[key] for key in fields if key in data}
    if "objective" in data:
        objective = data["objective"]
        if not isinstance(objective, Mapping) or set(objective) - {"metric", "type"}:
            raise TuningError(f"objective must be a mapping with 'metric' and 'type', got {objective!r}")
        changes.setdefault("objective_metric", objective.get("metric", base.objective_metric))
        changes.setdefault("objective_type", objective.get("type", base.objective_type))
    changes["space"] = _space(data, base._given_space)
    try:
        return base.rebuilt(**changes)
    except TypeError as error:
        raise TuningError(f"invalid tuning setting: {error}") from None


def load_config(path: str | Path | None = None, overrides: Mapping[str, Any] | None = None, *,
                base: TuningConfig | None = None) -> TuningConfig:
    """`base` (default: the defaults), then the tuning file at `path`, then `overrides` (same keys; e.g. from flags)."""
    config = base or TuningConfig()
    if path is not None:
        config = config_from_mapping(load_file(path), base=config)
    if overrides:
        config = config_from_mapping(overrides, base=config)
    return config


def check_hyperparameters(config: TuningConfig, *, envs_here: bool = True) -> None:
    """Check the static values and both ends of every range with the job's own parser, before any job.

    The parser runs in a child process (`job.check_hyperparameters`): RLlib does not load in the
    tuner, nor on a machine that only submits SageMaker jobs. Also rejects two keys that set the same
    field (e.g. num_sgd_iter and num_epochs).
    """
    from sagemaker_rl import job
    from sagemaker_rl.job import canonical_key

    fields: dict[str, str] = {}
    for key in [*config.space.static, *config.space.names]:
        target = canonical_key(key)
        if target in fields:
            raise TuningError(f"{fields[target]} and {key} set the same hyperparameter ({target}): keep one")
        fields[target] = key
    corners: list[dict[str, Any]] = [{}]
    for parameter in config.space.parameters:
        values = list(getattr(parameter, "values", ())) or [parameter.min_value, parameter.max_value]  # type: ignore[union-attr]
        corners += [{parameter.name: value} for value in values]
    refused = job.check_hyperparameters(config.problem, [config.space.hyperparameters(corner) for corner in corners],
                                        code_dir=config.code_dir, envs_here=envs_here)
    if refused is not None:
        index, reason = refused
        corner = corners[index]
        where = f" (with {', '.join(f'{k}={v!r}' for k, v in corner.items())})" if corner else ""
        raise TuningError(f"{reason}{where}")


def load_run_config(run_dir: str | Path) -> TuningConfig:
    """The config a run directory was started with (resolved: storage, study name, sampler seed)."""
    run_dir = Path(run_dir).absolute()
    data = read_config_file(run_dir)
    run = data.get("run", {})
    data["run_dir"] = str(run_dir)  # the directory may have been moved since
    data["study_name"] = run.get("study_name", data.get("study_name"))
    data["storage"] = data.get("storage") or default_storage(run_dir)
    return config_from_mapping(data)


def record_run(given: TuningConfig, config: TuningConfig, command: list[str] | None) -> None:
    """Write tuning.json for `config` (resolved from `given`); `command` None keeps the recorded one."""
    assert config.run_dir is not None
    previous = read_config_file(config.run_dir) if is_run_dir(config.run_dir) else {}
    reproduce = previous.get("reproduce", {})
    if command is not None:
        reproduce = {
            "command": shlex.join(command),
            "cwd": os.getcwd(),
            "rerun": f"python scripts/tune.py --config {config.run_dir / CONFIG_FILE}",
            "python": sys.version.split()[0],
            "optuna": optuna.__version__,
            "image": os.environ.get("SAGEMAKER_RL_IMAGE", "local (no image)"),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
    data = dataclasses.replace(
        given,
        run_dir=None,
        sampler_seed=config.sampler_seed,
        max_jobs=config.max_jobs,
        max_parallel_jobs=config.max_parallel_jobs,
        storage=None if given.storage in (None, default_storage(config.run_dir)) else given.storage,
        study_name=None if given.study_name in (None, config.run_dir.name) else given.study_name,
    ).to_dict()
    data["run"] = previous.get("run") or {
        "run_dir": str(config.run_dir),
        "storage": config.storage,
        "study_name": config.study_name,
    }
    data["reproduce"] = reproduce
    write_config_file(config.run_dir, data)


def _default_parameters(space: SearchSpace) -> bool:
    """Whether `space` tunes the default space's parameters, less any its static values fix: they stand for "not
    given", so a strategy may replace them with its own defaults."""
    return space.parameters == tuple(parameter for parameter in default_space().parameters
                                     if parameter.name not in space.static)


def _check_pbt(config: TuningConfig) -> None:
    """Strategy PBT's (and PB2's) space, and the settings it refuses."""
    # The default space's parameters and trial time stand for "not given" (a tuning file's static values
    # are added to the defaults'): PBT has its own parameters (initial_log_std is not live) and no stop.
    default = default_space()
    static = {key: value for key, value in config.space.static.items() if default.static.get(key) != value}
    parameters = config.space.parameters
    if _default_parameters(config.space):
        parameters = tuple(parameter for parameter in default_pbt_space().parameters if parameter.name not in static)
    object.__setattr__(config, "space", SearchSpace(parameters, static))
    _check_pbt_space(config.space, config.strategy)
    for name, refused in (("seeds", config.seeds > 1), ("warm_start", bool(config.warm_start))):
        if refused:
            raise TuningError(f"strategy {config.strategy} does not take {name}: each member is one job on its own "
                              "seed, trained from scratch; use strategy Bayesian for it")
    if config.completion.any:
        raise TuningError(f"strategy {config.strategy} trains its whole population to the last generation: "
                          "completion criteria (target_objective, max_jobs_not_improving, complete_on_convergence) "
                          "end a search; drop them or use strategy Bayesian")
    object.__setattr__(config, "reevaluate_top", 0)  # the answer is a trained member, not a configuration
    if config.max_jobs is not None and (config.max_jobs % config.population_size
                                      or config.max_jobs < 2 * config.population_size):
        size = config.population_size
        raise TuningError(
            f"max_jobs {config.max_jobs} for strategy {config.strategy} must be a multiple of the population "
            f"({size}), at least two generations: use {max(2, round(config.max_jobs / size)) * size}, or change "
            "population"
        )


def _check_pbt_space(space: SearchSpace, strategy: Strategy) -> None:
    """TuningError when PBT (or PB2) cannot perturb a tuned key live or the static values stop the jobs."""
    for name in space.names:
        reason = not_live_reason(name)
        if reason is not None:
            raise TuningError(
                f"strategy {strategy} cannot change {name} between a member's jobs ({reason}): fix it under static "
                "or tune it with strategy Bayesian"
            )
    stops = sorted(key for key in space.static if key.startswith(STOP_PREFIX))
    if stops:
        raise TuningError(
            f"strategy {strategy} ends every job at a perturbation boundary, so static {stops[0]} has no use: drop it "
            "(a member trains max_jobs / population x perturbation_interval env steps)"
        )
    if SEED_KEY in space.names:
        raise TuningError(f"strategy {strategy} gives each member its own {SEED_KEY}: it cannot be tuned")


def _space(data: Mapping[str, Any], base: SearchSpace) -> SearchSpace:
    """Given parameters replace the base's; given static values are added (a static value wins over
    a base range of the same key, a given range over a base static value)."""
    if "ParameterRanges" in data or "StaticHyperParameters" in data:
        given = from_parameter_ranges(data.get("ParameterRanges") or {}, data.get("StaticHyperParameters"))
    else:
        given = parse_space(data.get("parameters"), data.get("static"))
    if "parameters" in data or "ParameterRanges" in data:
        parameters = given.parameters
    else:
        parameters = tuple(parameter for parameter in base.parameters if parameter.name not in given.static)
    tuned = {parameter.name for parameter in parameters}
    static = {key: value for key, value in base.static.items() if key not in tuned}
    static.update(given.static)
    return SearchSpace(parameters, static)
