""":class:`SaliencyMaps`: what :func:`~trust_core.saliency.explain` returns — the maps and their provenance."""
from __future__ import annotations

from .registry import PRESETS


class SaliencyMaps(dict):
    """``method → float32 (N, H, W)`` maps in [0, 1] (NaN where a map could not be normalized).

    Attributes
    ----------
    flags : method → per-image reason (None when the map is valid).
    unclipped : method → (N, H, W) float32 maps before the percentile clip (``|a| / max |a|``, see
        ``postprocess.unclipped_maps``; the map itself for min–max-only methods), NaN where flagged: what
        the pointing game, the energy pointing game, mIoU and eMPRT score by default.
    raw : method → raw attributions ((N, 3, H, W), or (N, H, W) for Grad-CAM/XRAI/Guided Grad-CAM) for
        the images computed in this call (cached maps carry no raw attributions).
    params : every resolved parameter, including the preset name.
    method_params : method → the parameters its maps depend on.
    targets : (N,) explained class per image.
    stats : method → per-image dict of diagnostics (XRAI: ``negative_fraction``, the share of pixels
        whose gain density is negative before post-processing).
    passes : forward+backward passes this call ran.
    forwards : forward-only passes this call ran (occlusion, Score-CAM).
    from_cache : method → per-image bool.
    kept : method → per-image form the store keeps the map in ('float32', 'float16'; None: not through a
        store's form, see ``map_storage``).
    """

    def __init__(self, maps, *, flags, raw, params, method_params, targets, passes, from_cache, precision,
                 stats=None, forwards=0, unclipped=None, kept=None):
        super().__init__(maps)
        self.kept = kept or {m: [None] * len(v) for m, v in maps.items()}
        self.unclipped = unclipped if unclipped is not None else dict(maps)
        self.forwards = forwards
        self.flags = flags
        self.stats = stats or {}
        self.raw = raw
        self.params = params
        self.method_params = method_params
        self.targets = targets
        self.passes = passes
        self.from_cache = from_cache
        self.precision = precision

    @property
    def preset(self) -> str:
        return self.params["preset"]

    @property
    def preset_label(self) -> str:
        return PRESETS[self.preset].label
