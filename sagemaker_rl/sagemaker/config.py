"""SageMaker settings: where and how a job runs, checked when built; job names and entry points."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from sagemaker_rl import user_code
from sagemaker_rl.errors import UserError, check_count
from sagemaker_rl.job import PROBLEMS

_ROLE_ARN = re.compile(r"^arn:aws[a-z\-]*:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+$")  # SageMaker's RoleArn
_S3_URI = re.compile(r"^s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9](/\S*)?$")
_JOB_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9])*$")
_NAME_LIMITS = {"training": 63, "tuning": 32}  # SageMaker's longest TrainingJobName / HyperParameterTuningJobName
_ROLE_EXAMPLE = "arn:aws:iam::123456789012:role/SageMakerRole"
_IMAGE_EXAMPLE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/sagemaker-rl:cpu"


@dataclass(frozen=True)
class SageMakerConfig:
    """Where and how SageMaker runs a training job, or each training job of a tuning job."""

    image: str | None  # URI of the training image (ECR); it keeps the entrypoints in /opt/ml/code
    role: str | None  # ARN of the IAM role SageMaker assumes to run the job
    instance_type: str = "ml.m5.xlarge"  # ML instance type of each host
    instance_count: int = 1  # hosts per job
    volume_size_gb: int = 30  # storage volume per host
    max_run_s: int = 86_400  # MaxRuntimeInSeconds: SageMaker stops a job that trains longer
    spot: bool = False  # managed spot training
    max_wait_s: int | None = None  # spot: MaxWaitTimeInSeconds, capacity waits included (None: 2 x max_run_s)
    output_s3: str | None = None  # S3 prefix of the model artifacts (None: s3://sagemaker-REGION-ACCOUNT/)
    checkpoint_s3: str | None = None  # S3 prefix synced with the job's checkpoints (None: under output_s3 for spot)
    job_name: str | None = None  # name of the training or tuning job (None: from the problem and the time)
    tags: Mapping[str, str] = field(default_factory=dict)  # added to the job, with sagemaker-rl:problem

    def __post_init__(self) -> None:
        if not self.image or not self.image.strip():
            raise UserError(f"no training image given: SageMaker runs jobs in a container image, so give the "
                            f"URI of the one pushed with `make build push`, e.g. --image {_IMAGE_EXAMPLE}")
        if re.search(r"\s", self.image) or len(self.image) > 255:
            raise UserError(f"image {self.image!r} is not an image URI: give one such as {_IMAGE_EXAMPLE}")
        if not self.role or not self.role.strip():
            raise UserError(f"no IAM role given: SageMaker needs the ARN of a role it can assume to run the "
                            f"job, e.g. --role {_ROLE_EXAMPLE}")
        if not _ROLE_ARN.match(self.role):
            raise UserError(f"role {self.role!r} is not an IAM role ARN: give one such as {_ROLE_EXAMPLE}")
        if not self.instance_type.startswith("ml."):
            raise UserError(f"instance type {self.instance_type!r} is not a SageMaker instance type: "
                            "use one such as ml.m5.xlarge or ml.c5.2xlarge")
        for name in ("instance_count", "volume_size_gb", "max_run_s", "max_wait_s"):
            check_count(name, getattr(self, name), optional=True)
        if self.max_wait_s is not None and not self.spot:
            raise UserError("max_wait_s applies to spot training only: turn spot training on or drop max_wait_s")
        if self.max_wait_s is not None and self.max_wait_s < self.max_run_s:
            raise UserError(f"max_wait_s ({self.max_wait_s}) must be >= max_run_s ({self.max_run_s}): "
                            "a spot job's wait includes its training time")
        for name in ("output_s3", "checkpoint_s3"):
            value = getattr(self, name)
            if value is not None and not _S3_URI.match(value):
                raise UserError(f"{name} {value!r} is not an S3 URI: give one such as s3://my-bucket/sagemaker-rl/")
        for key in self.tags:
            if not key or key.startswith("aws:"):
                raise UserError(f"tag key {key!r} is not allowed: give a non-empty key that does not start with aws:")

    @property
    def max_wait(self) -> int:
        """MaxWaitTimeInSeconds of a spot job."""
        return self.max_wait_s or 2 * self.max_run_s


def entry_point(problem: str | None) -> str:
    """The script of `problem` in entrypoints/ (copied to /opt/ml/code in the image); train-env.py for None."""
    return user_code.entry_point(problem)


def problem_of(program: str) -> str | None:
    """The problem whose entry point is `program`, or None."""
    return next((problem for problem in PROBLEMS if entry_point(problem) == program), None)


def job_name(problem: str | None, kind: str = "training", name: str | None = None) -> str:
    """`name` checked against SageMaker's rules, or a new one from the problem (`env` for None) and the time."""
    limit = _NAME_LIMITS[kind]
    problem = problem or "env"
    if name is None:
        millis = int(time.time() * 1000) % 1000
        stamp = f"{time.strftime('%y%m%d-%H%M%S')}-{millis:03d}"
        return f"sagemaker-rl-{problem}-{stamp}" if kind == "training" else f"rl-{problem}-{stamp}"
    if len(name) > limit or not _JOB_NAME.match(name):
        raise UserError(f"{kind} job name {name!r} is not valid: use up to {limit} letters, digits and "
                        "hyphens, starting with a letter or digit")
    return name
