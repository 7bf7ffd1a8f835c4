"""NIH ChestX-ray14, VinDr-CXR and CheXlocalize in their native layouts.

The real label files of NIH and VinBigData (shipped in the torchxrayvision wheel; read from the installed
package, never copied here) are parsed complete and their counts compared with the published ones and with
an independent reading by pandas; a subset of their real geometries is paired with phantom films rendered
at each dataset's native size and evaluated end to end. CheXlocalize fixtures are encoded with
pycocotools' own encoder."""
from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from trust_core.cli import main
from trust_core.data import open_dataset
from trust_core.data.chexlocalize import CheXlocalizeDataset
from trust_core.data.findings import NIHDataset
from trust_core.data.vindr import VinDrDataset
from trust_core.demo.anatomy import make_case
from trust_core.errors import DatasetError, ImageError

from ..helpers import write_dicom

NIH_BOX_COUNTS = {"Atelectasis": 180, "Cardiomegaly": 146, "Effusion": 153, "Infiltrate": 123, "Mass": 85,
                  "Nodule": 79, "Pneumonia": 120, "Pneumothorax": 98}  # the NIH release notes: 984 boxes
VINDR_ROWS = {"Aortic enlargement": 7162, "Atelectasis": 279, "Calcification": 960, "Cardiomegaly": 5427,
              "Consolidation": 556, "ILD": 1000, "Infiltration": 1247, "Lung Opacity": 2483, "No finding": 31818,
              "Nodule/Mass": 2580, "Other lesion": 2203, "Pleural effusion": 2476, "Pleural thickening": 4842,
              "Pneumothorax": 226, "Pulmonary fibrosis": 4655}  # VinBigData train.csv: 67,914 rows, 15,000 films
LIGHT = ["--set", "n_samples=2", "--set", "smooth_ig_steps=2", "--set", "ig_steps=3", "--set", "xrai_steps=3"]


def _unzip(name: str, target: Path) -> Path:
    """One of the real label files shipped in the torchxrayvision wheel (the tests that read one skip
    without it; the others need neither it nor pycocotools)."""
    xrv = pytest.importorskip("torchxrayvision")
    target.write_bytes(gzip.decompress((Path(xrv.__file__).parent / "data" / name).read_bytes()))
    return target


@pytest.fixture(scope="module")
def nih_real(tmp_path_factory):
    """The complete real NIH label files, with placeholder files for the 880 boxed films and 3000 others."""
    root = tmp_path_factory.mktemp("nih_real")
    _unzip("BBox_List_2017.csv.gz", root / "BBox_List_2017.csv")
    _unzip("Data_Entry_2017_v2020.csv.gz", root / "Data_Entry_2017.csv")
    boxes = pd.read_csv(root / "BBox_List_2017.csv")
    entries = pd.read_csv(root / "Data_Entry_2017.csv")
    others = entries["Image Index"].sample(3000, random_state=0)
    for k, name in enumerate(sorted(set(boxes["Image Index"]) | set(others))):
        folder = root / f"images_{k % 3 + 1:03d}" / "images"  # Kaggle's layout
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).touch()  # scanning needs names only
    return root, boxes, entries


def test_nih_real_box_list_complete(nih_real):
    root, boxes, entries = nih_real
    assert len(boxes) == 984 and boxes["Image Index"].nunique() == 880 and len(entries) == 112120
    total, images = 0, set()
    for finding, count in NIH_BOX_COUNTS.items():
        dataset = NIHDataset(root, finding=finding, image_size=64)
        positives = dataset.ids(label=1)
        n_boxes = sum(len(dataset.record(i).boxes) for i in positives)
        assert n_boxes == count, finding
        total += n_boxes
        images |= set(positives)
        # negatives: the 'No Finding' films among those present, by pandas
        present = {p.name for p in root.glob("images_*/images/*.png")}
        clean = set(entries.loc[entries["Finding Labels"] == "No Finding", "Image Index"]) & present
        assert set(dataset.ids(label=0)) == clean - set(positives)
        assert dataset.selection["finding"] == finding
    assert total == 984 and len(images) == 880


def test_nih_absent_rule_and_label_names(nih_real):
    root, boxes, entries = nih_real
    dataset = NIHDataset(root, finding="Infiltrate", negatives="absent", image_size=64)
    present = {p.name for p in root.glob("images_*/images/*.png")}
    labelled = entries[entries["Image Index"].isin(present)]
    # Data_Entry calls it "Infiltration": films labelled so are not negatives
    without = set(labelled.loc[~labelled["Finding Labels"].str.contains("Infiltration"), "Image Index"])
    infiltrate = set(boxes.loc[boxes["Finding Label"] == "Infiltrate", "Image Index"])
    assert set(dataset.ids(label=0)) == without - infiltrate
    assert dataset.split_file.name == "splits_Infiltrate.csv" and dataset.split_file.is_file()


@pytest.fixture(scope="module")
def vindr_real(tmp_path_factory):
    root = tmp_path_factory.mktemp("vindr_real")
    _unzip("vinbigdata-train.csv.gz", root / "train.csv")
    table = pd.read_csv(root / "train.csv")
    (root / "train").mkdir()
    for image_id in table["image_id"].unique():
        (root / "train" / f"{image_id}.dicom").touch()
    return root, table


def test_vindr_real_file_complete(vindr_real):
    root, table = vindr_real
    assert len(table) == 67914 and table["image_id"].nunique() == 15000
    assert table["class_name"].value_counts().to_dict() == VINDR_ROWS
    clean = table.groupby("image_id")["class_name"].apply(lambda s: set(s) == {"No finding"})
    assert int(clean.sum()) == 10606  # the 'No finding' films of VinBigData's training set
    for finding in ("Cardiomegaly", "Pneumothorax"):
        rows = table[table["class_name"] == finding]
        marks = rows.groupby("image_id")["rad_id"].nunique()
        for readers, need in (("union", 1), ("majority", 2)):
            dataset = VinDrDataset(root, finding=finding, readers=readers, image_size=64)
            expected = set(marks[marks >= need].index)
            if need == 2:  # two readers' boxes must share a pixel (pandas, pair by pair)
                def agree(group):
                    boxes = group[["rad_id", "x_min", "y_min", "x_max", "y_max"]].to_numpy()
                    return any(a[0] != b[0] and min(a[3], b[3]) > max(a[1], b[1]) and min(a[4], b[4]) > max(a[2], b[2])
                               for k, a in enumerate(boxes) for b in boxes[k + 1:])
                agreeing = {i for i in expected if agree(rows[rows["image_id"] == i])}
                skipped = dataset.skipped.counts.get("majority without overlapping boxes (no pixel two readers agree on)", 0)
                assert skipped == len(expected - agreeing), finding
                expected = agreeing
            assert set(dataset.ids(label=1)) == expected, (finding, readers)
            assert set(dataset.ids(label=0)) == set(clean[clean].index)
            assert dataset.selection["readers"] == readers
        one = VinDrDataset(root, finding=finding, readers="reader:R8", image_size=64)
        by_r8 = table[(table["class_name"] == finding) & (table["rad_id"] == "R8")]["image_id"].unique()
        assert set(one.ids(label=1)) == set(by_r8)
        assert one.skipped.counts["not read by R8"] == 15000 - table.loc[table["rad_id"] == "R8", "image_id"].nunique()


def _phantom(seed: int, size: tuple[int, int]) -> np.ndarray:
    """A phantom chest film (8-bit) at a native size."""
    import cv2

    image = make_case(seed, "rsna", positive=seed % 2 == 0).image
    return cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    import torch

    from trust_core.models import build, save

    torch.manual_seed(0)
    return save(build("resnet_tiny"), tmp_path_factory.mktemp("m") / "tiny.pt", arch="resnet_tiny",
                meta={"input_size": 64})


def _evaluate(dataset_spec: str, finding: str, model, out: Path, *extra: str) -> dict:
    assert main(["evaluate", "--dataset", dataset_spec, "--finding", finding, *extra, "--model", str(model),
                 "--preset", "fast", "--methods", "grad", "gradcam", "--criteria", "utility", "--limit", "4",
                 "--no-cache", "--out", str(out), *LIGHT]) == 0
    return json.loads((out / "config.json").read_text())


def test_nih_real_geometries_on_phantom_films_end_to_end(nih_real, tmp_path, tiny_model):
    _, boxes, entries = nih_real
    root = tmp_path / "nih"
    (root / "images_001" / "images").mkdir(parents=True)
    chosen = sorted(boxes.loc[boxes["Finding Label"] == "Effusion", "Image Index"].unique())[:10]
    clean = sorted(entries.loc[entries["Finding Labels"] == "No Finding", "Image Index"])[:10]
    lines = (nih_real[0] / "BBox_List_2017.csv").read_text().splitlines()  # the real rows, as they are
    (root / "BBox_List_2017.csv").write_text("\n".join([lines[0]] + [ln for ln in lines[1:]
                                                                     if ln.split(",")[0] in chosen]) + "\n")
    entries[entries["Image Index"].isin(chosen + clean)].to_csv(root / "Data_Entry_2017.csv", index=False)
    for k, name in enumerate(chosen + clean):
        Image.fromarray(_phantom(k, (1024, 1024))).save(root / "images_001" / "images" / name)
    dataset = open_dataset(f"nih:{root}", finding="Effusion", image_size=64)
    first = dataset.ids(label=1)[0]
    row = boxes[(boxes["Image Index"] == first) & (boxes["Finding Label"] == "Effusion")].iloc[0]
    x, y, w, h = row.iloc[2:6].astype(float)  # pandas' reading of the real row
    native = dataset.native_mask(first)
    assert native[int(y + h / 2), int(x + w / 2)] and native.sum() == pytest.approx(w * h, rel=0.1)
    config = _evaluate(f"nih:{root}", "Effusion", tiny_model, tmp_path / "out")
    assert config["dataset"]["finding"] == "Effusion" and config["dataset"]["kind"] == "nih"
    assert config["dataset"]["negatives"] == "no-finding"


def test_vindr_real_geometries_on_native_size_dicoms_end_to_end(vindr_real, tmp_path, tiny_model):
    _, table = vindr_real
    root = tmp_path / "vindr"
    (root / "train").mkdir(parents=True)
    cardio = table[table["class_name"] == "Cardiomegaly"]
    by_readers = cardio.groupby("image_id")["rad_id"].nunique()
    chosen = sorted(by_readers[by_readers >= 2].index)[:8]
    clean_ids = table.groupby("image_id")["class_name"].apply(lambda s: set(s) == {"No finding"})
    clean = sorted(clean_ids[clean_ids].index)[:8]
    subset = table[table["image_id"].isin(chosen + clean)]
    subset.to_csv(root / "train.csv", index=False)
    for k, image_id in enumerate(chosen + clean):
        rows = subset[subset["image_id"] == image_id]
        height = int(max(2000, np.nanmax(rows["y_max"].to_numpy(float), initial=0) + 64))
        width = int(max(1800, np.nanmax(rows["x_max"].to_numpy(float), initial=0) + 64))
        pixels = (4095 - _phantom(k, (height, width)).astype(np.uint16) * 16)  # 12-bit MONOCHROME1, as many
        write_dicom(root / "train" / f"{image_id}.dicom", pixels, photometric="MONOCHROME1", bits_stored=12)
    dataset = open_dataset(f"vindr:{root}", finding="Cardiomegaly", image_size=64)
    assert set(dataset.ids(label=1)) == set(chosen) and set(dataset.ids(label=0)) == set(clean)
    image_id = chosen[0]
    boxes = cardio[cardio["image_id"] == image_id]
    native = dataset.native_mask(image_id)
    assert native.shape == dataset.native_shape(image_id)
    # where the readers' boxes all overlap is ground truth under 'majority'
    x0, y0 = boxes["x_min"].max(), boxes["y_min"].max()
    x1, y1 = boxes["x_max"].min(), boxes["y_max"].min()
    if x1 > x0 + 2 and y1 > y0 + 2:
        assert native[int((y0 + y1) / 2), int((x0 + x1) / 2)]
    union = VinDrDataset(root, finding="Cardiomegaly", readers="union", image_size=64, split_file=tmp_path / "s.csv")
    assert union.native_mask(image_id).sum() >= native.sum()
    config = _evaluate(f"vindr:{root}", "Cardiomegaly", tiny_model, tmp_path / "out")
    assert config["dataset"]["readers"] == "majority" and config["dataset"]["finding"] == "Cardiomegaly"


def _encode(mask: np.ndarray) -> dict:
    coco_mask = pytest.importorskip("pycocotools.mask")  # the reference encoder
    rle = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode()}


def chexlocalize(root: Path, n: int = 8, size=(390, 320)) -> dict:
    """A CheXlocalize-format fixture: CheXpert-like JPEGs (non-square) under valid/ and test/, their
    segmentations encoded with pycocotools; half the films with an Edema region."""
    findings = CheXlocalizeDataset.FINDINGS
    masks = {}
    for split, name in (("val", "gt_segmentations_val.json"), ("test", "gt_segmentations_test.json")):
        data = {}
        for k in range(n):
            patient = f"patient{64500 + k + (100 if split == 'test' else 0)}"
            image_id = f"{patient}_study1_view1_frontal"
            folder = root / "CheXpert-v1.0" / ("valid" if split == "val" else "test") / patient / "study1"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(_phantom(k, size)).save(folder / "view1_frontal.jpg", quality=92)
            entry = {}
            for f in findings:
                mask = np.zeros(size, bool)
                if f == "Edema" and k % 2 == 0:
                    mask[100 + k:220, 60:200 + k] = True
                if f == "Support Devices" and k % 4 == 1:
                    mask[20:40, 20:60] = True
                entry[f] = _encode(mask)
                masks[(image_id, f)] = mask
            data[image_id] = entry
        (root / name).write_text(json.dumps(data))
    return masks


def test_chexlocalize_decodes_pycocotools_rles_and_keeps_the_official_sets(tmp_path, tiny_model):
    root = tmp_path / "chexlocalize"
    masks = chexlocalize(root)
    dataset = CheXlocalizeDataset(root, finding="Edema", image_size=64)
    positives = dataset.ids(label=1)
    assert len(positives) == 8
    for image_id in positives:
        np.testing.assert_array_equal(dataset.native_mask(image_id), masks[(image_id, "Edema")])
    # negatives 'no-finding': films with nothing segmented; the Support Devices films are neither
    assert len(dataset.ids(label=0)) == 4 and dataset.skipped.counts == {
        "neither Edema nor a negative by the 'no-finding' rule": 4}
    absent = CheXlocalizeDataset(root, finding="Edema", negatives="absent", image_size=64,
                                 split_file=tmp_path / "s.csv")
    assert len(absent.ids(label=0)) == 8
    assert {dataset.splits[i] for i in dataset.ids() if "patient646" in i} == {"test"}
    assert {dataset.splits[i] for i in dataset.ids() if "patient645" in i} == {"val"}
    config = _evaluate(f"chexlocalize:{root}", "Edema", tiny_model, tmp_path / "out")
    assert config["dataset"]["finding"] == "Edema"


# -- bad input ------------------------------------------------------------------------------------------

def test_unknown_or_missing_finding_lists_the_valid_ones(tmp_path):
    root = tmp_path / "c"
    chexlocalize(root, n=2)
    with pytest.raises(DatasetError, match=r"unknown finding 'edema' \(did you mean 'Edema'\?\).*'Pneumothorax'"):
        open_dataset(f"chexlocalize:{root}", finding="edema")
    with pytest.raises(DatasetError, match="choose one with --finding"):
        open_dataset(f"chexlocalize:{root}")
    with pytest.raises(DatasetError, match="drop the options"):
        open_dataset(f"chexlocalize:{root}".replace("chexlocalize", "folder"), finding="Edema")


def test_an_rle_whose_size_disagrees_with_its_image(tmp_path):
    root = tmp_path / "c"
    chexlocalize(root, n=2, size=(300, 240))
    data = json.loads((root / "gt_segmentations_val.json").read_text())
    image_id = next(iter(data))
    wrong = np.zeros((240, 300), bool)
    wrong[10:50, 10:50] = True
    data[image_id]["Edema"] = _encode(wrong)
    (root / "gt_segmentations_val.json").write_text(json.dumps(data))
    dataset = CheXlocalizeDataset(root, finding="Edema", image_size=32)
    with pytest.raises(DatasetError, match="its RLE is 240×300 but the image view1_frontal.jpg is 300×240") as info:
        dataset.native_mask(image_id)
    assert "gt_segmentations_val.json" in str(info.value)


def test_nih_png_that_is_rgb_or_16_bit(tmp_path):
    root = tmp_path / "nih"
    (root / "images").mkdir(parents=True)
    (root / "BBox_List_2017.csv").write_text("Image Index,Finding Label,Bbox [x,y,w,h],,,\n"
                                             "a.png,Mass,10,10,50,50\nb.png,Mass,10,10,50,50\n")
    (root / "Data_Entry_2017.csv").write_text("Image Index,Finding Labels\na.png,Mass\nb.png,Mass\n")
    Image.fromarray(np.zeros((1024, 1024, 3), np.uint8)).save(root / "images" / "a.png")
    Image.fromarray(np.zeros((1024, 1024), np.uint16)).save(root / "images" / "b.png")
    dataset = NIHDataset(root, finding="Mass", image_size=32)
    with pytest.raises(ImageError, match="8-bit grayscale PNG; this one is RGB") as info:
        dataset.image("a.png", 32)
    assert "a.png" in str(info.value)
    with pytest.raises(ImageError, match="this one is 16-bit"):
        dataset.image("b.png", 32)
    assert main(["check", "--dataset", f"nih:{root}", "--finding", "Mass"]) == 2


@pytest.mark.parametrize("row, match", [
    ("a.png,Mass,1000,10,50,50", "ends outside the 1024×1024 film"),
    ("a.png,Mass,10,10,0,50", "zero or negative size"),
    ("a.png,Mass,-5,10,20,20", "starts outside the image"),
    ("a.png,Masses,10,10,20,20", "unknown finding 'Masses'"),
])
def test_nih_bad_boxes(tmp_path, row, match):
    root = tmp_path / "nih"
    (root / "images").mkdir(parents=True)
    (root / "BBox_List_2017.csv").write_text("Image Index,Finding Label,Bbox [x,y,w,h],,,\n" + row + "\n")
    (root / "Data_Entry_2017.csv").write_text("Image Index,Finding Labels\na.png,Mass\n")
    Image.fromarray(np.zeros((1024, 1024), np.uint8)).save(root / "images" / "a.png")
    with pytest.raises(DatasetError, match=match) as info:
        NIHDataset(root, finding="Mass", image_size=32)
    assert "BBox_List_2017.csv" in str(info.value) and "line 2" in str(info.value)


def test_vindr_missing_column_and_reversed_box(tmp_path):
    root = tmp_path / "v"
    (root / "train").mkdir(parents=True)
    write_dicom(root / "train" / "a.dicom", np.zeros((100, 120), np.uint16))
    (root / "train.csv").write_text("image_id,class_name,class_id,x_min,y_min,x_max,y_max\na,No finding,14,,,,\n")
    with pytest.raises(DatasetError, match=r"lacks the column\(s\) \['rad_id'\]") as info:
        VinDrDataset(root, finding="Cardiomegaly")
    assert "train.csv" in str(info.value)
    (root / "train.csv").write_text("image_id,class_name,class_id,rad_id,x_min,y_min,x_max,y_max\n"
                                    "a,Cardiomegaly,3,R1,50,50,40,60\n")
    with pytest.raises(DatasetError, match="line 2: box of 'a' has a zero or negative size"):
        VinDrDataset(root, finding="Cardiomegaly")
    (root / "train.csv").write_text("image_id,class_name,class_id,rad_id,x_min,y_min,x_max,y_max\n"
                                    "a,Cardiomegaly,3,R1,500,500,600,600\nghost,No finding,14,R2,,,,\n")
    dataset = VinDrDataset(root, finding="Cardiomegaly", readers="union", image_size=32)
    assert dataset.skipped.counts["label rows without an image file"] == 1
    with pytest.raises(DatasetError, match="lies entirely outside the 120x100 image") as info:
        dataset.native_mask("a")
    assert "train.csv" in str(info.value)


def _vindr_film(root: Path, folder: str, image_id: str, shape=(300, 240)):
    (root / folder).mkdir(parents=True, exist_ok=True)
    write_dicom(root / folder / f"{image_id}.dicom", np.full(shape, 2000, np.uint16), bits_stored=12)


def test_vindr_reader_rules_on_constructed_readings_and_the_official_test_set(tmp_path):
    """Three readers, by hand: majority is where two readers' boxes overlap; readers whose boxes never
    meet are a counted skip; union takes every box; PhysioNet's consensus test set (a 22-label class) is
    the test split, and the split does not depend on the reader rule."""
    root = tmp_path / "vindr"
    rows = ["image_id,class_name,class_id,rad_id,x_min,y_min,x_max,y_max",
            "a,Rib fracture,0,R1,10,10,60,60", "a,Rib fracture,0,R2,40,40,100,100", "a,Rib fracture,0,R3,200,200,220,220",
            "b,Rib fracture,0,R1,10,10,30,30", "b,Rib fracture,0,R2,100,100,130,130", "b,No finding,14,R3,,,,",
            "c,Rib fracture,0,R1,10,10,30,30", "c,No finding,14,R2,,,,", "c,No finding,14,R3,,,,"]
    rows += [f"n{k},No finding,14,R{r},,,," for k in range(6) for r in (1, 2, 3)]
    (root / "annotations").mkdir(parents=True)
    (root / "annotations" / "annotations_train.csv").write_text("\n".join(rows) + "\n")
    (root / "annotations" / "annotations_test.csv").write_text(
        "image_id,class_name,x_min,y_min,x_max,y_max\nt1,Rib fracture,5,5,25,45\nt2,No finding,,,,\n")
    for image_id in ["a", "b", "c"] + [f"n{k}" for k in range(6)]:
        _vindr_film(root, "train", image_id)
    for image_id in ("t1", "t2"):
        _vindr_film(root, "test", image_id)
    majority = VinDrDataset(root, finding="Rib fracture", image_size=32)
    assert majority.ids(label=1) == ["a", "t1"]
    assert majority.skipped.counts["majority without overlapping boxes (no pixel two readers agree on)"] == 1  # b
    mask = majority.native_mask("a")
    expected = np.zeros((300, 240), bool)
    expected[40:60, 40:60] = True  # R1 ∩ R2; R3's lone box is no majority
    np.testing.assert_array_equal(mask, expected)
    consensus = np.zeros((300, 240), bool)
    consensus[5:45, 5:25] = True
    np.testing.assert_array_equal(majority.native_mask("t1"), consensus)
    assert {majority.splits[i] for i in ("t1", "t2")} == {"test"}
    assert all(majority.splits[i] in ("train", "val") for i in ["a", "b", "c"] + [f"n{k}" for k in range(6)])
    union = VinDrDataset(root, finding="Rib fracture", readers="union", image_size=32)
    assert union.ids(label=1) == ["a", "b", "c", "t1"] and union.splits == majority.splits
    full = np.zeros((300, 240), bool)
    full[10:60, 10:60] = full[40:100, 40:100] = full[200:220, 200:220] = True
    np.testing.assert_array_equal(union.native_mask("a"), full)
    assert majority.selection["official_test"] is True


def test_chexlocalize_as_stanford_aimi_ships_it_with_chexpert_labels(tmp_path):
    """<root>/CheXlocalize/gt_segmentations_val.json beside <root>/CheXpert/val/…; 'no-finding' negatives
    from CheXpert's own 'No Finding' label; under 'absent', a film labelled Edema without a segmentation is
    no negative."""
    root = tmp_path / "download"
    (root / "CheXlocalize").mkdir(parents=True)
    data, rows = {}, ["Path,Sex,No Finding,Edema"]
    for k, (edema_mask, no_finding, edema_label) in enumerate(
            [(True, "", "1.0"), (False, "1.0", ""), (False, "", "1.0"), (False, "", "0.0"), (True, "", "1.0")]):
        image_id = f"patient{64600 + k}_study1_view1_frontal"
        folder = root / "CheXpert" / "val" / f"patient{64600 + k}" / "study1"
        folder.mkdir(parents=True)
        Image.fromarray(_phantom(k, (120, 100))).save(folder / "view1_frontal.jpg")
        mask = np.zeros((120, 100), bool)
        mask[30:60, 20:70] = edema_mask
        data[image_id] = {f: _encode(mask if f == "Edema" else np.zeros((120, 100), bool))
                          for f in CheXlocalizeDataset.FINDINGS}
        rows.append(f"CheXpert-v1.0/valid/patient{64600 + k}/study1/view1_frontal.jpg,Male,{no_finding},{edema_label}")
    (root / "CheXlocalize" / "gt_segmentations_val.json").write_text(json.dumps(data))
    (root / "CheXpert" / "val_labels.csv").write_text("\n".join(rows) + "\n")
    dataset = open_dataset(f"chexlocalize:{root}", finding="Edema", image_size=32)
    ids = [f"patient{64600 + k}_study1_view1_frontal" for k in range(5)]
    assert dataset.ids(label=1) == [ids[0], ids[4]] and dataset.ids(label=0) == [ids[1]]
    assert dataset.selection["label_files"] == ["val_labels.csv"]
    absent = open_dataset(f"chexlocalize:{root}", finding="Edema", negatives="absent", image_size=32,
                          split_file=tmp_path / "s.csv")
    assert absent.ids(label=0) == [ids[1], ids[3]]  # ids[2]: labelled Edema, not segmented: neither


def test_a_corrupt_rle_counts_string(tmp_path):
    root = tmp_path / "c"
    chexlocalize(root, n=2)
    data = json.loads((root / "gt_segmentations_val.json").read_text())
    image_id = "patient64500_study1_view1_frontal"  # k = 0: an Edema region
    data[image_id]["Edema"]["counts"] = data[image_id]["Edema"]["counts"][:-3] + "@@@"
    (root / "gt_segmentations_val.json").write_text(json.dumps(data))
    dataset = CheXlocalizeDataset(root, finding="Edema", image_size=32)
    assert image_id in dataset.ids(label=1)
    with pytest.raises(DatasetError, match="cannot be decoded") as info:
        dataset.native_mask(image_id)
    assert "gt_segmentations_val.json" in str(info.value) and image_id in str(info.value)


def test_nih_splits_keep_each_patient_in_one_split(nih_real, tmp_path):
    root, boxes, entries = nih_real
    dataset = NIHDataset(root, finding="Atelectasis", negatives="absent", image_size=64, split_file=tmp_path / "s.csv")
    patient = dict(zip(entries["Image Index"], entries["Patient ID"]))
    by_patient = {}
    for image_id in dataset.ids():
        by_patient.setdefault(patient[image_id], set()).add(dataset.splits[image_id])
    assert len(by_patient) > 100 and all(len(s) == 1 for s in by_patient.values())
    labels = [dataset.label(i) for i in dataset.ids(split="test")]
    assert 0 < sum(labels) < len(labels)  # stratified: positives in the test split too
