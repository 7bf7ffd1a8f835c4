"""The explorer's gallery, computed in the core from the evaluation tables."""
import numpy as np
import pytest

from trust_core.errors import ConfigError
from trust_core.workspace import GALLERY_ORDERS, Workspace


def test_gallery_from_the_tables(app_workspace):
    ws = Workspace(app_workspace)
    utility = ws.table("rsna", "utility")
    worst = ws.gallery("rsna", "worst AUPRC first")
    assert list(worst.index) == sorted(set(utility.image_id), key=lambda i: utility[utility.image_id == i].auprc.mean())
    image = worst.index[0]
    rows = utility[utility.image_id == image]
    assert worst.loc[image, "mean AUPRC"] == pytest.approx(rows.auprc.mean())
    assert worst.loc[image, "disagreement"] == pytest.approx(rows.auprc.std(ddof=1))
    spread = ws.gallery("rsna", "most disagreement first")["disagreement"].to_numpy()
    assert np.all(np.diff(spread[np.isfinite(spread)]) <= 1e-12)
    assert set(GALLERY_ORDERS) == {"worst AUPRC first", "most disagreement first", "least SSIM drop first"}
    with pytest.raises(ConfigError, match="unknown gallery order"):
        ws.gallery("rsna", "alphabetical")


def test_gallery_of_the_chosen_model(app_workspace):
    """The sidebar's model: the gallery lists that model's scores (its original maps on the utility images,
    ``utility_by_model``), the SSIM of its own last randomized state, methods in the registry's order;
    none for a model the evaluation did not run."""
    from trust_core.saliency import METHODS

    ws = Workspace(app_workspace)
    models = [m["path"].rsplit("/", 1)[-1] for m in ws.results_config("rsna")["models"]]
    assert ws.results_model_index("rsna", models[1]) == 1 and ws.results_model_index("rsna", "elsewhere.pt") is None
    main = ws.gallery("rsna", "worst AUPRC first")
    assert ws.gallery("rsna", "worst AUPRC first", model=models[0]).equals(main)
    methods = [c for c in main.columns if c in METHODS]
    assert methods == [m for m in METHODS if m in methods]
    by_model = ws.table("rsna", "utility_by_model")
    other = ws.gallery("rsna", "worst AUPRC first", model=models[-1])
    rows = by_model[(by_model.model == len(models) - 1) & (by_model.state == "original")]
    image = other.index[0]
    assert other.loc[image, "mean AUPRC"] == pytest.approx(rows[rows.image_id == image].auprc.mean())
    assert list(other.index) == sorted(set(rows.image_id), key=lambda i: rows[rows.image_id == i].auprc.mean())
    randomization = ws.table("rsna", "randomization")
    for index, name in enumerate(models):
        gallery = ws.gallery("rsna", "worst AUPRC first", model=name)
        mine = randomization[(randomization.model == index)]
        if len(mine):
            last = mine[mine.state_index == mine.state_index.max()].groupby("image_id").ssim.mean()
            assert gallery["SSIM after randomization"].dropna().to_dict() == pytest.approx(last.to_dict())
        else:
            assert "SSIM after randomization" not in gallery
    assert ws.gallery("rsna", "worst AUPRC first", model="elsewhere.pt") is None


def test_a_renamed_model_file_is_found_by_its_weights(app_workspace, tmp_path):
    """`workspace init` renames a second best.pt to best_2.pt, but the results keep the path the evaluation
    was given: the model is found by the weights digest the evaluation recorded, not by its file name."""
    import shutil

    root = tmp_path / "ws"
    shutil.copytree(app_workspace, root, ignore=shutil.ignore_patterns("store"))
    models = [m["path"].rsplit("/", 1)[-1] for m in Workspace(root).results_config("rsna")["models"]]
    shutil.copy2(root / "models" / models[1], root / "models" / "best_2.pt")
    ws = Workspace(root)
    assert ws.results_model_index("rsna", "best_2.pt") == 1
    assert ws.gallery("rsna", "worst AUPRC first", model="best_2.pt").equals(
        ws.gallery("rsna", "worst AUPRC first", model=models[1]))
