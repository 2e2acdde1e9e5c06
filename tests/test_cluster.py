"""cluster.yaml validated offline, and the study on local multi-node clusters.

The multi-node tests start their own ``ray.cluster_utils.Cluster`` (apart from the shared
``ray_local`` instance, hence ``no_shared_ray``) and shut it down; they use the stand-in fit of
``tests/study_standin.py``, which sleeps instead of training, so they test Tune's scheduling.
"""

from __future__ import annotations

import functools
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

import study_standin
from raympa import study

ROOT = Path(__file__).resolve().parents[1]


def test_cluster_yaml_passes_rays_validation():
    from ray.autoscaler._private.util import prepare_config, validate_config

    raw = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    config = prepare_config(raw)
    validate_config(config)
    assert config["provider"]["type"] == "aws"
    workers = [t for name, t in config["available_node_types"].items() if name != config["head_node_type"]]
    assert any(t["resources"].get("GPU", 0) >= 1 and t["max_workers"] > t["min_workers"] for t in workers)
    head_start = " ".join(config["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head_start and "0.0.0.0" not in head_start
    assert config["docker"]["image"].startswith("rayproject/ray:") and "ray-ml" not in config["docker"]["image"]
    assert any("RAYMPA_CACHE=/mnt/shared" in o for o in config["docker"]["run_options"])
    assert any("pip install" in c and "raympa" in c for c in config["setup_commands"])
    text = (ROOT / "cluster.yaml").read_text().lower()
    for secret in ("aws_secret_access_key", "aws_access_key_id", "password"):
        assert secret not in text


def test_cluster_yaml_typo_is_caught():
    """The validation the test relies on does reject a wrong field (so the test above can fail)."""
    import jsonschema
    from ray.autoscaler._private.util import prepare_config, validate_config

    raw = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    raw["max_worker"] = raw.pop("max_workers")  # typo
    with pytest.raises(jsonschema.ValidationError):
        validate_config(prepare_config(raw))


def _max_overlap(log: list[dict]) -> int:
    """Most trials running at once, from the stand-in's start/end events."""
    events = []
    for e in log:
        if e["event"] == "start":
            events.append((e["t"], 1))
        elif e["event"] in ("end", "fail"):
            events.append((e["t"], -1))
    running = best = 0
    for _, step in sorted(events, key=lambda x: (x[0], x[1])):
        running += step
        best = max(best, running)
    return best


@pytest.fixture()
def tiny_data():
    from raympa.dataset import synthetic_set

    return synthetic_set(20, seed=0, n_frames=(200, 300))


@pytest.mark.slow
def test_quarter_gpu_trials_run_four_at_a_time(no_shared_ray, tiny_data, tmp_path):
    """A 2-node cluster whose worker has one fake GPU: 0.25-GPU trials run four at a time."""
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    try:
        cluster.add_node(num_cpus=4, num_gpus=1)
        ray.init(address=cluster.address, log_to_driver=False)
        study_standin.register()
        log = tmp_path / "log.jsonl"
        fit = functools.partial(study_standin.standin_fit, log=str(log), sleep=1.0)
        settings = study.StudySettings(name="gpu", cpus_per_trial=1, gpus_per_trial=0.25, reuse_actors=False)
        space = {"seed": {"grid_search": list(range(8))}, "epochs": 3}
        out = study.run_study(settings, tiny_data, study_dir=tmp_path / "gpu", param_space=space, fit=fit)
        trials = pd.read_csv(out / "trials.csv")
        assert (trials["status"] == "TERMINATED").all() and len(trials) == 8
        assert _max_overlap(study_standin.read_log(log)) == 4  # one GPU, four quarter shares
    finally:
        ray.shutdown()
        cluster.shutdown()


@pytest.mark.slow
def test_node_lost_mid_study_trials_resume_elsewhere(no_shared_ray, tiny_data, tmp_path):
    """A worker node is removed while its trials run; they resume from checkpoints on the other."""
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    try:
        keep = cluster.add_node(num_cpus=2)
        doomed = cluster.add_node(num_cpus=2)
        ray.init(address=cluster.address, log_to_driver=False)
        study_standin.register()
        log = tmp_path / "log.jsonl"
        fit = functools.partial(study_standin.standin_fit, log=str(log), sleep=0.5)
        settings = study.StudySettings(name="lost", cpus_per_trial=1, max_failures=3, reuse_actors=False,
                                       checkpoint_s=0)
        space = {"seed": {"grid_search": list(range(4))}, "epochs": 12}

        def kill_when_busy() -> None:
            deadline = time.time() + 120
            while time.time() < deadline:
                epochs = [e for e in study_standin.read_log(log) if e["event"] == "epoch" and e["epoch"] >= 2]
                if len({e["pid"] for e in epochs}) >= 4:  # all four trials past their 2nd checkpoint
                    cluster.remove_node(doomed, allow_graceful=False)
                    return
                time.sleep(0.2)

        killer = threading.Thread(target=kill_when_busy, daemon=True)
        killer.start()
        out = study.run_study(settings, tiny_data, study_dir=tmp_path / "lost", param_space=space, fit=fit)
        killer.join(timeout=5)
        trials = pd.read_csv(out / "trials.csv")
        assert (trials["status"] == "TERMINATED").all() and len(trials) == 4
        starts = [e for e in study_standin.read_log(log) if e["event"] == "start"]
        resumed = [e for e in starts if e["epoch"] > 0]
        assert len(resumed) >= 1  # the lost node's trials continued from a checkpoint
        assert len(ray.nodes()) == 3 and sum(n["Alive"] for n in ray.nodes()) == 2
        assert keep is not None
    finally:
        ray.shutdown()
        cluster.shutdown()
