"""App sessions share one workspace: what the cache holds is read without waiting for another session's
computation on the same model, and predictions run on a model copy of their own."""
import threading
import time

import numpy as np
import pytest

from trust_core.saliency.explain import cached_maps, explain
from trust_core.workspace import Workspace


def test_cached_maps_are_explains_and_need_every_map(app_workspace):
    ws = Workspace(app_workspace)
    model_name = ws.classifiers("rsna")[0]
    ids = ws.dataset("rsna").ids(split="test", label=1)[:2]
    computed = ws.maps("rsna", ids, model_name, methods=["grad", "gradcam"])  # in the cache now
    model = ws.model(model_name)
    from trust_core.models.info import info_of

    prep = info_of(model).prep
    import torch

    x = torch.stack([prep(ws.dataset("rsna").image(i, prep.size, prep.resize)) for i in ids])
    hit = cached_maps(model, x, methods=["grad", "gradcam"], preset="fast", cache=ws.store)
    again = explain(model, x, methods=["grad", "gradcam"], preset="fast", cache=ws.store)
    for m in ("grad", "gradcam"):
        np.testing.assert_array_equal(hit[m], computed[m])
        np.testing.assert_array_equal(hit.unclipped[m], again.unclipped[m])
        assert hit.flags[m] == again.flags[m] and all(hit.from_cache[m])
    np.testing.assert_array_equal(hit.targets, again.targets)
    # maps the cache lacks (another precision's keys): not a hit, explain computes them
    assert cached_maps(model, x, methods=["grad"], preset="fast", cache=ws.store, precision="bf16") is None


def test_a_cached_image_and_a_prediction_do_not_wait_for_another_sessions_computation(app_workspace):
    ws = Workspace(app_workspace)
    model_name = ws.classifiers("rsna")[0]
    image = ws.dataset("rsna").ids(split="test", label=1)[0]
    ws.maps("rsna", [image], model_name, methods=["grad", "gbp"])
    expected = ws.prediction("rsna", image, model_name)
    release = threading.Event()

    def busy():  # another session's computation holds the workspace's computing lock
        with ws._lock:
            release.wait(30)

    worker = threading.Thread(target=busy)
    worker.start()
    try:
        time.sleep(0.1)
        started = time.perf_counter()
        maps = ws.maps("rsna", [image], model_name, methods=["grad", "gbp"])
        output = ws.prediction("rsna", image, model_name)
        waited = time.perf_counter() - started
        assert waited < 5 and all(maps.from_cache["grad"])
        assert output["predicted"] == expected["predicted"]
        assert output["scores"] == pytest.approx(expected["scores"], abs=1e-6)
    finally:
        release.set()
        worker.join()
