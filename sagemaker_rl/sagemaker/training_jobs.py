"""SageMaker training jobs: starting one, streaming its reward lines from CloudWatch, and its outcome."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from sagemaker_rl import metrics, user_code
from sagemaker_rl.console import Console
from sagemaker_rl.contract import SUBMIT_DIRECTORY_KEY, encode_hyperparameters
from sagemaker_rl.sagemaker.aws import Aws, aws_errors, default_output_s3, upload_code
from sagemaker_rl.sagemaker.config import SageMakerConfig, job_name
from sagemaker_rl.sagemaker.requests import training_hyperparameters, training_job_request

logger = logging.getLogger(__name__)

LOG_GROUP = "/aws/sagemaker/TrainingJobs"  # where SageMaker sends a training job's stdout
DONE = ("Completed", "Failed", "Stopped")  # final states of training and tuning jobs
POLL_S = 15.0  # seconds between Describe calls while waiting


def start_training_job(
    aws: Aws, problem: str | None, hyperparameters: Mapping[str, Any], config: SageMakerConfig, *, out: IO[str],
    code_dir: Path | None = None,
) -> str:
    """Check the hyperparameters, upload the user's `code_dir` (if any), then CreateTrainingJob; returns the job's
    name."""
    name = job_name(problem, "training", config.job_name)
    code_dir = user_code.check_code_dir(code_dir) if code_dir is not None else None
    encoded = training_hyperparameters(problem, hyperparameters, code_dir=code_dir)  # before any AWS call
    output_s3 = config.output_s3 or default_output_s3(aws, out)
    if code_dir is not None:
        submit = upload_code(aws, code_dir, problem, output_s3=output_s3, name=name, out=out)
        encoded.update(encode_hyperparameters({SUBMIT_DIRECTORY_KEY: submit}))
    request = training_job_request(problem, encoded, config, name=name, output_s3=output_s3)
    with aws_errors(f"create training job {name}"):
        aws.sagemaker.create_training_job(**request)
    resources = f"{config.instance_count} x {config.instance_type}{', spot' if config.spot else ''}"
    print(f"started training job {name} ({resources}) in {aws.region}", file=out, flush=True)
    return name


class LogStreamer:
    """New reward lines of a training job's CloudWatch log streams (one stream per host), each returned once."""

    def __init__(self, logs: Any, job: str) -> None:
        self._logs = logs
        self._job = job
        self._tokens: dict[str, str] = {}  # stream -> nextForwardToken after the last event read

    def poll(self) -> list[str]:
        streams = self._streams()
        lines = []
        for stream in streams:
            host = stream.split("/", 1)[-1].rsplit("-", 1)[0]  # JOB/algo-1-1700000000 -> algo-1
            for message in self._new_messages(stream):
                for text in message.splitlines():
                    if metrics.parse_line(text):
                        lines.append(f"[{host}] {text}" if len(streams) > 1 else text)
        return lines

    def _streams(self) -> list[str]:
        from botocore.exceptions import ClientError

        streams: list[str] = []
        try:
            pages = self._logs.get_paginator("describe_log_streams").paginate(
                logGroupName=LOG_GROUP, logStreamNamePrefix=f"{self._job}/")
            for page in pages:
                streams += [stream["logStreamName"] for stream in page.get("logStreams", [])]
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
                raise
            logger.debug("no log group %s yet: %s", LOG_GROUP, error)  # the job has not started yet
        return sorted(streams)

    def _new_messages(self, stream: str) -> list[str]:
        messages: list[str] = []
        while True:
            token = self._tokens.get(stream)
            request = {"logGroupName": LOG_GROUP, "logStreamName": stream, "startFromHead": True}
            response = self._logs.get_log_events(**request, **({"nextToken": token} if token else {}))
            events = response.get("events", [])
            messages += [event["message"] for event in events]
            next_token = response.get("nextForwardToken")
            if next_token:
                self._tokens[stream] = next_token
            if not events or not next_token or next_token == token:  # the same token back: the end
                return messages


def wait_for_training_job(aws: Aws, name: str, *, out: IO[str], poll_s: float = POLL_S) -> dict[str, Any]:
    """Show status changes and stream the reward lines until the job ends; returns its last description."""
    console = Console(out)
    streamer = LogStreamer(aws.logs, name)
    last = ""
    while True:
        with aws_errors(f"describe training job {name}"):
            description = aws.sagemaker.describe_training_job(TrainingJobName=name)
        status, secondary = description["TrainingJobStatus"], description.get("SecondaryStatus", "")
        state = f"{status} ({secondary})" if secondary and secondary != status else status
        if state != last:
            console.say(f"training job {name}: {state}")
            last = state
        with aws_errors(f"read the logs of training job {name}"):
            lines = streamer.poll()
        for line in lines:
            print(line, file=out, flush=True)
        if status in DONE:
            return description
        time.sleep(poll_s)


def training_outcome(description: Mapping[str, Any], *, out: IO[str]) -> int:
    """Print how a training job ended and where its model is; returns the exit code (0: completed)."""
    name, status = description["TrainingJobName"], description["TrainingJobStatus"]
    model = description.get("ModelArtifacts", {}).get("S3ModelArtifacts")
    billed = description.get("BillableTimeInSeconds")
    if status == "Completed":
        print(f"Model written to {model}" + (f" ({billed} s billed)" if billed else ""), file=out, flush=True)
        return 0
    if status == "Failed":
        print(f"training job {name} failed: {description.get('FailureReason', 'no reason given')}", file=out)
    else:
        saved = f"; the model it saved is at {model}" if model else ""
        print(f"training job {name} was {status.lower()}{saved}", file=out)
    out.flush()
    return 1
