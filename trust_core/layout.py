"""Where things live in a workspace — the one owner of its folder layout and its model index.

::

    <root>/<kind>/                 datasets in their native layouts (rsna/, siim/, …)
    <root>/models/index.json       the model index: file, arch, dataset, seed, role, scores
    <root>/models/<file>.pt        classifiers and localizers
    <root>/results/<kind>/         evaluation tables, config.json, summary.json
    <root>/results/preset_fidelity.json   fast vs the paper's preset (trust bench presets)
    <root>/store/                  the map cache
    <root>/bench/                  benchmark outputs
    <root>/pseudonym.key           the workspace's secret pseudonym key (32 random bytes, mode 0600,
                                   created once on first use, never rewritten; see trust_core.pseudonyms)

The root is the folder given, else ``$TRUST_WORKSPACE``, else ``cache/demo``.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError
from .io import atomic_write

DEFAULT_WORKSPACE = Path("cache/demo")
# an evaluation's results folder (``trust evaluate --out``, ``<root>/results/<kind>/``): the summary the
# scorecard, the reports and the CLI read, the configuration it ran with, and one Parquet + CSV per table
SUMMARY_FILE = "summary.json"
CONFIG_FILE = "config.json"
TABLE_SUFFIXES = (".parquet", ".csv")
# … and the failure analysis ``trust analyze`` writes beside them: its summary and tables
ANALYSIS_FILE = "analysis.json"
ANALYSIS_FEATURES = "analysis_features"  # per image: the lesion geometry and the model's confidence
ANALYSIS_TABLES = (ANALYSIS_FEATURES, "analysis_associations", "analysis_quartiles", "analysis_ceiling")


def table_files(name: str) -> list[str]:
    """The files of one per-image table in a results folder."""
    return [f"{name}{suffix}" for suffix in TABLE_SUFFIXES]


def table_path(folder: str | Path, name: str) -> Path:
    """The Parquet file of one per-image table in a results folder: the form the tools read back."""
    return Path(folder) / table_files(name)[0]
ROLE_ORDER = {"replicate A": 0, "replicate B": 1, "other architecture": 2}  # classifiers, main first


def workspace_path(workspace: str | Path | None = None) -> Path:
    return Path(workspace or os.environ.get("TRUST_WORKSPACE") or DEFAULT_WORKSPACE)


@dataclass(frozen=True)
class Layout:
    """The paths of one workspace."""

    root: Path

    @classmethod
    def of(cls, workspace: str | Path | None = None) -> "Layout":
        return cls(workspace_path(workspace))

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def index(self) -> Path:
        return self.models / "index.json"

    @property
    def store(self) -> Path:
        return self.root / "store"

    @property
    def bench(self) -> Path:
        return self.root / "bench"

    @property
    def pseudonym_key(self) -> Path:
        """The secret key of the workspace's pseudonyms (:mod:`trust_core.pseudonyms`); never exported."""
        return self.root / "pseudonym.key"

    @property
    def preset_fidelity(self) -> Path:
        return self.root / "results" / "preset_fidelity.json"

    def dataset(self, kind: str) -> Path:
        return self.root / kind

    def results(self, kind: str) -> Path:
        return self.root / "results" / kind

    def summaries(self) -> list[Path]:
        """The summary of every dataset's results in the workspace."""
        return sorted((self.root / "results").glob(f"*/{SUMMARY_FILE}"))

    def summary(self, kind: str) -> Path:
        """The ``summary.json`` of a dataset's evaluation."""
        return self.results(kind) / SUMMARY_FILE

    def run_config(self, kind: str) -> Path:
        """The ``config.json`` of a dataset's evaluation."""
        return self.results(kind) / CONFIG_FILE

    def model(self, name: str) -> Path:
        return self.models / name


def read_index(workspace: str | Path | None = None) -> list[dict]:
    """The workspace's model index (empty when there is none yet)."""
    path = Layout.of(workspace).index
    if not path.is_file():
        return []
    try:
        models = json.loads(path.read_text())["models"]
        if not isinstance(models, list) or not all({"file", "dataset", "role"} <= set(m) for m in models):
            raise ValueError("each model entry needs file, dataset and role")
        return models
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"the model index is unreadable ({type(exc).__name__}: {str(exc)[:200]}); rerun "
                          f"`trust demo` or fix the file", path=path) from None


def write_index(workspace: str | Path | None, models: list[dict]) -> None:
    atomic_write(Layout.of(workspace).index, json.dumps({"models": sorted(models, key=lambda e: e["file"])},
                                                        indent=2))


def workspace_models(workspace: str | Path | None, kind: str) -> tuple[list[Path], list[Path]]:
    """Classifier checkpoints of one dataset (replicate A first) and its localizers."""
    layout = Layout.of(workspace)
    # an entry serves its dataset and those listed in "also" (the demo's RSNA models on its NIH-style films)
    entries = [e for e in read_index(workspace) if e["dataset"] == kind or kind in e.get("also", ())]
    classifiers = [layout.model(e["file"]) for e in sorted(entries, key=lambda e: ROLE_ORDER.get(e["role"], 9))
                   if e["role"] in ROLE_ORDER]
    localizers = [layout.model(e["file"]) for e in entries if e["role"] == "localizer"]
    return classifiers, localizers
