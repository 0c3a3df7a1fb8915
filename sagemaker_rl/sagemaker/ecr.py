"""ECR for `make push`: create the image repository when it is missing and print a login password.

    python -m sagemaker_rl.sagemaker.ecr login 123456789012.dkr.ecr.us-east-1.amazonaws.com/sagemaker-rl \\
        | docker login --username AWS --password-stdin 123456789012.dkr.ecr.us-east-1.amazonaws.com

Credentials come from the usual AWS configuration; the region from the registry's host name. boto3
honours AWS_ENDPOINT_URL, which the tests point at a moto server.
"""

from __future__ import annotations

import argparse
import base64
import re
import sys

import boto3

from sagemaker_rl.errors import UserError, cli

_ECR_HOST = re.compile(r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(\.cn)?$")


def parse_repository(uri: str) -> tuple[str, str, str]:
    """`ACCOUNT.dkr.ecr.REGION.amazonaws.com/NAME` → (account, region, name)."""
    host, _, name = uri.partition("/")
    match = _ECR_HOST.match(host)
    if not match or not name:
        raise UserError(f"{uri!r} is not an ECR repository: expected ACCOUNT.dkr.ecr.REGION.amazonaws.com/NAME")
    return match["account"], match["region"], name


def login(uri: str) -> str:
    """Create the repository if it does not exist; return the registry password for `docker login`."""
    account, region, name = parse_repository(uri)
    ecr = boto3.client("ecr", region_name=region)
    try:
        ecr.describe_repositories(registryId=account, repositoryNames=[name])
    except ecr.exceptions.RepositoryNotFoundException:
        ecr.create_repository(registryId=account, repositoryName=name)
        print(f"created ECR repository {name} in {region}", file=sys.stderr)
    token = ecr.get_authorization_token(registryIds=[account])["authorizationData"][0]["authorizationToken"]
    user, _, password = base64.b64decode(token).decode().partition(":")
    if user != "AWS":
        raise RuntimeError(f"unexpected ECR authorization token for user {user!r}")
    return password


@cli
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["login"])
    parser.add_argument("repository", help="ACCOUNT.dkr.ecr.REGION.amazonaws.com/NAME")
    args = parser.parse_args(argv)
    print(login(args.repository))
    return 0


if __name__ == "__main__":
    sys.exit(main())
