"""AWS: boto3 clients for one region, AWS's refusals as user errors, and the default S3 bucket."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from sagemaker_rl import user_code
from sagemaker_rl.errors import UserError


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


def upload_code(aws: Aws, code_dir: Path, problem: str | None, *, output_s3: str, name: str, out: IO[str]) -> str:
    """Bundle the user's code with our entry program and upload it as the SDK uploads a source_dir, under the
    job's own prefix (OUTPUT/NAME/source/sourcedir.tar.gz, beside its output/); returns its S3 URI."""
    bucket, _, prefix = output_s3.removeprefix("s3://").partition("/")
    key = "/".join(filter(None, [prefix.strip("/"), name, "source", user_code.BUNDLE_FILE]))
    with tempfile.TemporaryDirectory(prefix="sagemaker-rl-code-") as directory:
        bundle = user_code.make_bundle(code_dir, user_code.entry_point(problem), Path(directory))
        with aws_errors(f"upload the code directory {code_dir} to s3://{bucket}/{key}"):
            aws.s3.upload_file(str(bundle), bucket, key)
    print(f"uploaded {code_dir} to s3://{bucket}/{key}", file=out, flush=True)
    return f"s3://{bucket}/{key}"
