"""The dataset kinds (one registry for the CLI, the app, the demo and the tests) and ``KIND:PATH``."""
from __future__ import annotations

from pathlib import Path

from ..errors import DatasetError
from .datasets import RadiographDataset
from .folder import FolderDataset
from .kaggle import RSNADataset, SIIMDataset
from .chexlocalize import CheXlocalizeDataset
from .findings import FindingDataset, NIHDataset
from .vindr import VinDrDataset

DATASETS: dict[str, type[RadiographDataset]] = {
    "rsna": RSNADataset, "siim": SIIMDataset, "folder": FolderDataset,
    "nih": NIHDataset, "vindr": VinDrDataset, "chexlocalize": CheXlocalizeDataset,
}
MULTI_FINDING = tuple(k for k, c in DATASETS.items() if issubclass(c, FindingDataset))


def findings(kind: str) -> tuple[str, ...]:
    """The findings a multi-finding kind offers (empty for the single-finding kinds)."""
    cls = DATASETS.get(kind)
    return tuple(getattr(cls, "FINDINGS", ())) if cls else ()


def parse_classes(text: str | None):
    """``--classes`` text → the ``classes`` argument of :class:`RSNADataset`: ``paper`` (default),
    ``all``, or comma-separated class names."""
    if text is None or text.strip() in ("", "paper"):
        return "paper"
    if text.strip() == "all":
        return None
    return tuple(c.strip() for c in text.split(",") if c.strip())


def open_dataset(spec: str, *, classes: str | tuple | None = "paper", finding: str | None = None,
                 negatives: str | None = None, readers: str | None = None, **kwargs) -> RadiographDataset:
    """Open ``KIND:PATH`` (e.g. ``rsna:cache/demo/rsna``, ``nih:/data/nih`` with ``finding``).

    ``classes`` (text as on the command line, or the :class:`RSNADataset` argument) applies to RSNA only;
    ``finding`` and ``negatives`` to the multi-finding kinds (NIH, VinDr, CheXlocalize), ``readers`` to
    VinDr; a kind refuses the options it has no use for, saying so."""
    kind, sep, path = spec.partition(":")
    if not sep or kind not in DATASETS:
        raise DatasetError(f"dataset must be given as KIND:PATH with KIND one of {sorted(DATASETS)}, "
                           f"got {spec!r}")
    if isinstance(classes, str) or classes is None:
        classes = parse_classes(classes) if classes is not None else "paper"
    if kind == "rsna":
        kwargs["classes"] = classes
    elif classes != "paper":
        raise DatasetError(f"--classes filters RSNA's detailed classes; a {kind} dataset has none "
                           f"(drop the option)", path=Path(path))
    if kind in MULTI_FINDING:
        kwargs["finding"] = finding
        if negatives is not None:
            kwargs["negatives"] = negatives
    elif finding is not None or negatives is not None:
        raise DatasetError(f"--finding and --negatives choose among the findings of {list(MULTI_FINDING)}; a "
                           f"{kind} dataset has one (drop the options)", path=Path(path))
    if kind == "vindr":
        if readers is not None:
            kwargs["readers"] = readers
    elif readers is not None:
        raise DatasetError(f"--readers combines VinDr's radiologists; a {kind} dataset has none (drop the option)",
                           path=Path(path))
    return DATASETS[kind](path, **kwargs)
