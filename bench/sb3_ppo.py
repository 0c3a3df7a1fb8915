"""Stable-Baselines3 PPO on one of our problems, printing the mean return as it learns (for time_to_reward).

    .venv/bin/python bench/sb3_ppo.py --problem reacher --simulator roboschool --target 17 --cap-s 600 [--settings zoo]

`--settings zoo` (the peer a user would pick): rl-zoo3's tuned row for the problem's PyBullet env in
its `hyperparams/ppo.yml` (ReacherBulletEnv-v0, HopperBulletEnv-v0), rebuilt here from the row's
values: `VecNormalize` (observations and rewards) over `n_envs` `DummyVecEnv` copies of our env,
gSDE, linear schedules written `lin_X` in the zoo as a function of the remaining progress.
`--settings defaults`: SB3's PPO defaults on one env (MlpPolicy [64, 64] tanh, n_steps 2048,
batch 64, 10 epochs, lr 3e-4). One torch thread (faster on 2 shared cores). After each rollout it
prints `elapsed_s steps mean_return`, the mean over the last 100 episodes of the raw (unnormalized)
return, as our jobs' episode_reward_mean; it stops at the target or after `--cap-s` seconds of training
(a clock from its first step, as our jobs' rl.training.stop.time_total_s). With `--final-episodes N` it
then prints `final mean_return`: the trained policy's deterministic return over N episodes on seeds
`--final-seed`.. (normalized as in training). Needs bench/requirements.txt.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

# rl-zoo3 hyperparams/ppo.yml (commit 00128b5), rows ReacherBulletEnv-v0 and HopperBulletEnv-v0
# (the latter inherits HalfCheetahBulletEnv-v0's block). "lin_X" = X times the remaining progress.
ZOO_ROWS: dict[str, dict[str, Any]] = {
    "reacher": {"n_envs": 8, "n_steps": 512, "batch_size": 64, "gamma": 0.99, "gae_lambda": 0.9, "n_epochs": 20,
                "ent_coef": 0.0, "sde_sample_freq": 4, "max_grad_norm": 0.5, "vf_coef": 0.5, "learning_rate": 3e-5,
                "use_sde": True, "clip_range": "lin_0.4", "log_std_init": -2.7},
    "hopper": {"n_envs": 16, "n_steps": 512, "batch_size": 128, "gamma": 0.99, "gae_lambda": 0.9, "n_epochs": 20,
               "ent_coef": 0.0, "sde_sample_freq": 4, "max_grad_norm": 0.5, "vf_coef": 0.5, "learning_rate": 3e-5,
               "use_sde": True, "clip_range": "lin_0.4", "log_std_init": -2.0},
}


def _schedule(value: Any) -> Any:
    if isinstance(value, str) and value.startswith("lin_"):
        start = float(value[len("lin_"):])
        return lambda progress_remaining: progress_remaining * start
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--problem", default="reacher", choices=sorted(ZOO_ROWS))
    parser.add_argument("--simulator", default="roboschool")
    parser.add_argument("--settings", default="zoo", choices=("zoo", "defaults"))
    parser.add_argument("--target", type=float, required=True)
    parser.add_argument("--cap-s", type=float, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--torch-threads", type=int, default=1,
                        help="1 (default) trained 4-9x faster than torch's default 2 threads on 2 shared cores")
    parser.add_argument("--total-steps", type=float, default=1e6,
                        help="the schedules' horizon (the zoo row's n_timesteps: 1e6 for reacher)")
    parser.add_argument("--final-episodes", type=int, default=0, help="deterministic episodes after training")
    parser.add_argument("--final-seed", type=int, default=100_000, help="seed of the first of them (then +1 each)")
    args = parser.parse_args()
    try:
        import torch
        from stable_baselines3 import PPO
        from stable_baselines3.common.callbacks import BaseCallback
        from stable_baselines3.common.env_util import make_vec_env
        from stable_baselines3.common.vec_env import VecNormalize
    except ImportError:
        raise SystemExit("stable-baselines3 is missing: pip install -r bench/requirements.txt") from None

    from sagemaker_rl.job.envs import make_env

    torch.set_num_threads(args.torch_threads)

    class Report(BaseCallback):
        reached = False
        start = 0.0

        def _on_training_start(self) -> None:
            self.start = time.perf_counter()

        def _on_step(self) -> bool:  # False ends learn()
            return not self.reached and time.perf_counter() - self.start < args.cap_s

        def _on_rollout_end(self) -> None:
            returns = [info["r"] for info in self.model.ep_info_buffer]  # Monitor's raw returns
            if returns:
                mean = sum(returns) / len(returns)
                print(f"{time.perf_counter() - self.start:.1f} {self.num_timesteps} {mean:.4f}", flush=True)
                self.reached = mean >= args.target

    def env_factory() -> Any:
        return make_env(args.problem, args.simulator)

    if args.settings == "defaults":
        env = make_vec_env(env_factory, n_envs=1, seed=args.seed)
        model = PPO("MlpPolicy", env, seed=args.seed, device="cpu", verbose=0)
    else:
        row = dict(ZOO_ROWS[args.problem])
        env = VecNormalize(make_vec_env(env_factory, n_envs=row.pop("n_envs"), seed=args.seed))
        policy_kwargs = {"log_std_init": row.pop("log_std_init"), "ortho_init": False,
                         "activation_fn": torch.nn.ReLU, "net_arch": {"pi": [256, 256], "vf": [256, 256]}}
        row = {key: _schedule(value) for key, value in row.items()}
        model = PPO("MlpPolicy", env, seed=args.seed, device="cpu", verbose=0, policy_kwargs=policy_kwargs, **row)
    model.learn(total_timesteps=int(args.total_steps), callback=Report())
    if args.final_episodes:
        from sagemaker_rl.job.evaluation import run_episodes

        normalize = env.normalize_obs if isinstance(env, VecNormalize) else (lambda obs: obs)
        final = run_episodes(make_env(args.problem, args.simulator),  # predict clips to the action bounds
                             lambda obs: model.predict(normalize(obs), deterministic=True)[0],
                             episodes=args.final_episodes, seed=args.final_seed)
        print(f"final {final.mean:.4f}", flush=True)


if __name__ == "__main__":
    main()
