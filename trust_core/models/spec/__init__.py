"""Model specs: any PyTorch chest X-ray classifier, described by a small TOML file beside its weights.

.. code-block:: toml

    source = "torchvision:densenet121"   # timm:NAME | torchxrayvision:CLASS | monai:NAME | pkg.mod:callable | model.pt2
    weights = "chexnet14.pth"            # relative to this file; omitted for a .pt2 source
    target = "Pneumonia"                 # a class name or an index; omitted: the predicted class (softmax heads)

    [source_kwargs]                      # passed to the builder, e.g. num_classes = 14
    num_classes = 14

    [preprocessing]
    size = 224
    channels = 3
    normalization = "imagenet"           # "paper" ([-1, 1]) | "imagenet" | "xrv" | {mean = [...], std = [...]}

    [outputs]
    activation = "sigmoid"               # softmax | sigmoid | logits
    classes = ["Atelectasis", "Cardiomegaly", "..."]

    # optional: gradcam_layer = "features.norm5"; [cascade] blocks = [...]

Weights are read with ``torch.load(weights_only=True)`` or safetensors, never by unpickling code; common
wrapper prefixes (``module.``, ``model.``) are stripped and keys that do not fit are listed. The Grad-CAM
layer and the cascade blocks are detected with forward hooks unless the spec names them
(:func:`detect_gradcam_layer`, :func:`detect_blocks`). The explained scalar is always the target's
*logit* (pre-activation), as in the paper.
"""
from __future__ import annotations

# the package: schema (the TOML schema, ModelSpec), builders (one per zoo), program (.pt2), load (weights,
# outputs, target), detect (Grad-CAM layer, cascade blocks), inspect (trust inspect), write (TOML, add_model)
from .builders import ZOOS, build_model
from .detect import check_gradcam_layer, detect_blocks, detect_gradcam_layer
from .inspect import check_gradient, describe
from .load import KNOWN_BUFFERS, TARGET_ALIASES, adapt_keys, load_spec
from .schema import ACTIVATIONS, SOURCE_KINDS, ModelSpec, exported_spec, read_spec, source_kind, spec_from_dict
from .write import ZOO_KINDS, add_model, to_toml

__all__ = ["ACTIVATIONS", "KNOWN_BUFFERS", "SOURCE_KINDS", "TARGET_ALIASES", "ZOOS", "ZOO_KINDS", "ModelSpec",
           "adapt_keys", "add_model", "build_model", "check_gradcam_layer", "check_gradient", "describe",
           "detect_blocks", "detect_gradcam_layer", "exported_spec", "load_spec", "read_spec", "source_kind",
           "spec_from_dict", "to_toml"]
