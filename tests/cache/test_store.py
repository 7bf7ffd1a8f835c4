import multiprocessing as mp
import time

import numpy as np
import pytest
import torch

from trust_core import explain
from trust_core.cache import Store, digest_array, make_key, model_fingerprint
import importlib
explain_module = importlib.import_module("trust_core.saliency.explain")

LIGHT = dict(n_samples=3, smooth_ig_steps=3, ig_steps=4, xrai_steps=4, gradcam_layer="features")


def test_explain_uses_the_cache(tiny_model, tiny_images, tmp_path, monkeypatch):
    store = Store(tmp_path / "store")
    first = explain(tiny_model, tiny_images, cache=store, **LIGHT)
    assert first.passes > 0 and not any(any(v) for v in first.from_cache.values())
    # A cached call is fast because it does no work: no computation, not even a forward pass (counted, not
    # timed: a loaded machine stretches any wall clock).
    computed, forwards = [], []
    compute = explain_module._compute_within_memory
    monkeypatch.setattr(explain_module, "_compute_within_memory", lambda *a, **k: computed.append(1) or compute(*a, **k))
    forward = type(tiny_model).forward  # the class's: explain's channels-last copy runs it too
    monkeypatch.setattr(type(tiny_model), "forward", lambda self, x: forwards.append(1) or forward(self, x))
    started = time.perf_counter()
    second = explain(tiny_model, tiny_images, cache=store, **LIGHT)
    elapsed = time.perf_counter() - started
    assert not computed and not forwards and second.passes == 0 and second.forwards == 0
    assert all(all(v) for v in second.from_cache.values())
    for method in first:
        np.testing.assert_array_equal(first[method], second[method])
    np.testing.assert_array_equal(first.targets, second.targets)
    assert elapsed < 10, elapsed  # milliseconds of lookups: only a hang (a wait on a claim, a lock) fails this


def test_partial_hits_compute_only_what_is_missing(tiny_model, tiny_images, tmp_path):
    store = Store(tmp_path / "store")
    explain(tiny_model, tiny_images[:2], methods=["grad"], cache=store)
    mixed = explain(tiny_model, tiny_images, methods=["grad"], cache=store)
    assert mixed.from_cache["grad"] == [True, True, False] and mixed.passes == 1


def test_key_depends_on_weights_parameters_and_state(tiny_model, tiny_images, tmp_path):
    store = Store(tmp_path / "store")
    explain(tiny_model, tiny_images[:1], methods=["ig"], cache=store)
    assert explain(tiny_model, tiny_images[:1], methods=["ig"], ig_steps=5, cache=store).passes > 0
    fingerprint = model_fingerprint(tiny_model)
    from trust_core.models.info import ModelInfo, tag
    tag(tiny_model, state={"state": "logits", "seeds": [1]})
    assert model_fingerprint(tiny_model) != fingerprint
    tiny_model.trust_info = ModelInfo()
    assert model_fingerprint(tiny_model) == fingerprint
    with torch.no_grad():
        tiny_model.fc.bias.add_(1e-3)
    assert model_fingerprint(tiny_model) != fingerprint
    assert explain(tiny_model, tiny_images[:1], methods=["ig"], cache=store).passes > 0


def test_interrupted_computation_leaves_no_entry(tiny_model, tiny_images, tmp_path, monkeypatch):
    store = Store(tmp_path / "store")

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(explain_module, "normalize_maps", crash)
    with pytest.raises(KeyboardInterrupt):
        explain(tiny_model, tiny_images, methods=["grad", "ig"], cache=store)
    assert len(store) == 0


def _writer(directory, worker):
    store = Store(directory)
    for i in range(50):
        store.set(make_key(i=i), np.full(100, i, dtype=np.float32))
        value = store.get(make_key(i=(i + worker) % 50))
        assert value is None or (value == value[0]).all()


def test_shared_by_processes(tmp_path):
    ctx = mp.get_context("spawn")
    workers = [ctx.Process(target=_writer, args=(tmp_path / "store", w)) for w in range(3)]
    for p in workers:
        p.start()
    for p in workers:
        p.join(60)
        assert p.exitcode == 0
    store = Store(tmp_path / "store")
    assert len(store) == 50 and all((store.get(make_key(i=i)) == i).all() for i in range(50))


def test_size_bounded(tmp_path):
    store = Store(tmp_path / "store", size_limit=2_000_000)
    for i in range(60):
        store.set(make_key(i=i), np.zeros(100_000, dtype=np.float32))  # 400 kB each
    assert store.volume() < 4_000_000 and len(store) < 60


def test_location_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("TRUST_CACHE", str(tmp_path / "elsewhere"))
    assert Store().directory == tmp_path / "elsewhere"


def test_digest_is_content_based():
    a = torch.arange(12.0).reshape(3, 4)
    assert digest_array(a) == digest_array(a.clone()) == digest_array(a.numpy())
    assert digest_array(a) != digest_array(a.T.contiguous())


def test_computing_claims_waits_and_releases_even_on_error(tmp_path):
    import threading

    store = Store(tmp_path / "s")
    with pytest.raises(RuntimeError):
        with store.computing(["a", "b"]) as arrived:
            assert arrived == {}
            assert not store.claim("a")  # held by this block
            raise RuntimeError("the computation failed")
    assert store.claim("a") and store.claim("b")  # released on the way out
    store.release("b")
    # "a" is being computed elsewhere: the block waits for it and receives it; "b" is claimed here
    threading.Timer(0.2, lambda: (store.set("a", 1), store.release("a"))).start()
    with store.computing(["a", "b"]) as arrived:
        assert arrived == {"a": 1} and not store.claim("b")
    assert store.claim("b")


def test_a_run_that_needs_more_than_the_limit_keeps_its_maps(tmp_path):
    store = Store(tmp_path / "store", size_limit=2_000_000)
    for i in range(4):  # an earlier run's entries
        store.set(make_key(old=i), np.zeros(100_000, dtype=np.float32))
    note = store.reserve(60 * 400_000)  # this run plans 60 maps of 400 kB: 24 MB, past the 2 MB limit
    assert note and "raised" in note and store.size_limit >= 24_000_000
    for i in range(60):
        store.set(make_key(i=i), np.zeros(100_000, dtype=np.float32))
    assert all(make_key(i=i) in store for i in range(60))  # none of the run's own maps evicted
    reopened = Store(tmp_path / "store")  # the raised limit stays with the store (the app browses them)
    assert reopened.size_limit == store.size_limit
    assert store.reserve(1000) is None  # room enough: nothing to say


def test_a_new_store_gets_the_default_limit(tmp_path):
    from trust_core.cache.store import DEFAULT_SIZE_LIMIT

    assert Store(tmp_path / "store").size_limit == DEFAULT_SIZE_LIMIT
