"""Ground truth from the real label files of RSNA and SIIM (shipped in the torchxrayvision wheel; read
from the installed package, never copied here), rasterized by the paper's rule and checked against
the authors' own code and independent references (Kaggle's RLE decoder, scikit-image's resize)."""
import gzip
import zipfile
from pathlib import Path

import numpy as np
import pytest

from trust_core.data import RSNADataset, SIIMDataset
from trust_core.demo.anatomy import PhantomCase
from trust_core.demo.films import write_dicom

from .test_rle import kaggle_rle2mask

xrv = pytest.importorskip("torchxrayvision")
DATA = Path(xrv.__file__).parent / "data"


def blank_dicom(path: Path, uid: str) -> None:
    case = PhantomCase(image=np.full((1024, 1024), 128, np.uint8), boxes=[], mask=None, label=0,
                       category="", sex="F", age=50, view="PA")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_dicom(path, case, patient_id=uid, sop_uid="1.2.3.4", study_uid="1.2.3.5", series_uid="1.2.3.6")


@pytest.fixture(scope="module")
def rsna_real(tmp_path_factory):
    root = tmp_path_factory.mktemp("rsna_real")
    with zipfile.ZipFile(DATA / "kaggle_stage_2_train_labels.csv.zip") as archive:
        text = archive.read("stage_2_train_labels.csv")
    (root / "stage_2_train_labels.csv").write_bytes(text)
    lines = text.decode().splitlines()[1:]
    boxes: dict[str, list] = {}
    for line in lines:
        pid, x, y, w, h, target = line.split(",")
        if target == "1":
            boxes.setdefault(pid, []).append((float(x), float(y), float(w), float(h)))
    # varied shapes: the smallest, largest, thinnest, widest boxes, those touching the border, and
    # patients with most boxes
    by = lambda key: sorted(boxes, key=key)
    chosen = set(by(lambda p: min(b[2] * b[3] for b in boxes[p]))[:4] + by(lambda p: -max(b[2] * b[3] for b in boxes[p]))[:4]
                 + by(lambda p: min(b[2] / b[3] for b in boxes[p]))[:3] + by(lambda p: -max(b[2] / b[3] for b in boxes[p]))[:3]
                 + by(lambda p: -max(b[0] + b[2] for b in boxes[p]))[:3] + by(lambda p: -max(b[1] + b[3] for b in boxes[p]))[:3]
                 + by(lambda p: -len(boxes[p]))[:4])
    for pid in sorted(chosen):
        blank_dicom(root / "stage_2_train_images" / f"{pid}.dcm", pid)
    return root, lines, boxes, sorted(chosen)


def test_the_complete_rsna_label_file_parses_with_published_counts(rsna_real):
    root, lines, boxes, chosen = rsna_real
    assert len(lines) == 30227 and sum(len(b) for b in boxes.values()) == 9555  # rows, boxes
    assert len({line.split(",")[0] for line in lines}) == 26684 and len(boxes) == 6012  # patients, positives
    dataset = RSNADataset(root, classes="all")  # no detailed class file beside it here
    assert dataset.skipped.counts == {"labels without an image file": 26684 - len(chosen)}
    assert sorted(dataset.ids(label=1)) == chosen
    for pid in chosen:
        assert [(b.x, b.y, b.width, b.height) for b in dataset.record(pid).boxes] == boxes[pid]


def test_rsna_masks_equal_the_authors_rasterization(rsna_real):
    """create_maps_rsna.py's downsamp_coord2 and utility_fig_rsna.py's inclusive fill, verbatim."""
    root, _lines, boxes, chosen = rsna_real
    dataset = RSNADataset(root, classes="all")

    def downsamp_coord2(coord):  # downsample bounding box coordinates
        coord_new = coord / 1023
        coord_new = int(320 * coord_new)
        return coord_new

    for pid in chosen:
        bb_mask = np.zeros((320, 320))
        for x, y, w, h in boxes[pid]:
            x_min, x_max = downsamp_coord2(int(x)), downsamp_coord2(int(x + w))
            y_min, y_max = downsamp_coord2(int(y)), downsamp_coord2(int(y + h))
            bb_mask[y_min:(y_max + 1), x_min:(x_max + 1)] = 1
        np.testing.assert_array_equal(dataset.mask(pid, 320), np.rint(bb_mask).astype(bool), err_msg=pid)
    coverage = RSNADataset(root, classes="all", mask_rule="coverage")
    differ = [pid for pid in chosen if not np.array_equal(coverage.mask(pid, 320), dataset.mask(pid, 320))]
    assert len(differ) == len(chosen)  # the inclusive fill adds a row and a column to every box


@pytest.fixture(scope="module")
def siim_real(tmp_path_factory):
    root = tmp_path_factory.mktemp("siim_real")
    text = gzip.open(DATA / "siim-pneumothorax-train-rle.csv.gz").read()
    (root / "train-rle.csv").write_bytes(text)
    rows = [line.split(",", 1) for line in text.decode().splitlines()[1:]]
    rles: dict[str, list[str]] = {}
    for image_id, rle in rows:
        rles.setdefault(image_id.strip(), []).append(rle.strip())
    positives = {i: r for i, r in rles.items() if r != ["-1"]}

    def width(i):  # median run of lesion pixels per row: a thin pneumothorax is a narrow crescent
        counts = union(positives[i]).sum(axis=1)
        return float(np.median(counts[counts > 0]))
    areas = {i: sum(sum(int(v) for v in r.split()[1::2]) for r in positives[i]) for i in list(positives)[:600]}
    chosen = sorted(sorted(areas, key=areas.get)[:5] + sorted(areas, key=areas.get)[-3:]
                    + sorted(list(areas), key=width)[:5] + [i for i in list(positives)[:600] if len(positives[i]) > 2][:3])
    chosen = sorted(set(chosen))
    negatives = [i for i, r in rles.items() if r == ["-1"]][:2]
    for image_id in chosen + negatives:
        blank_dicom(root / "dicom-images-train" / "1.2" / "3.4" / f"{image_id}.dcm", image_id)
    return root, rows, rles, chosen, negatives


def union(rles: list[str]) -> np.ndarray:
    """Kaggle's own decoder (mask_functions.py), several rows unioned; transposed from its layout."""
    return np.any([kaggle_rle2mask(r, 1024, 1024).T > 0 for r in rles], axis=0)


def test_the_complete_siim_rle_file_parses_with_published_counts(siim_real):
    root, rows, rles, chosen, negatives = siim_real
    assert len(rows) == 12954 and len(rles) == 12047
    assert sum(r != ["-1"] for r in rles.values()) == 2669  # images with a pneumothorax
    dataset = SIIMDataset(root)
    assert dataset.skipped.counts["labels without an image file"] == 12047 - len(chosen) - len(negatives)
    assert sorted(dataset.ids(label=1)) == chosen


def test_siim_masks_resized_then_binarized_nonzero(siim_real):
    """Paper rule: the native mask resized (bilinear), then != 0. Oracle: Kaggle's decoder and
    scikit-image's bilinear resize without anti-aliasing."""
    from skimage.transform import resize
    root, _rows, rles, chosen, negatives = siim_real
    dataset = SIIMDataset(root)
    coverage = SIIMDataset(root, mask_rule="coverage")
    vanished = 0
    for image_id in chosen:
        native = union(rles[image_id])
        np.testing.assert_array_equal(dataset.native_mask(image_id), native)
        expected = resize(native.astype(np.float64), (320, 320), order=1, anti_aliasing=False, mode="edge") != 0
        np.testing.assert_array_equal(dataset.mask(image_id, 320), expected, err_msg=image_id)
        assert dataset.mask(image_id, 320).sum() >= coverage.mask(image_id, 320).sum()
        vanished += not coverage.mask(image_id, 320).any()
    for image_id in negatives:
        assert not dataset.mask(image_id, 320).any()
    thin = [i for i in chosen if np.median(union(rles[i]).sum(axis=1)[union(rles[i]).any(axis=1)]) < 12]
    assert thin, "the fixture must include thin masks"
    assert all(dataset.mask(i, 320).any() for i in chosen)  # no pneumothorax vanishes under the paper rule
