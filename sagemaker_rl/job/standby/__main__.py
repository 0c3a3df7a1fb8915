"""A standby process (see the package's docstring); run as a script (`STANDBY_SCRIPT`), not with -m: see `_run`."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import logging
import os
import sys
import tempfile
import threading
import traceback
import types
from pathlib import Path
from typing import Any

from sagemaker_rl.contract import RAY_ADDRESS_ENV
from sagemaker_rl.job.entry import MODULE as JOB_MODULE
from sagemaker_rl.job.standby import READY_FD_ENV


def main() -> None:
    target = sys.argv[1:]
    assignment = _Assignment()
    if target[:2] == ["-m", JOB_MODULE]:
        _prepare_job()
    _say_ready()
    given = json.loads(assignment.wait())
    _send_output_to(given["log"])
    os.environ.update(given["env"])
    os.chdir(given["cwd"])
    code = _run(target, given["args"])
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    # The job has written its outputs and ended its Ray session: the interpreter's own teardown (of RLlib, torch
    # and their threads) would only delay the moment the tuner sees the job end.
    os._exit(code)


class _Assignment:
    """The job's line on stdin, read from the start: its end without a line (the pool was closed, or the tuner died
    with -9) ends the process at once, even in `_prepare_job`, whose Ray connection can wait on a head that the
    tuner's death has taken with it."""

    def __init__(self) -> None:
        self._line = ""
        self._given = threading.Event()
        threading.Thread(target=self._read, daemon=True, name="assignment").start()

    def _read(self) -> None:
        self._line = sys.stdin.readline()
        if not self._line.strip():
            os._exit(0)
        self._given.set()

    def wait(self) -> str:
        self._given.wait()
        return self._line


def _prepare_job() -> None:
    """Import and use once what every job imports or first uses, on throwaway objects (torch's RNG untouched).

    Best effort: whatever fails here fails again in the job, which reports it under the job contract.
    """
    try:
        import torch

        # The job's modules import RLlib where they use it; PPO's torch learner and module are built by name.
        from ray.rllib.algorithms.ppo import PPO  # noqa: F401
        from ray.rllib.algorithms.ppo.torch.default_ppo_torch_rl_module import DefaultPPOTorchRLModule  # noqa: F401
        from ray.rllib.algorithms.ppo.torch.ppo_torch_learner import PPOTorchLearner  # noqa: F401

        from sagemaker_rl.job import export, ray_session, training  # noqa: F401

        with torch.random.fork_rng(), tempfile.TemporaryDirectory() as scratch:
            layer = torch.nn.Linear(1, 1)
            torch.optim.Adam(layer.parameters())
            torch.onnx.export(layer, (torch.zeros(1, 1),), os.path.join(scratch, "layer.onnx"), dynamo=False)
        if os.environ.get(RAY_ADDRESS_ENV):  # a process's first connection costs more than later ones
            ray_session.start_ray(1)
            ray_session.stop_ray()
    except Exception:  # noqa: BLE001, S110 - see the docstring
        pass


def _say_ready() -> None:
    ready = os.environ.pop(READY_FD_ENV, None)
    if ready is not None:
        os.write(int(ready), b"ready\n")
        os.close(int(ready))


def _send_output_to(log: str) -> None:
    """From here on, the process's stdout and stderr (and its children's) append to `log`."""
    sys.stdout.flush()
    sys.stderr.flush()
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


def _run(target: list[str], args: list[str]) -> int:
    """Run `target` with `args` as `python TARGET ARGS` would; its exit code.

    The target's code runs in a new __main__ module, compiled under its own file name rather than through
    runpy: RLlib's connectors call inspect.stack() as they are built, and each frame of a file that does not
    exist (runpy's "<frozen runpy>") makes inspect search every loaded module, again and again
    (bench/trial_start.py measures the start-up with and without).
    """
    try:
        if target[0] == "-c":
            sys.argv = ["-c", *target[2:], *args]
            _run_code(target[1], "<string>", os.getcwd(), None)  # `python -c` puts the working directory first
        else:
            spec = _module_main(target[1]) if target[0] == "-m" else None
            path = spec.origin if spec is not None and spec.origin else os.path.abspath(target[0])
            sys.argv = [path, *args]
            # `python -m` puts the working directory first, `python SCRIPT` the script's directory.
            _run_code(Path(path).read_text(), path, os.getcwd() if spec is not None else os.path.dirname(path), spec)
    except SystemExit as end:
        return _exit_code(end.code)
    except BaseException:  # as the interpreter reports an uncaught exception
        traceback.print_exc()
        return 1
    return 0


def _module_main(name: str) -> importlib.machinery.ModuleSpec:
    """The spec of what `python -m name` runs: the module, or a package's __main__."""
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(f"No module named {name}")
    return _module_main(f"{name}.__main__") if spec.submodule_search_locations is not None else spec


def _run_code(source: str, filename: str, path_first: str, spec: importlib.machinery.ModuleSpec | None) -> None:
    main = types.ModuleType("__main__")
    main.__file__ = filename
    main.__spec__ = spec
    main.__package__ = spec.parent if spec is not None else None
    sys.modules["__main__"] = main
    sys.path[0] = path_first
    exec(compile(source, filename, "exec"), main.__dict__)  # noqa: S102 - what `python` does with a target


def _exit_code(code: Any) -> int:
    """The exit status `sys.exit(code)` gives a process."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


if __name__ == "__main__":
    main()
