"""What the tool knows about a model, in one frozen object: ``model.trust_info`` (see :func:`info_of`).

It replaces loose attributes on ``nn.Module``. The registry sets the architecture and its input size
when it builds a model, a checkpoint adds its metadata and path, a randomization run its state, and the
saliency engine marks its channels-last compute copies. Each step makes a new object
(:func:`tag`); none is ever changed in place.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

from torch import nn

if TYPE_CHECKING:
    from .preprocessing import Preprocessing

DEFAULT_INPUT_SIZE = 320  # the paper's, for a model that does not say its own


@dataclass(frozen=True)
class ModelInfo:
    arch: str | None = None  # registry name (None: not from the registry)
    input_size: int | None = None  # side of the square input; the checkpoint's word wins over the registry's
    meta: dict = field(default_factory=dict)  # checkpoint metadata: seed, scores, dataset… (read-only)
    path: str | None = None  # the checkpoint it was loaded from
    state: dict | None = None  # randomization state (None: the model as trained)
    channels_last: bool = False  # a compute copy in the channels-last layout
    # What a saliency run needs to know, for any model (the registry fills them from its entry, a model
    # spec from its TOML file or by detection; see trust_core.models.spec):
    preprocessing: "Preprocessing | None" = None  # None: the paper's, at ``size``
    activation: str = "softmax"  # the head: softmax | sigmoid | logits
    classes: tuple[str, ...] | None = None  # output names, when known
    target: int | None = None  # the explained output (None: the predicted class)
    gradcam_layer: str | None = None  # dotted module path (ViTs: a token map, reshaped to its grid)
    blocks: tuple[tuple[str, tuple[str, ...]], ...] | None = None  # cascade states, top-down
    spec: dict | None = None  # a spec'd model's resolved spec (part of its cache fingerprint)
    # a spec'd model's builder of fresh random weights (its library's own initialization): the cascade
    # re-initializes a block by copying it from a model built under the state's seed
    fresh: "Callable[[], nn.Module] | None" = field(default=None, compare=False, repr=False)

    @property
    def size(self) -> int:
        """The input size, or the paper's 320 for a model that does not say."""
        return int(self.input_size or DEFAULT_INPUT_SIZE)

    @property
    def prep(self) -> "Preprocessing":
        """The model's preprocessing (the paper's for a model that does not say)."""
        from .preprocessing import paper_preprocessing

        return self.preprocessing or paper_preprocessing(self.size)

    @property
    def name(self) -> str:
        """The architecture or the spec's source, for messages and reports."""
        return self.arch or (self.spec or {}).get("source") or "model"

    @property
    def family(self) -> str:
        """What makes two models replicates (same architecture, input and target, other training): the
        registry name, or a spec'd model's resolved spec without its weights."""
        if self.arch:
            return self.arch
        import json

        return json.dumps({k: v for k, v in (self.spec or {}).items() if k != "weights"}, sort_keys=True,
                          default=str)

    def class_name(self, index: int) -> str:
        """An output's name ('class 1' when the model does not name its outputs)."""
        if self.classes and 0 <= index < len(self.classes):
            return self.classes[index]
        return f"class {index}"

    @property
    def seed(self) -> int:
        """The training seed (0 when unknown): replicates are randomized with different seeds."""
        return int(self.meta.get("seed") or 0)


def info_of(model: nn.Module) -> ModelInfo:
    """The model's :class:`ModelInfo` (an empty one for a model the tool did not build or load)."""
    return getattr(model, "trust_info", None) or ModelInfo()


def tag(model: nn.Module, **changes) -> nn.Module:
    """Give ``model`` a new :class:`ModelInfo` with ``changes``; returns the model."""
    model.trust_info = dataclasses.replace(info_of(model), **changes)
    return model


def activated(logits, activation: str):
    """A head's scores over its last dimension: softmax or sigmoid probabilities, the logits themselves for a
    ``logits`` head (one owner for the app's prediction, the sanity checks and the failure analysis)."""
    import torch

    if activation == "softmax":
        return torch.softmax(logits, -1)
    if activation == "sigmoid":
        return torch.sigmoid(logits)
    return logits
