"""The user's code directory: checked, and bundled with our entry program as SageMaker ships a source_dir."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

import pytest

from sagemaker_rl import user_code
from sagemaker_rl.errors import UserError
from sagemaker_rl.sagemaker import entry_point, problem_of
from sagemaker_rl.tuning.runners import run_dir_of

ENTRYPOINTS = Path(__file__).resolve().parents[1] / "entrypoints"


def _code_dir(root: Path) -> Path:
    code = root / "my_code"
    (code / "my_pkg" / "__pycache__").mkdir(parents=True)
    (code / "my_pkg" / "__init__.py").write_text("")
    (code / "my_pkg" / "envs.py").write_text("X = 1\n")
    (code / "my_pkg" / "__pycache__" / "envs.cpython-311.pyc").write_bytes(b"\0")
    (code / "stale.pyc").write_bytes(b"\0")
    (code / ".git").mkdir()
    (code / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (code / "requirements.txt").write_text("./tinypkg\n")
    return code


def test_the_bundle_holds_the_users_files_and_our_program_at_its_root_without_caches(tmp_path):
    bundle = user_code.make_bundle(_code_dir(tmp_path), "train-env.py", tmp_path / "run")
    assert bundle == tmp_path / "run" / "sourcedir.tar.gz"
    with tarfile.open(bundle, "r:gz") as archive:
        assert sorted(archive.getnames()) == ["my_pkg/__init__.py", "my_pkg/envs.py", "requirements.txt",
                                              "train-env.py"]
        program = archive.extractfile("train-env.py")
        assert program is not None and program.read() == (ENTRYPOINTS / "train-env.py").read_bytes()
    assert not list((tmp_path / "run").glob(".*partial"))


def test_a_named_problems_program_is_bundled_for_it(tmp_path):
    bundle = user_code.make_bundle(_code_dir(tmp_path), entry_point("hopper"), tmp_path)
    with tarfile.open(bundle, "r:gz") as archive:
        assert "train-hopper.py" in archive.getnames()


def test_a_code_directory_that_holds_our_programs_name_is_refused_in_one_sentence(tmp_path):
    code = _code_dir(tmp_path)
    (code / "train-env.py").write_text("")
    with pytest.raises(UserError, match=r"already holds a file named train-env.py.*rename yours") as refused:
        user_code.make_bundle(code, "train-env.py", tmp_path / "run")
    assert "\n" not in str(refused.value) and not (tmp_path / "run" / "sourcedir.tar.gz").exists()


def test_a_missing_directory_or_a_file_is_refused_naming_the_path_and_the_fix(tmp_path):
    with pytest.raises(UserError, match=f"the code directory {tmp_path / 'nope'} does not exist: give --code-dir"):
        user_code.check_code_dir(tmp_path / "nope")
    (tmp_path / "file.py").write_text("")
    with pytest.raises(UserError, match=f"the code directory {tmp_path / 'file.py'} is a file: give --code-dir"):
        user_code.check_code_dir(tmp_path / "file.py")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every directory")
def test_an_unreadable_directory_is_refused(tmp_path):
    code = _code_dir(tmp_path)
    code.chmod(0)
    try:
        with pytest.raises(UserError, match="cannot be read: make it readable"):
            user_code.check_code_dir(code)
    finally:
        code.chmod(0o755)


def test_a_directory_over_the_limit_is_refused_with_its_size(tmp_path, monkeypatch):
    code = _code_dir(tmp_path)
    (code / "data.bin").write_bytes(b"\0" * (3 * 2**20))
    monkeypatch.setattr(user_code, "MAX_BYTES", 2 * 2**20)
    with pytest.raises(UserError, match=r"holds 3 MB, over the 2 MB allowed: keep data and outputs out of it"):
        user_code.make_bundle(code, "train-env.py", tmp_path / "run")


def test_the_snapshot_copies_what_the_bundle_holds(tmp_path):
    snapshot = user_code.copy_code(_code_dir(tmp_path), tmp_path / "run" / "code")
    files = sorted(path.relative_to(snapshot).as_posix() for path in snapshot.rglob("*") if path.is_file())
    assert files == ["my_pkg/__init__.py", "my_pkg/envs.py", "requirements.txt"]
    assert user_code.requirements(snapshot) == snapshot / "requirements.txt"


def test_the_entry_program_of_no_problem_is_train_env_and_problem_of_still_reads_named_ones():
    assert entry_point(None) == "train-env.py" and (ENTRYPOINTS / "train-env.py").is_file()
    assert entry_point("reacher") == "train-reacher.py"
    assert problem_of("train-reacher.py") == "reacher" and problem_of("train-env.py") is None


def test_a_runs_jobs_share_the_run_directory_and_a_lone_job_is_its_own(tmp_path):
    assert run_dir_of(tmp_path / "run" / "trials" / "0003" / "seed-1") == tmp_path / "run"
    assert run_dir_of(tmp_path / "run" / "trials" / "0003") == tmp_path / "run"
    assert run_dir_of(tmp_path / "train-1") == tmp_path / "train-1"
