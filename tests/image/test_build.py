"""`make build`: what a docker without buildx is told, and no lent wheels left after a failed build."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.conftest import REPO
from tests.image.test_image import DOCKER

WHEELS = REPO / "docker" / "wheels"


def _make_build(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["make", "--no-print-directory", "build", "VARIANT=cpu", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=600)


def _docker_without_buildx() -> bool:
    docker = shutil.which("docker")
    if docker is None:
        return False
    version = subprocess.run([docker, "--version"], capture_output=True, text=True).stdout
    major = version.removeprefix("Docker version ").split(".")[0]
    has_buildx = subprocess.run([docker, "buildx", "version"], capture_output=True).returncode == 0
    return version.startswith("Docker version") and major.isdigit() and int(major) >= 23 and not has_buildx


@pytest.mark.skipif(not _docker_without_buildx(), reason="needs a docker CLI >= 23 without buildx on PATH")
def test_docker_without_buildx_is_told_what_to_install(tmp_path):
    (tmp_path / "lent.whl").write_text("not a real wheel")
    built = _make_build("DOCKER=docker", f"WHEELS={tmp_path}")
    assert built.returncode != 0
    assert "has no buildx" in built.stderr and "apt install docker-buildx" in built.stderr, built.stderr
    assert "make build DOCKER=podman" in built.stderr
    assert "unknown flag" not in built.stderr + built.stdout  # stopped before the legacy builder ran
    assert not list(WHEELS.glob("*.whl"))


def test_a_failed_build_leaves_no_lent_wheels(tmp_path):
    (tmp_path / "lent.whl").write_text("not a real wheel")
    built = _make_build(f"DOCKER={DOCKER}", f"WHEELS={tmp_path}", "BASE_IMAGE=localhost/sagemaker-rl-no-such-base")
    assert built.returncode != 0, built.stdout[-2000:]
    assert "no-such-base" in built.stdout + built.stderr
    assert not list(WHEELS.glob("*.whl"))
