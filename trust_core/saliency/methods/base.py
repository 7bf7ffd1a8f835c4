"""What a saliency method is: a :class:`Method` (data about it, and two functions) over a shared :class:`Plan`.

A method is one file in this package (or a third-party plugin, see :mod:`.`) with

* a **plan** part, ``plan(run)``, which registers the (path, α) points it needs on the shared engine
  (:class:`~trust_core.saliency.engine.PathSet`) through ``run``, the :class:`Plan` of one compute call —
  reusing the points other methods registered (the plain gradient, Smooth IG's noisy paths, the noise) —
  and returns whatever its assemble part needs; and
* an **assemble** part, ``assemble(run, out, planned)``, which builds its raw attribution from the
  engine's output: (N, C, H, W) for attributions in input space, (N, H, W) for 2-D maps.

``explain`` plans every requested method in dependency order (``after``), runs the engine once, then
assembles. Methods built from other methods' *normalized* maps (Guided Grad-CAM) give ``combine``
instead of ``assemble``.
"""
from __future__ import annotations

import hashlib
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from ...cache.store import digest_array
from ...models.info import info_of
from ...sets import PAPER_SET
from ..engine import PathSet, autocast, fp32_mode



@dataclass(frozen=True)
class Method:
    """A saliency method as data (label, reference, parameters, capabilities) and code (plan/assemble).

    Attributes
    ----------
    key : the registry key (``trust_core.METHODS``), also the cache's method name.
    parameters : names of the preset parameters this method reads besides ``COMMON``.
    group : 'paper' (Arun et al.'s eight) or 'extended' (builtin beyond the paper, and plugins).
    plain : needs (or shares) the plain pass — each clean image at α = 1, which fixes the target and
        carries Grad-CAM's layer.
    needs_layer : reads a convolutional/token layer (the CAM family).
    keeps_layer : needs that layer's activations and gradients per image (Grad-CAM++, Score-CAM).
    uses_noise : draws noise (its maps depend on ``noise_per_model``'s model key).
    depends_on : methods whose results it is built from (they are computed with it).
    after : methods it must be planned after when both run (to reuse their points).
    postprocess : 'normalize' (sum |·| over channels or |·|, clip at the percentile, rescale — PAIR's
        grayscale visualization), 'minmax', or a function of the parameters returning one of them.
    defaults : its own parameters and their default values (added to every preset that lacks them).
    choices : parameter → allowed values; ``validate`` checks the rest.
    stats : optional ``(raw (N, ...)) → [dict per image]`` of diagnostics stored with the maps.
    upsampled_from : optional ``(run, out, planned) → (N, h, w)`` float32 tensor of which the raw map is the
        upsampling by ``gradcam_interpolation`` (Grad-CAM's class activation map at the layer's resolution).
        Not part of the map: the store keeps it and predicts the map from it, so that a smooth 320² map costs
        a few KB instead of tens, still bit for bit (:mod:`trust_core.cache.codec`).
    revision : a tag of this method's own rule, part of its cache keys (``""``: none): bumped when the rule
        changes its maps, so that the cache never serves the old ones while other methods' keys stay.
    """

    key: str
    label: str
    reference: str
    description: str
    parameters: tuple[str, ...] = ()
    group: str = PAPER_SET
    plain: bool = False
    needs_layer: bool = False
    keeps_layer: bool = False
    uses_noise: bool = False
    passes: str = ""
    depends_on: tuple[str, ...] = ()
    after: tuple[str, ...] = ()
    postprocess: str | Callable[[dict], str] = "normalize"
    revision: str = ""
    defaults: dict = field(default_factory=dict)
    choices: dict = field(default_factory=dict)
    validate: Callable[[dict], None] | None = None
    plan: Callable[["Plan"], Any] | None = None
    assemble: Callable[["Plan", Any, Any], torch.Tensor] | None = None
    combine: Callable[["Plan", dict, dict], tuple[torch.Tensor, list]] | None = None
    stats: Callable[[torch.Tensor], list[dict]] | None = None
    upsampled_from: Callable[["Plan", Any, Any], torch.Tensor] | None = None
    source: str = "trust_core"  # the package that registered it (plugins: their distribution)
    # Cost per image, for estimates (the engine counts the real passes): forward+backward passes of its own
    # beyond the plain pass, as a function of the parameters; forward-only passes, of the parameters and the
    # input side (Score-CAM's depends on the layer's channels: a typical 512 is assumed).
    cost: Callable[[dict], int] | None = None
    forward_cost: Callable[..., int] | None = None

    def postprocess_rule(self, params: dict) -> str:
        rule = self.postprocess(params) if callable(self.postprocess) else self.postprocess
        if rule not in ("normalize", "minmax"):
            raise ValueError(f"method {self.key!r}: unknown post-processing {rule!r}")
        return rule


def check_number(params: dict, name: str, low: float, high: float, *, open_low: bool = False,
                 meaning: str = "") -> None:
    """A method parameter must be a number in [low, high] ((low, high] with ``open_low``)."""
    from ...errors import ConfigError

    value = params[name]
    inside = isinstance(value, (int, float)) and not isinstance(value, bool) and (
        (low < value if open_low else low <= value) and value <= high)
    if not inside:
        bracket = "(" if open_low else "["
        raise ConfigError(f"{name} must be {meaning or 'a number'} in {bracket}{low:g}, {high:g}], got {value!r}")


def seeded_generator(image: torch.Tensor, seed: int, *parts) -> torch.Generator:
    """A CPU generator seeded by an image's content, the run's seed and ``parts`` (a method's name, a model
    key): draws independent of batching and device, reproducible."""
    text = ":".join([str(seed), digest_array(image), *map(str, parts)])
    digest = hashlib.sha256(text.encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))


def noise(image: torch.Tensor, n_samples: int, spread: float, seed: int, model_key: str = "") -> torch.Tensor:
    """SmoothGrad noise for one image (S, C, H, W): σ = spread × (max − min), seeded by the image's
    content and ``model_key`` (the digest of the model's weights when ``noise_per_model``).

    Seeding by content (not by batch position) makes maps independent of how images are batched and
    lets SmoothGrad and Smooth IG share the same draws whenever they run together or apart; the model
    key gives every model state (original, randomized, replicate, other architecture) its own draws,
    as the paper's fresh ``np.random.normal`` calls did, while staying reproducible.
    """
    generator = seeded_generator(image, seed, *([model_key] if model_key else []))
    stdev = spread * float(image.max() - image.min())
    return torch.randn((n_samples, *image.shape), generator=generator) * stdev


def run_beside(pool: ThreadPoolExecutor | None, fn) -> Future:
    """``fn`` in ``pool`` (beside the GPU passes), or at once when there is no pool."""
    if pool is not None:
        return pool.submit(fn)
    done: Future = Future()
    done.set_result(fn())
    return done


class Plan:
    """The shared plan of one ``compute`` call: the images, the engine's paths, and the points every
    method may reuse. Methods read ``x``, ``n``, ``params``, ``prep``, ``device`` and call the helpers."""

    def __init__(self, model: torch.nn.Module, x: torch.Tensor, params: dict, *, device: torch.device,
                 precision: str, batch_size: int, model_key: str = "", pool: ThreadPoolExecutor | None = None):
        self.model, self.x, self.params = model, x, params
        self.n = x.shape[0]
        self.device, self.precision, self.batch_size = device, precision, batch_size
        self.model_key = model_key
        self.pool = pool
        self.prep = info_of(model).prep
        self.paths = PathSet()
        self.plain: dict[int, int] = {}
        self.layer: torch.nn.Module | None = None
        self.keep_layer = False
        self.forwards = 0  # forward-only passes (occlusion, Score-CAM), beside the engine's forward+backward
        self.passes = 0  # forward+backward passes a method ran itself (DeepLIFT's paired batch)
        self.targets: torch.Tensor | None = None  # (N,) explained classes, once the engine has run
        self.planned: dict[str, Any] = {}
        self._noisy_rows: dict[int, list[int]] | None = None
        self.noisy: Future | None = None
        baseline = self.prep.from_paper_scale(params["ig_baseline"])
        # IG's constant baseline in the model's input space: given on the paper's [-1, 1] scale (−1 black)
        self.ig_baseline = baseline.to(x.device) if isinstance(baseline, torch.Tensor) else baseline
        # XRAI segments the film: a model's normalization must not change its segments (every channel is an
        # affine map of the grey film, and the segmentation min–max normalizes: the first channel,
        # replicated as the paper's three identical channels, gives the paper's segments for any
        # normalization).
        self.films = x if self.prep.paper else x[:, :1].expand(-1, 3, -1, -1)

    # -- shared points -------------------------------------------------------------------------------
    def use_plain(self) -> dict[int, int]:
        """The plain point of every image (each clean image at α = 1), added once."""
        if not self.plain:
            self.plain = {i: self.paths.add(end_index=i, image=i, alphas=[1.0], plain=True) for i in range(self.n)}
        return self.plain

    def integration(self, steps: int, i: int, end_index: int, start, share: bool) -> tuple[int, bool]:
        """A straight-line path of ``steps`` α values (linspace(0, 1), both ends) from ``start`` to bank row
        ``end_index``; with ``share``, its α = 1 point is the plain point (not run twice). Returns the path
        and whether it shares."""
        alphas = torch.linspace(0, 1, steps, dtype=torch.float64)
        shared = share and i in self.plain and alphas[-1] == 1.0
        return self.paths.add(end_index=end_index, image=i, start=start,
                              alphas=alphas[:-1] if shared else alphas), shared

    def noisy_rows(self) -> dict[int, list[int]]:
        """Bank rows of each image's ``n_samples`` noisy copies (SmoothGrad's; drawn once, beside the
        passes on a GPU, on the CPU so that maps do not depend on the device)."""
        if self._noisy_rows is None:
            p, n = self.params, self.n
            self._noisy_rows = {i: list(range(n + i * p["n_samples"], n + (i + 1) * p["n_samples"]))
                                for i in range(n)}
            clean = self.x.cpu()
            key = self.model_key if p["noise_per_model"] else ""

            def copies():
                return torch.cat([clean[i][None] + noise(clean[i], p["n_samples"], p["noise_spread"], p["seed"], key)
                                  for i in range(n)])
            self.noisy = run_beside(self.pool, copies)
        return self._noisy_rows

    def beside(self, fn) -> Future:
        """CPU work that depends on the images alone, run beside the passes on a GPU."""
        return run_beside(self.pool, fn)

    # -- forward-only passes -------------------------------------------------------------------------
    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        """Logits (float32) of ``batch`` without gradients, in chunks of the engine's batch size; counted
        in ``forwards``."""
        out = []
        channels_last = info_of(self.model).channels_last
        with torch.no_grad(), fp32_mode(self.device, self.precision):
            for begin in range(0, batch.shape[0], self.batch_size):
                chunk = batch[begin:begin + self.batch_size].to(self.device)
                if channels_last:
                    chunk = chunk.contiguous(memory_format=torch.channels_last)
                with autocast(self.device, self.precision):
                    out.append(self.model(chunk).float())
                self.forwards += chunk.shape[0]
        return torch.cat(out) if out else torch.empty(0)
