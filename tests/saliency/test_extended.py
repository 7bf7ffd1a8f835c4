"""The methods beyond the paper against their independent oracles: captum (Input×Gradient, DeepLIFT,
GradientSHAP, Occlusion), pytorch-grad-cam (Grad-CAM++, Score-CAM) and zennit (LRP); and what sharing
passes buys."""
import numpy as np
import pytest
import torch
from captum.attr import DeepLift, GradientShap, InputXGradient, Occlusion
from pytorch_grad_cam import GradCAMPlusPlus, ScoreCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from trust_core import explain
from trust_core.saliency import METHODS, resolve_methods
from trust_core.saliency.methods import gradient_shap, occlusion

from ..conftest import TinyNet

EXTENDED = ["input_x_gradient", "deeplift", "gradient_shap", "occlusion", "gradcam_pp", "scorecam", "lrp"]


class PoolNet(TinyNet):
    """TinyNet with a max pooling (DeepLIFT's pooling rule) after its first ReLU ('relu_first': ResNet's
    stem), before it ('pool_first'), or between its convolutions without that ReLU ('bare'); overlapping
    windows (kernel 3, stride 2) or not."""

    def __init__(self, order: str = "bare", overlapping: bool = False):
        super().__init__()
        self.order = order
        self.pool = torch.nn.MaxPool2d(3, stride=2, padding=1) if overlapping else torch.nn.MaxPool2d(2)

    def forward(self, x):
        x = self.conv1(x)
        x = {"relu_first": lambda: self.pool(self.relu1(x)), "pool_first": lambda: self.relu1(self.pool(x)),
             "bare": lambda: self.pool(x)}[self.order]()
        x = self.features(self.relu2(self.conv2(x)))
        return self.fc(x.mean(dim=(2, 3)))


def minmax(a):
    a = np.asarray(a, dtype=np.float64)
    return (a - a.min()) / (a.max() - a.min())


def test_registry_keys_and_sets():
    for key in EXTENDED:
        assert METHODS[key].group == "extended"
    assert resolve_methods(None) == ["grad", "smoothgrad", "ig", "smooth_ig", "gbp", "gradcam", "guided_gradcam",
                                     "xrai"]
    assert resolve_methods("paper") == resolve_methods(None)
    assert set(EXTENDED) <= set(resolve_methods("extended"))


def test_input_x_gradient_equals_captum(tiny_model, tiny_images):
    result = explain(tiny_model, tiny_images, methods=["input_x_gradient"])
    for i in range(len(tiny_images)):
        reference = InputXGradient(tiny_model).attribute(tiny_images[i:i + 1], target=int(result.targets[i]))
        np.testing.assert_allclose(result.raw["input_x_gradient"][i], reference[0].detach().numpy(),
                                   rtol=2e-4, atol=1e-6)


@pytest.mark.parametrize("net", [TinyNet, PoolNet])  # overlapping windows: captum keeps one (not additive)
def test_deeplift_rescale_equals_captum(net, tiny_images):
    torch.manual_seed(0)
    model = net().eval()
    result = explain(model, tiny_images, methods=["deeplift"])
    for i in range(len(tiny_images)):
        reference = DeepLift(model).attribute(tiny_images[i:i + 1], baselines=-1.0, target=int(result.targets[i]))
        np.testing.assert_allclose(result.raw["deeplift"][i], reference[0].detach().numpy(), rtol=1e-4, atol=1e-6)
    assert result.passes == 2 * len(tiny_images)


@pytest.mark.parametrize("net", [TinyNet, PoolNet, lambda: PoolNet("pool_first"), lambda: PoolNet("relu_first"),
                                 lambda: PoolNet(overlapping=True), lambda: PoolNet("relu_first", overlapping=True)])
def test_deeplift_sums_to_the_difference_of_outputs(net, tiny_images):
    """DeepLIFT's summation-to-delta: Σ attributions = y(x) − y(baseline), exactly, also where a ReLU feeds
    a max pooling or a pooling feeds a ReLU, where captum 0.9 does not sum up (its pooling rule reads the first batch
    row's gradient where |Δin| < eps, and its ReLU and pooling hooks meet on one tensor), and with overlapping
    pooling windows, where the shares of every window that picks a pixel add up (captum's max_unpool2d keeps
    one window per pixel: not additive; tests/saliency/test_deeplift_completeness.py checks a hand-computed rule)."""
    torch.manual_seed(0)
    model = net().eval()
    result = explain(model, tiny_images, methods=["deeplift"])
    with torch.no_grad():
        logits, base = model(tiny_images), model(-torch.ones_like(tiny_images[:1]))
    for i, t in enumerate(result.targets):
        assert result.raw["deeplift"][i].sum() == pytest.approx(float(logits[i, t] - base[0, t]), rel=1e-4, abs=1e-6)


def test_gradient_shap_equals_captum_given_the_same_draws(tiny_model, tiny_images, monkeypatch):
    params = dict(shap_samples=6, shap_baselines="black_white")
    result = explain(tiny_model, tiny_images, methods=["gradient_shap"], **params)
    import captum.attr._core.gradient_shap as gs
    import captum._utils.common as common
    from trust_core.saliency import resolve_params
    full = resolve_params("arun2021", **params)
    for i, x in enumerate(tiny_images):
        index, alphas = gradient_shap.draws(x, full)
        # captum draws the baseline rows with np.random.choice and α with np.random.uniform
        monkeypatch.setattr(gs.np.random, "uniform", lambda low, high, size, a=alphas.numpy(): a[:size])
        monkeypatch.setattr(common.np.random, "choice", lambda count, size, idx=index.numpy(): idx[:size])
        distribution = torch.stack([-torch.ones_like(x), torch.ones_like(x)])
        reference = GradientShap(tiny_model).attribute(x[None], baselines=distribution, n_samples=6, stdevs=0.0,
                                                       target=int(result.targets[i]))
        np.testing.assert_allclose(result.raw["gradient_shap"][i], reference[0].detach().numpy(), rtol=2e-4, atol=1e-6)
    assert result.passes == 6 * len(tiny_images)


@pytest.mark.parametrize("window,stride", [(0.25, 0.125), (0.3, 0.2)])  # the second leaves a clipped last window
def test_occlusion_equals_captum(tiny_model, tiny_images, window, stride):
    result = explain(tiny_model, tiny_images, methods=["occlusion"], occlusion_window=window,
                     occlusion_stride=stride, occlusion_baseline=0.0)
    side, step, positions = occlusion.geometry(32, {"occlusion_window": window, "occlusion_stride": stride})
    for i in range(len(tiny_images)):
        reference = Occlusion(tiny_model).attribute(tiny_images[i:i + 1], sliding_window_shapes=(3, side, side),
                                                    strides=(3, step, step), baselines=0.0,
                                                    target=int(result.targets[i]))
        np.testing.assert_allclose(result.raw["occlusion"][i], reference[0].detach().numpy(), rtol=1e-4, atol=1e-6)
    assert result.passes == 0 and result.forwards == len(tiny_images) * (len(positions) ** 2 + 1)


@pytest.mark.parametrize("cam_class,key", [(GradCAMPlusPlus, "gradcam_pp"), (ScoreCAM, "scorecam")])
def test_cams_equal_pytorch_grad_cam(tiny_model, tiny_images, cam_class, key):
    result = explain(tiny_model, tiny_images, methods=[key], gradcam_layer="features",
                     gradcam_interpolation="bilinear")
    with cam_class(model=tiny_model, target_layers=[tiny_model.features]) as cam:
        reference = cam(input_tensor=tiny_images, targets=[ClassifierOutputTarget(int(t)) for t in result.targets])
    for i in range(len(tiny_images)):
        # the oracle min–max scales, then resizes with OpenCV (bilinear, half-pixel centres): equal up to scale
        np.testing.assert_allclose(minmax(result.raw[key][i]), minmax(reference[i]), atol=2e-4)


def test_extended_set_shares_passes_with_the_paper(tiny_model, tiny_images, monkeypatch):
    from trust_core.saliency import engine

    light = dict(n_samples=2, ig_steps=3, smooth_ig_steps=2, xrai_steps=3, gradcam_layer="features", shap_samples=2,
                 occlusion_window=0.5, occlusion_stride=0.5)
    calls = []
    real_chunks = engine._chunks
    monkeypatch.setattr(engine, "_chunks", lambda n, size: calls.append((n, size)) or real_chunks(n, size))
    paper = explain(tiny_model, tiny_images, methods="paper", batch_size=5, **light)
    paper_calls, calls[:] = list(calls), []
    extended = explain(tiny_model, tiny_images, methods="extended", batch_size=5, **light)
    # the paper's points are chunked exactly as without the others (GradientSHAP's run after, apart)
    assert calls[0] == paper_calls[0] and calls[1] == (len(tiny_images) * 2, 5)
    n = len(tiny_images)
    # Input×Gradient, Grad-CAM++ and Score-CAM reuse the plain pass; DeepLIFT 2, GradientSHAP 2 and LRP 1 per image
    assert extended.passes == paper.passes + n * (2 + 2 + 1)
    for key in paper:
        np.testing.assert_array_equal(extended[key], paper[key])  # the paper's maps are unchanged
    for key in EXTENDED:
        assert extended[key].shape == (n, 32, 32) and np.isfinite(extended[key]).all()


class ResidualNet(torch.nn.Module):
    """Convolutions with batch norm, in-place ReLUs (one module used twice), average pooling modules and a
    residual sum: what torchvision's ResNets are made of."""

    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 6, 3, padding=1)
        self.bn1 = torch.nn.BatchNorm2d(6)
        self.relu = torch.nn.ReLU(inplace=True)
        self.conv2 = torch.nn.Conv2d(6, 6, 3, padding=1)
        self.bn2 = torch.nn.BatchNorm2d(6)
        self.features = torch.nn.Identity()
        self.pool = torch.nn.AdaptiveAvgPool2d(1)
        self.fc = torch.nn.Linear(6, 3)
        with torch.no_grad():  # non-trivial running statistics
            for bn in (self.bn1, self.bn2):
                bn.running_mean.uniform_(-0.2, 0.2)
                bn.running_var.uniform_(0.5, 1.5)
                bn.weight.uniform_(0.5, 1.5)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.features(self.relu(self.bn2(self.conv2(x)) + x))
        return self.fc(self.pool(x).flatten(1))


@pytest.mark.parametrize("composite", ["epsilon_plus_flat", "epsilon_alpha2_beta1", "epsilon_plus"])
@pytest.mark.parametrize("net", [TinyNet, ResidualNet])
def test_lrp_equals_zennit(net, composite, tiny_images):
    from zennit import composites
    from zennit.attribution import Gradient

    torch.manual_seed(0)
    model = net().eval()
    result = explain(model, tiny_images, methods=["lrp"], lrp_composite=composite)
    chosen = {"epsilon_plus_flat": composites.EpsilonPlusFlat, "epsilon_alpha2_beta1": composites.EpsilonAlpha2Beta1,
              "epsilon_plus": composites.EpsilonPlus}[composite]()
    with Gradient(model=model, composite=chosen) as attributor:
        one_hot = torch.eye(3)[torch.as_tensor(result.targets)]
        _, reference = attributor(tiny_images, one_hot)
    np.testing.assert_allclose(result.raw["lrp"], reference.detach().numpy(), rtol=1e-4, atol=1e-6)
    assert result.passes == len(tiny_images)


class InplaceNet(TinyNet):
    """In-place ReLUs whose returned tensor is discarded (the model relies on the in-place change)."""

    def forward(self, x):
        x = self.conv1(x)
        x.relu_()
        x = self.conv2(x)
        torch.nn.functional.relu(x, inplace=True)
        return self.fc(self.features(x).mean(dim=(2, 3)))


def test_deeplift_keeps_in_place_relus_in_place(tiny_images):
    torch.manual_seed(0)
    model = InplaceNet().eval()
    result = explain(model, tiny_images, methods=["deeplift"])
    with torch.no_grad():
        logits, base = model(tiny_images), model(-torch.ones_like(tiny_images[:1]))
    for i, t in enumerate(result.targets):  # the forward is the model's own: summation-to-delta holds
        assert result.raw["deeplift"][i].sum() == pytest.approx(float(logits[i, t] - base[0, t]), rel=1e-4, abs=1e-6)


def test_lrp_hooks_leave_other_threads_alone(tiny_images, monkeypatch):
    """While one thread propagates relevance, a forward of the same model in another thread is the plain
    model's (and does not disturb the relevance pass)."""
    import threading

    from trust_core.saliency.methods import lrp

    torch.manual_seed(0)
    model = ResidualNet().eval()
    with torch.no_grad():
        plain = model(tiny_images)
    seen = {}
    original = lrp._Relevance.backward

    def slow_backward(ctx, grad):  # another thread runs the model in the middle of the relevance pass
        if "other" not in seen:
            worker = threading.Thread(target=lambda: seen.__setitem__("other", model(tiny_images).detach()))
            worker.start()
            worker.join()
        return original(ctx, grad)
    monkeypatch.setattr(lrp._Relevance, "backward", staticmethod(slow_backward))
    reference = explain(model, tiny_images, methods=["lrp"]).raw["lrp"]
    torch.testing.assert_close(seen["other"], plain)
    monkeypatch.undo()
    np.testing.assert_allclose(explain(model, tiny_images, methods=["lrp"]).raw["lrp"], reference, rtol=1e-6)


@pytest.mark.parametrize("methods", ["paper", "extended", ["smoothgrad"], ["xrai", "gbp"], ["lrp", "deeplift"]])
def test_pass_estimates_equal_the_engines_count(tiny_model, tiny_images, methods):
    from trust_core.saliency import resolve_params
    from trust_core.saliency.registry import estimate_passes

    light = dict(n_samples=2, ig_steps=3, smooth_ig_steps=2, xrai_steps=3, gradcam_layer="features", shap_samples=2,
                 occlusion_window=0.5, occlusion_stride=0.25)
    result = explain(tiny_model, tiny_images, methods=methods, **light)
    passes, forwards = estimate_passes(methods, resolve_params("arun2021", **light), size=32)
    assert passes * len(tiny_images) == result.passes
    if "scorecam" not in result:  # Score-CAM's forward passes depend on the layer (8 channels here, 512 assumed)
        assert forwards * len(tiny_images) == result.forwards
