"""Writing specs: TOML out, and a model added to a workspace's ``models/`` folder only once it loads."""
from __future__ import annotations

from pathlib import Path


from ...errors import CheckpointError, ConfigError
from .load import load_spec
from .schema import source_kind


def to_toml(table: dict) -> str:
    """A spec table as TOML (top-level values, then one level of sub-tables), readable by tomllib."""
    import json

    def value(v):
        if isinstance(v, bool):
            return str(v).lower()
        if isinstance(v, dict):  # an inline table ({mean = [...], std = [...]})
            return "{" + ", ".join(f"{k} = {value(x)}" for k, x in v.items()) + "}"
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return json.dumps(v)  # strings (JSON escapes are TOML basic-string escapes), numbers

    lines = [f"{k} = {value(v)}" for k, v in table.items() if not isinstance(v, dict) and v is not None]
    for k, v in table.items():
        if isinstance(v, dict) and v:
            lines += ["", f"[{k}]"] + [f"{kk} = {value(vv)}" for kk, vv in v.items() if vv is not None]
    return "\n".join(lines) + "\n"


_SAFE_NAME = __import__("re").compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,80}$")


ZOO_KINDS = ("registry", "torchvision", "timm", "torchxrayvision", "monai")  # build models, run no user code


def add_model(folder: str | Path, name: str, table: dict, *, weights: bytes | None = None,
              weights_name: str | None = None, allow_code: bool = False) -> Path:
    """Add a model to a workspace's ``models/`` folder: ``<name>.toml`` (+ its weights file), written only
    after the spec loads and passes its sanity check from a private staging folder, so that a bad spec
    or bad weights leave nothing behind. Returns the spec's path.

    Without ``allow_code`` (the app: its users are not the server's owners) only the zoos' builders are
    accepted: a ``package.module:callable`` source imports and runs any Python function, and a ``.pt2``
    names a file on the server; such specs are written beside the weights by whoever runs the server."""
    import os
    import shutil
    import tempfile

    folder = Path(folder)
    if not _SAFE_NAME.match(name or ""):
        raise ConfigError(f"model name {name!r}: use letters, digits, '.', '_' or '-' (no spaces or slashes)")
    target = folder / f"{name}.toml"
    if target.exists():
        raise ConfigError(f"a model named {name!r} exists already: choose another name", path=target)
    table = {k: v for k, v in table.items() if v not in (None, {}, [], "")}
    zoo = source_kind(str(table.get("source", "")))
    if not allow_code and zoo not in ZOO_KINDS:
        raise ConfigError(f"source {table.get('source')!r}: models added here come from the zoos ({', '.join(ZOO_KINDS)}); "
                          f"a package.module:callable or .pt2 source runs code on the server, so write its spec "
                          f"into the workspace's models/ folder yourself (README 'Bring your own model')")
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder, prefix=".staging-") as staging:
        staging = Path(staging)
        if weights is not None:
            suffix = Path(weights_name or "weights.pth").suffix.lower()
            if suffix not in (".pt", ".pth", ".safetensors", ".bin", ".ckpt", ".tar"):
                raise ConfigError(f"weights {weights_name!r}: upload a .pt, .pth, .pth.tar or .safetensors file")
            stored = f"{name}{suffix}"
            if (folder / stored).exists():
                raise ConfigError(f"a weights file {stored!r} exists already: choose another name", path=folder)
            (staging / stored).write_bytes(weights)
            table["weights"] = stored
        (staging / target.name).write_text(to_toml(table), encoding="utf-8")
        try:
            load_spec(staging / target.name)  # raises with the reason; the staging folder is removed
        except (ConfigError, CheckpointError) as exc:
            if weights is not None and exc.path and Path(exc.path).name == table["weights"]:
                raise type(exc)(exc.reason, path=weights_name) from None  # name the file the user gave
            raise
        if weights is not None:
            os.replace(staging / table["weights"], folder / table["weights"])
        os.replace(staging / target.name, target)
        shutil.rmtree(staging, ignore_errors=True)
    return target
