"""Packaging: every import declared, the licence, CI's command, and the lower bounds really working.

The slow test builds a fresh virtual environment with exactly the declared lower bounds (every
``>=X`` in ``pyproject.toml`` as ``==X``; torch as the 2.13.0 build, the one this project's machines
carry) through ``scripts/install.sh``, and runs ``studies/margin_sweep.py --smoke-test`` in it.
It needs the package index (or a local mirror) and several minutes.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[1]
TORCH_TESTED = "2.13.0"  # the torch the lower-bound environment gets (its own bound is not installable here)
# Import names that differ from their distribution's name.
DIST_OF_IMPORT = {"sklearn": "scikit-learn", "yaml": "pyyaml"}
_REQ = re.compile(r"^\s*([A-Za-z0-9_.-]+)\s*(\[[^\]]*\])?\s*(.*)$")


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _parse(req: str) -> tuple[str, str]:
    """``"ray[tune,data]>=2.41,<2.61"`` -> ``("ray", ">=2.41,<2.61")`` (name normalised, extras dropped)."""
    m = _REQ.match(req.split(";")[0])
    assert m, req
    return m.group(1).lower().replace("_", "-"), m.group(3).replace(" ", "")


def lower_bound_pins(requirements: list[str], *, overrides: dict[str, str]) -> dict[str, str]:
    """Each requirement's lower bound as an exact pin: ``{"ray": "2.41", ...}``.

    Raises:
        ValueError: a requirement without a ``>=`` bound (nothing to test it at).
    """
    pins = {}
    for req in requirements:
        name, spec = _parse(req)
        if name in overrides:
            pins[name] = overrides[name]
            continue
        lower = [s[2:] for s in spec.split(",") if s.startswith(">=")]
        if len(lower) != 1:
            raise ValueError(f"{req!r}: expected exactly one '>=' lower bound")
        pins[name] = lower[0]
    return pins


def _release(version: str) -> tuple[int, ...]:
    """``"2.13.0+cpu"`` -> ``(2, 13)``; ``"2.41"`` and ``"2.41.0"`` compare equal, as in PEP 440."""
    parts = [int(p) for p in version.split("+")[0].split(".")]
    while parts and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def _top_level_imports(paths: list[Path]) -> set[str]:
    names = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names


def _declared(requirements: list[str]) -> set[str]:
    return {_parse(r)[0] for r in requirements}


def _undeclared(imports: set[str], declared: set[str], *, local: set[str]) -> set[str]:
    third_party = imports - set(sys.stdlib_module_names) - local
    return {name for name in third_party if DIST_OF_IMPORT.get(name, name).lower() not in declared}


def test_every_import_of_the_package_and_studies_is_declared():
    deps = _pyproject()["project"]["dependencies"]
    files = [*(ROOT / "raympa").rglob("*.py"), *(ROOT / "studies").glob("*.py")]
    assert _undeclared(_top_level_imports(files), _declared(deps), local={"raympa"}) == set()


def test_every_import_of_the_tests_is_declared_with_the_test_extra():
    project = _pyproject()["project"]
    deps = [*project["dependencies"], *project["optional-dependencies"]["test"]]
    files = [*(ROOT / "tests").glob("*.py"), *(ROOT / "benchmarks").rglob("*.py")]
    local = {"raympa", "tomllib"} | {p.stem for p in (ROOT / "tests").glob("*.py")} \
        | {p.stem for p in (ROOT / "benchmarks").rglob("*.py")}
    assert _undeclared(_top_level_imports(files), _declared(deps), local=local) == set()


def test_the_import_check_catches_a_missing_declaration():
    """The checks above can fail: an import of an undeclared package is reported by its name."""
    assert _undeclared({"soxr", "sklearn", "json", "raympa"}, {"scikit-learn"}, local={"raympa"}) == {"soxr"}


def test_every_dependency_has_a_lower_bound_and_ray_a_ceiling():
    deps = _pyproject()["project"]["dependencies"]
    pins = lower_bound_pins(deps, overrides={})
    assert {"ray", "optuna", "scikit-learn", "soxr", "threadpoolctl", "mido"} <= set(pins)
    ray_spec = dict(_parse(r) for r in deps)["ray"]
    assert any(s.startswith("<") for s in ray_spec.split(","))  # pinned below an untested minor release
    with pytest.raises(ValueError, match="lower bound"):
        lower_bound_pins(["numpy"], overrides={})


def test_licence_is_mit_in_both_places():
    assert _pyproject()["project"]["license"] == "MIT"
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License") and "raympa contributors" in text
    assert "THE SOFTWARE IS PROVIDED \"AS IS\"" in text


def test_ci_runs_the_readme_test_command_verbatim():
    readme = (ROOT / "README.md").read_text()
    command = re.search(r"Run the tests:\s*```bash\n(.+?)\n```", readme, re.S).group(1).strip()
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert command in ci


def _run(cmd: list[str], *, env: dict, cwd: Path, timeout: float) -> str:
    proc = subprocess.run([str(c) for c in cmd], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{cmd[:3]} exited {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


@pytest.mark.slow
def test_lower_bounds_install_and_run_the_smoke_study(tmp_path):
    """A fresh venv with every dependency at its declared lower bound runs the smoke study."""
    project = _pyproject()
    pins = lower_bound_pins(project["project"]["dependencies"], overrides={"torch": TORCH_TESTED})
    pins.update(lower_bound_pins(project["build-system"]["requires"], overrides={}))  # setuptools
    constraints = tmp_path / "lower-bounds.txt"
    constraints.write_text("".join(f"{name}=={version}\n" for name, version in pins.items()))

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "RAY_ADDRESS")}
    # PIP_CONSTRAINT reaches every pip call of install.sh, build isolation (setuptools) included.
    env.update(PYTHON=str(py), PIP_CONSTRAINT=str(constraints), PATH=f"{venv / 'bin'}{os.pathsep}{env['PATH']}")
    _run(["bash", ROOT / "scripts" / "install.sh"], env=env, cwd=tmp_path, timeout=3600)

    names = [n for n in pins if n != "setuptools"]
    probe = "import json, sys; from importlib import metadata as m; print(json.dumps({n: m.version(n) for n in sys.argv[1:]}))"
    installed = json.loads(_run([py, "-c", probe, *names], env=env, cwd=tmp_path, timeout=120))
    for name in names:
        assert _release(installed[name]) == _release(pins[name]), (name, installed[name], pins[name])

    storage = tmp_path / "results"
    _run([py, ROOT / "studies" / "margin_sweep.py", "--smoke-test", "--storage-path", storage,
          "--data-dir", tmp_path / "data"], env=env, cwd=tmp_path, timeout=3600)
    tables = list(storage.rglob("trials.csv"))
    assert len(tables) == 1
    import pandas as pd

    trials = pd.read_csv(tables[0])
    assert len(trials) >= 2 and (trials["status"] == "TERMINATED").all()
