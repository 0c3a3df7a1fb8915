"""Evaluate a trained policy: deterministic episodes, mean / max / min return (optionally a GIF).

    python entrypoints/evaluate.py --model-dir runs/train-reacher-.../model --episodes 10 --video reacher.gif
"""

import argparse
import os
import sys
from pathlib import Path

from sagemaker_rl.errors import cli
from sagemaker_rl.job.evaluation import evaluate


@cli
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, required=True, help="a job's model/ directory")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0, help="seed of the first episode (then +1 each)")
    parser.add_argument("--video", type=Path, help="save the first episode as this GIF file")
    args = parser.parse_args(argv)
    os.environ.setdefault("MUJOCO_GL", "egl")  # headless MuJoCo rendering
    result = evaluate(args.model_dir, episodes=args.episodes, seed=args.seed, video=args.video)
    print(f"episodes: {len(result.returns)}")
    print(f"mean return: {result.mean:.2f}")
    print(f"max return: {result.max:.2f}")
    print(f"min return: {result.min:.2f}")
    if args.video:
        print(f"video: {args.video}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
