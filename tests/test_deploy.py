"""Deployment files: no Docker engine runs here, so parse them and check what a GPU box needs."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker" / "docker-compose.yml"
DOCKERFILE = ROOT / "docker" / "Dockerfile"
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s;]+)$")


def _pyproject_pins() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = {}
    for requirement in project["dependencies"]:
        match = PIN.match(requirement)
        assert match, f"dependency {requirement!r} in pyproject.toml is not pinned with =="
        pins[match.group(1).lower().replace("_", "-")] = match.group(2)
    return pins


def _service() -> dict:
    compose = yaml.safe_load(COMPOSE.read_text())
    return compose["services"]["mr2probe"]


def test_compose_reserves_an_nvidia_gpu():
    devices = _service()["deploy"]["resources"]["reservations"]["devices"]
    assert any(d["driver"] == "nvidia" and "gpu" in d["capabilities"] for d in devices)


def test_compose_persists_state_in_a_named_volume():
    compose = yaml.safe_load(COMPOSE.read_text())
    service = _service()
    data_dir = service["environment"]["MR2PROBE_DATA_DIR"]
    mounts = [v.split(":") for v in service["volumes"] if isinstance(v, str)]  # short syntax: name:target
    assert [name for name, target in mounts if target == data_dir] == ["mr2probe-data"]
    assert "mr2probe-data" in compose["volumes"]
    assert service["command"][service["command"].index("--data-dir") + 1] == data_dir


def test_compose_token_from_environment_healthcheck_and_restart():
    service = _service()
    assert service["environment"]["MR2PROBE_API_TOKEN"].startswith("${MR2PROBE_API_TOKEN")
    assert "/api/health" in " ".join(service["healthcheck"]["test"])
    assert service["restart"] in {"always", "unless-stopped", "on-failure"}


def test_dockerfile_installs_the_pyproject_pins():
    text = DOCKERFILE.read_text()
    assert re.search(r"^FROM nvidia/cuda:[\w.\-]+-runtime", text, re.M), "base must be a CUDA runtime image"
    pins = _pyproject_pins()
    explicit = dict(
        (name.lower().replace("_", "-"), version)
        for name, version in re.findall(r"\b([A-Za-z][A-Za-z0-9_\-]*)==([0-9][^\s\\]*)", text)
    )
    assert {"torch", "torchvision"} <= explicit.keys()
    for name, version in explicit.items():
        assert pins.get(name) == version, f"Dockerfile pins {name}=={version}, pyproject.toml has {pins.get(name)}"
    # Everything else comes from pyproject.toml itself.
    assert re.search(r"^COPY pyproject\.toml", text, re.M) and re.search(r"pip install \.(\s|$)", text)


def test_ci_runs_the_readme_test_command():
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    first_block = readme.split("```")[1]
    assert "make demo" in first_block and "make test" in first_block


def test_compose_mounts_a_data_root_read_only():
    """Registering a folder or a cache file by path needs a data root: without one it is a 403 (an outside round
    on the GPU box: the compose file set none, and the README said nothing)."""
    service = _service()
    root = service["environment"]["MR2PROBE_DATA_ROOT"]
    binds = [v for v in service["volumes"] if isinstance(v, dict) and v["target"] == root]
    assert len(binds) == 1 and binds[0]["type"] == "bind" and binds[0]["read_only"] is True
    assert binds[0]["source"].startswith("${MR2PROBE_DATASETS")
