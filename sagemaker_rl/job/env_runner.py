"""The env runner every job samples with: RLlib's, with seeds that no two env copies share.

RLlib 2.60 seeds runner w of a job with seed s as `s + w` (numpy, torch and its vector env), and
gymnasium's vector env seeds copy i with `s + w + i`: with 16 copies a runner, runner 2 repeats 15 of
runner 1's copies (initial states and, as reacher's episodes all have the same length, every later
goal) — a 2-runner job samples 17 distinct env streams, not 32 (ray-project/ray#46986). Jobs with
seeds s and s + 1 share 15 of their 16 copies on one runner too, so "fresh seeds" were not fresh.
This runner draws its seed from (s, w, evaluation) through numpy's SeedSequence, whose outputs are
independent for different inputs; its copies take that seed + i as before.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner
from ray.rllib.utils.debug import update_global_seed_if_necessary


def runner_seed(seed: int, worker_index: int, *, evaluation: bool = False) -> int:
    """The seed of runner `worker_index` of a job seeded `seed`; its env copy i gets this + i."""
    return int(np.random.SeedSequence([seed, worker_index, int(evaluation)]).generate_state(1)[0])


class SeededEnvRunner(SingleAgentEnvRunner):
    """RLlib's single-agent env runner, seeded by `runner_seed` (numpy, torch, random and its envs)."""

    def __init__(self, *, config: Any, **kwargs: Any) -> None:
        super().__init__(config=config, **kwargs)
        if config.seed is not None:
            self._seed = runner_seed(config.seed, self.worker_index or 0, evaluation=config.in_evaluation)
            update_global_seed_if_necessary(framework=config.framework_str, seed=self._seed)
