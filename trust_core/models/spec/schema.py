"""The model spec's schema: :class:`ModelSpec`, read from TOML (or a dict) and checked key by key."""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path


from ...errors import ConfigError
from ..preprocessing import Preprocessing
from .program import program_input


ACTIVATIONS = ("softmax", "sigmoid", "logits")
SOURCE_KINDS = ("registry", "torchvision", "timm", "torchxrayvision", "monai", "callable", "pt2")
_TOP_KEYS = {"source", "weights", "target", "source_kwargs", "preprocessing", "outputs", "gradcam_layer",
             "cascade", "name"}
_PREP_KEYS = {"size", "channels", "normalization", "resize"}
_OUT_KEYS = {"activation", "classes"}
_STRIPPED_PREFIXES = ("module.", "model.")


def _err(message: str, path) -> ConfigError:
    return ConfigError(message, path=path)


@dataclass(frozen=True)
class ModelSpec:
    """A resolved model spec (see the module docstring). ``path`` is the TOML file (None for flags)."""

    source: str
    weights: Path | None = None
    source_kwargs: dict = field(default_factory=dict)
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    activation: str = "softmax"
    classes: tuple[str, ...] | None = None
    target: str | int | None = None
    gradcam_layer: str | None = None
    cascade: tuple[str, ...] | None = None  # module paths; states top-down in reverse forward order
    path: Path | None = None
    name: str | None = None

    @property
    def source_kind(self) -> str:
        """Where the architecture comes from: a zoo (torchvision, timm…), the registry, a .pt2 program or code."""
        return source_kind(self.source)

    def as_dict(self) -> dict:
        """What the maps depend on besides the weights: part of the cache fingerprint and config.json."""
        return {"source": self.source, "weights": self.weights.name if self.weights else None,
                "source_kwargs": self.source_kwargs, "preprocessing": self.preprocessing.as_dict(),
                "activation": self.activation, "classes": list(self.classes) if self.classes else None,
                "target": self.target, "gradcam_layer": self.gradcam_layer,
                "cascade": list(self.cascade) if self.cascade else None}


def source_kind(source: str) -> str:
    """Which builder a source names (see ``SOURCE_KINDS``)."""
    from ..registry import ARCHITECTURES

    if source.endswith(".pt2"):
        return "pt2"
    if source in ARCHITECTURES:
        return "registry"
    prefix, _, rest = source.partition(":")
    if prefix in ("torchvision", "timm", "torchxrayvision", "monai") and rest:
        return prefix
    if rest and all(part.isidentifier() for part in prefix.split(".")) and rest.isidentifier():
        return "callable"
    raise ConfigError(
        f"unknown model source {source!r}: use a registry name ({', '.join(ARCHITECTURES)}), "
        f"'torchvision:NAME', 'timm:NAME', 'torchxrayvision:CLASS', 'monai:NAME', 'package.module:callable' "
        f"or a torch.export program 'model.pt2'")


def read_spec(path: str | Path) -> ModelSpec:
    """Read and validate a TOML model spec; every error names the file and the fix."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError("model spec not found", path=path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise _err(f"not a valid TOML file ({exc}); see README 'Bring your own model' for the format", path) from None
    return spec_from_dict(data, path=path)


def spec_from_dict(data: dict, *, path: Path | None = None, base: Path | None = None) -> ModelSpec:
    """A :class:`ModelSpec` from the TOML table (or the CLI's flags); relative paths are resolved
    against the spec file's folder (or ``base``)."""
    where = path
    base = (path.parent if path is not None else base) or Path.cwd()
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise _err(f"unknown key(s) {sorted(unknown)}; a spec has {sorted(_TOP_KEYS)}", where)
    source = data.get("source")
    if not isinstance(source, str) or not source:
        raise _err("the spec needs a source = \"...\" (e.g. \"torchvision:densenet121\")", where)
    if source.endswith(".pt2"):
        source = str((base / source).resolve()) if not Path(source).is_absolute() else source
    try:
        zoo = source_kind(source)
    except ConfigError as exc:
        raise _err(exc.reason, where) from None
    weights = data.get("weights")
    if weights is not None:
        if not isinstance(weights, str):
            raise _err(f"weights must be a file name, got {weights!r}", where)
        weights = Path(weights) if Path(weights).is_absolute() else (base / weights)
        # any name (CheXNet ships .pth.tar): the file is read by its content, with weights_only or safetensors
    elif zoo not in ("pt2",):
        weights = None  # random initialization (tests, or `trust train` from scratch)
    kwargs = data.get("source_kwargs", {})
    if not isinstance(kwargs, dict):
        raise _err("[source_kwargs] must be a table of keyword arguments", where)
    prep_table = data.get("preprocessing", {})
    if not isinstance(prep_table, dict) or set(prep_table) - _PREP_KEYS:
        raise _err(f"[preprocessing] takes {sorted(_PREP_KEYS)}, got {prep_table!r}", where)
    size = prep_table.get("size", 224 if zoo not in ("registry", "pt2") else None)
    if zoo == "registry" and size is None:
        from ..registry import get_architecture
        size = get_architecture(source).input_size
    channels = prep_table.get("channels")
    if zoo == "pt2" and size is None:  # the program's own input (N, C, S, S)
        program_prep = exported_spec(source).preprocessing
        size, channels = program_prep.size, channels or program_prep.channels
    try:
        default = ("paper" if zoo in ("registry", "pt2") else
                   "unit" if channels == 1 else "imagenet")
        prep = Preprocessing.named(prep_table.get("normalization", default),
                                   size=size, channels=channels,
                                   resize=prep_table.get("resize", "stretch"))
    except ConfigError as exc:
        raise _err(exc.reason, where) from None
    outputs = data.get("outputs", {})
    if not isinstance(outputs, dict) or set(outputs) - _OUT_KEYS:
        raise _err(f"[outputs] takes {sorted(_OUT_KEYS)}, got {outputs!r}", where)
    activation = outputs.get("activation", "softmax")
    if activation not in ACTIVATIONS:
        raise _err(f"outputs.activation must be one of {ACTIVATIONS}, got {activation!r}", where)
    classes = outputs.get("classes")
    if classes is not None and (not isinstance(classes, list) or not all(isinstance(c, str) for c in classes)
                                or not classes):
        raise _err(f"outputs.classes must be a list of names, got {classes!r}", where)
    target = data.get("target")
    if target is not None and (isinstance(target, bool) or not isinstance(target, (str, int))
                               or (isinstance(target, int) and target < 0)):
        raise _err(f"target must be a class name or a non-negative index, got {target!r}", where)
    layer = data.get("gradcam_layer")
    if layer is not None and (not isinstance(layer, str) or not layer):
        raise _err(f"gradcam_layer must be a dotted module path, got {layer!r}", where)
    cascade = data.get("cascade")
    blocks = None
    if cascade is not None:
        blocks = cascade.get("blocks") if isinstance(cascade, dict) else None
        if not isinstance(blocks, list) or not blocks or not all(isinstance(b, str) and b for b in blocks):
            raise _err("[cascade] blocks must be a list of module paths, e.g. blocks = [\"layer1\", \"fc\"]", where)
        blocks = tuple(blocks)
    return ModelSpec(source=source, weights=weights, source_kwargs=dict(kwargs), preprocessing=prep,
                     activation=activation, classes=tuple(classes) if classes else None, target=target,
                     gradcam_layer=layer, cascade=blocks, path=path, name=data.get("name"))


def exported_spec(path: str | Path) -> ModelSpec:
    """The spec of a bare ``.pt2`` program: the paper's preprocessing, size and channels read from the
    program's input."""
    path = Path(path).resolve()
    channels, size = program_input(path)
    return ModelSpec(source=str(path), preprocessing=Preprocessing.named("paper", size=size, channels=channels),
                     path=None)
