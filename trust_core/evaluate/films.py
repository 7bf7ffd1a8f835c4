"""The films an evaluation reads, read once before it starts: one unreadable film is skipped and listed (a
counted skip in ``summary.json``), not the end of a multi-hour run; ``strict`` refuses it instead."""
from __future__ import annotations

from ..data.datasets import RadiographDataset
from .criteria import CRITERIA, resolve_criteria


def screen_for_evaluation(dataset: RadiographDataset, criteria=None, *, utility_split: str = "test",
                          strict: bool = False, progress=None, size: int | None = None,
                          resize: str = "stretch") -> dict[str, str]:
    """Decode the films an evaluation explains (the positives of ``utility_split``; the validation positives
    too when ``miou`` tunes its thresholds there) and read the sizes of the train and validation films whose
    masks make the average-mask baseline — unless that baseline is stored already for this dataset at its
    ``size`` (default: the dataset's image size) and ``resize`` — the first model's
    (:mod:`~trust_core.evaluate.baseline`): a rerun then takes the films it left out
    from its file and reads no other header. Unreadable films leave the dataset (see
    :meth:`RadiographDataset.screen`); returns them, image id → the reason."""
    from .baseline import stored_baseline

    chosen = set(resolve_criteria(criteria))
    films = dataset.ids(split=utility_split, label=1)
    if "miou" in chosen:
        films += [i for i in dataset.ids(split="val", label=1) if i not in films]
    dataset.screen(films, strict=strict, progress=progress)
    if not any(CRITERIA[c].family == "localization" for c in chosen):
        return dict(dataset.unreadable)  # no criterion scores against the average mask
    stored = stored_baseline(dataset, size or dataset.image_size, resize)
    if stored is not None:
        left_out = {i: entry for i, entry in stored[1].items() if i not in films}
        if left_out and strict:
            from ..errors import DatasetError

            first = next(iter(left_out))
            raise DatasetError(f"{len(left_out)} film(s) cannot be read (e.g. {first}: {left_out[first][0]})")
        for reason in sorted({r for _why, r in left_out.values()}):  # each under the reason it was left out for
            dataset.exclude({i: why for i, (why, r) in left_out.items() if r == reason}, reason=reason)
        return dict(dataset.unreadable)
    dataset.screen([i for i in dataset.ids(split="train") + dataset.ids(split="val") if i not in films],
                   strict=strict, films=False, progress=progress)
    return dict(dataset.unreadable)
