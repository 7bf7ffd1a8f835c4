"""Maps with the explained class given per image: what the randomization criteria use to explain a randomized
state for the class the original model explains."""
from __future__ import annotations

import numpy as np
import torch

from ..errors import SaliencyError
from .explain import _check_images, explain
from .maps import SaliencyMaps


def explain_for_classes(model: torch.nn.Module, images, classes, methods=None, *, runner=None,
                        **kwargs) -> SaliencyMaps | None:
    """:func:`~trust_core.saliency.explain.explain` with the explained class given per image (``classes``, (N,)): one call per class,
    merged back in image order. What the randomization criteria use to explain a randomized state for the
    class the *original* model explains (Adebayo et al. 2018; Quantus's MPRT keeps ``y`` fixed). ``runner``
    :func:`~trust_core.saliency.explain.cached_maps`: the same from the cache alone (None unless it holds every map)."""
    x = _check_images(model, images)
    classes = [int(c) for c in torch.as_tensor(classes).reshape(-1).tolist()]
    if len(classes) != x.shape[0]:
        raise SaliencyError(f"{len(classes)} classes given for {x.shape[0]} images")
    kwargs.pop("target", None)
    parts = {c: [j for j, k in enumerate(classes) if k == c] for c in sorted(set(classes))}
    results = {c: (runner or explain)(model, x[rows], methods=methods, target=c, **kwargs)
               for c, rows in parts.items()}
    if any(r is None for r in results.values()):
        return None
    first = next(iter(results.values()))
    n = x.shape[0]
    keys = list(first.keys())

    def merged(get, fill):
        out = {}
        for m in keys:
            values = [fill] * n
            for c, rows in parts.items():
                for k, j in enumerate(rows):
                    values[j] = get(results[c], m)[k]
            out[m] = values
        return out

    maps = {m: np.stack(v) for m, v in merged(lambda r, m: r[m], None).items()}
    unclipped = {m: np.stack(v) for m, v in merged(lambda r, m: r.unclipped[m], None).items()}
    targets = np.zeros(n, dtype=np.int64)
    for c, rows in parts.items():
        targets[rows] = results[c].targets
    stats = {m: [None] * n for m in first.stats}
    for c, rows in parts.items():
        for m, values in results[c].stats.items():
            for k, j in enumerate(rows):
                stats[m][j] = values[k]
    params = {**first.params, "target": "per image (pinned)"}
    return SaliencyMaps(maps, flags=merged(lambda r, m: r.flags[m], None), raw={}, params=params,
                        method_params={m: {**p, "target": "per image (pinned)"} if "target" in p else p
                                       for m, p in first.method_params.items()},
                        targets=targets, passes=sum(r.passes for r in results.values()),
                        from_cache=merged(lambda r, m: r.from_cache[m], False), precision=first.precision,
                        stats=stats, forwards=sum(r.forwards for r in results.values()), unclipped=unclipped,
                        kept=merged(lambda r, m: r.kept[m], None))
