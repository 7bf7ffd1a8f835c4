import torch

from trust_core.models import TrainConfig, load, train_classifier


def test_training_writes_checkpoint_with_metadata_and_is_seeded(rsna, tmp_path):
    config = TrainConfig(arch="densenet_tiny", seed=3, epochs=2, batch_size=8, image_size=48, patience=5)
    first = train_classifier(rsna, config, tmp_path / "a.pt")
    second = train_classifier(rsna, config, tmp_path / "b.pt")
    model = load(first.path)
    from trust_core.models.info import info_of
    meta = info_of(model).meta
    assert info_of(model).input_size == 48 and info_of(model).path == str(first.path)  # the checkpoint's size
    assert meta["arch"] == "densenet_tiny" and meta["seed"] == 3 and meta["input_size"] == 48
    assert meta["dataset_kind"] == "rsna" and meta["dataset_fingerprint"] == rsna.fingerprint
    assert 0.0 <= meta["val_auc"] <= 1.0 and "preprocessing" in meta and "versions" in meta
    other = load(second.path)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, other.state_dict()[key])
