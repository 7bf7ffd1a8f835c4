"""The engine's compute layout (a channels-last copy on CPUs, same maps, the caller's model untouched)
and its batch (halved when the device runs out of memory)."""
import numpy as np
import torch

from trust_core import explain
from trust_core.saliency.device import compute_model


def test_channels_last_copy_is_cached_and_never_touches_the_model(tiny_model, tiny_images):
    strides = {n: p.stride() for n, p in tiny_model.named_parameters()}
    fast = compute_model(tiny_model, torch.device("cpu"), "fp32")
    from trust_core.models.info import info_of
    assert fast is not tiny_model and info_of(fast).channels_last and not info_of(tiny_model).channels_last
    assert fast.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    assert {n: p.stride() for n, p in tiny_model.named_parameters()} == strides
    assert compute_model(tiny_model, torch.device("cpu"), "fp32") is fast  # reused
    with torch.no_grad():
        tiny_model.fc.bias.add_(1.0)  # an in-place change makes a fresh copy
    again = compute_model(tiny_model, torch.device("cpu"), "fp32")
    assert again is not fast and torch.equal(again.fc.bias, tiny_model.fc.bias)


def test_maps_equal_those_of_the_contiguous_model(tiny_model, tiny_images):
    from trust_core.saliency.explain import compute

    from trust_core.saliency import resolve_params

    light = dict(n_samples=3, ig_steps=4, smooth_ig_steps=2, xrai_steps=3, gradcam_layer="features")
    params = resolve_params("fast", **light)
    methods = ["grad", "smoothgrad", "ig", "gbp", "gradcam"]
    from trust_core.cache.store import weights_digest
    plain = compute(tiny_model.eval(), tiny_images, methods, params, device=torch.device("cpu"), batch_size=8,
                    precision="fp32", model_key=weights_digest(tiny_model))[0]
    ours = explain(tiny_model, tiny_images, methods=methods, preset="fast", **light)
    for m in methods:
        np.testing.assert_allclose(ours[m], plain[m].numpy(), atol=1e-5)


def test_out_of_memory_halves_the_default_batch_or_says_what_to_do(tiny_model, tiny_images, monkeypatch):
    import importlib

    import pytest

    from trust_core.errors import SaliencyError
    module = importlib.import_module("trust_core.saliency.explain")

    real, sizes = module.compute, []

    def short_of_memory(*args, batch_size, **kwargs):
        sizes.append(batch_size)
        if batch_size > 2:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(*args, batch_size=batch_size, **kwargs)

    monkeypatch.setattr(module, "compute", short_of_memory)
    expected = explain(tiny_model, tiny_images, methods=["grad", "gradcam"], gradcam_layer="features", batch_size=2)
    sizes.clear()
    with pytest.warns(RuntimeWarning, match="retrying with 2 passes per chunk"):
        result = explain(tiny_model, tiny_images, methods=["grad", "gradcam"], gradcam_layer="features")
    assert sizes == [16, 8, 4, 2]  # the CPU default for 32² images, halved until it fits
    for method in expected:
        np.testing.assert_allclose(result[method], expected[method], rtol=1e-5, atol=1e-6)
    with pytest.raises(SaliencyError, match="smaller batch_size"):
        explain(tiny_model, tiny_images, methods=["grad"], batch_size=8)


def test_noise_is_drawn_per_model_state(tiny_model, tiny_images):
    """Two model states get independent SmoothGrad draws (the paper drew fresh noise per map); the
    same state gets the same draws again; ``noise_per_model=False`` shares one draw per image."""
    import copy

    from trust_core.cache.store import weights_digest
    from trust_core.saliency.methods.base import noise as _noise
    other = copy.deepcopy(tiny_model)
    with torch.no_grad():
        other.fc.bias.add_(1e-3)  # another state whose gradients barely differ
    a, b = weights_digest(tiny_model), weights_digest(other)
    assert a != b
    image = tiny_images[0]
    first, again, second = _noise(image, 4, 0.15, 0, a), _noise(image, 4, 0.15, 0, a), _noise(image, 4, 0.15, 0, b)
    assert torch.equal(first, again)
    assert abs(float(torch.corrcoef(torch.stack([first.flatten(), second.flatten()]))[0, 1])) < 0.05
    kw = dict(methods=["smoothgrad"], n_samples=4)
    own = [explain(m, tiny_images[:1], **kw)["smoothgrad"][0] for m in (tiny_model, other)]
    shared = [explain(m, tiny_images[:1], noise_per_model=False, **kw)["smoothgrad"][0] for m in (tiny_model, other)]
    assert np.abs(shared[0] - shared[1]).max() < 0.05 < np.abs(own[0] - own[1]).max()
    np.testing.assert_array_equal(own[0], explain(tiny_model, tiny_images[:1], **kw)["smoothgrad"][0])


def test_noise_follows_the_weights_not_the_randomization_run_that_tagged_them():
    """The original state of a cascading and of an independent run, with other seeds, and the plain
    model: equal weights, so equal SmoothGrad maps, and one cache fingerprint (the original state is the
    model as loaded, whoever loads it: the evaluation, the app, `trust maps`)."""
    from trust_core.cache.store import model_fingerprint
    from trust_core.models import build
    from trust_core.randomization import cascade
    torch.manual_seed(0)
    model = build("resnet_tiny").eval()
    x = torch.rand(1, 3, 128, 128) * 2 - 1
    originals = [model] + [next(iter(cascade(model, mode=mode, seed=seed)))[1]
                           for mode, seed in (("cascading", 0), ("independent", 5))]
    assert len({model_fingerprint(m) for m in originals}) == 1
    maps = [explain(m, x, methods=["smoothgrad"], n_samples=3)["smoothgrad"] for m in originals]
    np.testing.assert_array_equal(maps[0], maps[1])
    np.testing.assert_array_equal(maps[0], maps[2])
