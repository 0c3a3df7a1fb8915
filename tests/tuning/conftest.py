"""Shared helpers of the tuning tests."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from sagemaker_rl.tuning import LocalProcessRunner

FAKE_JOB = Path(__file__).with_name("fake_job.py")  # a test double of the job contract, not the real job


@pytest.fixture
def fake_runner() -> LocalProcessRunner:
    """A runner that starts the contract's test double instead of `python -m sagemaker_rl.job`."""
    return LocalProcessRunner([sys.executable, str(FAKE_JOB)])
