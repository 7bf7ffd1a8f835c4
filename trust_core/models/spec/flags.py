"""A model spec's fields as a user types them — the ``--source``… flags of ``trust`` and the app's "bring your
own model" form — parsed in one place into a spec table (:func:`spec_table`), which
:func:`~trust_core.models.spec.spec_from_dict` then checks."""
from __future__ import annotations

import json
import re

from ...errors import ConfigError

# the spec flags of the CLI (argparse destinations), in the order spec_table takes them
SPEC_FLAGS = ("source", "num_classes", "kwarg", "input_size", "channels", "normalization", "resize", "activation",
              "output_classes", "target", "gradcam_layer", "cascade_blocks")


def parse_names(text: str | None) -> list[str]:
    """``"a, b,c"`` → ``["a", "b", "c"]`` (output classes, cascade blocks)."""
    return [name.strip() for name in (text or "").split(",") if name.strip()]


def parse_target(text: str | None) -> int | str | None:
    """The explained class: an index (digits), a name, or None (empty: the predicted class)."""
    text = (text or "").strip()
    if not text:
        return None
    return int(text) if text.isdigit() else text


def parse_normalization(text: str, *, custom: bool = False) -> str | dict:
    """A normalization's name (``paper``, ``imagenet``, ``xrv``…), or ``MEAN,…:STD,…`` in units of the [0, 1]
    film → ``{"mean": [...], "std": [...]}``; ``custom``: only the latter."""
    if ":" not in text and not custom:
        return text
    mean, sep, std = text.partition(":")
    try:
        if not sep:
            raise ValueError
        return {"mean": [float(v) for v in mean.split(",")], "std": [float(v) for v in std.split(",")]}
    except ValueError:
        raise ConfigError(f"normalization {text!r}: write MEAN:STD numbers, e.g. 0.5:0.25 or "
                          f"0.485,0.456,0.406:0.229,0.224,0.225") from None


def split_pairs(text: str | None) -> list[str]:
    """``"a=1, b=[1, 2]"`` → ``["a=1", "b=[1, 2]"]``: commas outside brackets separate the pairs."""
    return [p.strip() for p in re.split(r",(?![^\[]*\])", text or "") if p.strip()]


def parse_pairs(pairs, *, what: str = "--set", identifiers: bool = False) -> dict:
    """``NAME=VALUE`` pairs → ``{name: value}``, each value read as JSON when it is JSON (numbers, lists,
    true…), else kept as text; ``identifiers``: names must be Python identifiers (builder arguments)."""
    out = {}
    for pair in pairs or []:
        name, sep, value = pair.partition("=")
        name = name.strip() if identifiers else name
        if not sep or (identifiers and not name.isidentifier()):
            raise ConfigError(f"{what} expects NAME=VALUE, got {pair!r}")
        try:
            out[name] = json.loads(value)
        except json.JSONDecodeError:
            out[name] = value.strip() if identifiers else value
    return out


def spec_table(base: dict | None = None, *, source: str | None = None, num_classes: int | None = None,
               kwargs: dict | None = None, input_size: int | None = None, channels: int | None = None,
               normalization=None, resize: str | None = None, activation: str | None = None,
               output_classes: list[str] | None = None, target=None, gradcam_layer: str | None = None,
               cascade_blocks: list[str] | None = None) -> dict:
    """A spec table: ``base`` (a spec file's table, or {}) with the given fields set over it (None: kept).
    ``normalization`` as :func:`parse_normalization` gives it, the lists as :func:`parse_names` does."""
    data = dict(base or {})
    if source:
        data["source"] = source
    builder = {**data.get("source_kwargs", {}), **(kwargs or {})}
    if num_classes is not None:
        builder["num_classes"] = num_classes
    prep = {**data.get("preprocessing", {}), **{k: v for k, v in (
        ("size", input_size), ("channels", channels), ("normalization", normalization), ("resize", resize))
        if v is not None}}
    outputs = dict(data.get("outputs", {}))
    if activation:
        outputs["activation"] = activation
    if output_classes:
        outputs["classes"] = list(output_classes)
    for key, value in (("source_kwargs", builder), ("preprocessing", prep), ("outputs", outputs)):
        if value:
            data[key] = value
    if target is not None:
        data["target"] = target
    if gradcam_layer:
        data["gradcam_layer"] = gradcam_layer
    if cascade_blocks:
        data["cascade"] = {"blocks": list(cascade_blocks)}
    return data
