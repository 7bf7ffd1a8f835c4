import pickle

import pytest
import torch

from trust_core.errors import CheckpointError
from trust_core.models import build, load, save


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    model = build("resnet_tiny")
    return model, save(model, tmp_path / "m.pt", arch="resnet_tiny", meta={"seed": 0, "val_auc": 0.9})


def test_round_trip(saved):
    model, path = saved
    loaded = load(path)
    from trust_core.models.info import info_of
    info = info_of(loaded)
    assert info.arch == "resnet_tiny" and info.meta["val_auc"] == 0.9 and info.path == str(path)
    assert info.state is None and not info.channels_last
    x = torch.randn(1, 3, 64, 64)
    torch.testing.assert_close(loaded(x), model(x))


def test_bare_state_dict_needs_arch(tmp_path):
    model = build("densenet_tiny")
    torch.save({"module." + k: v for k, v in model.state_dict().items()}, tmp_path / "bare.pt")
    with pytest.raises(CheckpointError, match="model spec"):
        load(tmp_path / "bare.pt")
    loaded = load(tmp_path / "bare.pt", arch="densenet_tiny")  # DataParallel prefix stripped
    torch.testing.assert_close(loaded.state_dict()["classifier.weight"], model.state_dict()["classifier.weight"])


def test_other_architecture_refused(saved, tmp_path):
    _, path = saved
    with pytest.raises(CheckpointError, match="is a 'resnet_tiny' model, not 'densenet_tiny'"):
        load(path, arch="densenet_tiny")
    torch.save(build("resnet_tiny").state_dict(), tmp_path / "bare.pt")
    with pytest.raises(CheckpointError, match="do not fit the 'densenet_tiny' architecture"):
        load(tmp_path / "bare.pt", arch="densenet_tiny")


def test_a_localizer_given_as_a_classifier_is_named(tmp_path, capsys):
    """A U-Net localizer where a classifier is asked for (`--model`): it used to load as a classifier and
    fail deep in the engine with a shape mismatch, or be accepted by `trust check` and `workspace init`."""
    from trust_core.cli import main
    from trust_core.models.localizer import load_localizer

    path = save(build("unet"), tmp_path / "unet.pt", arch="unet", meta={"task": "localizer"})
    with pytest.raises(CheckpointError, match=r"unet.pt: this checkpoint is a localizer \('unet'.*not a classifier: "
                                              r"give it as --localizer, and a classifier as --model"):
        load(path)
    assert load_localizer(path) is not None  # where a localizer is asked for, it loads
    assert main(["inspect", "--model", str(path)]) == 2
    assert "not a classifier" in capsys.readouterr().err


def test_wrong_number_of_classes(tmp_path):
    save(build("resnet_tiny", num_classes=3), tmp_path / "three.pt", arch="resnet_tiny")
    with pytest.raises(CheckpointError, match="3 outputs, expected 2"):
        load(tmp_path / "three.pt", num_classes=2)


def test_truncated_and_empty(saved, tmp_path):
    _, path = saved
    data = path.read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 3])
    with pytest.raises(CheckpointError, match="cut.pt: the checkpoint is corrupt or truncated"):
        load(tmp_path / "cut.pt")
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        load(tmp_path / "empty.pt")
    (tmp_path / "text.pt").write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupt"):
        load(tmp_path / "text.pt")


class Exploit:
    def __reduce__(self):
        return (print, ("code ran during unpickling",))


def test_pickle_with_code_refused(tmp_path, capsys):
    torch.save({"state_dict": build("resnet_tiny").state_dict(), "payload": Exploit()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="refused for safety"):
        load(tmp_path / "evil.pt", arch="resnet_tiny")
    assert "code ran" not in capsys.readouterr().out
    with open(tmp_path / "raw.pkl", "wb") as fh:
        pickle.dump(Exploit(), fh)
    with pytest.raises(CheckpointError):
        load(tmp_path / "raw.pkl", arch="resnet_tiny")
    assert "code ran" not in capsys.readouterr().out


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load(tmp_path / "nothing.pt")
