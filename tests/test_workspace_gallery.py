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
