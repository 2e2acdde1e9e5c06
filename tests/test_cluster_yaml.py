"""cluster.yaml against what a first ``ray up`` needs, and README's cluster commands against it.

Ray's own schema check runs in tests/test_cluster.py; these are the points it cannot see: the
workers' instance profile (S3), the NFS client before the EFS mount, one pinned torch everywhere,
token authentication on every node, and a ``rsync-down`` that lands where the study folder is.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def config() -> dict:
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = prepare_config(yaml.safe_load((ROOT / "cluster.yaml").read_text()))
    validate_config(config)
    return config


def _cluster_section() -> str:
    readme = (ROOT / "README.md").read_text()
    return readme[readme.index("## Running on a cluster"):].split("\n## ", 1)[0]


def test_every_node_type_has_its_own_instance_profile(config):
    profiles = {name: t["node_config"].get("IamInstanceProfile") for name, t in config["available_node_types"].items()}
    assert all(profiles.values()), profiles  # Ray's default profile would reach the head only
    head = profiles[config["head_node_type"]]
    assert all(p != head for name, p in profiles.items() if name != config["head_node_type"])
    section = _cluster_section()
    for profile in profiles.values():  # README creates each profile the file names
        assert profile["Name"] in section
    assert "iam:PassRole" in section  # the head may hand the worker role to the instances it starts


def test_nfs_client_is_installed_before_the_efs_mount(config):
    commands = config["initialization_commands"]
    mount = next(i for i, c in enumerate(commands) if "mount -t nfs4" in c)
    client = next(i for i, c in enumerate(commands) if "nfs-common" in c)
    assert client < mount
    assert "efs.us-west-2.amazonaws.com" in commands[mount] and config["provider"]["region"] == "us-west-2"


def test_one_pinned_torch_build_before_the_project_on_every_node():
    # The file as written (prepare_config merges setup_commands into the per-node lists).
    config = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    commands = config["setup_commands"]  # setup_commands run on the head and on every worker
    torch = [i for i, c in enumerate(commands) if re.search(r"pip install .*\btorch==\d+\.\d+\.\d+", c)]
    project = next(i for i, c in enumerate(commands) if "pip install" in c and "raympa" in c)
    assert len(torch) == 1 and torch[0] < project
    assert not any("torch" in c and "pip install" in c for c in config["worker_setup_commands"]
                   + config["head_setup_commands"])
    assert any("cuda.is_available" in c for c in config["worker_setup_commands"])


def test_token_authentication_on_every_node(config):
    assert "--env RAY_AUTH_MODE=token" in config["docker"]["run_options"]
    assert config["file_mounts"].get("~/.ray/auth_token") == "~/.ray/auth_token"
    assert "ray get-auth-token --generate" in _cluster_section()


def test_placeholders_are_filled_by_the_readme_steps():
    text = (ROOT / "cluster.yaml").read_text()
    section = _cluster_section()
    for placeholder in set(re.findall(r"\b(?:fs|ami)-0{8}\b", text)):
        assert re.search(rf"sed -i .*{placeholder}", section), placeholder


def test_rsync_down_lands_the_study_folder_where_it_belongs():
    section = _cluster_section()
    line = next(l for l in section.splitlines() if "ray rsync-down" in l)
    _, _, _, source, target = shlex.split(line.strip())[:5]
    # A folder without a trailing slash is copied *into* the target (twice: container, then head).
    assert source.endswith("/") and target.endswith("/")
    storage = re.search(r"--storage-path (/\S+)", section).group(1)  # the first local one
    assert source.rstrip("/") == f"{storage}/margin_sweep"
    assert target.rstrip("/") == "results/margin_sweep"
