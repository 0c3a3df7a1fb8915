"""SageMaker: training and tuning jobs through boto3 — the requests, starting them, following them.

Requests are built from the objects local runs use: the job's own hyperparameter parser (run before
any AWS call), the reward lines' metric definitions, the tuning space's ParameterRanges. Following a
tuning job ends with the local tuner's report files (trials.csv, best_hyperparameters.json).
The SageMaker SDK 3.x has no RLEstimator; boto3's API is the stable path.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from sagemaker_rl import metrics
from sagemaker_rl.contract import DEFAULT_BASE_DIR, JobPaths, decode_value, encode_hyperparameters
from sagemaker_rl.errors import UserError
from sagemaker_rl.hyperparameters import PLATFORM_PREFIXES, parse_hyperparameters
from sagemaker_rl.problems import PROBLEMS

if TYPE_CHECKING:  # the tuning package imports Optuna: only what tuning needs pays for it
    import optuna

    from sagemaker_rl.tuning import SearchSpace, TuningConfig

logger = logging.getLogger(__name__)

LOG_GROUP = "/aws/sagemaker/TrainingJobs"  # where SageMaker sends a training job's stdout
CHECKPOINT_LOCAL_PATH = str(JobPaths(Path(DEFAULT_BASE_DIR)).checkpoints)  # synced with CheckpointConfig.S3Uri
PROGRAM_KEY = "sagemaker_program"  # the toolkit runs it from /opt/ml/code, where the image's entry point puts it
PROBLEM_TAG = "sagemaker-rl:problem"
DONE = ("Completed", "Failed", "Stopped")  # final states of training and tuning jobs
POLL_S = 15.0  # seconds between Describe calls while waiting
PROGRESS_INTERVAL_S = 60.0  # a tuning progress line at least this often

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
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise UserError(f"{name} must be a whole number >= 1, got {value!r}")
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


def entry_point(problem: str) -> str:
    """The script of `problem` in entrypoints/ (copied to /opt/ml/code in the image)."""
    return f"train-{problem}.py"


def problem_of(program: str) -> str | None:
    """The problem whose entry point is `program`, or None."""
    return next((problem for problem in PROBLEMS if entry_point(problem) == program), None)


def job_name(problem: str, kind: str = "training", name: str | None = None) -> str:
    """`name` checked against SageMaker's rules, or a new one from the problem and the time."""
    limit = _NAME_LIMITS[kind]
    if name is None:
        millis = int(time.time() * 1000) % 1000
        stamp = f"{time.strftime('%y%m%d-%H%M%S')}-{millis:03d}"
        return f"sagemaker-rl-{problem}-{stamp}" if kind == "training" else f"rl-{problem}-{stamp}"
    if len(name) > limit or not _JOB_NAME.match(name):
        raise UserError(f"{kind} job name {name!r} is not valid: use up to {limit} letters, digits and "
                        "hyphens, starting with a letter or digit")
    return name


# --- requests ---


def training_hyperparameters(problem: str, hyperparameters: Mapping[str, Any]) -> dict[str, str]:
    """HyperParameters as the SageMaker SDK encodes them, checked first with the job's own parser."""
    encoded = encode_hyperparameters({**hyperparameters, PROGRAM_KEY: entry_point(problem)})
    parse_hyperparameters(encoded, problem)  # a typo fails here, before any AWS call
    return encoded


def training_job_request(
    problem: str, hyperparameters: Mapping[str, str], config: SageMakerConfig, *, name: str, output_s3: str
) -> dict[str, Any]:
    """CreateTrainingJob's request; `hyperparameters` as `training_hyperparameters` returns them."""
    output_s3 = _prefix(output_s3)
    checkpoint = config.checkpoint_s3 or (f"{output_s3}{name}/checkpoints/" if config.spot else None)
    return {
        "TrainingJobName": name,
        "HyperParameters": dict(hyperparameters),
        **_job_definition(config, output_s3=output_s3, checkpoint_s3=checkpoint),
        "Tags": _tags(config, problem),
    }


def check_tuning_job(tuning: TuningConfig, config: SageMakerConfig) -> None:
    """Raise UserError/TuningError for a tuning run SageMaker cannot run as asked, or a bad value in its space."""
    from sagemaker_rl.tuning import Strategy, check_hyperparameters

    if tuning.seeds != 1:
        raise UserError(f"seeds is {tuning.seeds}, but SageMaker runs one job per trial: "
                        "drop seeds (or tune with --backend local)")
    if tuning.objective_last_k != 1:
        raise UserError(f"objective_last_k is {tuning.objective_last_k}, but SageMaker's objective is the last "
                        "value a job reports: drop objective_last_k (or tune with --backend local)")
    if config.checkpoint_s3:
        # Every trial would sync the same S3 prefix, and a job resumes from any checkpoint it finds there.
        raise UserError("checkpoint_s3 applies to single training jobs: the trials of a tuning job would "
                        "share it and resume from each other's checkpoints; drop it")
    if tuning.strategy is Strategy.HYPERBAND:
        _hyperband_max_resource(tuning)
    check_hyperparameters(tuning)


def tuning_job_request(
    tuning: TuningConfig, config: SageMakerConfig, *, name: str, output_s3: str
) -> dict[str, Any]:
    """CreateHyperParameterTuningJob's request for a tuning run, checked first (`check_tuning_job`)."""
    from sagemaker_rl.tuning import Strategy

    check_tuning_job(tuning, config)
    job_config: dict[str, Any] = {
        "Strategy": str(tuning.strategy),
        "HyperParameterTuningJobObjective": {"Type": tuning.objective_type, "MetricName": tuning.objective_metric},
        "ResourceLimits": {"MaxParallelTrainingJobs": tuning.max_parallel_jobs},
        "ParameterRanges": tuning.space.to_parameter_ranges(),
        "TrainingJobEarlyStoppingType": str(tuning.early_stopping),
    }
    if tuning.strategy is Strategy.GRID:  # SageMaker runs every combination; a smaller budget is not sent
        if tuning.max_jobs is not None and tuning.max_jobs != tuning.space.grid_size():
            logger.warning("Grid on SageMaker runs all %d combinations; max_jobs %d is not sent",
                           tuning.space.grid_size(), tuning.max_jobs)
    else:
        job_config["ResourceLimits"]["MaxNumberOfTrainingJobs"] = tuning.budget
    if tuning.strategy is Strategy.HYPERBAND:
        job_config["StrategyConfig"] = {"HyperbandStrategyConfig": {
            "MinResource": tuning.hyperband_min_resource, "MaxResource": _hyperband_max_resource(tuning)}}
    if tuning.sampler_seed is not None:
        job_config["RandomSeed"] = tuning.sampler_seed
    static = encode_hyperparameters({**tuning.space.static, PROGRAM_KEY: entry_point(tuning.problem)})
    return {
        "HyperParameterTuningJobName": name,
        "HyperParameterTuningJobConfig": job_config,
        "TrainingJobDefinition": {
            "StaticHyperParameters": static,
            **_job_definition(config, output_s3=_prefix(output_s3), checkpoint_s3=None),
        },
        "Tags": _tags(config, tuning.problem),
    }


def _job_definition(config: SageMakerConfig, *, output_s3: str, checkpoint_s3: str | None) -> dict[str, Any]:
    """The parts a training job and a tuning job's TrainingJobDefinition share."""
    stopping: dict[str, int] = {"MaxRuntimeInSeconds": config.max_run_s}
    if config.spot:
        stopping["MaxWaitTimeInSeconds"] = config.max_wait
    definition: dict[str, Any] = {
        "AlgorithmSpecification": {
            "TrainingImage": config.image,
            "TrainingInputMode": "File",
            "MetricDefinitions": metrics.metric_definitions(),
        },
        "RoleArn": config.role,
        "OutputDataConfig": {"S3OutputPath": output_s3},
        "ResourceConfig": {
            "InstanceType": config.instance_type,
            "InstanceCount": config.instance_count,
            "VolumeSizeInGB": config.volume_size_gb,
        },
        "StoppingCondition": stopping,
        "EnableManagedSpotTraining": config.spot,
    }
    if checkpoint_s3:
        definition["CheckpointConfig"] = {"S3Uri": _prefix(checkpoint_s3), "LocalPath": CHECKPOINT_LOCAL_PATH}
    return definition


def _hyperband_max_resource(tuning: TuningConfig) -> int:
    if tuning.hyperband_max_resource is not None:
        return int(tuning.hyperband_max_resource)
    iterations = tuning.space.static.get("rl.training.stop.training_iteration")
    if isinstance(iterations, int) and not isinstance(iterations, bool) and iterations >= 1:
        return iterations
    raise UserError("Hyperband on SageMaker needs the most training iterations a trial may run: set "
                    "hyperband_max_resource in the tuning file or a static rl.training.stop.training_iteration")


def _tags(config: SageMakerConfig, problem: str) -> list[dict[str, str]]:
    tags = {PROBLEM_TAG: problem, **config.tags}
    return [{"Key": key, "Value": value} for key, value in tags.items()]


def _prefix(uri: str) -> str:
    """An S3 prefix ending in '/': without it SageMaker syncs every key that starts with the text."""
    return uri if uri.endswith("/") else uri + "/"


# --- AWS ---


@dataclass(frozen=True)
class Aws:
    """boto3 clients for one region (and endpoint: a moto server in tests)."""

    sagemaker: Any
    logs: Any
    s3: Any
    sts: Any
    region: str


def connect(*, region: str | None = None, profile: str | None = None, endpoint_url: str | None = None) -> Aws:
    """Clients from the usual AWS configuration (profile, environment), `region` and `endpoint_url` first."""
    import boto3
    import botocore.config
    import botocore.exceptions

    try:
        session = boto3.Session(profile_name=profile, region_name=region)
    except botocore.exceptions.ProfileNotFound:
        raise UserError(f"AWS profile {profile!r} is not configured: run `aws configure --profile {profile}` "
                        "or choose a profile from ~/.aws/config") from None
    if not session.region_name:
        raise UserError("no AWS region is set: pass --region, set AWS_DEFAULT_REGION, or give your profile a region")
    config = botocore.config.Config(
        retries={"mode": "standard"}, s3={"addressing_style": "path"} if endpoint_url else None
    )
    def client(name: str) -> Any:
        return session.client(name, endpoint_url=endpoint_url, config=config)

    return Aws(client("sagemaker"), client("logs"), client("s3"), client("sts"), region=session.region_name)


@contextlib.contextmanager
def aws_errors(action: str) -> Iterator[None]:
    """AWS's refusals and missing credentials as one sentence (UserError) naming what was being done."""
    from botocore import exceptions

    try:
        yield
    except exceptions.NoCredentialsError:
        raise UserError(f"no AWS credentials found to {action}: run `aws configure`, set AWS_PROFILE, or "
                        "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY") from None
    except exceptions.ClientError as error:
        detail = error.response.get("Error", {})
        message = " ".join(str(detail.get("Message") or error).split())[:500]  # one line, even for an HTML page
        raise UserError(f"AWS refused to {action}: {detail.get('Code', '?')}: {message}") from None
    except exceptions.EndpointConnectionError as error:
        raise UserError(f"could not reach AWS to {action}: {error}") from None


def default_output_s3(aws: Aws, out: IO[str]) -> str:
    """The SageMaker SDK's default bucket, s3://sagemaker-REGION-ACCOUNT/, created when missing."""
    from botocore.exceptions import ClientError

    with aws_errors("find the AWS account"):
        account = aws.sts.get_caller_identity()["Account"]
    bucket = f"sagemaker-{aws.region}-{account}"
    try:
        aws.s3.head_bucket(Bucket=bucket)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket", "NotFound"):
            raise UserError(f"cannot use the default bucket {bucket} ({error}): give an S3 prefix of yours "
                            "with --output-s3") from None
        # us-east-1 is the one region that takes no (and rejects a) LocationConstraint
        where = {} if aws.region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": aws.region}}
        with aws_errors(f"create the S3 bucket {bucket}"):
            aws.s3.create_bucket(Bucket=bucket, **where)
        print(f"created S3 bucket {bucket} for job outputs", file=out, flush=True)
    return f"s3://{bucket}/"


def start_training_job(
    aws: Aws, problem: str, hyperparameters: Mapping[str, Any], config: SageMakerConfig, *, out: IO[str]
) -> str:
    """Check the hyperparameters, then CreateTrainingJob; returns the job's name."""
    name = job_name(problem, "training", config.job_name)
    encoded = training_hyperparameters(problem, hyperparameters)
    output_s3 = config.output_s3 or default_output_s3(aws, out)
    request = training_job_request(problem, encoded, config, name=name, output_s3=output_s3)
    with aws_errors(f"create training job {name}"):
        aws.sagemaker.create_training_job(**request)
    resources = f"{config.instance_count} x {config.instance_type}{', spot' if config.spot else ''}"
    print(f"started training job {name} ({resources}) in {aws.region}", file=out, flush=True)
    return name


def start_tuning_job(aws: Aws, tuning: TuningConfig, config: SageMakerConfig, *, out: IO[str]) -> str:
    """Check the run, then CreateHyperParameterTuningJob; records the request in the run directory."""
    name = job_name(tuning.problem, "tuning", config.job_name)
    check_tuning_job(tuning, config)  # before the first AWS call
    output_s3 = config.output_s3 or default_output_s3(aws, out)
    request = tuning_job_request(tuning, config, name=name, output_s3=output_s3)
    with aws_errors(f"create tuning job {name}"):
        response = aws.sagemaker.create_hyper_parameter_tuning_job(**request)
    assert tuning.run_dir is not None, "start_tuning_job takes a resolved TuningConfig"
    run_dir = Path(tuning.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    record = {"region": aws.region, "arn": response.get("HyperParameterTuningJobArn"), "request": request}
    (run_dir / "sagemaker.json").write_text(json.dumps(record, indent=2) + "\n")
    budget = request["HyperParameterTuningJobConfig"]["ResourceLimits"].get("MaxNumberOfTrainingJobs", "all")
    print(f"started tuning job {name} ({budget} trials, {tuning.max_parallel_jobs} at a time, strategy "
          f"{tuning.strategy}) in {aws.region}; its request is in {run_dir / 'sagemaker.json'}", file=out, flush=True)
    return name


# --- following jobs ---


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
    started = time.monotonic()
    streamer = LogStreamer(aws.logs, name)
    last = ""
    while True:
        with aws_errors(f"describe training job {name}"):
            description = aws.sagemaker.describe_training_job(TrainingJobName=name)
        status, secondary = description["TrainingJobStatus"], description.get("SecondaryStatus", "")
        state = f"{status} ({secondary})" if secondary and secondary != status else status
        if state != last:
            _say(out, started, f"training job {name}: {state}")
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


def wait_for_tuning_job(aws: Aws, name: str, *, out: IO[str], poll_s: float = POLL_S) -> dict[str, Any]:
    """Show progress (jobs done, failed, stopped early, running; best objective) until the tuning job ends."""
    started = time.monotonic()
    last, last_print = "", 0.0
    while True:
        with aws_errors(f"describe tuning job {name}"):
            description = aws.sagemaker.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
        status = description["HyperParameterTuningJobStatus"]
        line = f"{_progress(description)} [{status}]"
        if line != last or time.monotonic() - last_print >= PROGRESS_INTERVAL_S:
            _say(out, started, line)
            last, last_print = line, time.monotonic()
        if status in DONE:
            if status == "Failed":
                print(f"tuning job {name} failed: {description.get('FailureReason') or 'no reason given'}", file=out)
            return description
        time.sleep(poll_s)


def _progress(description: Mapping[str, Any]) -> str:
    counts = description.get("TrainingJobStatusCounters", {})
    failed = counts.get("NonRetryableError", 0) + counts.get("RetryableError", 0)
    stopped = counts.get("Stopped", 0)
    done = counts.get("Completed", 0) + failed + stopped
    limits = description.get("HyperParameterTuningJobConfig", {}).get("ResourceLimits", {})
    budget = limits.get("MaxNumberOfTrainingJobs", "?")
    best = description.get("BestTrainingJob") or {}
    value = best.get("FinalHyperParameterTuningJobObjectiveMetric", {}).get("Value")
    best_text = f"best {value:.4g} ({best.get('TrainingJobName')})" if value is not None else "best -"
    return (f"{done}/{budget} done ({failed} failed, {stopped} stopped early), "
            f"{counts.get('InProgress', 0)} running, {best_text}")


def list_tuning_trials(aws: Aws, name: str) -> list[dict[str, Any]]:
    """Every training job of a tuning job (ListTrainingJobsForHyperParameterTuningJob, all pages)."""
    summaries: list[dict[str, Any]] = []
    with aws_errors(f"list the training jobs of tuning job {name}"):
        pages = aws.sagemaker.get_paginator("list_training_jobs_for_hyper_parameter_tuning_job").paginate(
            HyperParameterTuningJobName=name)
        for page in pages:
            summaries += page["TrainingJobSummaries"]
    return summaries


def tuning_study(description: Mapping[str, Any], summaries: list[dict[str, Any]]) -> optuna.Study:
    """An in-memory Optuna study of a tuning job's trials, in the shape the local tuner's report reads."""
    import optuna

    from sagemaker_rl.tuning import from_parameter_ranges

    job_config = description["HyperParameterTuningJobConfig"]
    static = description.get("TrainingJobDefinition", {}).get("StaticHyperParameters", {})
    ours = {key: value for key, value in static.items() if not key.startswith(PLATFORM_PREFIXES)}
    space = from_parameter_ranges(job_config.get("ParameterRanges", {}), ours)
    objective = job_config["HyperParameterTuningJobObjective"]
    study = optuna.create_study(study_name=description["HyperParameterTuningJobName"],
                                direction="maximize" if objective["Type"] == "Maximize" else "minimize")
    distributions = space.distributions()
    for summary in sorted(summaries, key=lambda s: (str(s.get("CreationTime", "")), s["TrainingJobName"])):
        study.add_trial(_trial(summary, space, distributions, objective["MetricName"]))
    return study


def _trial(
    summary: Mapping[str, Any], space: SearchSpace, distributions: Mapping[str, Any], metric: str
) -> optuna.trial.FrozenTrial:
    from optuna.trial import TrialState, create_trial

    from sagemaker_rl.tuning.trials import (
        ATTR_DURATION,
        ATTR_FAILURE,
        ATTR_HYPERPARAMETERS,
        ATTR_TRAINING_JOB,
        ATTR_TUNED,
    )

    name, status = summary["TrainingJobName"], summary["TrainingJobStatus"]
    tuned = space.from_sagemaker(summary.get("TunedHyperParameters", {}))
    value = summary.get("FinalHyperParameterTuningJobObjectiveMetric", {}).get("Value")
    attrs: dict[str, Any] = {ATTR_TUNED: tuned, ATTR_HYPERPARAMETERS: space.hyperparameters(tuned),
                             ATTR_TRAINING_JOB: name}
    start, end = summary.get("TrainingStartTime"), summary.get("TrainingEndTime")
    if start and end:
        attrs[ATTR_DURATION] = round((end - start).total_seconds(), 1)
    if status == "Completed" and value is not None:
        state = TrialState.COMPLETE
    elif status == "Stopped":
        state = TrialState.PRUNED  # stopped early by the tuning job (or by hand)
    elif status in ("InProgress", "Stopping"):
        state, value = TrialState.RUNNING, None
    else:
        state, value = TrialState.FAIL, None
        attrs[ATTR_FAILURE] = (summary.get("FailureReason") or f"SageMaker read no {metric} from the job's log")[:1024]
    params = space.stored_values(tuned)
    try:
        return create_trial(state=state, value=value, params=params, user_attrs=attrs,
                            distributions={key: distributions[key] for key in params})
    except ValueError as error:  # a value outside its range: keep the trial, without Optuna's params
        logger.warning("training job %s: tuned values %s do not fit the ranges (%s)", name, tuned, error)
        return create_trial(state=state, value=value, user_attrs=attrs)


def write_tuning_results(
    aws: Aws, description: Mapping[str, Any], run_dir: Path, *, out: IO[str]
) -> dict[str, Path]:
    """Write trials.csv, best_hyperparameters.json and report.html for a tuning job, and print the summary."""
    from sagemaker_rl.tuning import report

    name = description["HyperParameterTuningJobName"]
    study = tuning_study(description, list_tuning_trials(aws, name))
    metric = description["HyperParameterTuningJobConfig"]["HyperParameterTuningJobObjective"]["MetricName"]
    static = description.get("TrainingJobDefinition", {}).get("StaticHyperParameters", {})
    problem = problem_of(str(decode_value(static.get(PROGRAM_KEY, "")))) or "PROBLEM"
    run_dir.mkdir(parents=True, exist_ok=True)
    files = report.write_outputs(study, run_dir, objective=metric, html=True)
    print(report.summary(study, files, problem=problem, objective=metric), file=out, flush=True)
    return files


def _say(out: IO[str], started: float, text: str) -> None:
    elapsed = int(time.monotonic() - started)
    print(f"[{elapsed // 3600:d}:{elapsed // 60 % 60:02d}:{elapsed % 60:02d}] {text}", file=out, flush=True)
