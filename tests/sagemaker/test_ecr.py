"""`make push` to ECR: the repository is created when missing and a login password is returned.

Against the moto server of conftest (real HTTP on 127.0.0.1): ECR itself cannot be reached from here, and
moto serves the ECR API but not an image registry, so `docker login` is not run.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys

import boto3
import pytest

from sagemaker_rl.sagemaker import ecr

REGISTRY = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"


@pytest.fixture
def aws(endpoint, aws_env, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)  # honoured by boto3, as `make push` would see it
    return {**aws_env, "AWS_ENDPOINT_URL": endpoint}


def _repositories() -> list[str]:
    client = boto3.client("ecr", region_name="eu-west-1")
    return [repo["repositoryName"] for repo in client.describe_repositories()["repositories"]]


def test_login_creates_the_missing_repository_once_and_returns_the_password(aws):
    password = ecr.login(f"{REGISTRY}/sagemaker-rl")
    assert _repositories() == ["sagemaker-rl"]
    token = boto3.client("ecr", region_name="eu-west-1").get_authorization_token()["authorizationData"][0]
    assert base64.b64decode(token["authorizationToken"]).decode() == f"AWS:{password}"
    ecr.login(f"{REGISTRY}/sagemaker-rl")  # already there: not created again, no error
    assert _repositories() == ["sagemaker-rl"]


def test_the_command_prints_only_the_password_for_docker_login(aws):
    result = subprocess.run([sys.executable, "-m", "sagemaker_rl.sagemaker.ecr", "login", f"{REGISTRY}/team/rl"],
                            capture_output=True, text=True, env={**os.environ, **aws}, timeout=60)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 1 and result.stdout.strip()
    assert "created ECR repository team/rl" in result.stderr
    assert _repositories() == ["team/rl"]


@pytest.mark.parametrize("uri", ["127.0.0.1:5000/sagemaker-rl", f"{REGISTRY}", "12345.dkr.ecr.x.amazonaws.com/a"])
def test_a_registry_that_is_not_ecr_is_named_in_the_error(uri):
    result = subprocess.run([sys.executable, "-m", "sagemaker_rl.sagemaker.ecr", "login", uri], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2
    assert f"{uri!r} is not an ECR repository" in result.stderr
