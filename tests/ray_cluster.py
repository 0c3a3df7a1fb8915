"""A real multi-node Ray cluster on this machine, for the Ray backend's tests and benchmark.

`ray start --head` and `ray start --address …` per worker node, all nodes with one `--temp-dir` of
their own and their own ports, so the cluster shares nothing with other Ray instances on the machine
(one directory for all nodes: a node's dashboard agent reads job logs from the head's log directory,
which on one machine is only its own when the nodes share it). Never
`ray stop`: it ends every Ray process of the machine. `stop` ends exactly this cluster's processes:
those whose command line names its directory or whose environment carries its marker (Ray's worker
processes rename themselves, `ray::IDLE`, but keep the environment they were started with).

Token authentication is on, as on a cluster a user starts: a token of the cluster's own in a 0600 file
in its directory, given to every node with RAY_AUTH_MODE=token and RAY_AUTH_TOKEN_PATH (`auth_env`);
a client, driver or tuner presents it the way a user would, with the same two variables.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterable, Mapping
from contextlib import ExitStack, closing
from pathlib import Path

MARKER = "SAGEMAKER_RL_TEST_CLUSTER"  # the cluster's directory, in the environment of all its processes
NODE_MARKER = "SAGEMAKER_RL_TEST_NODE"  # the node's name (head, worker-1, ...)
_START_ATTEMPTS = 3
# The head's failure detector, faster than Ray's default (~15-30 s) so a dead node is noticed in seconds.
FAST_HEALTH_CHECK = {
    "RAY_health_check_initial_delay_ms": "1000",
    "RAY_health_check_period_ms": "1000",
    "RAY_health_check_timeout_ms": "1000",
    "RAY_health_check_failure_threshold": "3",
}


class LocalCluster:
    """A Ray cluster of `nodes` nodes (the head and nodes - 1 workers), `cpus_per_node` CPUs each."""

    def __init__(self, *, nodes: int = 2, cpus_per_node: int = 1, env: Mapping[str, str] | None = None) -> None:
        self.nodes = nodes
        self.cpus_per_node = cpus_per_node
        # Short: Ray puts Unix sockets under it (107 characters at most).
        self.directory = Path(tempfile.mkdtemp(prefix="srl-ray-", dir="/tmp"))
        self.token_file = self.directory / "auth_token"
        self.token_file.touch(mode=0o600)
        self.token_file.write_text(secrets.token_hex(32))
        self._env = dict(env or {})
        self.gcs_address = ""
        self.dashboard_url = ""

    def __enter__(self) -> LocalCluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        gcs, dashboard, client = _free_ports(3)
        self.gcs_address = f"127.0.0.1:{gcs}"
        self.dashboard_url = f"http://127.0.0.1:{dashboard}"
        self._start_node("head", ["--head", "--port", str(gcs), "--dashboard-port", str(dashboard),
                                  "--dashboard-host", "127.0.0.1", "--include-dashboard", "true",
                                  "--ray-client-server-port", str(client)])
        for index in range(1, self.nodes):
            self._start_node(f"worker-{index}", ["--address", self.gcs_address])
        self.wait_for_nodes(self.nodes)

    def _start_node(self, name: str, role: list[str]) -> None:
        agent, agent_grpc, runtime_env, metrics, node_manager, object_manager = _free_ports(6)
        command = [
            str(Path(sys.executable).with_name("ray")), "start", *role,
            "--num-cpus", str(self.cpus_per_node), "--num-gpus", "0",
            "--temp-dir", str(self.directory), "--disable-usage-stats",
            "--node-ip-address", "127.0.0.1",
            "--dashboard-agent-listen-port", str(agent), "--dashboard-agent-grpc-port", str(agent_grpc),
            "--runtime-env-agent-port", str(runtime_env), "--metrics-export-port", str(metrics),
            "--node-manager-port", str(node_manager), "--object-manager-port", str(object_manager),
        ]
        log = self.directory / f"start-{name}.log"
        for _ in range(_START_ATTEMPTS):
            with open(log, "a") as out:
                done = subprocess.run(command, env=self.node_env(name), stdout=out, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, timeout=180, check=False)
            if done.returncode == 0:
                return
            # Ray gives a raylet 30 s to register (hard-coded); a loaded machine can take longer: try again.
            _signal(self.pids(name), signal.SIGKILL)
            time.sleep(1)
        raise RuntimeError(f"ray start of {name} failed {_START_ATTEMPTS} times (exit {done.returncode}):\n"
                           f"{log.read_text()[-3000:]}")

    @property
    def auth_env(self) -> dict[str, str]:
        """What a node, driver or Jobs API client needs to be let in: token mode and the cluster's token file."""
        return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(self.token_file)}

    def node_env(self, name: str) -> dict[str, str]:
        """The environment a node starts with: our venv's python first on PATH (as in the image), Ray quiet."""
        path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
        return {
            **{key: value for key, value in os.environ.items() if key != "RAY_AUTH_TOKEN"},
            "PATH": path,
            **self.auth_env,
            "RAY_USAGE_STATS_ENABLED": "0",
            "RAY_DASHBOARD_STARTUP_TIMEOUT_S": "180",  # Ray's 60 s are too few on a loaded machine
            **self._env,
            MARKER: str(self.directory),
            NODE_MARKER: name,
        }

    def nodes_alive(self) -> list[dict]:
        request = urllib.request.Request(f"{self.dashboard_url}/nodes?view=summary",
                                         headers={"Authorization": f"Bearer {self.token_file.read_text()}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            data = json.load(response)
        return [node for node in data["data"]["summary"] if node["raylet"]["state"] == "ALIVE"]

    def wait_for_nodes(self, count: int, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if len(self.nodes_alive()) == count:
                    return
            except OSError:  # the dashboard is still starting
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the cluster in {self.directory} did not reach {count} live nodes")
            time.sleep(0.5)

    def pids(self, node: str | None = None) -> list[int]:
        """This cluster's live processes (of one node, when `node` is given).

        Ray 2.60's raylet starts its dashboard and runtime-env agents, whose new process titles overwrite the
        environment /proc shows (the markers with it); they keep their raylet's log files open, though, and
        outlive it when it is killed before them. So a process is the cluster's when it is marked, names the
        cluster's directory, or holds a file of it open; and a node's when it is marked so or holds the node's
        raylet's output open.
        """
        processes = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                variables = (entry / "environ").read_bytes().split(b"\0")
                named = str(self.directory).encode() in (entry / "cmdline").read_bytes()
                zombie = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
            except OSError:  # gone, or not ours
                continue
            if not zombie:
                processes[int(entry.name)] = (variables, named, self._open_files(entry))
        marked = {pid for pid, (variables, _, _) in processes.items()
                  if f"{MARKER}={self.directory}".encode() in variables}
        if node is None:
            return [pid for pid, (_, named, files) in processes.items() if pid in marked or named or files]
        own = {pid for pid in marked if f"{NODE_MARKER}={node}".encode() in processes[pid][0]}
        # The agents inherit the raylet's output files (other log files are read by other nodes' processes too).
        logs = {file for pid in own for file in processes[pid][2] if file.name.startswith("raylet.")}
        return sorted(own | {pid for pid, (_, _, files) in processes.items() if files & logs})

    def _open_files(self, process: Path) -> set[Path]:
        """The files of the cluster's directory that a process holds open."""
        found = set()
        try:
            descriptors = list((process / "fd").iterdir())
        except OSError:
            return found
        for descriptor in descriptors:
            try:
                target = os.readlink(descriptor)
            except OSError:
                continue
            if target.startswith(f"{self.directory}/"):
                found.add(Path(target.removesuffix(" (deleted)")))
        return found

    def kill_node(self, node: str) -> list[int]:
        """End every process of `node` at once, as a machine that dies: all stopped first (SIGSTOP), so that none
        sees another end and reports it, then killed; the pids killed."""
        pids = self.pids(node)
        _signal(pids, signal.SIGSTOP)
        _signal(pids, signal.SIGKILL)
        return pids

    def restart_node(self, node: str) -> None:
        """Start worker node `node` again after its death (a new node in its place, as an autoscaler's)."""
        self._start_node(node, ["--address", self.gcs_address])
        self.wait_for_nodes(self.nodes)

    def stop(self, grace_s: float = 10) -> None:
        """End this cluster's processes (SIGTERM, then SIGKILL) and remove its directory."""
        _signal(self.pids(), signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while self.pids() and time.monotonic() < deadline:
            time.sleep(0.2)
        _signal(self.pids(), signal.SIGKILL)
        deadline = time.monotonic() + 10
        while self.pids() and time.monotonic() < deadline:
            time.sleep(0.2)
        shutil.rmtree(self.directory, ignore_errors=True)


def _signal(pids: Iterable[int], signum: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:  # ended meanwhile
            continue


def _free_ports(count: int) -> list[int]:
    """`count` distinct ports free right now (held together while chosen, so they differ)."""
    with ExitStack() as stack:
        sockets = [stack.enter_context(closing(socket.socket())) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
