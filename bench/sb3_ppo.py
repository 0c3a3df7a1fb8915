"""Stable-Baselines3 PPO on one of our problems, printing the mean return as it learns (for time_to_reward).

    .venv/bin/python bench/sb3_ppo.py --problem reacher --simulator roboschool --target 18 --cap-s 600

SB3's PPO defaults (what a user starts from: MlpPolicy [64, 64] tanh, n_steps 2048, batch 64,
10 epochs, lr 3e-4, one env) with one torch thread, on the env our jobs train on
(sagemaker_rl.envs.make_env). After each rollout it prints `elapsed_s steps mean_return`, the mean
over the last 100 episodes (as our jobs' episode_reward_mean); it stops at the target or the cap.
Needs bench/requirements.txt.
"""

from __future__ import annotations

import argparse
import time

START = time.perf_counter()  # the parent times from process start; this clock is for the cap


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--problem", default="reacher")
    parser.add_argument("--simulator", default="roboschool")
    parser.add_argument("--target", type=float, required=True)
    parser.add_argument("--cap-s", type=float, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--torch-threads", type=int, default=1,
                        help="1 (default) trained 4-9x faster than torch's default 2 threads on 2 shared cores")
    args = parser.parse_args()
    try:
        from stable_baselines3 import PPO
        from stable_baselines3.common.callbacks import BaseCallback
        from stable_baselines3.common.monitor import Monitor
    except ImportError:
        raise SystemExit("stable-baselines3 is missing: pip install -r bench/requirements.txt") from None

    import torch

    from sagemaker_rl.envs import make_env

    torch.set_num_threads(args.torch_threads)

    class Report(BaseCallback):
        reached = False

        def _on_step(self) -> bool:  # False ends learn()
            return not self.reached and time.perf_counter() - START < args.cap_s

        def _on_rollout_end(self) -> None:
            returns = [info["r"] for info in self.model.ep_info_buffer]
            if returns:
                mean = sum(returns) / len(returns)
                print(f"{time.perf_counter() - START:.1f} {self.num_timesteps} {mean:.4f}", flush=True)
                self.reached = mean >= args.target

    env = Monitor(make_env(args.problem, args.simulator))
    model = PPO("MlpPolicy", env, seed=args.seed, device="cpu", verbose=0)
    model.learn(total_timesteps=10**9, callback=Report())


if __name__ == "__main__":
    main()
