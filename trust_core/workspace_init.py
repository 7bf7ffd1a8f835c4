"""``trust workspace init``: a workspace the app can open, made from a researcher's own dataset folder,
models, results and cache — nothing of theirs copied that need not be, nothing of theirs changed.

The workspace (see :mod:`trust_core.layout`) links to the dataset folder (``<ws>/<kind>`` → the folder: a
real download of 26,684 films is never copied), copies the models (a few MB each) into ``<ws>/models`` with
an index giving each its role, copies an evaluation's results folder into ``<ws>/results/<kind>``, and
links ``<ws>/store`` to the cache that evaluation filled, so the app shows the very maps that were scored
instead of computing them again. It is built in a hidden folder beside ``--out`` and appears whole.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from .errors import ConfigError

CHECKPOINT_SUFFIXES = (".pt", ".pth", ".tar", ".ckpt", ".bin", ".safetensors", ".pt2")


def _roles(infos: list[tuple[str, object]]) -> list[str]:
    """Classifier roles in the order given: the first is the main model (replicate A); another of its
    architecture is replicate B; the first of another architecture, the other architecture."""
    roles, first_arch, have_b, have_other = [], None, False, False
    for _, info in infos:
        arch = info.family
        if first_arch is None:
            roles.append("replicate A")
            first_arch = arch
        elif arch == first_arch and not have_b:
            roles.append("replicate B")
            have_b = True
        elif arch != first_arch and not have_other:
            roles.append("other architecture")
            have_other = True
        else:
            raise ConfigError(f"--model {_}: a workspace holds a main model, one replicate of its architecture "
                              f"and one model of another architecture (the paper's roles); this one has no role left")
    return roles


def init_workspace(out: str | Path, *, dataset: str, models=(), localizers=(), results: str | Path | None = None,
                   store: str | Path | None = None, classes: str | None = None, finding: str | None = None,
                   readers: str | None = None, log=print) -> Path:
    """Make the workspace ``out`` (new or empty) for ``dataset`` (``KIND:PATH``); see the module docstring.
    Every input is checked before anything is written: the dataset opens (read only), the models load (with
    ``weights_only``), the results are an evaluation's of this dataset kind, the store is a cache folder."""
    from .data import open_dataset
    from .evaluate.outputs import read_results
    from .io import atomic_folder, writable_folder
    from .layout import Layout, write_index
    from .models import load
    from .models.info import info_of
    from .cache.store import weights_digest
    from .models.localizer import load_localizer

    out = Path(out)
    writable_folder(out)
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"--out {out} is not empty: a workspace is made in a new or empty folder")
    kind, _, path = dataset.partition(":")
    opened = open_dataset(dataset, classes=classes or "paper", finding=finding, readers=readers, save_splits=False)
    root = Path(path).resolve()
    if not models:
        raise ConfigError("give at least one --model (the main model: its maps are the ones shown and scored)")
    if all(Path(m).suffix.lower() == ".toml" for m in models):
        raise ConfigError("the first --model must be a checkpoint (the main model of the index); model specs (.toml) "
                          "are added beside it")
    loaded, specs, digests = [], [], []
    for source in models:
        if Path(source).suffix.lower() == ".toml":  # a model spec: added as the app adds one (with its weights)
            specs.append(_spec_table(Path(source)))
            continue
        model = load(source, num_classes=None)
        loaded.append((str(source), info_of(model)))
        if not digests:
            digests.append(weights_digest(model))  # the main model's: the one the results must be of
    roles = _roles(loaded)
    for source in localizers:
        load_localizer(source)  # a U-Net checkpoint, or a clear error naming it
    summary = config = None
    if results is not None:
        results = Path(results)
        summary, config = read_results(results, what=f"--results {results}")
        recorded = config.get("dataset", {}).get("kind")
        if recorded != kind:
            raise ConfigError(f"--results {results} are of a {recorded} dataset, not {kind}")
        scored = (config.get("models") or [{}])[0]
        if scored.get("weights_digest") and scored["weights_digest"] != digests[0]:
            raise ConfigError(f"--results {results} scored the maps of {Path(str(scored.get('path'))).name} (weights "
                              f"{scored['weights_digest'][:8]}), not of the first --model {Path(loaded[0][0]).name} "
                              f"(weights {digests[0][:8]}): the app would show other maps than those scored. Give the "
                              f"evaluation's main model first (its config.json lists its models)")
        if config.get("dataset", {}).get("fingerprint") not in (None, opened.fingerprint):
            log(f"warning: --results {results} were computed on another version of this dataset (fingerprint "
                f"{config['dataset']['fingerprint']}, now {opened.fingerprint}): labels or splits changed since")
    if store is not None:
        store = Path(store).resolve()
        if not store.is_dir() or not (store / "cache.db").is_file():
            raise ConfigError(f"--store {store}: not a map cache (no cache.db): give the --cache folder the evaluation "
                              f"used (default cache/store)")

    index = []
    with atomic_folder(out) as folder:
        layout = Layout(folder)
        os.symlink(root, layout.dataset(kind), target_is_directory=True)
        layout.models.mkdir()
        used = set()
        for (source, info), role in zip(loaded, roles):
            name = _unique(Path(source).name, used)
            shutil.copy2(source, layout.model(name))
            index.append({"file": name, "arch": info.name, "dataset": kind, "seed": info.meta.get("seed"),
                          "role": role, "input_size": info.size, "test_auc": info.meta.get("test_auc"),
                          "val_auc": info.meta.get("val_auc"), "source": str(Path(source).resolve())})
        for source in localizers:
            name = _unique(Path(source).name, used)
            shutil.copy2(source, layout.model(name))
            index.append({"file": name, "arch": "unet", "dataset": kind, "seed": None, "role": "localizer",
                          "input_size": None, "val_auc": None, "test_auc": None, "source": str(Path(source).resolve())})
        write_index(folder, index)
        for spec_path, table, weights in specs:
            from .models.spec import add_model

            add_model(layout.models, _unique(spec_path.stem, used), table, allow_code=True,
                      weights=weights.read_bytes() if weights else None, weights_name=weights.name if weights else None)
        if results is not None:
            shutil.copytree(results, layout.results(kind))
        if store is not None:
            os.symlink(store, layout.store, target_is_directory=True)
    log(f"workspace {out}: {kind} → {root} (linked, {len(opened.ids())} films), {len(loaded)} model(s) "
        f"({', '.join(r for r in roles)}), {len(localizers)} localizer(s)"
        + (f", results of {list(summary.get('criteria', {}))}" if summary else ", no results yet")
        + (f", map cache → {store} (linked)" if store else ""))
    log(f"open it: trust app --workspace {out}   (or: make app WORKSPACE={out})")
    return out


def _spec_table(path: Path) -> tuple[Path, dict, Path | None]:
    """A model spec's table and its weights file (resolved beside the spec), checked by loading it."""
    import tomllib

    from .models.spec import load_spec

    load_spec(path)  # a clear error, naming the file, before anything is written
    table = tomllib.loads(path.read_text(encoding="utf-8"))
    weights = table.get("weights")
    located = None
    if weights:
        located = Path(weights) if Path(weights).is_absolute() else path.parent / weights
    return path, table, located


def _unique(name: str, used: set) -> str:
    stem, suffix = Path(name).stem, Path(name).suffix
    candidate, k = name, 2
    while candidate in used:
        candidate = f"{stem}_{k}{suffix}"
        k += 1
    used.add(candidate)
    return candidate
