"""The Ray engine: the same per-image values as the local engine, bit for bit (its actors run the driver's
torch thread count, and each unit is the same batch of images); a killed worker loses nothing."""
import os
import signal
import threading
import time

import pandas as pd
import pytest

ray = pytest.importorskip("ray", reason="the Ray extra is not installed (make test installs it)")

from trust_core.cache import Store  # noqa: E402
from trust_core.evaluate import EvalConfig, Evaluation  # noqa: E402
from trust_core.evaluate.distributed import ray_executor  # noqa: E402
from trust_core.models import TrainConfig, train_classifier  # noqa: E402

FAST = dict(n_samples=2, smooth_ig_steps=2, ig_steps=3, xrai_steps=3)


@pytest.fixture(scope="module")
def models(tmp_path_factory, rsna):
    root = tmp_path_factory.mktemp("ray_models")
    return [train_classifier(rsna, TrainConfig(arch=a, seed=s, epochs=1, batch_size=8, image_size=64),
                             root / f"{a}_{s}.pt").path
            for a, s in (("densenet_tiny", 0), ("densenet_tiny", 1), ("resnet_tiny", 0))]


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}})
    yield
    ray.shutdown()


def config():
    return EvalConfig(preset="fast", overrides=FAST, ssim_images=4, baseline_pairs=3, group=2,
                      methods=("grad", "gbp", "gradcam"))


@pytest.fixture(scope="module")
def local(rsna, models, tmp_path_factory):
    """The local engine's evaluation: the reference both Ray runs are compared with."""
    return Evaluation(rsna, models, config(), cache=Store(tmp_path_factory.mktemp("local"))).run()


def test_ray_engine_equals_local_engine(rsna, models, cluster, local, tmp_path):
    import torch

    threads = {}
    distributed = Evaluation(rsna, models, config(), cache=Store(tmp_path / "ray")).run(
        executor=ray_executor(workers=2, on_actors=lambda actors: threads.update(
            actors=ray.get([a.threads.remote() for a in actors]))))
    assert threads["actors"] == [torch.get_num_threads()] * 2  # the driver's count, whatever the cluster's env
    assert distributed.stats["cached_images"] == 0
    assert_same_tables(local, distributed)
    assert_equal_tree(local.summary["criteria"], distributed.summary["criteria"])


def assert_same_tables(a, b):
    """Every table equal bit for bit. Only the thread count could make the engines differ on one machine (a
    CPU convolution's summation order follows it): 1e-7 apart in a map is enough to swap two pixels' ranks,
    and a rank-based score such as AUPRC then moves by 1e-5, beyond any tolerance that would still mean
    'the same result'. The actors run the driver's count, so nothing is tolerated."""
    assert a.tables.keys() == b.tables.keys()
    for name, table in a.tables.items():
        pd.testing.assert_frame_equal(table, b.tables[name], check_exact=True, obj=name)


def assert_equal_tree(a, b, path="summary"):
    """Equal structure and values (floats bit for bit; NaN equals NaN)."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for key in a:
            assert_equal_tree(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_equal_tree(x, y, f"{path}[{i}]")
    elif isinstance(a, float):
        assert a == b or (a != a and b != b), (path, a, b)
    else:
        assert a == b, path


def test_killed_worker_loses_only_its_unfinished_units(rsna, models, cluster, local, tmp_path):
    store_dir = tmp_path / "store"
    evaluation = Evaluation(rsna, models, config(), cache=Store(store_dir))
    killed = {}

    def kill_one_worker(actors):
        def later():
            # Wait until work has landed in the cache, then SIGKILL one actor's process mid-run.
            pid = ray.get(actors[0].pid.remote())
            deadline = time.time() + 60
            while time.time() < deadline and len(Store(store_dir)) < 6:
                time.sleep(0.05)
            os.kill(pid, signal.SIGKILL)
            killed["pid"] = pid
        threading.Thread(target=later, daemon=True).start()

    result = evaluation.run(executor=ray_executor(workers=2, max_restarts=3, on_actors=kill_one_worker))
    assert killed, "no worker was killed"
    assert_same_tables(local, result)  # the restarted actor runs the driver's thread count too
    # A rerun completes from the cache alone.
    again = Evaluation(rsna, models, config(), cache=Store(store_dir)).run(executor=ray_executor(workers=2))
    assert again.stats["passes"] == 0


def test_ray_runs_a_multi_finding_dataset_and_spec_models(cluster, tmp_path):
    """Workers rebuild the finding's selection (NIH-style films, one finding) and models given as specs
    (ModelSpec objects, as the CLI's flags make them, with ImageNet statistics): results equal the local
    engine's."""
    import torch

    from trust_core.data import open_dataset
    from trust_core.demo.films import build_nih_phantom
    from trust_core.models.spec import spec_from_dict

    build_nih_phantom(tmp_path / "nih", n_images=24, workers=1)
    dataset = open_dataset(f"nih:{tmp_path / 'nih'}", finding="Infiltrate", image_size=64)
    torch.manual_seed(0)
    weights = tmp_path / "r18.pth"
    import torchvision
    torch.save(torchvision.models.resnet18(weights=None, num_classes=2).state_dict(), weights)
    spec = spec_from_dict({"source": "torchvision:resnet18", "weights": str(weights), "source_kwargs": {"num_classes": 2},
                           "preprocessing": {"size": 64, "normalization": "imagenet"}})
    cfg = EvalConfig(preset="fast", overrides=FAST, ssim_images=3, baseline_pairs=2, group=2, methods=("grad", "gradcam"),
                     criteria=("utility", "randomization"))
    local = Evaluation(dataset, [spec], cfg, cache=Store(tmp_path / "local")).run()
    distributed = Evaluation(dataset, [spec], cfg, cache=Store(tmp_path / "ray")).run(executor=ray_executor(workers=2))
    assert local.summary["dataset"]["finding"] == distributed.summary["dataset"]["finding"] == "Infiltrate"
    assert_same_tables(local, distributed)  # a ResNet-18's Grad-CAM at 2×2: the thread count showed here
    assert_equal_tree(local.summary["criteria"], distributed.summary["criteria"])


def test_ray_workers_leave_out_the_films_the_driver_skipped(phantom_root, models, cluster, tmp_path):
    """A film the driver found unreadable (skipped and listed) stays out of every worker's dataset: the workers
    see the driver's screened dataset, never read the film again, and the results equal the local engine's."""
    import shutil

    from trust_core.data import RSNADataset
    from trust_core.evaluate.films import screen_for_evaluation

    shutil.copytree(phantom_root / "rsna", tmp_path / "rsna")
    probe = RSNADataset(tmp_path / "rsna", image_size=64)
    bad_id = probe.ids(split="test", label=1)[0]
    bad = probe.record(bad_id).path
    bad.write_bytes(bad.read_bytes()[:300])  # cut short: unreadable

    def screened():
        dataset = RSNADataset(tmp_path / "rsna", image_size=64)
        assert list(screen_for_evaluation(dataset, config().criteria)) == [bad_id]
        return dataset

    seen = {}
    local = Evaluation(screened(), models, config(), cache=Store(tmp_path / "local")).run()
    distributed = Evaluation(screened(), models, config(), cache=Store(tmp_path / "ray")).run(
        executor=ray_executor(workers=2, on_actors=lambda actors: seen.update(
            ids=ray.get([a.image_ids.remote() for a in actors]))))
    assert all(bad_id not in ids for ids in seen["ids"]) and len(seen["ids"]) == 2
    assert seen["ids"][0] == screened().ids()
    assert bad_id not in set(local.tables["utility"].image_id)
    assert_same_tables(local, distributed)
    assert_equal_tree(local.summary["criteria"], distributed.summary["criteria"])
