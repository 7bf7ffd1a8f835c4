"""Progress as structured events, and the one console bar that shows them (CLI and demo)."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, Iterator


@dataclass(frozen=True)
class EpochEvent:
    """One finished training epoch: its loss and the validation score that picks the kept weights."""

    epoch: int
    loss: float
    metric: str  # "AUC" (classifiers) or "Dice" (localizers)
    value: float
    best: float

    @property
    def summary(self) -> str:
        return f"loss {self.loss:.3f}, val {self.metric} {self.value:.3f} (best {self.best:.3f})"

    def __str__(self) -> str:
        return f"epoch {self.epoch}: {self.summary}"


@contextlib.contextmanager
def epoch_bar(total: int, description: str) -> Iterator[Callable[[EpochEvent], None]]:
    """A tqdm bar over ``total`` epochs; yields the ``progress`` callback the trainers call."""
    from tqdm import tqdm

    with tqdm(total=total, desc=description, unit="epoch") as bar:
        def step(event: EpochEvent) -> None:
            bar.set_postfix_str(event.summary)
            bar.update(1)
        yield step


@contextlib.contextmanager
def unit_bar(total: int, description: str) -> Iterator[Callable[[int, int, str], None]]:
    """A tqdm bar over an evaluation's ``total`` work units; yields ``progress(done, total, label)``."""
    from tqdm import tqdm

    with tqdm(total=total, desc=description, unit="unit") as bar:
        def step(done: int, _total: int, label: str) -> None:
            bar.set_postfix_str(label)
            bar.update(done - bar.n)
        yield step
