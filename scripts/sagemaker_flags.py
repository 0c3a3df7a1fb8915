"""The --backend flag and the SageMaker and container flags that scripts/train.py and scripts/tune.py share."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sagemaker_rl import api
from sagemaker_rl.errors import UserError
from sagemaker_rl.sagemaker import POLL_S, Aws, SageMakerConfig, connect

LOCAL, CONTAINER, RAY, SAGEMAKER = "local", "container", "ray", "sagemaker"
_DEFAULTS = {item.name: item.default for item in dataclasses.fields(SageMakerConfig)}  # shown in the help


@dataclass(frozen=True)
class _Flag:
    """One option that only --backend sagemaker (and, for some, --backend container) reads."""

    flag: str  # e.g. --instance-type; its argparse dest is instance_type
    help: str  # "{default}" is replaced by the SageMakerConfig field's default
    field: str | None = None  # the SageMakerConfig field it sets (None: read by the scripts themselves)
    kind: type | None = None
    metavar: str | None = None
    action: str | None = None
    jobs: tuple[str, ...] = ("training", "tuning")  # the job kinds that take it
    backends: tuple[str, ...] = (SAGEMAKER,)  # the backends that read it

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")


# The one list of SageMaker options: the parser, the local-run check and the config are built from it.
_FLAGS = (
    _Flag("--image", "training image: its URI in ECR for --backend sagemaker (make build push); a local tag for "
          "--backend container (default: sagemaker-rl:VERSION-cpu, from make build)", "image",
          backends=(SAGEMAKER, CONTAINER)),
    _Flag("--role", "ARN of the IAM role SageMaker assumes, e.g. arn:aws:iam::123456789012:role/SageMakerRole",
          "role"),
    _Flag("--instance-type", "instance type of each host (default: {default})", "instance_type"),
    _Flag("--instance-count", "hosts per job, one Ray cluster (default: {default}; --backend container: "
          "one container each, sharing this machine's cores)", "instance_count", int,
          backends=(SAGEMAKER, CONTAINER)),
    _Flag("--volume-size", "storage per host (default: {default})", "volume_size_gb", int, "GB"),
    _Flag("--max-run", "SageMaker stops a job after this (default: {default})", "max_run_s", int, "SECONDS"),
    _Flag("--spot", "managed spot training", "spot", action="store_true"),
    _Flag("--max-wait", "spot: most time incl. waiting for capacity (default: twice --max-run)", "max_wait_s", int,
          "SECONDS"),
    _Flag("--output-s3", "where models go (default: s3://sagemaker-REGION-ACCOUNT/)", "output_s3", metavar="S3_URI"),
    _Flag("--checkpoint-s3", "S3 prefix synced with /opt/ml/checkpoints; a job resumes from it (default with "
          "--spot: OUTPUT/JOB/checkpoints/)", "checkpoint_s3", metavar="S3_URI", jobs=("training",)),
    _Flag("--job-name", "name of the {job} job (default: from the problem and the time)", "job_name"),
    _Flag("--tag", "a tag on the job (repeatable)", metavar="KEY=VALUE", action="append"),
    _Flag("--region", "AWS region (default: AWS_DEFAULT_REGION or the profile's)"),
    _Flag("--profile", "AWS profile (default: AWS_PROFILE or default)"),
    _Flag("--endpoint-url", "SageMaker, CloudWatch Logs, S3 and STS endpoint (for testing, e.g. a moto server)"),
    _Flag("--wait", "follow the job until it ends", action="store_true"),
    _Flag("--attach", "follow a {job} job started earlier (implies --wait)", metavar="JOB_NAME"),
    _Flag("--poll-seconds", f"between status checks (default: {POLL_S:g})", kind=float, metavar="SECONDS"),
)


def add_arguments(parser: argparse.ArgumentParser, *, job: str) -> None:
    """--backend, and the SageMaker options in their own help section; `job` is 'training' or 'tuning'."""
    ray = (RAY,) if job == "tuning" else ()  # trials as Ray Jobs on a cluster (scripts/tune.py's Ray options)
    parser.add_argument("--backend", choices=(LOCAL, CONTAINER, *ray, SAGEMAKER), default=LOCAL,
                        help=f"where it runs: here ({LOCAL}), in the built image with podman or docker ({CONTAINER}), "
                        f"{f'on a Ray cluster ({RAY}), ' if ray else ''}or as a SageMaker {job} job ({SAGEMAKER}) "
                        f"(default: {LOCAL})")
    group = parser.add_argument_group("SageMaker (--backend sagemaker; region and credentials from the usual "
                                      "AWS configuration)")
    for option in _FLAGS:
        if job not in option.jobs:
            continue
        default = _DEFAULTS[option.field] if option.field else None
        settings: dict[str, Any] = {"help": option.help.format(default=default, job=job)}
        for name in ("metavar", "action"):
            if getattr(option, name):
                settings[name] = getattr(option, name)
        if option.kind:
            settings["type"] = option.kind
        # Absent unless given (no default shown in help): a SageMaker option given to a local run is an error.
        group.add_argument(option.flag, default=argparse.SUPPRESS, **settings)


def value(args: argparse.Namespace, dest: str) -> Any:
    """A SageMaker option's value, None when not given."""
    return getattr(args, dest, None)


def check_backend(args: argparse.Namespace, *, local_only: Sequence[str]) -> None:
    """UserError for a SageMaker option given to a run that is not SageMaker's, or a local-only option (by dest)
    to SageMaker."""
    if args.backend != SAGEMAKER:
        misplaced = [option for option in _FLAGS if hasattr(args, option.dest) and args.backend not in option.backends]
        if misplaced:
            flag, backends = misplaced[0].flag, " or ".join(f"--backend {name}" for name in misplaced[0].backends)
            raise UserError(f"{flag} applies to {backends}: add {backends.split(' or ')[0]} or drop {flag}")
        return
    given = ["--" + dest.replace("_", "-") for dest in local_only if getattr(args, dest, None) not in (None, False, [])]
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
    given = {option.field: value(args, option.dest) for option in _FLAGS
             if option.field and hasattr(args, option.dest)}
    return SageMakerConfig(**{"image": None, "role": None, **given}, tags=tags)


def backend(args: argparse.Namespace, *, settings: SageMakerConfig | None = None) -> api.Backend:
    """The backend --backend names, with its flags (SageMaker: `settings`, and how to reach AWS; it follows no job
    by itself)."""
    if args.backend == CONTAINER:
        count = value(args, "instance_count")
        return api.Container(image=value(args, "image"), instance_count=1 if count is None else count)
    if args.backend == RAY:
        return api.Ray(storage_path=args.storage_path, address=args.address)
    if args.backend == SAGEMAKER:
        return api.SageMaker(settings, region=value(args, "region"), profile=value(args, "profile"),
                             endpoint_url=value(args, "endpoint_url"), wait=False, poll_s=poll_seconds(args))
    return api.LOCAL


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
