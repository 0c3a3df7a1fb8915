"""The --backend flag and the SageMaker flags that scripts/train.py and scripts/tune.py share."""

from __future__ import annotations

import argparse
import functools
from typing import Any

from sagemaker_rl.errors import UserError
from sagemaker_rl.sagemaker import POLL_S, Aws, SageMakerConfig, connect

LOCAL, SAGEMAKER = "local", "sagemaker"
# dest -> flag of every option that only --backend sagemaker reads
_FLAGS = {
    "image": "--image", "role": "--role", "instance_type": "--instance-type", "instance_count": "--instance-count",
    "volume_size": "--volume-size", "max_run": "--max-run", "spot": "--spot", "max_wait": "--max-wait",
    "output_s3": "--output-s3", "checkpoint_s3": "--checkpoint-s3", "job_name": "--job-name", "tag": "--tag",
    "region": "--region", "profile": "--profile", "endpoint_url": "--endpoint-url", "wait": "--wait",
    "attach": "--attach", "poll_seconds": "--poll-seconds",
}


def add_arguments(parser: argparse.ArgumentParser, *, job: str) -> None:
    """--backend, and the SageMaker options in their own help section; `job` is 'training' or 'tuning'."""
    parser.add_argument("--backend", choices=(LOCAL, SAGEMAKER), default=LOCAL,
                        help=f"run locally (default), or as a SageMaker {job} job")
    group = parser.add_argument_group("SageMaker (--backend sagemaker; region and credentials from the usual "
                                      "AWS configuration)")
    # Absent unless given (no default shown in help): a SageMaker option given to a local run is an error.
    add = functools.partial(group.add_argument, default=argparse.SUPPRESS)
    add("--image", help="training image URI in ECR (make build push)")
    add("--role", help="ARN of the IAM role SageMaker assumes, e.g. arn:aws:iam::123456789012:role/SageMakerRole")
    add("--instance-type", help="instance type of each host (default: ml.m5.xlarge)")
    add("--instance-count", type=int, help="hosts per job (default: 1)")
    add("--volume-size", type=int, metavar="GB", help="storage per host (default: 30)")
    add("--max-run", type=int, metavar="SECONDS", help="SageMaker stops a job after this (default: 86400)")
    add("--spot", action="store_true", help="managed spot training")
    add("--max-wait", type=int, metavar="SECONDS", help="spot: most time incl. waiting for capacity "
        "(default: twice --max-run)")
    add("--output-s3", metavar="S3_URI", help="where models go (default: s3://sagemaker-REGION-ACCOUNT/)")
    if job == "training":
        add("--checkpoint-s3", metavar="S3_URI", help="S3 prefix synced with /opt/ml/checkpoints; a job resumes "
            "from it (default with --spot: OUTPUT/JOB/checkpoints/)")
    add("--job-name", help=f"name of the {job} job (default: from the problem and the time)")
    add("--tag", action="append", metavar="KEY=VALUE", help="a tag on the job (repeatable)")
    add("--region", help="AWS region (default: AWS_DEFAULT_REGION or the profile's)")
    add("--profile", help="AWS profile (default: AWS_PROFILE or default)")
    add("--endpoint-url", help="SageMaker, CloudWatch Logs, S3 and STS endpoint (for testing, e.g. a moto server)")
    add("--wait", action="store_true", help="follow the job until it ends")
    add("--attach", metavar="JOB_NAME", help=f"follow a {job} job started earlier (implies --wait)")
    add("--poll-seconds", type=float, metavar="SECONDS", help=f"between status checks (default: {POLL_S:g})")


def value(args: argparse.Namespace, dest: str) -> Any:
    """A SageMaker option's value, None when not given."""
    return getattr(args, dest, None)


def check_backend(args: argparse.Namespace, *, local_only: dict[str, str]) -> None:
    """UserError for a SageMaker option given to a local run, or a local-only option (dest -> flag) to SageMaker."""
    if args.backend == LOCAL:
        given = [flag for dest, flag in _FLAGS.items() if hasattr(args, dest)]
        if given:
            raise UserError(f"{given[0]} applies to --backend sagemaker: add --backend sagemaker or drop {given[0]}")
        return
    given = [flag for dest, flag in local_only.items() if getattr(args, dest, None) not in (None, False, [])]
    if given:
        raise UserError(f"{given[0]} applies to --backend local only: drop it for --backend sagemaker")


def config(args: argparse.Namespace) -> SageMakerConfig:
    """The SageMaker settings the flags give (validated: a missing role or image is a UserError)."""
    tags = {}
    for item in value(args, "tag") or []:
        key, sep, text = item.partition("=")
        if not sep:
            raise UserError(f"--tag expects KEY=VALUE, got {item!r}")
        tags[key.strip()] = text.strip()
    fields = {"instance_type": "instance_type", "instance_count": "instance_count", "volume_size_gb": "volume_size",
              "max_run_s": "max_run", "spot": "spot", "max_wait_s": "max_wait", "output_s3": "output_s3",
              "checkpoint_s3": "checkpoint_s3", "job_name": "job_name"}
    given = {field: value(args, dest) for field, dest in fields.items() if hasattr(args, dest)}
    return SageMakerConfig(image=value(args, "image"), role=value(args, "role"), tags=tags, **given)


def aws(args: argparse.Namespace) -> Aws:
    return connect(region=value(args, "region"), profile=value(args, "profile"),
                   endpoint_url=value(args, "endpoint_url"))


def poll_seconds(args: argparse.Namespace) -> float:
    return POLL_S if value(args, "poll_seconds") is None else max(0.0, args.poll_seconds)


def follow_command(script: str, name: str, args: argparse.Namespace, *, run_dir: object = None) -> str:
    """The command that follows the job `name` again (writing a tuning job's results to `run_dir`)."""
    given = (("region", "--region"), ("profile", "--profile"), ("endpoint_url", "--endpoint-url"))
    extra = "".join(f" {flag} {value(args, dest)}" for dest, flag in given if value(args, dest))
    where = f" --run-dir {run_dir}" if run_dir else ""
    return f"python scripts/{script} --backend sagemaker --attach {name}{extra}{where}"
