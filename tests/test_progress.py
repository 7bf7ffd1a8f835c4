"""Progress events are data; the console bars read their fields, not a formatted string."""
from trust_core.progress import EpochEvent, epoch_bar, unit_bar


def test_epoch_event_text_and_bar(capsys):
    event = EpochEvent(epoch=3, loss=0.41234, metric="Dice", value=0.5, best=0.61)
    assert str(event) == "epoch 3: loss 0.412, val Dice 0.500 (best 0.610)"
    with epoch_bar(5, "train") as step:
        step(event)
        step(EpochEvent(4, 0.3, "Dice", 0.62, 0.62))
    err = capsys.readouterr().err
    assert "2/5" in err and "val Dice 0.620 (best 0.620)" in err


def test_trainers_report_structured_events(rsna, tmp_path):
    from trust_core.models import TrainConfig, train_classifier
    from trust_core.models.localizer import train_localizer
    events = []
    train_classifier(rsna, TrainConfig(arch="resnet_tiny", epochs=2, batch_size=8, image_size=64), tmp_path / "c.pt",
                     progress=events.append)
    train_localizer(rsna, tmp_path / "u.pt", size=32, epochs=1, progress=events.append)
    assert [(e.epoch, e.metric) for e in events] == [(1, "AUC"), (2, "AUC"), (1, "Dice")]
    assert all(0 <= e.value <= 1 and e.best >= e.value - 1e-9 for e in events)


def test_unit_bar_follows_done_counts(capsys):
    with unit_bar(4, "evaluate") as progress:
        progress(1, 4, "a")
        progress(3, 4, "b")
    assert "3/4" in capsys.readouterr().err
