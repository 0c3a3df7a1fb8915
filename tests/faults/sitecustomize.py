"""TEST ONLY: faults injected into the real job's envs, in every process of the job (Ray workers too).

Put this directory first on PYTHONPATH and set SAGEMAKER_RL_TEST_FAULT; Python imports this file at
start-up in the job and in each Ray worker it starts (they inherit the environment), and it wraps
`sagemaker_rl.job.envs.env_creator` (the envs RLlib builds; the job's env check before training is spared):
  nan_reward   every reward is NaN (the job's return diverges)
  raise        env.step raises RuntimeError("injected env fault") after 20 steps
  hang         env.step sleeps for an hour after 20 steps (a job that makes no progress)
Without the variable it does nothing (and imports nothing).
"""

import os

FAULT = os.environ.get("SAGEMAKER_RL_TEST_FAULT")

if FAULT:
    import time

    import gymnasium

    import sagemaker_rl.job.envs as envs

    class _Faulty(gymnasium.Wrapper):
        steps = 0

        def step(self, action):
            obs, reward, terminated, truncated, info = self.env.step(action)
            _Faulty.steps += 1
            if FAULT == "nan_reward":
                reward = float("nan")
            elif FAULT == "raise" and _Faulty.steps > 20:
                raise RuntimeError("injected env fault")
            elif FAULT == "hang" and _Faulty.steps > 20:
                time.sleep(3600)
            return obs, reward, terminated, truncated, info

    _env_creator = envs.env_creator

    def _faulty_env_creator(*args, **kwargs):
        return _Faulty(_env_creator(*args, **kwargs))

    envs.env_creator = _faulty_env_creator
