"""The command line: maps to NPZ, clear errors for bad input (exit code 2, no traceback)."""
import json

import numpy as np

from trust_core.cli import main
from trust_core.models import TrainConfig, train_classifier


def test_maps_command_writes_npz_with_parameters(rsna, tmp_path, capsys):
    model = train_classifier(rsna, TrainConfig(arch="densenet_tiny", epochs=1, batch_size=8, image_size=64),
                             tmp_path / "m.pt").path
    ids = rsna.ids(label=1)[:2]
    code = main(["maps", "--dataset", f"rsna:{rsna.root}", "--model", str(model), "--methods", "grad", "gbp",
                 "--preset", "fast", "--images", *ids, "--out", str(tmp_path / "maps"), "--no-cache"])
    assert code == 0
    with np.load(tmp_path / "maps" / f"{ids[0]}.npz") as archive:
        assert archive["grad"].shape == (64, 64) and 0 <= archive["gbp"].min() <= archive["gbp"].max() <= 1
        assert json.loads(str(archive["params"]))["grad"]["percentile"] == 99.0
    assert json.loads((tmp_path / "maps" / "params.json").read_text())["preset"] == "fast"


def test_errors_are_messages_not_tracebacks(rsna, tmp_path, capsys):
    (tmp_path / "bad.pt").write_text("not a checkpoint")
    assert main(["maps", "--dataset", f"rsna:{rsna.root}", "--model", str(tmp_path / "bad.pt"),
                 "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: bad.pt:") and "Traceback" not in err
    assert main(["evaluate", "--dataset", "nowhere", "--model", str(tmp_path / "bad.pt"), "--out", "x"]) == 2


def test_every_choice_list_is_a_registry():
    """The CLI's choices come from the registries (a method, preset, criterion, architecture, mode or
    precision added there is offered at once), and `trust --help` does not load the training code."""
    import subprocess
    import sys

    from trust_core.cli import build_parser
    from trust_core.evaluate import CRITERIA
    from trust_core.evaluate.criteria import SETS as CRITERIA_SETS
    from trust_core.models import ARCHITECTURES
    from trust_core.randomization import INITS, MODES
    from trust_core.saliency import METHODS, PRECISIONS, PRESETS
    from trust_core.saliency.methods import SETS

    commands = build_parser()._subparsers._group_actions[0].choices
    expected = {("maps", "methods"): list(METHODS) + list(SETS), ("maps", "preset"): list(PRESETS), ("maps", "precision"): PRECISIONS,
                ("evaluate", "criteria"): list(CRITERIA) + list(CRITERIA_SETS), ("evaluate", "randomization"): MODES, ("evaluate", "init"): INITS,
                ("train", "arch"): list(ARCHITECTURES), ("report", "preset"): list(PRESETS)}
    for (command, dest), choices in expected.items():
        (action,) = [a for a in commands[command]._actions if a.dest == dest]
        assert list(action.choices) == list(choices), (command, dest)
    loaded = subprocess.run([sys.executable, "-c", "import sys, trust_core.cli; trust_core.cli.build_parser(); "
                             "print(sorted(m for m in sys.modules if m.startswith(('sklearn', 'pandas', 'torchvision'))))"],
                            capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]", loaded
