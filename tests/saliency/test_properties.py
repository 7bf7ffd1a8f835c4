"""Properties every method must have, parametrized over the one registry."""
import numpy as np
import pytest
import torch

from trust_core import METHODS, PRESETS, explain
from trust_core.errors import ConfigError, SaliencyError
from trust_core.models import build
from trust_core.saliency import resolve_params

LIGHT = dict(n_samples=3, smooth_ig_steps=3, ig_steps=4, xrai_steps=4, gradcam_layer="features")


@pytest.mark.parametrize("method", list(METHODS))
def test_shape_range_determinism_and_batch_invariance(method, tiny_model, tiny_images):
    together = explain(tiny_model, tiny_images, methods=[method], **LIGHT)
    again = explain(tiny_model, tiny_images, methods=[method], **LIGHT)
    maps = together[method]
    assert maps.shape == (3, 32, 32) and maps.dtype == np.float32
    assert np.nanmin(maps) >= 0.0 and np.nanmax(maps) <= 1.0
    assert all(flag is None for flag in together.flags[method])
    np.testing.assert_array_equal(maps, again[method])  # deterministic under the seed
    for i in range(3):
        alone = explain(tiny_model, tiny_images[i:i + 1], methods=[method], **LIGHT)
        np.testing.assert_allclose(alone[method][0], maps[i], rtol=1e-4, atol=1e-5)


def test_seed_changes_noisy_methods_only(tiny_model, tiny_images):
    a = explain(tiny_model, tiny_images[:1], methods=["smoothgrad", "grad"], seed=0, **LIGHT)
    b = explain(tiny_model, tiny_images[:1], methods=["smoothgrad", "grad"], seed=1, **LIGHT)
    assert not np.allclose(a["smoothgrad"], b["smoothgrad"])
    np.testing.assert_array_equal(a["grad"], b["grad"])


def test_every_parameter_is_recorded(tiny_model, tiny_images):
    result = explain(tiny_model, tiny_images[:1], methods=["ig"], preset="fast", ig_steps=7,
                     gradcam_layer="features")
    assert result.params["preset"] == "fast" and result.params["ig_steps"] == 7
    assert result.method_params["ig"]["ig_steps"] == 7 and result.method_params["ig"]["ig_baseline"] == -1.0
    assert "NOT the paper" in result.preset_label


def test_paper_preset_values():
    p = resolve_params("arun2021")
    assert (p["n_samples"], p["noise_spread"], p["magnitude"]) == (25, 0.15, True)
    assert (p["ig_steps"], p["ig_baseline"], p["smooth_ig_steps"]) == (10, -1.0, 10)
    assert (p["xrai_steps"], p["xrai_algorithm"], p["xrai_area_threshold"], p["xrai_min_pixel_diff"]) == (100, "full", 1.0, 50)
    assert p["xrai_scales"] == (50, 100, 150, 250, 500, 1200) and p["xrai_sigma"] == 0.8
    assert (p["xrai_min_size"], p["xrai_dilation_radius"], p["xrai_resize"]) == (150, 5, 224)
    assert p["percentile"] == 99.0 and p["target"] == "predicted"
    assert PRESETS["arun2021"].paper and not PRESETS["fast"].paper


def test_explicit_target(tiny_model, tiny_images):
    for target in range(3):
        result = explain(tiny_model, tiny_images[:2], methods=["grad"], target=target)
        assert list(result.targets) == [target, target]
    assert not np.allclose(explain(tiny_model, tiny_images[:1], methods=["grad"], target=0).raw["grad"],
                           explain(tiny_model, tiny_images[:1], methods=["grad"], target=1).raw["grad"])


def test_predicted_class_is_the_argmax(tiny_model, tiny_images):
    result = explain(tiny_model, tiny_images, methods=["gbp"])
    with torch.no_grad():
        np.testing.assert_array_equal(result.targets, tiny_model(tiny_images).argmax(1).numpy())


def test_passes_are_shared(tiny_model, tiny_images):
    r = explain(tiny_model, tiny_images[:1], methods=["grad", "ig", "gradcam", "guided_gradcam"], ig_steps=10,
                gradcam_layer="features")
    assert r.passes == 1 + 9 + 1  # plain (grad, IG's α=1, Grad-CAM) + 9 IG steps + GBP


def test_model_is_not_modified(tiny_model, tiny_images):
    before = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    flags = [p.requires_grad for p in tiny_model.parameters()]
    tiny_model.train()
    explain(tiny_model, tiny_images[:1], **LIGHT)
    assert tiny_model.training and flags == [p.requires_grad for p in tiny_model.parameters()]
    for k, v in tiny_model.state_dict().items():
        torch.testing.assert_close(v, before[k])


def test_dead_map_is_flagged_not_zeroed(tiny_images):
    from tests.conftest import TinyNet
    model = TinyNet().eval()
    with torch.no_grad():
        model.fc.weight.zero_()  # logits no longer depend on the input: every gradient is 0
    result = explain(model, tiny_images[:2], methods=["grad", "gradcam", "guided_gradcam"],
                     gradcam_layer="features")
    for method in ("grad", "gradcam", "guided_gradcam"):
        assert np.isnan(result[method]).all()
        assert all("constant" in flag for flag in result.flags[method])


def test_bf16_on_cpu_is_close_to_fp32(tiny_model, tiny_images, monkeypatch):
    import trust_core.hardware
    monkeypatch.setattr(trust_core.hardware, "cpu_bf16_native", lambda: True)  # the maths, on any CPU
    fp32 = explain(tiny_model, tiny_images, methods=["grad", "gradcam"], gradcam_layer="features")
    bf16 = explain(tiny_model, tiny_images, methods=["grad", "gradcam"], gradcam_layer="features",
                   precision="bf16")
    for m in ("grad", "gradcam"):
        assert np.corrcoef(fp32[m].ravel(), bf16[m].ravel())[0, 1] > 0.9


def test_bf16_is_refused_on_a_cpu_without_native_bf16(tiny_model, tiny_images, monkeypatch):
    import trust_core.hardware as hw
    monkeypatch.setattr(hw, "cpu_flags", lambda: frozenset({"avx2", "fma"}))
    monkeypatch.setattr(hw, "cpu_capability", lambda: "AVX2")
    assert not hw.cpu_bf16_native() and hw.cpu_precisions() == ("fp32",)
    with pytest.raises(SaliencyError, match="bf16 is refused on this CPU .AVX2.*13× slower"):
        explain(tiny_model, tiny_images, methods=["grad"], precision="bf16")
    monkeypatch.setattr(hw, "cpu_flags", lambda: frozenset({"avx512f", "avx512_bf16"}))
    assert hw.cpu_bf16_native() and hw.cpu_precisions() == ("fp32", "bf16")
    assert hw.precision_problem("bf16", torch.device("cuda")) is None  # GPUs are not this rule's business


# -- bad inputs --------------------------------------------------------------------------------------

def test_wrong_image_size_for_registry_model():
    model = build("densenet_tiny")
    with pytest.raises(SaliencyError, match="expects 128×128 inputs, got 64×64"):
        explain(model, torch.zeros(1, 3, 64, 64), methods=["grad"])


@pytest.mark.parametrize("shape", [(1, 1, 32, 32), (2, 32, 32, 3), (32, 32)])
def test_wrong_channels_or_layout(tiny_model, shape):
    with pytest.raises(SaliencyError, match=r"\(N, 3, H, W\)"):
        explain(tiny_model, torch.zeros(shape), methods=["grad"])


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_image(tiny_model, tiny_images, bad):
    x = tiny_images.clone()
    x[0, 0, 0, 0] = bad
    with pytest.raises(SaliencyError, match="NaN or infinite"):
        explain(tiny_model, x, methods=["grad"])


def test_missing_gradcam_layer(tiny_model, tiny_images):
    with pytest.raises(SaliencyError, match="pass gradcam_layer"):
        explain(tiny_model, tiny_images, methods=["gradcam"])
    with pytest.raises(SaliencyError, match="no layer 'nope'"):
        explain(tiny_model, tiny_images, methods=["guided_gradcam"], gradcam_layer="nope")


def test_target_out_of_range(tiny_model, tiny_images):
    with pytest.raises(SaliencyError, match="target class 5 is out of range: the model has 3 outputs"):
        explain(tiny_model, tiny_images, methods=["grad"], target=5)


@pytest.mark.parametrize("kwargs, message", [
    (dict(methods=["gradient"]), "unknown saliency method"),
    (dict(preset="paper"), "unknown preset"),
    (dict(n_sample=3), "unknown saliency parameter"),
    (dict(n_samples=0), "n_samples must be a positive integer"),
    (dict(noise_spread=-0.1), "noise_spread must be a number"),
    (dict(xrai_algorithm="greedy"), "xrai_algorithm must be one of"),
    (dict(percentile=120), "percentile"),
    (dict(precision="fp8"), "precision must be one of"),
    (dict(precision="tf32"), "tf32 is for CUDA devices"),
    (dict(precision="fp16"), "fp16 is for CUDA devices"),
])
def test_bad_configuration(tiny_model, tiny_images, kwargs, message):
    with pytest.raises((ConfigError, SaliencyError), match=message):
        explain(tiny_model, tiny_images, **kwargs)
