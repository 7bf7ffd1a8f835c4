"""DeepLIFT's summation-to-delta (Σ attributions = f_t(x) − f_t(baseline)) on every registry architecture, a
spec'd torchvision and a timm model — all with overlapping 3×3 stride-2 max poolings, whose windows share
pixels — and a hand-computed rescale rule for an overlapping pooling (explicit loops, float64).

Float64 runs call the method's core (``deeplift.multipliers``, which keeps float64 inputs in float64) and
hold to rounding: |Σ − Δ| ≤ 1e-9 · (Σ|contributions| + |Δ|) (float64's 1.1e-16 per operation, times the
depth and width of the networks, stays below 1e-12 of that scale; the bug it guards against was 1e-2 to 1
of Δ). The fp32 runs go through ``explain``: |Σ − Δ| ≤ 1e-4 · max(1, |Δ|, 1e-3 · Σ|contributions|) —
fp32 keeps 6e-8 per operation; the sums of 3·H·W contributions and the forward differences of the outputs
measured about 1e-6 of Δ (or of 1e-3 of the contributions' mass, where they cancel: InceptionV3's random
init), so 1e-4 has two orders of margin and is still far below the bug."""
import math

import numpy as np
import pytest
import torch

from trust_core import explain
from trust_core.models import ARCHITECTURES, build
from trust_core.models.info import info_of, tag
from trust_core.models.spec import load_spec, spec_from_dict
from trust_core.saliency.methods import deeplift

CPU = torch.device("cpu")
# small inputs where the architecture allows (InceptionV3 needs at least 75 px; ResNet18 and DenseNet121 end
# on 1×1 at 32), and one image for the paper-sized architectures: the file stays within a minute on 2 cores
SIZES = {"inception_v3": 75, "densenet121": 32, "resnet18": 32}
SIZE = 64


def _films(n: int, size: int, seed: int) -> torch.Tensor:
    """Grey films on the paper's [-1, 1] scale, 3 identical channels, smooth enough to look like images."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 1, size // 8, size // 8, generator=g, dtype=torch.float64)
    film = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)
    film = film + 0.1 * torch.rand(n, 1, size, size, generator=g, dtype=torch.float64)
    return (film.clamp(0, 1) * 2 - 1).expand(-1, 3, -1, -1).contiguous()


def _check_float64(model: torch.nn.Module, x: torch.Tensor, targets: torch.Tensor) -> None:
    """Σ (x − b) ⊙ multipliers = f_t(x) − f_t(b) in float64, b the model's −1 (black) in its input space."""
    model = model.double()
    x = x.double()
    baseline = info_of(model).prep.from_paper_scale(-1.0)
    baseline = baseline.double() if isinstance(baseline, torch.Tensor) else baseline
    m = deeplift.multipliers(model, x, baseline, targets, device=CPU, precision="fp32")
    assert m.dtype == torch.float64
    contributions = (x - baseline) * m
    with torch.no_grad():
        out = model(x).gather(1, targets.view(-1, 1))[:, 0]
        ref = model(torch.as_tensor(baseline, dtype=torch.float64).expand_as(x).contiguous())
        ref = ref.gather(1, targets.view(-1, 1))[:, 0]
    for i in range(x.shape[0]):
        total, delta = float(contributions[i].sum()), float(out[i] - ref[i])
        scale = float(contributions[i].abs().sum()) + abs(delta)
        assert abs(total - delta) <= 1e-9 * scale, (i, total, delta, scale)


def _check_explain(model: torch.nn.Module, x: torch.Tensor) -> None:
    """The same through ``explain`` in fp32."""
    result = explain(model, x.float(), methods=["deeplift"], preset="fast")
    raw = torch.as_tensor(np.asarray(result.raw["deeplift"]), dtype=torch.float64)
    baseline = info_of(model).prep.from_paper_scale(-1.0)
    with torch.no_grad():
        out = model(x.float()).double()
        ref = model(torch.as_tensor(baseline, dtype=torch.float32).expand_as(x).contiguous()).double()
    for i, t in enumerate(result.targets):
        total, delta = float(raw[i].sum()), float(out[i, t] - ref[i, t])
        scale = max(1.0, abs(delta), 1e-3 * float(raw[i].abs().sum()))
        assert abs(total - delta) <= 1e-4 * scale, (i, total, delta)


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_every_registry_model_sums_to_the_difference_of_outputs(arch):
    """Every registry architecture has an overlapping 3×3 stride-2 stem pooling (InceptionV3 two, functional):
    the windows that share a maximum add their shares (with ``max_unpool2d`` one overwrote the other: −0.33
    for +0.25 on a ResNet18 at 320)."""
    size, n = SIZES.get(arch, SIZE), 2 if ARCHITECTURES[arch].demo else 1
    torch.manual_seed(0)
    model = tag(build(arch), input_size=size)  # random init, eval mode, a small input
    x = _films(n, size, seed=1)
    _check_explain(model, x)
    _check_float64(model, x, torch.tensor([0, 1][:n]))


def test_a_spec_torchvision_resnet18_sums_to_the_difference_of_outputs():
    """ImageNet normalization: the baseline is a per-channel tensor (black mapped through the preprocessing)."""
    torch.manual_seed(0)
    model = load_spec(spec_from_dict({"source": "torchvision:resnet18", "source_kwargs": {"num_classes": 3},
                                      "preprocessing": {"size": SIZE, "normalization": "imagenet"}}))
    x = info_of(model).prep.batch(_films(2, SIZE, seed=2)[:, :1].float().add(1).div(2))
    assert not isinstance(info_of(model).prep.from_paper_scale(-1.0), float)
    _check_explain(model, x)
    _check_float64(model, x, torch.tensor([2, 1]))


def test_a_timm_model_sums_to_the_difference_of_outputs():
    pytest.importorskip("timm")
    torch.manual_seed(0)
    model = load_spec(spec_from_dict({"source": "timm:resnet18", "source_kwargs": {"num_classes": 2},
                                      "preprocessing": {"size": SIZE}}))
    x = info_of(model).prep.batch(_films(2, SIZE, seed=3)[:, :1].float().add(1).div(2))
    _check_explain(model, x)
    _check_float64(model, x, torch.tensor([1, 0]))


class PoolOptionsNet(torch.nn.Module):
    """conv → ReLU → ``F.max_pool2d(**pool)`` → conv → ReLU → mean → linear."""

    def __init__(self, pool: dict):
        super().__init__()
        self.pool = pool
        self.conv1, self.conv2 = torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.Conv2d(4, 4, 3, padding=1)
        self.fc = torch.nn.Linear(4, 2)

    def forward(self, x):
        x = torch.nn.functional.max_pool2d(torch.relu(self.conv1(x)), **self.pool)
        return self.fc(torch.relu(self.conv2(x)).mean(dim=(2, 3)))


@pytest.mark.parametrize("pool", [dict(kernel_size=3, stride=2, padding=1), dict(kernel_size=3, stride=2, ceil_mode=True),
                                  dict(kernel_size=3, stride=1, padding=1, dilation=2), dict(kernel_size=2, stride=1),
                                  dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 0), ceil_mode=True),
                                  dict(kernel_size=2)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_pooling_options_sum_to_the_difference_of_outputs(pool, channels_last):
    """``max_pool2d``'s indices are flat into each unpadded input plane: padding, ceil_mode (partial windows),
    dilation, rectangular windows and the channels-last layout (``explain``'s on CPUs) all add up."""
    torch.manual_seed(0)
    model = PoolOptionsNet(pool).eval()
    x = _films(2, 15, seed=4) + 0.2 * torch.randn(2, 3, 15, 15, dtype=torch.float64)
    if channels_last:
        model, x = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    _check_float64(model, x, torch.tensor([0, 1]))


class OverlapNet(torch.nn.Module):
    """conv → ReLU → MaxPool2d(3, stride 2, padding 1) → linear: neighbouring windows share a row/column."""

    def __init__(self, side: int = 7, channels: int = 2, n_classes: int = 2):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, channels, 3, padding=1)
        self.relu = torch.nn.ReLU()
        self.pool = torch.nn.MaxPool2d(3, stride=2, padding=1)
        pooled = (side + 2 - 3) // 2 + 1
        self.fc = torch.nn.Linear(channels * pooled * pooled, n_classes)

    def forward(self, x):
        return self.fc(self.pool(self.relu(self.conv(x))).flatten(1))


def _hand_deeplift(model: OverlapNet, x: np.ndarray, b: float, target: int):
    """DeepLIFT rescale attributions of one image (C, H, W) by explicit loops, float64. Returns the
    attributions and how many pooling windows credited each pooled pixel (to check that windows overlap).

    Rules: convolution and linear layers pass their weights; the ReLU passes Δout/Δin (its gradient where
    |Δin| < 1e-10); the max pooling credits each window's Δout = max_x − max_b to the maximum of the row
    whose maximum is larger (max_x − max_b ≥ 0 to the image's argmax, the rest, max_x − max_b ≤ 0, to the
    baseline's) — captum's cross-maximum split — *adding up* the credits of every window that picks a
    pixel; a pixel's multiplier is its credit over its Δin (where |Δin| < 1e-10: the sum of the gradients
    of the windows whose image maximum it is, the pooling's own gradient)."""
    eps = 1e-10
    w = model.conv.weight.detach().double().numpy()
    bias = model.conv.bias.detach().double().numpy()
    fc = model.fc.weight.detach().double().numpy()[target]
    C, H, W = x.shape
    K = w.shape[0]
    ref = np.full_like(x, b)

    def conv(inp):
        padded = np.pad(inp, ((0, 0), (1, 1), (1, 1)))
        out = np.zeros((K, H, W))
        for k in range(K):
            for i in range(H):
                for j in range(W):
                    out[k, i, j] = bias[k] + sum(w[k, c, u, v] * padded[c, i + u, j + v]
                                                 for c in range(C) for u in range(3) for v in range(3))
        return out

    z, zb = conv(x), conv(ref)
    a, ab = np.maximum(z, 0), np.maximum(zb, 0)
    P = (H + 2 - 3) // 2 + 1

    def argmax(act, k, p, q):  # the first maximum in row-major order inside the window (padding is −inf)
        best, where = -math.inf, None
        for u in range(3):
            for v in range(3):
                i, j = 2 * p - 1 + u, 2 * q - 1 + v
                if 0 <= i < H and 0 <= j < W and act[k, i, j] > best:
                    best, where = act[k, i, j], (i, j)
        return best, where

    g_pool = fc.reshape(K, P, P)  # the linear layer's multipliers of the pooled map
    credit = np.zeros((K, H, W))
    plain = np.zeros((K, H, W))
    picked = np.zeros((K, H, W), dtype=int)
    for k in range(K):
        for p in range(P):
            for q in range(P):
                out, at = argmax(a, k, p, q)
                out_b, at_b = argmax(ab, k, p, q)
                top = max(out, out_b)
                credit[k][at] += g_pool[k, p, q] * (top - out_b)
                credit[k][at_b] += g_pool[k, p, q] * (out - top)
                plain[k][at] += g_pool[k, p, q]
                picked[k][at] += 1
    d_a = a - ab
    m_pool = np.where(np.abs(d_a) < eps, plain, credit / np.where(d_a == 0, 1, d_a))
    d_z = z - zb
    m_relu = np.where(np.abs(d_z) < eps, (z > 0).astype(float), d_a / np.where(d_z == 0, 1, d_z))
    m_z = m_pool * m_relu
    m_x = np.zeros_like(x)  # the convolution's transpose: Σ_k Σ_(i, j) m_z[k, i, j] w[k, c, u, v]
    for k in range(K):
        for i in range(H):
            for j in range(W):
                for c in range(C):
                    for u in range(3):
                        for v in range(3):
                            ii, jj = i + u - 1, j + v - 1
                            if 0 <= ii < H and 0 <= jj < W:
                                m_x[c, ii, jj] += m_z[k, i, j] * w[k, c, u, v]
    return (x - ref) * m_x, picked


def test_overlapping_max_pooling_equals_the_hand_computed_rescale_rule():
    torch.manual_seed(3)
    model = OverlapNet().eval()
    x = torch.rand(2, 3, 7, 7, dtype=torch.float64) * 2 - 1
    targets = torch.tensor([1, 0])
    ours64 = (x + 1) * deeplift.multipliers(model.double(), x, -1.0, targets, device=CPU, precision="fp32")
    ours32 = explain(model.float(), x.float(), methods=["deeplift"], target=1).raw["deeplift"]
    shared = 0
    for i, t in enumerate(targets.tolist()):
        hand, picked = _hand_deeplift(model, x[i].numpy(), -1.0, t)
        shared += int((picked > 1).sum())
        np.testing.assert_allclose(ours64[i].numpy(), hand, rtol=1e-10, atol=1e-13)
        with torch.no_grad():
            delta = float(model.double()(x[i:i + 1])[0, t] - model(-torch.ones_like(x[i:i + 1]))[0, t])
        assert hand.sum() == pytest.approx(delta, rel=1e-12, abs=1e-14)  # the oracle sums up, too
    np.testing.assert_allclose(ours32[0], _hand_deeplift(model.double(), x[0].numpy(), -1.0, 1)[0],
                               rtol=1e-4, atol=1e-6)
    assert shared > 0, "the test needs pixels that are the maximum of several windows"
