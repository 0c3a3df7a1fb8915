"""The tree keeps its architecture: no import cycle, the tuner and the SageMaker client apart from the job, small units.

Read from the sources (every import statement counts, inside functions and under TYPE_CHECKING too),
and once from a fresh interpreter that imports the tuner's and the client's modules.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "sagemaker_rl"
APART = ("sagemaker_rl.tuning", "sagemaker_rl.sagemaker")  # must not reach into the job nor load RLlib
SHARED = ("sagemaker_rl", "sagemaker_rl.contract", "sagemaker_rl.metrics", "sagemaker_rl.errors",
          "sagemaker_rl.console", "sagemaker_rl.engine", "sagemaker_rl.files", "sagemaker_rl.user_code")
JOB_FACE = "sagemaker_rl.job"
HEAVY = ("torch", "ray.rllib", "ray.tune", "gymnasium", "pybullet", "mujoco", "onnxruntime")
# The Ray runner talks to a cluster through Ray's client APIs only.
RAY_CLIENT_APIS = {"sagemaker_rl.tuning.ray_jobs": ("ray.job_submission", "ray.util.state")}
MAX_FUNCTION_LINES = 40
MAX_CLASS_LINES = 200


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


MODULES = _modules()


def _imports(name: str) -> Iterator[str]:
    """Every module an import statement of module `name` names, at any depth (absolute names)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:  # `from pkg import submodule` names the submodule, else the package
                submodule = f"{base}.{alias.name}"
                yield submodule if submodule in MODULES else base


def _graph() -> dict[str, set[str]]:
    return {name: {target for target in _imports(name) if target in MODULES and target != name} for name in MODULES}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return [*path[path.index(target):], target]
            if target not in state and (found := visit(target)):
                return found
        state[node] = 2
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_package_has_no_import_cycle():
    assert _cycle(_graph()) is None, " -> ".join(_cycle(_graph()) or [])


def test_the_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_the_tuner_and_the_sagemaker_client_import_only_the_jobs_public_face():
    wrong = []
    for name in MODULES:
        if not name.startswith(APART):
            continue
        for target in _imports(name):
            allowed_own = target.startswith(APART)
            if target.startswith("sagemaker_rl") and not (allowed_own or target in SHARED or target == JOB_FACE):
                wrong.append(f"{name} imports {target}")
            elif target == "ray" or target.startswith(HEAVY) or (
                target.startswith("ray.") and not target.startswith(RAY_CLIENT_APIS.get(name, ()))
            ):
                wrong.append(f"{name} imports {target}")
    assert not wrong


def test_importing_the_tuner_and_the_sagemaker_client_loads_neither_rllib_nor_torch():
    names = [name for name in MODULES if name.startswith(APART)] + [JOB_FACE]
    code = ("import importlib, json, sys\n"
            f"for name in {names!r}: importlib.import_module(name)\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'gymnasium', 'pybullet',"
            " 'mujoco') or m.startswith(('ray.rllib', 'ray.tune')))))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert json.loads(done.stdout.splitlines()[-1]) == []


def _units(kind: type, limit: int, roots: list[Path]) -> list[str]:
    found = []
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, kind) and node.end_lineno - node.lineno + 1 > limit:  # type: ignore[attr-defined]
                    lines = node.end_lineno - node.lineno + 1  # type: ignore[attr-defined]
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({lines} lines)")  # type: ignore[attr-defined]
    return found


def test_no_function_is_longer_than_forty_lines():
    roots = [PACKAGE, ROOT / "scripts"]
    too_long = _units(ast.FunctionDef, MAX_FUNCTION_LINES, roots) + _units(ast.AsyncFunctionDef, MAX_FUNCTION_LINES,
                                                                           roots)
    assert not too_long


def test_no_class_is_longer_than_two_hundred_lines():
    assert not _units(ast.ClassDef, MAX_CLASS_LINES, [PACKAGE])
