"""A multi-host job's Ray cluster: the first host of resourceconfig.json is the head, the others join it.

SageMaker starts the same job on every host, each with a resourceconfig.json naming all the hosts and
its own `current_host`. The job on `hosts[0]` starts a Ray head with its host's CPUs, waits until every
host has joined and then trains on the cluster, so its env runners use every host's CPUs; it alone
writes `model/`. The job on any other host starts a Ray node that joins the head, stays until the
head's Ray ends (its job is done) and then leaves, exiting 0. Each wait is bounded by
`rl.training.cluster_timeout_s`: a host that cannot reach the head, or a head that does not see every
host, fails with the reason. A multi-host job owns its host (a SageMaker instance, a container): it
starts and stops Ray there with `ray start` and `ray stop`.

The cluster requires a token when the job's launcher gave every host the same one (our container
engine: a 0600 file in each host's input/config); every `ray start`, and the head's driver, then run
with RAY_AUTH_MODE=token and that file. SageMaker gives a job's hosts no secret channel: there the
cluster runs without token authentication, open to whatever reaches its hosts' port 6379 (the job's
VPC and security group), and the job says so once.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sagemaker_rl.contract import RAY_ADDRESS_ENV, decode_value
from sagemaker_rl.errors import JobError, UserError
from sagemaker_rl.job import ray_session
from sagemaker_rl.job.hyperparameters import DEFAULT_CLUSTER_TIMEOUT_S
from sagemaker_rl.job.keys import CLUSTER_TIMEOUT_KEY

logger = logging.getLogger(__name__)

RAY_PORT = 6379  # the head's GCS port, as the seed's launcher used
POLL_S = 1.0  # between two looks at the head (a host waiting for it) or at the cluster's nodes (the head)
GONE_AFTER = 3  # failed connections in a row to the head's port after which its Ray has ended
_RAY_CLI = [sys.executable, "-m", "ray.scripts.scripts"]  # this Python's `ray` command


@dataclass(frozen=True)
class Hosts:
    """The hosts of a job (resourceconfig.json) and which of them this one is."""

    current: str
    hosts: tuple[str, ...]

    @property
    def head(self) -> str:
        return self.hosts[0]

    @property
    def is_head(self) -> bool:
        return self.current == self.head

    @property
    def multi(self) -> bool:
        return len(self.hosts) > 1


def hosts_of(resources: Mapping[str, Any]) -> Hosts:
    """The hosts of a resource config; UserError when it does not name them as SageMaker does."""
    hosts, current = resources.get("hosts"), resources.get("current_host")
    if not isinstance(hosts, list) or not hosts or not all(isinstance(host, str) and host for host in hosts):
        raise UserError(f"resourceconfig.json's hosts must be a list of host names, got {hosts!r}: "
                        'write it as SageMaker does, e.g. {"current_host": "algo-1", "hosts": ["algo-1", "algo-2"]}')
    if current not in hosts:
        raise UserError(f"resourceconfig.json's current_host {current!r} is not one of its hosts "
                        f"{', '.join(hosts)}: name this host there")
    return Hosts(str(current), tuple(hosts))


def timeout_from(hyperparameters: Mapping[str, Any]) -> float:
    """rl.training.cluster_timeout_s of raw hyperparameters, before the job parses them (its parser refuses a bad
    value; until then the default applies)."""
    value = decode_value(hyperparameters.get(CLUSTER_TIMEOUT_KEY, DEFAULT_CLUSTER_TIMEOUT_S))
    if isinstance(value, int | float) and not isinstance(value, bool) and 1 <= value <= 86_400:
        return float(value)
    return DEFAULT_CLUSTER_TIMEOUT_S


def wait_for_names(hosts: Hosts, *, timeout_s: float) -> None:
    """Wait until the hosts this one needs resolve (the head: every host; another host: the head).

    SageMaker's host names resolve once every host is up (the image's entry point waits for them before
    sagemaker-training, which would wait 15 minutes).
    """
    needed = hosts.hosts if hosts.is_head else (hosts.head,)
    deadline = time.monotonic() + timeout_s
    while missing := [host for host in needed if host != hosts.current and resolve(host) is None]:
        if time.monotonic() > deadline:
            if hosts.is_head:
                raise _hosts_missing(hosts, len(hosts.hosts) - len(missing), [f"{host}, which does not resolve"
                                                                                for host in missing], timeout_s)
            raise _head_unreachable(hosts, f"{hosts.head} does not resolve", timeout_s)
        time.sleep(POLL_S)


def _hosts_missing(hosts: Hosts, seen: int, missing: list[str], timeout_s: float) -> JobError:
    return JobError(f"the Ray head on {hosts.head} saw {seen} of {len(hosts.hosts)} hosts within {timeout_s:g} s "
                    f"(missing: {'; '.join(missing) or 'unknown'}): start the job on every host of "
                    f"resourceconfig.json, let them reach {hosts.head}:{RAY_PORT}, or raise {CLUSTER_TIMEOUT_KEY}")


def _head_unreachable(hosts: Hosts, why: str, timeout_s: float) -> JobError:
    return JobError(f"host {hosts.current} could not reach the Ray head {hosts.head}:{RAY_PORT} within "
                    f"{timeout_s:g} s ({why}): check that the hosts share a network and that the job runs on "
                    f"{hosts.head}, or raise {CLUSTER_TIMEOUT_KEY}")


def resolve(host: str) -> str | None:
    """The IPv4 address of `host`; None while it does not resolve."""
    try:
        return socket.gethostbyname(host)
    except OSError:
        return None


def _own_ip(host: str) -> list[str]:
    """--node-ip-address for Ray: this host's address by its SageMaker name (as the seed's launcher did)."""
    ip = resolve(host)
    return [f"--node-ip-address={ip}"] if ip and not ip.startswith("127.") else []


def _ray(args: list[str], log: Path, *, what: str) -> None:
    """Run `ray ARGS` (its output to `log`); JobError with its last line when it fails."""
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}  # with this host's token settings (`use_token`)
    with log.open("ab") as out:
        done = subprocess.run([*_RAY_CLI, *args], stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                              env=env, check=False)
    if done.returncode != 0:
        lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
        raise JobError(f"{what} failed (ray {args[0]} exited with {done.returncode}): "
                       f"{lines[-1].strip()[:300] if lines else 'no output'}")


def _stop_ray(log: Path) -> None:
    try:
        _ray(["stop", "--force"], log, what="stopping Ray")
    except JobError as error:  # the job's outcome stands; the host's Ray ends with it anyway
        logger.warning("%s", error)


def use_token(token: Path) -> None:
    """Token authentication for this host's Ray when the launcher gave the hosts a shared token in `token`."""
    if token.is_file():
        ray_session.use_ray_token(token)
        return
    logger.warning("the job's Ray cluster runs without token authentication: its launcher gave the hosts no "
                   "shared token (%s; SageMaker has no channel for one): keep port %d of its hosts closed to all "
                   "but them (VPC, security group)", token, RAY_PORT)


@contextmanager
def head(hosts: Hosts, cpus: int, *, timeout_s: float, log: Path, token: Path) -> Iterator[int]:
    """Start the Ray head here, wait for every host to join, and yield the cluster's CPUs; Ray stops after.

    Inside, $RAY_ADDRESS names the head, so the job's `ray_session.start_ray` connects to it (with `token`).
    """
    use_token(token)
    own = _own_ip(hosts.current)
    _ray(["start", "--head", f"--port={RAY_PORT}", f"--num-cpus={cpus}", *own, "--include-dashboard=false",
          "--disable-usage-stats"], log, what=f"starting the Ray head on {hosts.current}")
    address = f"{own[0].split('=', 1)[1] if own else '127.0.0.1'}:{RAY_PORT}"
    previous = os.environ.get(RAY_ADDRESS_ENV)
    os.environ[RAY_ADDRESS_ENV] = address
    try:
        total = _wait_for_hosts(hosts, address, timeout_s)
        print(f"Ray cluster: {len(hosts.hosts)} hosts ({', '.join(hosts.hosts)}), {total} CPUs, head {address}",
              flush=True)
        yield total
    finally:
        if previous is None:
            os.environ.pop(RAY_ADDRESS_ENV, None)
        else:
            os.environ[RAY_ADDRESS_ENV] = previous
        _stop_ray(log)


def _wait_for_hosts(hosts: Hosts, address: str, timeout_s: float) -> int:
    """The cluster's CPUs once a node of every host is alive; JobError naming the missing ones at the timeout."""
    import ray

    ray.init(address=address, log_to_driver=False, logging_level=logging.ERROR)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            nodes = [node for node in ray.nodes() if node.get("Alive")]
            if len(nodes) >= len(hosts.hosts):
                return int(sum(node.get("Resources", {}).get("CPU", 0) for node in nodes))
            if time.monotonic() > deadline:
                break
            time.sleep(POLL_S)
    finally:
        ray.shutdown()
    joined = {node.get("NodeManagerAddress") for node in nodes}
    raise _hosts_missing(hosts, len(nodes), [host for host in hosts.hosts[1:] if resolve(host) not in joined],
                         timeout_s)


def _reach(host: str) -> str | None:
    """None when the head's port at `host` accepts a connection, else why not."""
    ip = resolve(host)
    if ip is None:
        return f"{host} does not resolve"
    try:
        with socket.create_connection((ip, RAY_PORT), timeout=2):
            return None
    except OSError as error:
        return f"{host} ({ip}): {error.strerror or error}"


def join(hosts: Hosts, cpus: int, *, timeout_s: float, log: Path, token: Path) -> None:
    """Join the head's Ray with this host's CPUs and stay until the head's Ray ends; JobError if it cannot."""
    use_token(token)
    deadline = time.monotonic() + timeout_s
    while (why := _reach(hosts.head)) is not None:
        if time.monotonic() > deadline:
            raise _head_unreachable(hosts, why, timeout_s)
        time.sleep(POLL_S)
    address = f"{resolve(hosts.head)}:{RAY_PORT}"
    _ray(["start", f"--address={address}", f"--num-cpus={cpus}", *_own_ip(hosts.current), "--disable-usage-stats"],
         log, what=f"host {hosts.current} joining the Ray head at {address}")
    print(f"host {hosts.current} joined the Ray cluster of {hosts.head} with {cpus} CPUs; "
          "waiting for the head's job to end", flush=True)
    try:
        failed = 0
        while failed < GONE_AFTER:
            time.sleep(POLL_S)
            failed = failed + 1 if _reach(hosts.head) else 0
    finally:
        _stop_ray(log)
    print(f"the head's Ray ended: host {hosts.current} left the cluster", flush=True)


def env_runner_hosts(algo: Any, hosts: Hosts) -> dict[str, int]:
    """How many of the algorithm's remote env runners run on each host (by the nodes' addresses)."""
    import ray

    def node_of(env_runner: Any) -> str:
        return str(ray.get_runtime_context().get_node_id())

    node_ids = algo.env_runner_group.foreach_env_runner(node_of, local_env_runner=False)
    by_ip = {resolve(host): host for host in hosts.hosts}
    names = {node["NodeID"]: by_ip.get(node.get("NodeManagerAddress"), node.get("NodeManagerHostname", "?"))
             for node in ray.nodes()}
    counts = dict.fromkeys(hosts.hosts, 0)
    for node_id in node_ids:
        name = names.get(node_id, "?")
        counts[name] = counts.get(name, 0) + 1
    return counts


def report_env_runners(hosts: Hosts) -> Callable[[Any], None]:
    """A `training.train` hook that prints where the env runners run (one line)."""
    def report(algo: Any) -> None:
        counts = env_runner_hosts(algo, hosts)
        print("env runners per host: " + ", ".join(f"{host} {count}" for host, count in counts.items()), flush=True)

    return report
