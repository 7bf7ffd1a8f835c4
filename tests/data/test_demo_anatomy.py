"""A demo workspace keeps the anatomy its films were built on (demo.json); asking for another is refused."""
import json

import pytest

from trust_core.demo import demo_anatomy
from trust_core.errors import ConfigError
from trust_core.layout import Layout


def test_a_new_workspace_records_its_anatomy(tmp_path):
    layout = Layout.of(tmp_path / "ws")
    assert demo_anatomy(layout, None) == "rg1"
    assert json.loads((layout.root / "demo.json").read_text()) == {"anatomy": "rg1"}
    assert demo_anatomy(layout, None) == "rg1" and demo_anatomy(layout, "rg1") == "rg1"
    with pytest.raises(ConfigError, match="'rg1' anatomy.*another folder"):
        demo_anatomy(layout, "phantom")
    other = Layout.of(tmp_path / "ws2")
    assert demo_anatomy(other, "phantom") == "phantom"


def test_a_workspace_with_films_but_no_record_is_the_phantom(tmp_path):
    layout = Layout.of(tmp_path / "old")
    labels = layout.dataset("rsna") / "stage_2_train_labels.csv"
    labels.parent.mkdir(parents=True)
    labels.write_text("patientId,x,y,width,height,Target\n")
    assert demo_anatomy(layout, None) == "phantom"  # the films predate the choice: kept, not mixed
    with pytest.raises(ConfigError, match="'phantom' anatomy"):
        demo_anatomy(layout, "rg1")
