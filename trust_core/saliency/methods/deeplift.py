"""DeepLIFT, rescale rule (Shrikumar et al. 2017), after captum's ``DeepLift``: the image and its baseline run
as one batch; every nonlinearity passes back ``grad · Δout / Δin`` (its gradient where |Δin| < 1e-10). Max
pooling uses captum's rescale of the pooled differences (each window's Δout = max_x − max_b goes to the
maximum of the row, image or baseline, whose maximum is larger), but *adds up* the shares of overlapping
windows that pick the same pixel (a scatter-add into the input plane), so summation-to-delta holds with
overlapping pooling too: the 3×3 stride-2 poolings of every registry architecture (a random ResNet18 at
320 summed to −0.33 for a difference of +0.25 with the former rule). Captum unpools with ``max_unpool2d``,
which keeps one window's share per pixel where windows overlap: with overlapping pooling captum does not
sum to the output difference and its attributions differ from these; without overlap (kernel ≤ stride,
undilated) the two rules are the same. Where a pooled input does not differ from its reference
(|Δin| < 1e-10, e.g. both 0 after a ReLU) the pooling passes its own gradient. Where a ReLU feeds a max
pooling (ResNet's stem), or a pooling a ReLU, captum 0.9 does not sum to the output difference either (its
pooling rule reads the first batch row's gradient there, and its ReLU and pooling hooks meet on one
tensor); this implementation does. Tests: equal to captum where captum's hooks do not meet and pooling
windows do not overlap, equal to a hand-computed rule with overlapping windows, summation-to-delta on
every registry architecture, a torchvision and a timm model (to rounding in float64, which
:func:`multipliers` keeps). One pass over two rows (image and baseline) per image. The baseline is
``deeplift_baseline`` on the paper's [-1, 1] scale (−1: black), mapped through the model's preprocessing."""
import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from ..engine import autocast, fp32_mode
from ...sets import EXTENDED_SET
from .base import Method, check_number

EPS = 1e-10  # captum's


def _halves(t: torch.Tensor) -> torch.Tensor:
    """(2N, ...) rows [inputs; references] → Δ = input − reference, repeated for both halves."""
    first, second = t.chunk(2)
    delta = first - second
    return torch.cat([delta, delta])


class _Rescale(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, fn):
        out = fn(x)
        ctx.save_for_backward(x, out)
        ctx.fn = fn
        return out

    @staticmethod
    def backward(ctx, grad):
        x, out = ctx.saved_tensors
        with torch.enable_grad():
            leaf = x.detach().requires_grad_(True)
            plain = torch.autograd.grad(ctx.fn(leaf), leaf, grad)[0]
        d_in, d_out = _halves(x), _halves(out)
        return torch.where(d_in.abs() < EPS, plain, grad * d_out / d_in), None


class _RescaleInplace(torch.autograd.Function):
    """:class:`_Rescale` for the in-place forms (``x.relu_()``, ``F.relu(x, inplace=True)``): ``x`` is changed in
    place as the model expects (a model may discard the returned tensor)."""

    @staticmethod
    def forward(ctx, x, fn):
        before = x.detach().clone()
        x.copy_(fn(before))
        ctx.mark_dirty(x)
        ctx.save_for_backward(before, x)
        ctx.fn = fn
        return x

    @staticmethod
    def backward(ctx, grad):
        return _Rescale.backward(ctx, grad)


class _MaxPool(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, pool):
        out, indices = F.max_pool2d(x, **pool, return_indices=True)
        ctx.save_for_backward(x, out, indices)
        ctx.pool = pool
        return out

    @staticmethod
    def backward(ctx, grad):
        x, out, indices = ctx.saved_tensors
        pool = ctx.pool
        with torch.enable_grad():
            leaf = x.detach().requires_grad_(True)
            plain = torch.autograd.grad(F.max_pool2d(leaf, **pool), leaf, grad)[0]
        d_in = _halves(x)
        output, reference = out.chunk(2)
        top = torch.max(output, reference)
        d_out = torch.cat([top - reference, output - top])
        # each window's share goes to its maximum, *added up* where windows overlap and pick the same pixel
        # (max_unpool2d, captum's, keeps one of them). ``indices`` are flat into each unpadded input plane
        # (padding, dilation and ceil_mode included); without overlap this equals max_unpool2d.
        shares = grad * d_out
        unpooled = torch.zeros(x.shape, dtype=shares.dtype, device=x.device).flatten(-2).scatter_add_(
            -1, indices.flatten(-2), shares.flatten(-2)).view(x.shape)
        first, second = unpooled.chunk(2)
        both = torch.cat(2 * [first + second])
        return torch.where(d_in.abs() < EPS, plain, both / d_in), None


_ELEMENTWISE = {F.relu: F.relu, torch.relu: torch.relu, torch.Tensor.relu: torch.relu,
                F.relu_: torch.relu, torch.relu_: torch.relu, torch.Tensor.relu_: torch.relu,
                F.elu: F.elu, F.leaky_relu: F.leaky_relu, F.softplus: F.softplus, F.gelu: F.gelu, F.silu: F.silu,
                torch.sigmoid: torch.sigmoid, torch.Tensor.sigmoid: torch.sigmoid, F.sigmoid: torch.sigmoid,
                torch.tanh: torch.tanh, torch.Tensor.tanh: torch.tanh, F.tanh: torch.tanh}
_INPLACE = {F.relu_, torch.relu_, torch.Tensor.relu_}
_KEEP = {F.relu: (), F.elu: ("alpha",), F.leaky_relu: ("negative_slope",), F.softplus: ("beta", "threshold"),
         F.gelu: ("approximate",)}


class rescale_rules(TorchFunctionMode):
    """Inside it, the supported nonlinearities of a [inputs; references] batch pass DeepLIFT multipliers."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _ELEMENTWISE:
            self.calls += 1
            base = _ELEMENTWISE[func]
            names = _KEEP.get(func, ())
            options = {k: v for k, v in kwargs.items() if k in names}
            options.update({k: v for k, v in zip(names, args[1:])})  # positional options (not inplace)
            inplace = func in _INPLACE or (func in (F.relu, F.elu, F.leaky_relu) and kwargs.get("inplace")) or (
                func is F.relu and len(args) > 1 and bool(args[1])) or (
                func in (F.elu, F.leaky_relu) and len(args) > 2 and bool(args[2]))
            fn = (lambda t: base(t, **options)) if options else base
            return (_RescaleInplace if inplace else _Rescale).apply(args[0], fn)
        if func is F.max_pool2d:
            self.calls += 1
            names = ("kernel_size", "stride", "padding", "dilation", "ceil_mode")
            pool = dict(zip(names, args[1:]))
            pool.update({k: v for k, v in kwargs.items() if k in names})
            pool.setdefault("stride", None)
            if pool["stride"] is None or pool["stride"] == []:
                pool["stride"] = pool["kernel_size"]
            pool.setdefault("padding", 0)
            return _MaxPool.apply(args[0], pool)
        return func(*args, **kwargs)


def multipliers(model, x: torch.Tensor, baseline, targets: torch.Tensor, *, device, precision) -> torch.Tensor:
    """DeepLIFT multipliers ∂*y/∂x (N, C, H, W) of images ``x`` against ``baseline`` (the rescale rule)."""
    reference = torch.as_tensor(baseline, dtype=x.dtype, device=x.device).expand_as(x)
    batch = torch.cat([x, reference]).detach().requires_grad_(True)
    with fp32_mode(device, precision), torch.enable_grad(), rescale_rules(), autocast(device, precision):
        logits = model(batch)
    # both halves carry the target's gradient (captum's): the pooling rule mixes them. float32, or float64 for
    # float64 inputs (a model run in double: the tests' reference to rounding)
    wide = torch.float64 if x.dtype == torch.float64 else torch.float32
    chosen = logits.to(wide).gather(1, torch.cat([targets, targets]).view(-1, 1)).sum()
    return torch.autograd.grad(chosen, batch)[0][: x.shape[0]].to(wide)


def assemble(run, out, _planned):
    baseline = run.prep.from_paper_scale(run.params["deeplift_baseline"])
    baseline = baseline.to(run.x.device) if isinstance(baseline, torch.Tensor) else baseline
    targets = run.targets.to(run.x.device)
    step = max(1, run.batch_size // 2)
    grads = [multipliers(run.model, run.x[i:i + step], baseline, targets[i:i + step], device=run.device,
                         precision=run.precision) for i in range(0, run.n, step)]
    run.passes += 2 * run.n
    return (run.x - baseline) * torch.cat(grads)


def validate(params):
    check_number(params, "deeplift_baseline", -1, 1, meaning="a value on the paper's scale")


METHOD = Method(
    "deeplift", "DeepLIFT (rescale)", "Shrikumar et al., ICML 2017 (captum DeepLift)",
    "(x − b) ⊙ multipliers, each nonlinearity passing Δout/Δin between the image and a baseline",
    ("deeplift_baseline",), group=EXTENDED_SET, passes="2 per image (image and baseline in one batch)",
    defaults={"deeplift_baseline": -1.0}, validate=validate, revision="overlapping-pools-add", cost=lambda p: 2, plan=lambda run: None,
    assemble=assemble)
