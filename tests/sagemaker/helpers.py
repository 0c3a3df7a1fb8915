"""Shared values and helpers of the SageMaker tests (moto's gaps are worked around where they are met)."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import botocore.session

from sagemaker_rl.sagemaker import LOG_GROUP, SageMakerConfig
from sagemaker_rl.tuning import CategoricalParameter, ContinuousParameter, IntegerParameter, SearchSpace, TuningConfig

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/sagemaker-rl:cpu"
ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"
ACCOUNT_BUCKET = "sagemaker-us-east-1-123456789012"  # moto's STS answers with account 123456789012
SERVICE = botocore.session.get_session().get_service_model("sagemaker")


def input_shape(operation: str):
    return SERVICE.operation_model(operation).input_shape


def sm_config(**changes) -> SageMakerConfig:
    return SageMakerConfig(image=IMAGE, role=ROLE, **changes)


def tuning_config(tmp_path: Path, **changes) -> TuningConfig:
    space = SearchSpace(
        (
            ContinuousParameter("rl.training.config.kl_coeff", 0.5, 1.0),
            IntegerParameter("rl.training.config.num_epochs", 3, 50),
            ContinuousParameter("rl.training.config.gamma", 0.9, 0.999, "ReverseLogarithmic"),
            CategoricalParameter("rl.training.config.batch_mode", ("complete_episodes", "truncate_episodes")),
        ),
        {"rl.training.stop.training_iteration": 20, "rl.training.config.model_config.fcnet_hiddens": [64, 64]},
    )
    settings = {"problem": "reacher", "space": space, "max_jobs": 6, "max_parallel_jobs": 3,
                "run_dir": tmp_path / "run", "sampler_seed": 11, **changes}
    return TuningConfig(**settings)


def record_bodies(client, operation: str) -> list[dict]:
    """The JSON bodies the client really sends for `operation` (botocore's before-send event)."""
    bodies: list[dict] = []

    def record(request, **kwargs):
        bodies.append(json.loads(request.body))

    client.meta.events.register(f"before-send.sagemaker.{operation}", record)
    return bodies


def replay_states(client, operation: str, states: list[dict], on_call=None) -> None:
    """moto marks every job Completed the moment it is created and offers no way to move it through
    its states. This rewrites the parsed answers of `operation` (after the real HTTP round trip) with
    the states a real job passes through, one per call; the last state repeats. `on_call(n)` runs first."""
    calls = []

    def rewrite(parsed, **kwargs):
        calls.append(1)
        if on_call:
            on_call(len(calls))
        parsed.update(states[min(len(calls), len(states)) - 1])

    client.meta.events.register(f"after-call.sagemaker.{operation}", rewrite)


def put_events(aws, stream: str, messages: list[str]) -> None:
    with _ignore_exists():
        aws.logs.create_log_group(logGroupName=LOG_GROUP)
    with _ignore_exists():
        aws.logs.create_log_stream(logGroupName=LOG_GROUP, logStreamName=stream)
    now = int(datetime.datetime.now().timestamp() * 1000)
    aws.logs.put_log_events(logGroupName=LOG_GROUP, logStreamName=stream,
                            logEvents=[{"timestamp": now + i, "message": m} for i, m in enumerate(messages)])


class _ignore_exists:
    def __enter__(self):
        return self

    def __exit__(self, kind, error, tb):
        return kind is not None and "ResourceAlreadyExists" in str(error)
