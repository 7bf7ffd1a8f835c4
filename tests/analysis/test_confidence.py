"""The model's confidence: its probability of the class the run's maps explain (the predicted one, a
`--set target` override, or the spec's target), by hand with torch."""
import numpy as np
import pytest
import torch

from trust_core.analysis.analyze import model_confidence
from trust_core.models.info import info_of, tag


class Net(torch.nn.Module):
    def __init__(self, outputs=3):
        super().__init__()
        torch.manual_seed(0)
        self.fc = torch.nn.Linear(3, outputs)

    def forward(self, x):
        return self.fc(x.mean((2, 3))) * 20


def by_hand(model, rsna, ids):
    prep = info_of(model).prep
    x = torch.stack([prep(rsna.image(i, prep.size, prep.resize)) for i in ids])
    with torch.no_grad():
        return model(x).float()


def test_confidence_of_the_explained_class(rsna):
    ids = rsna.ids()[:6]
    model = tag(Net(), input_size=32).eval()
    logits = by_hand(model, rsna, ids)
    softmax = torch.softmax(logits, 1)
    predicted, note = model_confidence({"config": {"overrides": {}}}, rsna, ids, model)
    assert predicted == pytest.approx(softmax.max(1).values.numpy(), rel=1e-6) and "the predicted class" in note
    forced, note = model_confidence({"config": {"overrides": {"target": 2}}}, rsna, ids, model)
    assert forced == pytest.approx(softmax[:, 2].numpy(), rel=1e-6) and "class 2" in note
    named = tag(Net(), input_size=32, target=1, classes=("a", "b", "c"), activation="sigmoid").eval()
    spec, note = model_confidence({"config": {"overrides": {}}}, rsna, ids, named)
    assert spec == pytest.approx(torch.sigmoid(by_hand(named, rsna, ids))[:, 1].numpy(), rel=1e-6)
    assert "sigmoid probability" in note and "class 1 (b)" in note
    overridden, _ = model_confidence({"config": {"overrides": {"target": 0}}}, rsna, ids, named)  # --set wins
    assert overridden == pytest.approx(torch.sigmoid(by_hand(named, rsna, ids))[:, 0].numpy(), rel=1e-6)
    raw = tag(Net(), input_size=32, activation="logits").eval()
    none, note = model_confidence({"config": {"overrides": {}}}, rsna, ids, raw)
    assert np.isnan(none).all() and "logits" in note
