"""Sentences the app, the reports and the CLI say alike — one owner for their words."""
from __future__ import annotations

from typing import Callable


def score_name(output: dict) -> str:
    """What a model's output scores are: probabilities (softmax, sigmoid) or logits."""
    return "probability" if output["activation"] != "logits" else "logit"


def explained_sentence(output: dict, explained: int, class_name: Callable[[int], str], *, bold: bool = True,
                       lead: str = "Maps explain") -> str:
    """'Maps explain class 1 — **Lung Opacity** (the model's probability 0.83; predicted: **Lung Opacity**,
    probability 0.83)': which class the maps explain and what the model predicts (``output`` as
    :meth:`~trust_core.workspace.Workspace.prediction` gives it)."""
    mark = "**" if bold else ""
    score, predicted = score_name(output), output["predicted"]
    return (f"{lead} class {explained} — {mark}{class_name(explained)}{mark} (the model's {score} "
            f"{output['scores'][explained]:.2f}; predicted: {mark}{class_name(predicted)}{mark}, {score} "
            f"{output['scores'][predicted]:.2f})")


def negative_class_warning(explained: int, name: str, *, predicted_negative: bool | None = None,
                           bold: bool = True) -> str:
    """The warning beside maps that explain the negative class (``predicted_negative``: whether the model
    predicts the film negative; None: not said)."""
    mark = "**" if bold else ""
    why = ("the negative class" if predicted_negative is None else "the model predicts this film negative"
           if predicted_negative else "you chose it, although the model predicts another class")
    return (f"These maps explain class {explained}, {mark}{name}{mark} ({why}): they show what argues against the "
            f"finding, not where it is.")
