"""A job process on standby: the job's imports and first-use costs paid before the job is known.

    python sagemaker_rl/job/standby/__main__.py TARGET...   (TARGET as after `python`: `-m MODULE`, `-c CODE`,
                                                            or a script)

loads what the target will load (for the job: RLlib's PPO, torch, torch's compiler front end that Adam's
first use imports, the ONNX exporter, and a first connection to the Ray instance it will join), says so
(on the pipe $SAGEMAKER_RL_STANDBY_READY_FD names, when given), then waits for its assignment: one JSON
line on stdin with the target's arguments, the variables to set (the job's $SAGEMAKER_BASE_DIR and
$SM_NUM_CPUS), its working directory and the file its output goes to. It then runs the target as
`python TARGET ARGS` would and exits with its exit code: one job per process, so jobs share nothing but
what was imported. End of input before an assignment (the pool was closed, or the tuner died) ends it
quietly.

A local tuner keeps such processes ready ahead of its jobs (`tuning.standby_pool`); bench/trial_start.py
measures what that saves.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

SCRIPT = str(Path(__file__).with_name("__main__.py"))  # `python SCRIPT TARGET...` starts one
READY_FD_ENV = "SAGEMAKER_RL_STANDBY_READY_FD"  # a pipe the process writes to once it has prepared


def assignment(args: Sequence[str], env: Mapping[str, str], cwd: str, log: str) -> bytes:
    """The line that starts a standby process's job: `args` after its target, `env` set, in `cwd`, output to `log`."""
    return (json.dumps({"args": list(args), "env": dict(env), "cwd": cwd, "log": log}) + "\n").encode()
