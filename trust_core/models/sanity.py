"""What can be checked of a model against the films it will see, beyond "it loads": its normalization (against
what its zoo is known to expect) and its outputs on a few real films (constant or saturated outputs mean the
input does not reach the model as it was trained). ``trust inspect`` and ``trust check --model`` report these;
``trust maps`` and ``trust evaluate`` print the warnings before they start.

A finding is a *problem* (the maps would be meaningless: non-finite or film-independent outputs; the commands
exit with status 2) or a *warning* (probably wrong, said, but the run goes on).
"""
from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import nn

from .info import activated, info_of

# What a zoo's models are trained on: source kind → (normalization name, why). torchxrayvision's models all take
# one channel in [-1024, 1024] (its own ``normalize(img, 255)``), whatever weights they were trained with.
EXPECTED_NORMALIZATION = {
    "torchxrayvision": ("xrv", "torchxrayvision's models are trained on one channel in [-1024, 1024] "
                               "(xrv.datasets.normalize)"),
}
FILMS_CHECKED = 8  # films a model is run on by `trust check --model` and `trust inspect --dataset`
CONSTANT_SPREAD = 1e-6  # outputs whose spread over different films stays below this (× their size) are constant
SATURATED = 1e-4  # a probability within this of 0 or 1 on every film is saturated
NARROW_INPUT = 0.1  # films whose model inputs span less than this fraction of the normalization's range


def _kind(model: nn.Module) -> str:
    """The zoo of a spec'd model's source (``torchxrayvision:DenseNet`` → ``torchxrayvision``), read from its
    prefix (the spec module, which imports this one, owns the full parse: ``spec.source_kind``)."""
    source = (info_of(model).spec or {}).get("source")
    if not source:
        return "registry"
    prefix, sep, _rest = str(source).partition(":")
    return prefix if sep and prefix in EXPECTED_NORMALIZATION else "other"


def _input_range(prep) -> tuple[float, float]:
    """The model-input values of a black and a white film (the extremes of the normalization)."""
    black, white = prep.value(0.0), prep.value(1.0)
    values = [float(torch.as_tensor(black).min()), float(torch.as_tensor(white).max())]
    return min(values), max(values)


def normalization_warnings(model: nn.Module) -> list[str]:
    """The spec's normalization against what the model's zoo is known to expect (a torchxrayvision model
    given ``unit`` or ``imagenet`` sees inputs about a thousand times smaller than it was trained on)."""
    prep = info_of(model).prep
    expected = EXPECTED_NORMALIZATION.get(_kind(model))
    if expected is None or prep.normalization == expected[0]:
        return []
    from .preprocessing import Preprocessing

    low, high = _input_range(prep)
    want_low, want_high = _input_range(Preprocessing.named(expected[0], size=prep.size))
    ratio = (want_high - want_low) / max(high - low, 1e-12)
    return [f"normalization {prep.normalization!r} gives inputs in [{low:.3g}, {high:.3g}], but {expected[1]}: "
            f"the films reach this model ~{ratio:.0f}× smaller than it was trained on, and its outputs mean little. "
            f"Set normalization = \"{expected[0]}\" under [preprocessing] (or --normalization {expected[0]})"]


def film_findings(model: nn.Module, films: dict[str, np.ndarray]) -> tuple[list[str], list[str]]:
    """(problems, warnings) of one forward pass of ``model`` on ``films`` (image id → film in [0, 1] at any
    size): inputs in a narrow band of the normalization's range, non-finite outputs, outputs that do not
    change between films, a target probability saturated at 0 or 1 on every film."""
    info = info_of(model)
    prep = info.prep
    problems: list[str] = []
    notes: list[str] = []
    if not films:
        return problems, notes
    ids = list(films)
    x = torch.stack([prep(prep.film(films[i])) for i in ids])
    low, high = _input_range(prep)
    span = float(x.max() - x.min())
    if span < NARROW_INPUT * (high - low):
        notes.append(f"the {len(ids)} films checked reach the model in [{float(x.min()):.3g}, {float(x.max()):.3g}], "
                     f"{100 * span / (high - low):.1f} % of the range its normalization ({prep.label}) gives: are "
                     f"the films almost black or uniform (their bit depth or window)?")
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = model(x.to(device)).detach().float().cpu()
    if not torch.isfinite(out).all():
        bad = [ids[k] for k in range(len(ids)) if not torch.isfinite(out[k]).all()]
        problems.append(f"the model's outputs are not finite on {len(bad)} of {len(ids)} films (e.g. {bad[:3]})")
        return problems, notes
    differ = len(ids) >= 2 and float((x - x[:1]).abs().amax()) > 0
    spread = (out.max(0).values - out.min(0).values).max()
    size = max(1.0, float(out.abs().max()))
    if differ and float(spread) <= CONSTANT_SPREAD * size:
        problems.append(f"the model gives the same outputs for {len(ids)} different films (spread {float(spread):.2g}): "
                        f"the input does not reach it as it was trained. Check the normalization ({prep.label}), "
                        f"the channels and the weights")
    if info.activation in ("sigmoid", "softmax") and out.shape[1] >= 1:
        probs = activated(out, info.activation)
        target = info.target
        chosen = probs[:, target] if target is not None else probs.max(1).values
        if len(ids) >= 2 and (bool((chosen < SATURATED).all()) or bool((chosen > 1 - SATURATED).all())):
            side = "0" if bool((chosen < SATURATED).all()) else "1"
            name = info.class_name(target) if target is not None else "the predicted class"
            notes.append(f"the model's {info.activation} output for {name} is saturated at {side} on all {len(ids)} "
                         f"films checked (logits up to {float(out.abs().max()):.3g}): the input may be scaled wrongly "
                         f"for it (normalization {prep.label}), and gradients of a saturated output are tiny")
    return problems, notes


def sample_films(dataset, count: int = FILMS_CHECKED) -> dict[str, np.ndarray]:
    """Up to ``count`` readable films of a dataset (half positives, half negatives when it has both, in id
    order), at their native size; unreadable ones are passed over (``trust check`` lists them)."""
    from ..errors import TrustError

    positives, negatives = dataset.ids(label=1), dataset.ids(label=0)
    order = [i for pair in zip(positives, negatives) for i in pair]
    order += [i for i in positives[len(negatives):] + negatives[len(positives):]]
    films: dict[str, np.ndarray] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # recorded by screen() in dataset.film_warnings (the callers say them)
        for image_id in dataset.screen(order, limit=count):
            try:
                films[image_id] = dataset.native_image(image_id)
            except TrustError:
                continue
    return films


def film_notes(dataset) -> list[str]:
    """What reading a dataset's films found beside their errors: depths inferred from the values, and films
    of one dataset that needed different depths (see :meth:`RadiographDataset.screen`)."""
    notes = list(dataset.film_warnings.values())
    if getattr(dataset, "depth_note", None):
        notes.append(dataset.depth_note)
    return notes
