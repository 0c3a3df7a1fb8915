"""The user's code directory: checked, and bundled with our entry program as SageMaker ships a `source_dir`.

A job whose env is the user's own (`rl.env.id = my_pkg.envs:MyRobot`) needs their modules importable in
its driver and in its Ray env runners. Each backend ships the directory the way its platform does: on
PYTHONPATH (local process), as `sourcedir.tar.gz` named by the `sagemaker_submit_directory` hyperparameter
(container, SageMaker: the toolkit extracts it into /opt/ml/code, installs its requirements.txt and runs
the entry program from there), or as a Ray Job's `working_dir` (Ray cluster). The archive is made once per
run, so every trial of a run trains the same snapshot of the code. This module loads neither torch nor ray.
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import tarfile
from collections.abc import Iterator
from pathlib import Path

from sagemaker_rl.errors import UserError

logger = logging.getLogger(__name__)

BUNDLE_FILE = "sourcedir.tar.gz"  # the SageMaker SDK's name for an uploaded source_dir
REQUIREMENTS_FILE = "requirements.txt"  # the toolkit runs `pip install -r` on it in /opt/ml/code
MAX_BYTES = 100 * 1024 * 1024  # a code directory is code, not data: SageMaker downloads it on every host
SKIPPED_DIRS = frozenset({"__pycache__", ".git"})
SKIPPED_SUFFIXES = (".pyc",)
ENTRYPOINTS_ENV = "SAGEMAKER_RL_ENTRYPOINTS"  # where the image keeps our entry programs
_ENTRYPOINT_DIRS = (Path(__file__).resolve().parents[1] / "entrypoints", Path("/opt/sagemaker-rl/entrypoints"))


def entry_point(problem: str | None) -> str:
    """Our program in /opt/ml/code for `problem`: train-<problem>.py, or train-env.py for the env in rl.env.*."""
    return "train-env.py" if problem is None else f"train-{problem}.py"


def check_code_dir(code_dir: Path | str) -> Path:
    """The absolute code directory; UserError for a missing or unreadable one, a file, or one over MAX_BYTES."""
    path = Path(code_dir).expanduser()
    if not path.exists():
        raise UserError(f"the code directory {path} does not exist: give --code-dir the directory that holds "
                        "your env's modules")
    if not path.is_dir():
        raise UserError(f"the code directory {path} is a file: give --code-dir the directory that holds it")
    if not os.access(path, os.R_OK | os.X_OK):
        raise UserError(f"the code directory {path} cannot be read: make it readable (chmod u+rx) or give "
                        "another directory")
    total = sum(file.stat().st_size for file in _files(path))
    if total > MAX_BYTES:
        raise UserError(f"the code directory {path} holds {total / 2**20:.0f} MB, over the {MAX_BYTES // 2**20} MB "
                        "allowed: keep data and outputs out of it (SageMaker downloads it on every host)")
    return path.absolute()


def _files(code_dir: Path) -> Iterator[Path]:
    """The files that travel: all but SKIPPED_DIRS and compiled Python, in a stable order."""
    for root, dirs, names in os.walk(code_dir, onerror=_unreadable):
        dirs[:] = sorted(name for name in dirs if name not in SKIPPED_DIRS)
        for name in sorted(names):
            if not name.endswith(SKIPPED_SUFFIXES):
                yield Path(root, name)


def _unreadable(error: OSError) -> None:
    raise UserError(f"the code directory cannot be read at {error.filename} ({error.strerror}): make it readable "
                    "or move it out of the code directory")


def entry_program(program: str) -> Path:
    """Our entry program's file (the repository's entrypoints/, or the image's); UserError if neither has it."""
    dirs = [Path(os.environ[ENTRYPOINTS_ENV])] if os.environ.get(ENTRYPOINTS_ENV) else []
    for directory in [*dirs, *_ENTRYPOINT_DIRS]:
        if (directory / program).is_file():
            return directory / program
    raise UserError(f"our entry program {program} was not found in {', '.join(map(str, _ENTRYPOINT_DIRS))}: "
                    f"run from a checkout of the project, or set ${ENTRYPOINTS_ENV} to its entrypoints directory")


def make_bundle(code_dir: Path, program: str, destination: Path) -> Path:
    """Write `destination`/sourcedir.tar.gz: the code directory's files and our `program` at its root."""
    code_dir = check_code_dir(code_dir)
    if (code_dir / program).exists():
        raise UserError(f"the code directory {code_dir} already holds a file named {program}, the entry program "
                        "the job is started with: rename yours")
    source = entry_program(program).read_bytes()
    destination.mkdir(parents=True, exist_ok=True)
    path = destination / BUNDLE_FILE
    partial = path.with_name(f".{BUNDLE_FILE}.partial")
    with tarfile.open(partial, "w:gz") as archive:
        for file in _files(code_dir):
            archive.add(file, arcname=file.relative_to(code_dir).as_posix(), recursive=False)
        info = tarfile.TarInfo(program)
        info.size, info.mode = len(source), 0o644
        archive.addfile(info, io.BytesIO(source))
    partial.replace(path)
    logger.info("bundled %s with %s into %s (%d bytes)", code_dir, program, path, path.stat().st_size)
    return path


def copy_code(code_dir: Path, destination: Path) -> Path:
    """A snapshot of the code directory's files (as bundled, without our program) in `destination`, replaced."""
    code_dir = check_code_dir(code_dir)
    if destination.exists():
        shutil.rmtree(destination)
    for file in _files(code_dir):
        target = destination / file.relative_to(code_dir)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(file, target)
    destination.mkdir(parents=True, exist_ok=True)
    return destination


def requirements(code_dir: Path) -> Path | None:
    """The code directory's requirements.txt, if it has one."""
    path = Path(code_dir) / REQUIREMENTS_FILE
    return path if path.is_file() else None
