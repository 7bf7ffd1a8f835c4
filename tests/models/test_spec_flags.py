"""The spec's fields as users type them (CLI flags and the app's form), parsed by one owner."""
import pytest

from trust_core.errors import ConfigError
from trust_core.models.spec.flags import (parse_names, parse_normalization, parse_pairs, parse_target, spec_table,
                                          split_pairs)


def test_values_are_read_as_json_when_they_are_json():
    assert parse_pairs(["n=14", "drop=0.2", "tags=[1, 2]", "name=dense", "on=true"]) == {
        "n": 14, "drop": 0.2, "tags": [1, 2], "name": "dense", "on": True}
    assert split_pairs("num_classes=14, in_chans=1, sizes=[1, 2]") == ["num_classes=14", "in_chans=1", "sizes=[1, 2]"]
    with pytest.raises(ConfigError, match="--kwarg expects NAME=VALUE"):
        parse_pairs(["num_classes"], what="--kwarg")
    with pytest.raises(ConfigError, match="NAME=VALUE"):
        parse_pairs(["not a name=1"], identifiers=True)


def test_targets_normalizations_and_lists():
    assert parse_target("0") == 0 and parse_target("Pneumonia") == "Pneumonia" and parse_target(" ") is None
    assert parse_normalization("imagenet") == "imagenet"
    assert parse_normalization("0.5:0.25") == {"mean": [0.5], "std": [0.25]}
    assert parse_normalization("0.485,0.456,0.406:0.229,0.224,0.225") == {
        "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
    with pytest.raises(ConfigError, match="MEAN:STD"):
        parse_normalization("imagenet", custom=True)
    with pytest.raises(ConfigError, match="MEAN:STD"):
        parse_normalization("a:b")
    assert parse_names(" Atelectasis, Effusion ,,") == ["Atelectasis", "Effusion"]


def test_fields_are_set_over_a_spec_files_table():
    base = {"source": "timm:resnet18", "weights": "w.pth", "source_kwargs": {"num_classes": 2, "in_chans": 1},
            "preprocessing": {"size": 224, "channels": 1}, "outputs": {"activation": "softmax"}}
    table = spec_table(base, num_classes=14, input_size=320, normalization={"mean": [0.5], "std": [0.25]},
                       output_classes=["a", "b"], target=0, cascade_blocks=["layer1", "layer2"])
    assert table == {"source": "timm:resnet18", "weights": "w.pth",
                     "source_kwargs": {"num_classes": 14, "in_chans": 1},
                     "preprocessing": {"size": 320, "channels": 1, "normalization": {"mean": [0.5], "std": [0.25]}},
                     "outputs": {"activation": "softmax", "classes": ["a", "b"]}, "target": 0,
                     "cascade": {"blocks": ["layer1", "layer2"]}}
    assert base["source_kwargs"] == {"num_classes": 2, "in_chans": 1}  # the file's table is not changed
    assert spec_table(source="torchvision:densenet121") == {"source": "torchvision:densenet121"}
