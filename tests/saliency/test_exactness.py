"""Our maps against the references: PAIR `saliency.core`, captum, with the same noise draws."""
import numpy as np
import pytest
import saliency.core as pair
import torch
from captum.attr import GuidedBackprop, LayerAttribution, LayerGradCam
from saliency.core import base as pair_base

from trust_core import explain
from trust_core.cache.store import weights_digest
from trust_core.saliency.methods.base import noise as _noise
from trust_core.saliency.postprocess import normalize_maps

from ..conftest import TinyNet

RTOL, ATOL = 2e-4, 1e-6


def pair_call(model, target):
    def call_model_function(x_batch, call_model_args=None, expected_keys=None):
        x = torch.tensor(np.asarray(x_batch), dtype=torch.float32).permute(0, 3, 1, 2).requires_grad_(True)
        out = model(x)[:, target].sum()
        (grad,) = torch.autograd.grad(out, x)
        return {pair.INPUT_OUTPUT_GRADIENTS: grad.permute(0, 2, 3, 1).numpy()}
    return call_model_function


def hwc(t):
    return t.permute(1, 2, 0).numpy() if isinstance(t, torch.Tensor) else np.transpose(t, (1, 2, 0))


def pair_map(attr_hwc):
    m = pair.VisualizeImageGrayscale(attr_hwc, percentile=99)
    return (m - m.min()) / (m.max() - m.min())


@pytest.fixture
def same_noise(monkeypatch):
    """Make PAIR draw our noise samples (we seed by image content and model state)."""
    def install(image, n_samples, spread, model, seed=0):
        draws = iter(_noise(image, n_samples, spread, seed, weights_digest(model)).numpy())
        expected = spread * float(image.max() - image.min())

        def normal(loc, scale, size):
            assert loc == 0 and abs(scale - expected) < 1e-5 * max(1.0, expected)
            return hwc(next(draws))
        monkeypatch.setattr(pair_base.np.random, "normal", normal)
    return install


def test_grad_equals_pair(tiny_model, tiny_images):
    result = explain(tiny_model, tiny_images, methods=["grad"])
    for i, x in enumerate(tiny_images):
        reference = pair.GradientSaliency().GetMask(hwc(x), pair_call(tiny_model, int(result.targets[i])))
        np.testing.assert_allclose(hwc(result.raw["grad"][i]), reference, rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(result["grad"][i], pair_map(reference), rtol=1e-4, atol=1e-5)


def test_ig_equals_pair_riemann_both_ends(tiny_model, tiny_images):
    result = explain(tiny_model, tiny_images, methods=["ig"])
    for i, x in enumerate(tiny_images):
        reference = pair.IntegratedGradients().GetMask(
            hwc(x), pair_call(tiny_model, int(result.targets[i])), x_baseline=-np.ones((32, 32, 3), np.float32),
            x_steps=10, batch_size=4)
        np.testing.assert_allclose(hwc(result.raw["ig"][i]), reference, rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(result["ig"][i], pair_map(reference), rtol=1e-4, atol=1e-5)


def test_smoothgrad_equals_pair_with_same_noise(tiny_model, tiny_images, same_noise):
    result = explain(tiny_model, tiny_images[:2], methods=["smoothgrad"], n_samples=6)
    for i, x in enumerate(tiny_images[:2]):
        same_noise(x, 6, 0.15, tiny_model)
        reference = pair.GradientSaliency().GetSmoothedMask(
            hwc(x), pair_call(tiny_model, int(result.targets[i])), stdev_spread=0.15, nsamples=6, magnitude=True)
        np.testing.assert_allclose(hwc(result.raw["smoothgrad"][i]), reference, rtol=1e-3, atol=1e-8)


def test_smooth_ig_equals_pair_and_shares_noise_with_smoothgrad(tiny_model, tiny_images, same_noise):
    both = explain(tiny_model, tiny_images[:2], methods=["smoothgrad", "smooth_ig"], n_samples=5,
                   smooth_ig_steps=4)
    alone = explain(tiny_model, tiny_images[:2], methods=["smoothgrad"], n_samples=5)
    np.testing.assert_allclose(both.raw["smoothgrad"], alone.raw["smoothgrad"], rtol=1e-5, atol=1e-9)
    # shared: Smooth IG's α = 1 steps are SmoothGrad's samples, so no extra passes
    assert both.passes == 2 * 5 * 4 and alone.passes == 2 * 5
    for i, x in enumerate(tiny_images[:2]):
        same_noise(x, 5, 0.15, tiny_model)
        reference = pair.IntegratedGradients().GetSmoothedMask(
            hwc(x), pair_call(tiny_model, int(both.targets[i])), stdev_spread=0.15, nsamples=5, magnitude=True,
            x_baseline=-np.ones((32, 32, 3), np.float32), x_steps=4, batch_size=4)
        np.testing.assert_allclose(hwc(both.raw["smooth_ig"][i]), reference, rtol=1e-3, atol=1e-9)


def test_gbp_equals_captum(tiny_model, tiny_images):
    result = explain(tiny_model, tiny_images, methods=["gbp"])
    reference = GuidedBackprop(tiny_model).attribute(tiny_images.clone(), target=torch.as_tensor(result.targets))
    np.testing.assert_allclose(result.raw["gbp"], reference.detach().numpy(), rtol=RTOL, atol=ATOL)


def test_gbp_guides_functional_relus(tiny_images):
    torch.manual_seed(0)
    modules, functional = TinyNet(), TinyNet(functional=True)
    functional.load_state_dict(modules.state_dict())
    ours = explain(functional.eval(), tiny_images, methods=["gbp", "grad"])
    reference = GuidedBackprop(modules.eval()).attribute(tiny_images.clone(), target=torch.as_tensor(ours.targets))
    np.testing.assert_allclose(ours.raw["gbp"], reference.detach().numpy(), rtol=RTOL, atol=ATOL)
    assert not np.allclose(ours.raw["gbp"], ours.raw["grad"])  # guiding changed something


def test_gbp_guides_torchvision_densenet_functional_final_relu():
    from torchvision import models as tvm

    from trust_core.models import build
    torch.manual_seed(0)
    ours_model = build("densenet_tiny")  # final ReLU is a module: captum guides it
    torchvision_model = tvm.DenseNet(growth_rate=12, block_config=(2, 2, 2, 2), num_init_features=24,
                                     bn_size=2, num_classes=2).eval()  # final ReLU is F.relu
    torchvision_model.load_state_dict(ours_model.state_dict())
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    ours = explain(torchvision_model, x, methods=["gbp"])
    reference = GuidedBackprop(ours_model).attribute(x.clone(), target=torch.as_tensor(ours.targets))
    np.testing.assert_allclose(ours.raw["gbp"], reference.detach().numpy(), rtol=RTOL, atol=1e-7)


def captum_cam(model, layer, x, targets):
    return LayerGradCam(model, layer).attribute(x.clone(), target=torch.as_tensor(targets), relu_attributions=True)


def tf1_legacy_resize(cam, size):
    """Oracle for TF1 ``resize_bilinear`` without half-pixel centres: scipy's linear interpolation at
    source coordinates ``i × in / out`` (edge pixels repeated)."""
    from scipy import ndimage
    h, w = cam.shape
    ys = np.arange(size[0]) * (h / size[0])
    xs = np.arange(size[1]) * (w / size[1])
    grid = np.meshgrid(ys, xs, indexing="ij")
    return ndimage.map_coordinates(cam.astype(np.float64), grid, order=1, mode="nearest")


def test_tf1_legacy_resize_hand_computed():
    from trust_core.saliency.engine import tf1_resize_bilinear
    cam = torch.tensor([[0.0, 1.0], [2.0, 3.0]])[None, None]
    expected = [[0, 0.5, 1, 1], [1, 1.5, 2, 2], [2, 2.5, 3, 3], [2, 2.5, 3, 3]]
    np.testing.assert_allclose(tf1_resize_bilinear(cam, (4, 4))[0, 0].numpy(), expected)


def test_tf1_legacy_shifts_an_8x8_map_20_px_at_320():
    """A single hot cell of an 8×8 map: under the legacy rule its centre of mass sits at 40 × cell
    (source = destination × 8/320), under half-pixel-centred bilinear at 40 × (cell + ½) − ½: 19.5 px
    nearer the top-left corner."""
    from trust_core.saliency.engine import upsample_cam
    cam = torch.zeros(1, 1, 8, 8)
    cam[0, 0, 3, 4] = 1.0

    def centre(rule):
        up = upsample_cam(cam, (320, 320), rule)[0, 0].double()
        yy, xx = torch.meshgrid(torch.arange(320.), torch.arange(320.), indexing="ij")
        return float((up * yy).sum() / up.sum()), float((up * xx).sum() / up.sum())
    (ly, lx), (by, bx) = centre("tf1_legacy"), centre("bilinear")
    assert by == pytest.approx(3.5 * 40 - 0.5, abs=1e-3) and bx == pytest.approx(4.5 * 40 - 0.5, abs=1e-3)
    assert (ly, lx) == (pytest.approx(120, abs=1e-3), pytest.approx(160, abs=1e-3))
    assert by - ly == pytest.approx(19.5, abs=1e-3) and bx - lx == pytest.approx(19.5, abs=1e-3)


@pytest.mark.parametrize("rule", ["tf1_legacy", "bilinear", "bicubic", "nearest"])
def test_gradcam_equals_captum_under_each_interpolation(tiny_model, tiny_images, rule):
    result = explain(tiny_model, tiny_images, methods=["gradcam"], gradcam_layer="features",
                     gradcam_interpolation=rule)
    assert result.params["gradcam_interpolation"] == rule
    assert result.method_params["gradcam"]["gradcam_interpolation"] == rule
    cam = captum_cam(tiny_model, tiny_model.features, tiny_images, result.targets)
    if rule == "tf1_legacy":
        reference = np.stack([tf1_legacy_resize(c[0].detach().numpy(), (32, 32)) for c in cam])
    else:
        reference = LayerAttribution.interpolate(cam, (32, 32), interpolate_mode=rule)[:, 0].detach().numpy()
        if rule == "bicubic":
            reference = np.clip(reference, 0, None)  # a ReLU map: bicubic overshoot below 0 is clipped
    np.testing.assert_allclose(result.raw["gradcam"], reference, rtol=RTOL, atol=1e-6)


def test_gradcam_interpolation_changes_the_map(tiny_model, tiny_images):
    maps = {rule: explain(tiny_model, tiny_images, methods=["gradcam"], gradcam_layer="features",
                          gradcam_interpolation=rule)["gradcam"] for rule in ("tf1_legacy", "bilinear")}
    assert np.abs(maps["tf1_legacy"] - maps["bilinear"]).max() > 0.05


def test_gradcam_on_registry_model_uses_its_layer():
    from trust_core.models import build
    torch.manual_seed(0)
    model = build("resnet_tiny")
    x = torch.rand(1, 3, 128, 128) * 2 - 1
    result = explain(model, x, methods=["gradcam"], gradcam_interpolation="bilinear")
    cam = captum_cam(model, model.layer4, x, result.targets)
    reference = LayerAttribution.interpolate(cam, (128, 128), interpolate_mode="bilinear")[:, 0]
    np.testing.assert_allclose(result.raw["gradcam"], reference.detach().numpy(), rtol=RTOL, atol=1e-7)


@pytest.mark.parametrize("rule", ["tf1_legacy", "bilinear"])
def test_guided_gradcam_equals_captum_factors_min_max(tiny_model, tiny_images, rule):
    """The authors' Guided Grad-CAM (create_maps_rsna.py): PAIR's grayscale visualization of Guided
    Backprop × that of Grad-CAM, then min–max only. Oracle: captum's GuidedBackprop and LayerGradCam,
    PAIR's VisualizeImageGrayscale, numpy."""
    r = explain(tiny_model, tiny_images, methods=["guided_gradcam"], gradcam_layer="features",
                gradcam_interpolation=rule)
    gbp = GuidedBackprop(tiny_model).attribute(tiny_images.clone(), target=torch.as_tensor(r.targets)).detach()
    cam = captum_cam(tiny_model, tiny_model.features, tiny_images, r.targets)
    if rule == "tf1_legacy":
        cams = np.stack([tf1_legacy_resize(c[0].detach().numpy(), (32, 32)) for c in cam])
    else:
        cams = LayerAttribution.interpolate(cam, (32, 32), interpolate_mode="bilinear")[:, 0].detach().numpy()
    for i in range(len(tiny_images)):
        product = pair_map(hwc(gbp[i])) * pair_map(cams[i][..., None])
        expected = (product - product.min()) / (product.max() - product.min())
        np.testing.assert_allclose(r["guided_gradcam"][i], expected, rtol=1e-4, atol=1e-5)


def test_guided_gradcam_has_no_second_percentile_clip(tiny_model, tiny_images):
    """Clipping the product at its 99th percentile again (the old rule) gives another map."""
    r = explain(tiny_model, tiny_images, methods=["gbp", "gradcam", "guided_gradcam"], gradcam_layer="features")
    clipped, _ = normalize_maps(torch.from_numpy(r["gbp"] * r["gradcam"]))
    assert np.abs(clipped.numpy() - r["guided_gradcam"]).max() > 0.01
    assert all((m == 1.0).sum() >= 1 and m.min() == 0.0 for m in r["guided_gradcam"])


def test_ig_completeness(tiny_model, tiny_images):
    x = tiny_images[:1]
    result = explain(tiny_model, x, methods=["ig"], ig_steps=4000)
    t = int(result.targets[0])
    with torch.no_grad():
        delta = tiny_model(x)[0, t] - tiny_model(-torch.ones_like(x))[0, t]
    assert abs(result.raw["ig"].sum() - float(delta)) < 2e-3 * max(1.0, abs(float(delta)))


@pytest.mark.parametrize("seed", range(4))
def test_postprocessing_equals_pair_visualize_grayscale(seed):
    rng = np.random.default_rng(seed)
    attr = rng.normal(size=(2, 3, 40, 30)).astype(np.float32)
    ours, flags = normalize_maps(torch.from_numpy(attr))
    for i in range(2):
        np.testing.assert_allclose(ours[i].numpy(), pair_map(hwc(attr[i])), rtol=1e-5, atol=1e-6)
    assert flags == [None, None]


def test_shared_chunks_change_no_map(tiny_model, tiny_images):
    """All eight methods in shared chunks (plain, guided and noisy rows side by side, targets fixed
    inside the first chunk) give each method's attributions computed alone in small chunks."""
    kwargs = dict(gradcam_layer="features", n_samples=3, smooth_ig_steps=4, ig_steps=5, xrai_steps=5)
    together = explain(tiny_model, tiny_images, batch_size=64, **kwargs)
    for method in together:
        alone = explain(tiny_model, tiny_images, methods=[method], batch_size=3, **kwargs)
        np.testing.assert_array_equal(alone.targets, together.targets)
        np.testing.assert_allclose(alone.raw[method], together.raw[method], rtol=RTOL, atol=ATOL, err_msg=method)
