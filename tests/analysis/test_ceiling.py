"""The human ceiling: each reader against the others' consensus, by hand and on films of the real VinDr-CXR
label file (shipped in the torchxrayvision wheel); then `trust analyze` end to end on them."""
import gzip
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from trust_core.analysis.ceiling import film_ceiling, human_ceiling, reader_agreement
from trust_core.cli import main
from trust_core.metrics import auprc

from ..helpers import write_dicom


def test_reader_agreement_by_hand():
    consensus = np.zeros((10, 10), bool)
    consensus[2:6, 2:6] = True  # 16 px
    reader = np.zeros((10, 10), bool)
    reader[4:8, 4:8] = True  # 16 px, 4 inside
    scores = reader_agreement(reader, consensus)
    assert scores["miou"] == pytest.approx(4 / 28) and scores["energy_pointing_game"] == pytest.approx(4 / 16)
    assert scores["pointing_game"] == 1.0
    assert scores["auprc"] == pytest.approx(auprc(reader.astype(np.float32), consensus))
    # a binary map: precision 4/16 at recall 4/16, the trapezoid from (0, 1), then precision 16/100 at recall 1
    assert scores["auprc"] == pytest.approx(0.25 * (1 + 0.25) / 2 + 0.75 * (0.25 + 0.16) / 2)
    nothing = reader_agreement(np.zeros((10, 10), bool), consensus)
    assert nothing["pointing_game"] == 0.0 and nothing["energy_pointing_game"] == 0.0 and nothing["miou"] == 0.0


def test_three_readers_each_against_either_of_the_others():
    a, b, c = (np.zeros((8, 8), bool) for _ in range(3))
    a[0:4, 0:4] = True
    b[2:6, 2:6] = True
    # c marks nothing: it misses; a's consensus of the others is b alone; c's is a ∪ b
    ceiling = film_ceiling([a, b, c])
    expected = [reader_agreement(a, b | c), reader_agreement(b, a | c), reader_agreement(c, a | b)]
    assert ceiling["readers"] == 3
    for key in ("miou", "pointing_game", "energy_pointing_game", "auprc"):
        assert ceiling[key] == pytest.approx(np.mean([e[key] for e in expected]))
    assert film_ceiling([a]) is None and film_ceiling([]) is None


@pytest.fixture(scope="module")
def vindr_films(tmp_path_factory):
    """12 films the real file says two or more radiologists marked Cardiomegaly on, 8 clean films; all the
    marked films in the test split (so the evaluation explains them all)."""
    xrv = pytest.importorskip("torchxrayvision")
    root = tmp_path_factory.mktemp("vindr_ceiling")
    (root / "train").mkdir()
    table = pd.read_csv(gzip.open(Path(xrv.__file__).parent / "data" / "vinbigdata-train.csv.gz"))
    cardio = table[table["class_name"] == "Cardiomegaly"]
    marks = cardio.groupby("image_id")["rad_id"].nunique()
    # six films all three readers marked, six only two (the third reader's empty reading counts too)
    chosen = sorted(marks[marks == 3].index)[:6] + sorted(marks[marks == 2].index)[:6]
    clean = table.groupby("image_id")["class_name"].apply(lambda s: set(s) == {"No finding"})
    clean = sorted(clean[clean].index)[:8]
    subset = table[table["image_id"].isin(chosen + clean)]
    subset.to_csv(root / "train.csv", index=False)
    for image_id in chosen + clean:
        rows = subset[subset["image_id"] == image_id]
        height = int(np.nanmax(rows["y_max"].to_numpy(float), initial=0)) + 40 or 64
        width = int(np.nanmax(rows["x_max"].to_numpy(float), initial=0)) + 40 or 64
        pixels = (np.add.outer(np.arange(height), np.arange(width)) % 4096).astype(np.uint16)
        write_dicom(root / "train" / f"{image_id}.dicom", pixels, bits_stored=12)
    lines = ["image_id,split"] + [f"{i},test" for i in chosen] + [f"{i},{'train' if k % 2 else 'test'}"
                                                                   for k, i in enumerate(clean)]
    (root / "splits_cardiomegaly.csv").write_text("\n".join(lines) + "\n")
    return root, subset, chosen


def _hand_ceiling(subset, image_id, shape):
    """Each reader's boxes (as the real rows say), then each against ⌈(m−1)/2⌉ of the others."""
    rows = subset[subset["image_id"] == image_id]
    masks = []
    for reader in sorted(rows["rad_id"].unique()):
        mask = np.zeros(shape, bool)
        for r in rows[(rows["rad_id"] == reader) & (rows["class_name"] == "Cardiomegaly")].itertuples():
            mask[int(round(r.y_min)):int(round(r.y_max)), int(round(r.x_min)):int(round(r.x_max))] = True
        masks.append(mask)
    scores = []
    for k, mine in enumerate(masks):
        others = sum(m.astype(int) for j, m in enumerate(masks) if j != k)
        consensus = others >= max(1, math.ceil((len(masks) - 1) / 2))
        if consensus.any():
            both, union = (mine & consensus).sum(), (mine | consensus).sum()
            prevalence = consensus.sum() / consensus.size
            if mine.sum():  # a binary map's PR curve: (0, 1) → (recall, precision) → (1, prevalence), trapezoids
                precision, recall = both / mine.sum(), both / consensus.sum()
                area = recall * (1 + precision) / 2 + (1 - recall) * (precision + prevalence) / 2
            else:
                area = prevalence  # nothing marked: no pixel ranked above another
            scores.append((both / union, float(both > 0), both / mine.sum() if mine.sum() else 0.0, area))
    return np.mean(scores, axis=0), len(masks)


def test_ceiling_on_the_real_vindr_readings(vindr_films):
    from trust_core.data import open_dataset

    root, subset, chosen = vindr_films
    dataset = open_dataset(f"vindr:{root}", finding="Cardiomegaly", image_size=64)
    assert set(dataset.ids(label=1)) <= set(chosen)
    # at native resolution (≈2000² px per film): three films all readers marked, three where one did not
    positives = [i for i in chosen[:3] + chosen[6:9] if i in set(dataset.ids(label=1))]
    table, note = human_ceiling(dataset, positives)
    assert len(table) == len(positives) >= 4 and "several readings" in note
    empty_readers = 0
    for row in table.itertuples():
        (miou, pointing, energy, area), readers = _hand_ceiling(subset, row.image_id, dataset.native_shape(row.image_id))
        assert row.readers == readers == 3  # VinDr's training films: three radiologists each
        assert (row.miou, row.pointing_game, row.energy_pointing_game, row.auprc) == pytest.approx(
            (miou, pointing, energy, area), rel=1e-6)
        rows = subset[(subset.image_id == row.image_id) & (subset.class_name == "Cardiomegaly")]
        empty_readers += rows.rad_id.nunique() < 3
    assert empty_readers >= 1  # a film where one of the three readers marked nothing was scored
    # the readings do not depend on the run's reader rule: one radiologist's rule keeps all three
    r8 = open_dataset(f"vindr:{root}", finding="Cardiomegaly", readers="reader:R8", image_size=64)
    again, _ = human_ceiling(r8, [i for i in r8.ids(label=1) if i in set(table.image_id)][:2])
    assert len(again) and again.set_index("image_id").miou.to_dict() == pytest.approx(
        table.set_index("image_id").miou.loc[again.image_id].to_dict())


def test_one_reading_per_film_has_no_ceiling_and_says_so(rsna):
    none, why = human_ceiling(rsna, rsna.ids(label=1))
    assert not len(none) and why.startswith("no human ceiling: the evaluated rsna films carry one reading each")


def test_analyze_end_to_end_beside_the_ceiling(vindr_films, tmp_path, capsys):
    import torch

    from trust_core.models import build, save

    root, subset, chosen = vindr_films
    torch.manual_seed(0)
    model = save(build("resnet_tiny"), tmp_path / "tiny.pt", arch="resnet_tiny", meta={"input_size": 64})
    out = tmp_path / "run"
    assert main(["evaluate", "--dataset", f"vindr:{root}", "--finding", "Cardiomegaly", "--model", str(model),
                 "--preset", "fast", "--methods", "grad", "gradcam", "--criteria", "utility", "pointing_game",
                 "--no-cache", "--out", str(out), "--set", "n_samples=2"]) == 0
    capsys.readouterr()
    assert main(["analyze", "--run", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "human ceiling from" in printed and "Gradient AUPRC − human ceiling:" in printed
    analysis = json.loads((out / "analysis.json").read_text())
    features = pd.read_csv(out / "analysis_features.csv")
    ceiling = pd.read_csv(out / "analysis_ceiling.csv")
    utility = pd.read_csv(out / "utility.csv")
    assert set(features.image_id) == set(utility.image_id) and features.confidence.between(0, 1).all()
    assert (features.instances >= 1).all() and features.relative_size.between(0, 1).all()
    entry = analysis["criteria"]["utility"]["methods"]["gradcam"]
    grad = utility[utility.method == "gradcam"].set_index("image_id").auprc
    paired = grad.to_frame().join(ceiling.set_index("image_id").auprc.rename("human"), how="inner")
    assert entry["ceiling"]["n"] == len(paired) > 0
    assert entry["ceiling"]["human"] == pytest.approx(paired.human.mean())
    assert entry["ceiling"]["difference"] == pytest.approx((paired.auprc - paired.human).mean())
    point = analysis["criteria"]["pointing_game"]["methods"]["grad"]["ceiling"]
    assert point["human"] == pytest.approx(ceiling.set_index("image_id").pointing_game.loc[
        [i for i in grad.index if i in set(ceiling.image_id)]].mean())
    # the geometry of each film is its majority ground truth's
    from trust_core.analysis.geometry import lesion_geometry
    from trust_core.data import open_dataset
    dataset = open_dataset(f"vindr:{root}", finding="Cardiomegaly", image_size=64)
    first = features.iloc[0]
    assert lesion_geometry(dataset.native_mask(first.image_id)).relative_size == pytest.approx(first.relative_size)
