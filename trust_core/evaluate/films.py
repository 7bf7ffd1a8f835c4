"""The films an evaluation reads, read once before it starts: one unreadable film is skipped and listed (a
counted skip in ``summary.json``), not the end of a multi-hour run; ``strict`` refuses it instead."""
from __future__ import annotations

from ..data.datasets import RadiographDataset
from .criteria import resolve_criteria


def screen_for_evaluation(dataset: RadiographDataset, criteria=None, *, utility_split: str = "test",
                          strict: bool = False, progress=None) -> dict[str, str]:
    """Decode the films an evaluation explains (the positives of ``utility_split``; the validation positives
    too when ``miou`` tunes its thresholds there) and read the sizes of the train and validation films whose
    masks make the average-mask baseline. Unreadable films leave the dataset (see
    :meth:`RadiographDataset.screen`); returns them, image id → the reason."""
    chosen = set(resolve_criteria(criteria))
    films = dataset.ids(split=utility_split, label=1)
    if "miou" in chosen:
        films += [i for i in dataset.ids(split="val", label=1) if i not in films]
    dataset.screen(films, strict=strict, progress=progress)
    dataset.screen([i for i in dataset.ids(split="train") + dataset.ids(split="val") if i not in films],
                   strict=strict, films=False, progress=progress)
    return dict(dataset.unreadable)
