"""``trust check`` for big trees: every film and ground truth read on every core, problems grouped by reason
with counts and examples, and every one of them — unreadable, truncated, wrong size, missing films — in a CSV
the user can act on (image, file, what, why)."""
from __future__ import annotations

import csv
import re
from collections import OrderedDict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

CHUNK = 64  # films per task: large enough to amortize a task, small enough to balance the workers
CSV_COLUMNS = ("image_id", "file", "kind", "reason")


@dataclass
class CheckReport:
    problems: list[tuple[str, str, str]] = field(default_factory=list)  # (image id, file, reason)
    warnings: list[str] = field(default_factory=list)
    skipped: dict[str, list[str]] = field(default_factory=dict)  # reason → ids (missing films, …)
    inferred_depths: dict[str, int] = field(default_factory=dict)
    checked: int = 0

    def groups(self) -> "OrderedDict[str, list[tuple[str, str, str]]]":
        """Problems by reason (file names and numbers set aside), the most frequent first."""
        by: dict[str, list] = {}
        for problem in self.problems:
            by.setdefault(reason_class(problem[2]), []).append(problem)
        return OrderedDict(sorted(by.items(), key=lambda kv: -len(kv[1])))

    def warning_groups(self) -> "OrderedDict[str, list[str]]":
        """Warnings (``"<file>: <why>"``) by reason, the most frequent first: reason → files."""
        by: dict[str, list[str]] = {}
        for note in self.warnings:
            file, _, why = note.partition(":")
            by.setdefault(reason_class(why.strip()), []).append(file)
        return OrderedDict(sorted(by.items(), key=lambda kv: -len(kv[1])))

    def rows(self) -> list[dict]:
        rows = [{"image_id": i, "file": f, "kind": "error", "reason": r} for i, f, r in self.problems]
        for reason, ids in self.skipped.items():
            rows += [{"image_id": i, "file": "", "kind": "skipped", "reason": reason} for i in ids]
        rows += [{"image_id": "", "file": w.split(":", 1)[0], "kind": "warning", "reason": w.split(":", 1)[-1].strip()}
                 for w in self.warnings]
        return rows


def reason_class(reason: str) -> str:
    """A problem's reason without what varies between files (quoted names, numbers, sizes)."""
    text = re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", reason)
    text = re.sub(r"\b[\w.-]+\.(dcm|dicom|png|jpe?g|tiff?|bmp)\b", "<file>", text, flags=re.I)
    return re.sub(r"\d+(\.\d+)?", "#", text)


_DATASET = None  # a worker process's own copy of the dataset (opened once, by _worker_open)


def _worker_open(dataset_class, root, kwargs):
    global _DATASET
    _DATASET = dataset_class(root, **kwargs)


def _worker_check(ids: list[str], dataset=None):
    import warnings

    from .images import FilmWarning

    dataset = dataset if dataset is not None else _DATASET
    found, notes = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FilmWarning)
        dataset.validate(ids, notes=notes, found=found)
    return ([(i, _file(exc), _reason(exc)) for i, exc in found], notes, dict(dataset.inferred_depths))


def _file(exc) -> str:
    return Path(getattr(exc, "path", None) or "").name


def _reason(exc) -> str:
    return getattr(exc, "reason", None) or str(exc)


def check_films(dataset, ids=None, *, workers: int = 1, progress=None) -> CheckReport:
    """Decode every film and render every ground truth of ``dataset`` (``ids``: those only) on ``workers``
    processes; films of one dataset are then read at one depth (see :meth:`RadiographDataset.screen`)."""
    ids = list(dataset.ids() if ids is None else ids)
    report = CheckReport(skipped={r: list(v) for r, v in dataset.skipped.reasons.items()})
    chunks = [ids[k:k + CHUNK] for k in range(0, len(ids), CHUNK)]
    if workers <= 1 or len(chunks) <= 1:
        results = []
        for chunk in chunks:
            results.append(_worker_check(chunk, dataset))
            if progress:
                progress(len(chunk))
    else:
        results = []
        with ProcessPoolExecutor(max_workers=min(workers, len(chunks)), initializer=_worker_open,
                                 initargs=(type(dataset), str(dataset.root), dataset.reopen_kwargs())) as pool:
            for chunk, result in zip(chunks, pool.map(_worker_check, chunks)):
                results.append(result)
                if progress:
                    progress(len(chunk))
    for problems, notes, depths in results:
        report.problems += problems
        report.warnings += notes
        report.inferred_depths.update(depths)
    report.checked = len(ids)
    dataset.inferred_depths.update(report.inferred_depths)
    dataset._settle_depth()
    if dataset.depth_note:
        report.warnings.append(f"{dataset.root.name}: {dataset.depth_note}")
    return report


def write_csv(report: CheckReport, path: str | Path) -> Path:
    """Every problem, skipped item and warning, one row each (image_id, file, kind, reason)."""
    from ..io import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(report.rows())
    return path
