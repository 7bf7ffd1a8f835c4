"""An evaluation's output folder: one run's results, never two runs mixed.

:func:`~trust_core.evaluate.run.write_outputs` writes the whole set into a hidden folder beside ``--out`` and
swaps it in (:func:`trust_core.io.atomic_folder`), so the folder holds one run's tables and summary. Before
any work, the CLI checks the folder (:func:`check_results_folder`): a folder that already holds results is
replaced only with ``--overwrite``, and a folder holding anything else (a user's files) never is.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..errors import ConfigError
from ..layout import ANALYSIS_FILE, ANALYSIS_TABLES, CONFIG_FILE, SUMMARY_FILE, table_files

RESULT_SUFFIXES = (".json", ".parquet", ".csv")  # what write_outputs writes (tables, config.json, summary.json)


def read_summary(folder: str | Path) -> dict | None:
    """The ``summary.json`` of a results folder; None when there is none, or it is unreadable or not an
    evaluation's (no ``criteria``)."""
    summary = _read_json(Path(folder) / SUMMARY_FILE)
    return summary if isinstance(summary.get("criteria"), dict) else None


def read_config(folder: str | Path) -> dict | None:
    """The ``config.json`` of a results folder (what the evaluation ran with); None when missing or unreadable."""
    return _read_json(Path(folder) / CONFIG_FILE) or None


def read_results(folder: str | Path, *, what: str) -> tuple[dict, dict]:
    """The summary and config of an evaluation's results folder, or a :class:`ConfigError` that starts with
    ``what`` (the flag or place the folder came from) and says what the folder lacks."""
    summary, config = read_summary(folder), read_config(folder)
    if summary is None or config is None:
        lacking = " and ".join(name for name, found in ((SUMMARY_FILE, summary), (CONFIG_FILE, config)) if found is None)
        raise ConfigError(f"{what}: not an evaluation's results folder (no readable {lacking}); give the --out of "
                          f"a `trust evaluate` run")
    return summary, config


def _entries(out: Path) -> list[Path]:
    """What the folder holds, without the hidden temporary files and folders of atomic writes."""
    return sorted(p for p in out.iterdir() if not (p.name.startswith(".") and p.name.endswith(".tmp")))


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _analysis_files() -> set[str]:
    """The failure analysis's files, written beside the results by ``trust analyze``."""
    return {ANALYSIS_FILE} | {name for table in ANALYSIS_TABLES for name in table_files(table)}


def describe_results(out: Path) -> str:
    """A short description of the results in ``out``: their criteria (summary.json) and dataset (config.json)."""
    summary, config = _read_json(out / SUMMARY_FILE), _read_json(out / CONFIG_FILE)
    criteria = summary.get("criteria_run") or list(summary.get("criteria") or {}) or (
        (config.get("config") or {}).get("criteria"))
    dataset = {**(summary.get("dataset") or {}), **(config.get("dataset") or {})}
    where = dataset.get("root") or dataset.get("kind")
    finding = dataset.get("finding")
    if not (criteria or where):
        return "files of an evaluation"
    return (f"the results of {list(criteria) if criteria else 'an evaluation'}" + (f" on {where}" if where else "")
            + (f" ({finding})" if finding else ""))


def check_results_folder(out: str | Path, *, overwrite: bool) -> Path:
    """Refuse, before any work, an ``--out`` that would mix two runs or lose a user's files: a folder holding
    results without ``overwrite``; a folder holding anything but results (files other than tables and JSON,
    sub-folders) even with it. An empty or missing folder is fine. Raises :class:`ConfigError`."""
    out = Path(out)
    if not out.is_dir():
        return out
    entries = _entries(out)
    if not entries:
        return out
    summary = _read_json(out / SUMMARY_FILE)
    is_results = isinstance(summary.get("criteria"), dict)  # an evaluation's summary (a config.json alone is not)
    listed = summary.get("files")  # what write_outputs wrote (results since evaluate-3 list them)
    if isinstance(listed, list):
        known = set(listed) | {SUMMARY_FILE} | _analysis_files()
        foreign = [p.name + ("/" if p.is_dir() else "") for p in entries if p.is_dir() or p.name not in known]
    else:
        foreign = [p.name + ("/" if p.is_dir() else "") for p in entries
                   if p.is_dir() or p.suffix not in RESULT_SUFFIXES]
    if foreign or not is_results:
        shown = foreign or [p.name for p in entries]
        raise ConfigError(f"--out {out} holds files that are not evaluation results (e.g. {shown[:3]}): results are "
                          f"written to a folder of their own. Give a new or empty folder")
    if not overwrite:
        raise ConfigError(f"--out {out} already holds {describe_results(out)}: writing another run there would mix "
                          f"two runs' tables. Give a new folder, or add --overwrite to replace that folder as a "
                          f"whole (the old results stay until the new ones are complete)")
    return out


def write_outputs(result, out: str | Path) -> Path:
    """Per-image tables (Parquet + CSV), ``config.json``, then ``summary.json``, as one set: written into a
    hidden folder beside ``out`` that then replaces ``out`` whole (:func:`trust_core.io.atomic_folder`), so
    ``out`` holds this run's files only — never another run's tables beside this summary — and a run killed
    while writing leaves the previous results untouched. A folder holding anything but results is refused
    (:func:`~trust_core.evaluate.outputs.check_results_folder`; the CLI also refuses results without
    ``--overwrite``). ``summary.json`` states what was skipped (``dataset.skipped``: counts by reason;
    ``dataset.unreadable``: each unreadable film and why) and the smallest n that decides a verdict.
    """
    from ..io import atomic_folder, atomic_path, atomic_write
    from ..metrics.stats import MIN_PAIRED_N

    out = check_results_folder(out, overwrite=True)
    described = result.config.get("dataset", {}) if isinstance(result.config, dict) else {}
    summary = {**result.summary, "stats": result.stats}
    summary["dataset"] = {**summary.get("dataset", {}), "skipped": described.get("skipped", {}),
                          "unreadable": described.get("unreadable", {})}
    summary.setdefault("verdict_min_n", MIN_PAIRED_N)
    # every file of the set: what a later --overwrite may replace (a user's file beside them never is)
    summary["files"] = sorted([f for name in result.tables for f in table_files(name)] + [CONFIG_FILE, SUMMARY_FILE])
    with atomic_folder(out) as folder:
        for name, table in result.tables.items():
            for suffix, writer in ((".parquet", lambda t, p: t.to_parquet(p, index=False)),
                                   (".csv", lambda t, p: t.to_csv(p, index=False))):
                with atomic_path(folder / f"{name}{suffix}") as tmp:
                    writer(table, tmp)
        atomic_write(folder / CONFIG_FILE, json.dumps(result.config, indent=2, default=_json_default))
        atomic_write(folder / SUMMARY_FILE, json.dumps(summary, indent=2, default=_json_default))
    return out


def describe_evaluation(evaluation) -> dict:
    """What ``config.json`` records of an evaluation: its configuration, dataset, models (with their weights'
    digests), localizers, image sets and the versions of the code and libraries that scored it."""
    import platform
    from dataclasses import asdict

    import captum
    import numpy as np
    import skimage
    import sklearn
    import torch

    from .. import __version__
    from ..cache.store import weights_digest
    from ..models.info import info_of
    from ..saliency import CODE_VERSION
    from .config import EVAL_CODE_VERSION

    ev, dataset = evaluation, evaluation.dataset
    return {"config": asdict(ev.config), "methods": ev.methods, "params": ev.params,
            "dataset": {"kind": dataset.kind, "root": str(dataset.root), "fingerprint": dataset.fingerprint,
                        "skipped": dataset.skipped.counts, "mask_rule": dataset.mask_rule, **dataset.selection},
            "models": [{"path": p, "arch": a, "spec": info_of(m).spec, "weights_digest": weights_digest(m),
                        "meta": {k: v for k, v in info_of(m).meta.items() if k != "spec"},
                        "shuffled_labels": index >= ev.trained}
                       for index, (p, a, m) in enumerate(zip(ev.model_paths, ev.arches, ev.models))],
            "localizers": ev.localizer_paths, "localizer_maps": ev.localizer_maps,
            "image_size": ev.size, "utility_images": len(ev.utility_ids), "ssim_images": len(ev.ssim_ids),
            "versions": {"trust_core": __version__, "saliency_code": CODE_VERSION, "evaluation_code": EVAL_CODE_VERSION,
                         "torch": str(torch.__version__),
                         "captum": captum.__version__, "scikit-image": skimage.__version__,
                         "scikit-learn": sklearn.__version__, "numpy": np.__version__,
                         "python": platform.python_version()}}


def _json_default(value):
    import numpy as np

    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


MAPS_PARAMS = "params.json"


def check_maps_folder(out: str | Path, identity: dict, *, overwrite: bool) -> bool:
    """Refuse, before any work, a ``trust maps --out`` that would mix two runs' maps. A folder of maps made
    with the same ``identity`` (preset, methods, parameters, model, dataset) is continued (a rerun adds what
    is missing; the maps come from the cache). Maps of another run are replaced as a whole only with
    ``overwrite`` (returns True: write into a fresh folder swapped in at the end); a folder holding anything
    but maps (a user's files) never is. Raises :class:`ConfigError`."""
    out = Path(out)
    if not out.is_dir() or not _entries(out):
        return False
    entries = _entries(out)
    foreign = [p.name + ("/" if p.is_dir() else "") for p in entries
               if p.is_dir() or not (p.suffix == ".npz" or p.name == MAPS_PARAMS)]
    if foreign or not (out / MAPS_PARAMS).is_file():
        shown = foreign or [p.name for p in entries]
        raise ConfigError(f"--out {out} holds files that are not this tool's maps (e.g. {shown[:3]}): maps are written "
                          f"to a folder of their own. Give a new or empty folder")
    try:
        stored = json.loads((out / MAPS_PARAMS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        stored = {}
    differs = [k for k in identity if json.dumps(stored.get(k), sort_keys=True, default=str)
               != json.dumps(identity[k], sort_keys=True, default=str)]
    if not differs:
        return False
    if not overwrite:
        raise ConfigError(f"--out {out} holds the maps of another run ({', '.join(differs)} differ): writing these "
                          f"there would mix two runs' maps. Give a new folder, or add --overwrite to replace that "
                          f"folder as a whole (the old maps stay until the new ones are complete)")
    return True
