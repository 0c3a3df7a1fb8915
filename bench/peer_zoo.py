"""rl-zoo3's PPO tuner, stopped at a wall-clock budget, and SB3 retraining of what it (or its ppo.yml) gives.

    .venv/bin/python bench/peer_zoo.py optimize --env Pendulum-v1 --budget-s 600 --n-jobs 2 --train-steps 100000 \
        --seed 0 --out DIR
    .venv/bin/python bench/peer_zoo.py retrain --problem hopper --simulator roboschool --hyperparameters FILE.json|zoo \
        --train-steps 100000 --seed 10000 --episodes 100 --eval-seed 200000

`optimize` is `python -m rl_zoo3.train --algo ppo --env ENV -optimize --n-jobs N --sampler tpe --pruner median
--n-timesteps STEPS --seed SEED --num-threads 1 --storage DIR/study.log --no-optim-plots`, driven through rl-zoo3's
`ExperimentManager`: its PPO sampler (`hyperparams_opt.sample_ppo_params`) over the env's ppo.yml row, TPE with 10
startup trials, the median pruner on its periodic deterministic evaluations (5 episodes, one evaluation per 100k steps,
at least one), unseeded trials, N trials at a time as threads of one process. The row is the installed ppo.yml's, or
its `default` row, written to DIR/ppo.yml (`--conf-file`). A problem of ours (`--problem`, built by
`sagemaker_rl.job.envs.make_env`) is registered as the gymnasium id `SageMakerRL-<problem>-<simulator>-v0` and gets the
row of the env it ports (HopperBulletEnv-v0 for hopper/roboschool, Reacher-v2 for reacher/mujoco).
rl-zoo3 has no time limit, so the budget is a Ctrl-C at the deadline: a callback given as rl-zoo3's
`--hyperparams callback:...` raises `BudgetSpent` (a KeyboardInterrupt) on the first env step or forward pass of the
policy (inside PPO's gradient epochs too) after it. The trials then running end as failed, and rl-zoo3's own
KeyboardInterrupt handler ends the study and writes its report; the best finished trial is read back from the study
log. The clock starts when this script's `main` does (after its imports). Last stdout line: `BENCH_RESULT {json}`:
the best trial as a ppo.yml row (the row's keys under the sampled ones; sampled policy keywords replace the row's, as
in rl-zoo3's trials), the same in our job's keys where they map (keys the row lacks at SB3's defaults; the minibatch
capped at the rollout size, as SB3 does), the trials finished, pruned and stopped at the deadline.

`retrain` builds the model as rl-zoo3 would for the row (its ExperimentManager: n_envs copies, VecNormalize when the
row normalizes, `lin_X` schedules, the policy's keywords), `FILE` over the env's ppo.yml row as `--hyperparams` would,
trains on one torch thread for exactly `--train-steps` env steps (rounded up to whole vector steps; a last partial
rollout is stepped but not learned from), then plays `--episodes` deterministic episodes seeded from `--eval-seed` on
one env with the row's env wrapper, observations normalized with the training statistics (not updated). Rows that
stack frames or wrap the vector env are refused. Needs bench/requirements.txt.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import emit

try:
    import gymnasium as gym
    import optuna
    import rl_zoo3
    import torch
    import yaml
    from rl_zoo3.exp_manager import ExperimentManager
    from rl_zoo3.hyperparams_opt import HYPERPARAMS_CONVERTER
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.utils import set_random_seed
except ImportError:
    raise SystemExit("rl-zoo3 is missing: pip install -r bench/requirements.txt") from None

from sagemaker_rl.errors import UserError
from sagemaker_rl.job.envs import make_env, problem_env
from sagemaker_rl.job.evaluation import run_episodes
from sagemaker_rl.job.keys import GSDE_KEY, INITIAL_LOG_STD_KEY, NUM_ENVS_KEY, ppo_key

ALGO = "ppo"
STUDY_NAME = "peer-zoo"
STUDY_LOG = "study.log"
N_TRIALS = 500  # rl_zoo3.train's --n-trials default: the budget ends the study first
N_STARTUP_TRIALS = 10  # rl_zoo3.train's --n-startup-trials default
# What a row without the key trains with (SB3's PPO defaults; rl-zoo3's one env without normalization)
SB3_DEFAULTS = {"learning_rate": 3e-4, "n_steps": 2048, "batch_size": 64, "n_epochs": 10, "gamma": 0.99,
                "gae_lambda": 0.95, "clip_range": 0.2, "ent_coef": 0.0, "vf_coef": 0.5, "max_grad_norm": 0.5,
                "use_sde": False, "n_envs": 1, "normalize": False}
# ppo.yml name -> our job's PPO field (RLlib 2.60 names), for plain numbers
SAME_MEANING = {"learning_rate": "lr", "gamma": "gamma", "gae_lambda": "lambda_", "clip_range": "clip_param",
                "n_epochs": "num_epochs", "ent_coef": "entropy_coeff", "vf_coef": "vf_loss_coeff",
                "max_grad_norm": "grad_clip"}
ACTIVATIONS = {"nn.Tanh": "tanh", "nn.ReLU": "relu", "nn.ELU": "elu"}  # rl-zoo3's -> RLlib's names


class BudgetSpent(KeyboardInterrupt):
    """The wall-clock budget ran out: raised inside a trial, it reaches rl-zoo3 as a Ctrl-C would."""


class StopAtDeadline(BaseCallback):
    """Raises BudgetSpent on the first env step or forward pass of the policy's action head after `deadline`."""

    def __init__(self, deadline: float) -> None:
        super().__init__()
        self.deadline = deadline

    def _init_callback(self) -> None:
        self.model.policy.action_net.register_forward_pre_hook(self._check)

    def _check(self, *_: Any) -> None:
        if time.monotonic() >= self.deadline:
            raise BudgetSpent

    def _on_step(self) -> bool:
        self._check()
        return True


class StopAtSteps(BaseCallback):
    """Ends learning once `steps` env steps are taken, unless that step completes a rollout (then it is learned)."""

    def __init__(self, steps: int) -> None:
        super().__init__()
        self.steps = steps

    def _on_step(self) -> bool:
        return self.num_timesteps < self.steps or self.locals["n_steps"] + 1 == self.locals["n_rollout_steps"]


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    optimize = commands.add_parser("optimize", help="rl-zoo3's PPO optimizer within a wall-clock budget")
    retrain = commands.add_parser("retrain", help="SB3 PPO with a ppo.yml row, then deterministic episodes")
    for command in (optimize, retrain):
        where = command.add_mutually_exclusive_group(required=True)
        where.add_argument("--env", help="a Gymnasium id, e.g. Pendulum-v1")
        where.add_argument("--problem", help="a problem of ours, e.g. hopper")
        command.add_argument("--simulator", default="roboschool", help="a problem's simulator (default: roboschool)")
        command.add_argument("--train-steps", type=int, required=True, help="env steps of each training")
        command.add_argument("--torch-threads", type=int, default=1, help="torch threads (default 1)")
    optimize.add_argument("--budget-s", type=float, required=True, help="wall-clock budget of the whole run")
    optimize.add_argument("--n-jobs", type=int, default=2, help="trials at a time (rl-zoo3's --n-jobs)")
    optimize.add_argument("--seed", type=int, default=0, help="seed of the sampler and the envs (rl-zoo3's --seed)")
    optimize.add_argument("--out", type=Path, required=True, help="directory of rl-zoo3's logs and the study")
    retrain.add_argument("--hyperparameters", required=True, help="a JSON file of a ppo.yml row, or `zoo`")
    retrain.add_argument("--seed", type=int, default=0, help="seed of the training")
    retrain.add_argument("--episodes", type=int, default=100, help="deterministic episodes after training")
    retrain.add_argument("--eval-seed", type=int, default=200_000, help="seed of the first episode (then +1 each)")
    args = parser.parse_args()
    for name in ("train_steps", "torch_threads", "n_jobs", "episodes", "budget_s"):
        if getattr(args, name, 1) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    return args


def zoo_rows() -> dict[str, Any]:
    """rl-zoo3's hand-tuned PPO rows, from its installed hyperparams/ppo.yml."""
    with (Path(rl_zoo3.__file__).parent / "hyperparams" / f"{ALGO}.yml").open() as file:
        return yaml.safe_load(file)


def target(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """The gymnasium id rl-zoo3 makes (our problem registered under one) and the ppo.yml row it starts from."""
    rows = zoo_rows()
    if args.env:
        if args.env not in gym.envs.registry:
            raise SystemExit(f"--env {args.env} is not a registered Gymnasium id (e.g. Pendulum-v1).")
        return args.env, dict(rows.get(args.env, rows["default"]))
    try:
        ported = problem_env(args.problem, args.simulator).id.rpartition(":")[2].split("-v")[0]
    except UserError as error:
        raise SystemExit(str(error)) from None
    gym_id = f"SageMakerRL-{args.problem}-{args.simulator}-v0"
    gym.register(gym_id, entry_point=functools.partial(make_env, args.problem, args.simulator))
    zoo_id = next((name for name in rows if name.split("-v")[0] == ported), "default")
    return gym_id, dict(rows[zoo_id])


def row_file(folder: Path, gym_id: str, row: dict[str, Any]) -> str:
    """A ppo.yml of the one row, under the id rl-zoo3 trains on (its --conf-file)."""
    path = folder / f"{ALGO}.yml"
    path.write_text(yaml.safe_dump({gym_id: row}))
    return str(path)


def optimize(args: argparse.Namespace, gym_id: str, row: dict[str, Any], started: float) -> dict[str, Any]:
    """rl-zoo3's optimizer until the deadline; what its study holds then."""
    study_log = args.out / STUDY_LOG
    if study_log.exists():
        raise SystemExit(f"{study_log} already holds a study: give an empty --out directory.")
    args.out.mkdir(parents=True, exist_ok=True)
    set_random_seed(args.seed)
    deadline = {f"{StopAtDeadline.__module__}.{StopAtDeadline.__name__}": {"deadline": started + args.budget_s}}
    manager = ExperimentManager(
        args, ALGO, gym_id, str(args.out), n_timesteps=args.train_steps, hyperparams={"callback": [deadline]},
        config=row_file(args.out, gym_id, row), optimize_hyperparameters=True, storage=str(study_log),
        study_name=STUDY_NAME, n_trials=N_TRIALS, n_jobs=args.n_jobs, sampler="tpe", pruner="median",
        n_startup_trials=N_STARTUP_TRIALS, n_evaluations=None, seed=args.seed, no_optim_plots=True)
    manager.setup_experiment()
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(study_log)))
    try:
        manager.hyperparameters_optimization()
    except ValueError:  # study.best_trial, when no trial finished
        if _finished(optuna.load_study(study_name=STUDY_NAME, storage=storage)):
            raise
    study = optuna.load_study(study_name=STUDY_NAME, storage=storage)
    return _answer(study, {**row, "n_timesteps": args.train_steps}, time.monotonic() - started)


def _finished(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))


def _answer(study: optuna.Study, row: dict[str, Any], wall_s: float) -> dict[str, Any]:
    """The best finished trial as a ppo.yml row and in our keys, and how the trials went."""
    states = [trial.state for trial in study.get_trials(deepcopy=False)]
    counts = {state: states.count(state) for state in optuna.trial.TrialState}
    answer: dict[str, Any] = {"tool": "rl-zoo3", "hyperparameters": None, "job_hyperparameters": None,
                              "unmapped": None, "best_value": None}
    if _finished(study):
        best = best_row(study.best_trial.params, row)
        mapped, unmapped = job_hyperparameters(best)
        answer.update(hyperparameters=best, job_hyperparameters=mapped, unmapped=unmapped,
                      best_value=study.best_value, best_trial=study.best_trial.number)
    return {**answer, "trials": counts[optuna.trial.TrialState.COMPLETE] + counts[optuna.trial.TrialState.PRUNED],
            "pruned": counts[optuna.trial.TrialState.PRUNED],
            "stopped_at_deadline": counts[optuna.trial.TrialState.FAIL], "wall_s": round(wall_s, 1)}


def best_row(params: dict[str, Any], row: dict[str, Any]) -> dict[str, Any]:
    """A trial's sampled values over the row they were tried on, as a JSON-able ppo.yml row."""
    sampled = HYPERPARAMS_CONVERTER[ALGO](params)
    policy = sampled.pop("policy_kwargs")
    policy["activation_fn"] = f"nn.{policy['activation_fn'].__name__}"
    merged = {**row, **sampled, "policy_kwargs": policy}
    return {key: merged[key] for key in sorted(merged)}


def job_hyperparameters(row: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """A ppo.yml row in our job's keys where the meaning carries over, and the row's keys that do not map."""
    rest = {**SB3_DEFAULTS, **row}
    mapped: dict[str, Any] = {}
    for name, field in SAME_MEANING.items():
        if isinstance(rest.get(name), int | float) and not isinstance(rest[name], bool):
            mapped[ppo_key(field)] = float(rest.pop(name)) if field != "num_epochs" else int(rest.pop(name))
    n_steps, n_envs = rest.pop("n_steps"), rest.pop("n_envs")
    mapped.update({ppo_key("train_batch_size_per_learner"): n_steps * n_envs, NUM_ENVS_KEY: n_envs,
                   ppo_key("minibatch_size"): min(rest.pop("batch_size"), n_steps * n_envs)})
    if rest.pop("use_sde"):
        every = rest.pop("sde_sample_freq", -1)  # SB3's -1: once per rollout
        mapped[GSDE_KEY] = every if every > 0 else n_steps
    unmapped = []
    normalize = rest["normalize"]
    if isinstance(normalize, bool):  # else VecNormalize's keywords, e.g. rewards only
        del rest["normalize"]
        mapped[ppo_key("observation_filter")] = "MeanStdFilter" if normalize else "NoFilter"
        unmapped += ["normalize (its reward scaling)"] if normalize else []
    if isinstance(rest.get("policy_kwargs"), dict):
        unmapped += [f"policy_kwargs.{name}" for name in _map_policy(rest.pop("policy_kwargs"), mapped)]
    return mapped, unmapped + sorted(rest)


def _map_policy(policy: dict[str, Any], mapped: dict[str, Any]) -> list[str]:
    """Adds the policy keywords' counterparts to `mapped`; the keywords that have none."""
    rest = dict(policy)
    mapped[INITIAL_LOG_STD_KEY] = float(rest.pop("log_std_init", 0.0))  # SB3's default log std is 0
    arch = rest.get("net_arch")
    actor, critic = (arch.get("pi"), arch.get("vf")) if isinstance(arch, dict) else (arch, arch)
    if isinstance(actor, list) and actor == critic:
        del rest["net_arch"]
        mapped[ppo_key("model_config.fcnet_hiddens")] = list(actor)
    if rest.get("activation_fn") in ACTIVATIONS:
        mapped[ppo_key("model_config.fcnet_activation")] = ACTIVATIONS[rest.pop("activation_fn")]
    return sorted(rest)


def retrain(args: argparse.Namespace, gym_id: str, row: dict[str, Any]) -> dict[str, Any]:
    """Train SB3 PPO as rl-zoo3 would with the row, then evaluate it deterministically."""
    set_random_seed(args.seed)
    with tempfile.TemporaryDirectory(prefix="peer-zoo-") as log_folder:
        manager = ExperimentManager(args, ALGO, gym_id, log_folder, n_timesteps=args.train_steps, eval_freq=-1,
                                    hyperparams=_given_row(args.hyperparameters), seed=args.seed, verbose=0,
                                    config=row_file(Path(log_folder), gym_id, row))
        try:
            model, _ = manager.setup_experiment()
        except (TypeError, ValueError) as error:
            raise SystemExit(f"the row does not make an SB3 PPO model: {error}") from None
        if manager.frame_stack or manager.vec_env_wrapper:
            raise SystemExit("rows that stack frames or wrap the vector env are not supported: their episodes "
                             "cannot be played on one env.")
        started = time.perf_counter()
        model.learn(args.train_steps, callback=StopAtSteps(args.train_steps))
        train_s = time.perf_counter() - started
        model.env.close()
    env = gym.make(gym_id)
    normalizer = model.get_vec_normalize_env()
    normalize = normalizer.normalize_obs if normalizer is not None else (lambda obs: obs)
    result = run_episodes(manager.env_wrapper(env) if manager.env_wrapper else env,
                          lambda obs: model.predict(normalize(obs), deterministic=True)[0],
                          episodes=args.episodes, seed=args.eval_seed)
    return {"mean_return": result.mean, "returns": result.returns, "train_s": round(train_s, 1),
            "env_steps": model.num_timesteps}


def _given_row(source: str) -> dict[str, Any]:
    """The row `--hyperparameters` names, activation as a class: none for `zoo` (the env's own row), else the file's."""
    if source == "zoo":
        return {}
    try:
        row = json.loads(Path(source).read_text())
    except (OSError, ValueError) as error:
        raise SystemExit(f"--hyperparameters {source}: not a readable JSON file ({error}).") from None
    if not isinstance(row, dict):
        raise SystemExit(f"--hyperparameters {source}: it holds a {type(row).__name__}, not an object of ppo.yml keys.")
    policy = row.get("policy_kwargs")
    if isinstance(policy, dict) and isinstance(policy.get("activation_fn"), str):
        activation = getattr(torch.nn, policy["activation_fn"].removeprefix("nn."), None)
        if not isinstance(activation, type):
            raise SystemExit(f"--hyperparameters {source}: activation_fn {policy['activation_fn']} is not in torch.nn.")
        row["policy_kwargs"] = {**policy, "activation_fn": activation}
    return row


def main() -> int:
    started = time.monotonic()
    args = _arguments()
    torch.set_num_threads(args.torch_threads)
    gym_id, row = target(args)
    if args.command == "optimize":
        emit(optimize(args, gym_id, row, started))
    else:
        emit(retrain(args, gym_id, row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
