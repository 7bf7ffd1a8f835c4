import csv
import shutil

import numpy as np
import pytest
import torch

from trust_core.data import (FolderDataset, RSNADataset, SIIMDataset, make_splits, open_dataset,
                             read_dicom, rle_decode)
from trust_core.errors import DatasetError


def rows_of(path):
    with open(path, newline="") as fh:
        return list(csv.reader(fh))


def write_rows(path, rows):
    with open(path, "w", newline="") as fh:
        csv.writer(fh).writerows(rows)


def copy_dataset(src, dst):
    shutil.copytree(src, dst)
    return dst


# -- RSNA --------------------------------------------------------------------------------------------

def test_rsna_layout_and_samples(rsna, phantom_root):
    not_normal = sum(r.category == "No Lung Opacity / Not Normal" for r in RSNADataset(
        phantom_root / "rsna", classes="all")._all.values())
    assert not_normal > 0  # the phantom has all three classes; the paper's default drops one
    assert len(rsna) == 24 - not_normal
    assert rsna.skipped.counts == {"class not in ['Normal', 'Lung Opacity']": not_normal}
    assert rsna.summary()["classes"] == ["Normal", "Lung Opacity"] and rsna.summary()["mask_rule"] == "paper"
    sample = rsna[0]
    assert isinstance(sample.image, torch.Tensor) and sample.image.shape == (3, 64, 64)
    assert -1.0 <= sample.image.min() and sample.image.max() <= 1.0
    assert torch.equal(sample.image[0], sample.image[2])
    assert sample.mask.shape == (64, 64) and sample.mask.dtype == bool
    assert sample.split in ("train", "val", "test")
    positives = rsna.ids(label=1)
    assert positives and all(rsna.mask(i, 64).any() for i in positives)
    assert not any(rsna.mask(i, 64).any() for i in rsna.ids(label=0))


def test_rsna_mask_is_union_of_boxes_at_native_size(phantom_root):
    rsna = RSNADataset(phantom_root / "rsna", mask_rule="coverage")
    image_id = max(rsna.ids(label=1), key=lambda i: len(rsna.record(i).boxes))
    mask = rsna.native_mask(image_id)
    expected = np.zeros((1024, 1024), bool)
    for b in rsna.record(image_id).boxes:
        expected[int(b.y):int(b.y + b.height), int(b.x):int(b.x + b.width)] = True
    np.testing.assert_array_equal(mask, expected)
    # at another size, the coverage rule: a pixel is in when at least half of it is
    small = rsna.mask(image_id, 256)
    np.testing.assert_array_equal(small, expected.reshape(256, 4, 256, 4).mean(axis=(1, 3)) >= 0.5)


def test_rsna_mask_by_the_papers_rule(rsna):
    """The authors' downsamp_coord2 (create_maps_rsna.py) and inclusive fill (utility_fig_rsna.py),
    restated from their scripts."""
    def downsamp_coord2(coord):
        coord_new = coord / 1023
        return int(320 * coord_new)

    for image_id in rsna.ids(label=1):
        expected = np.zeros((320, 320))
        for b in rsna.record(image_id).boxes:
            x_min, x_max = downsamp_coord2(int(b.x)), downsamp_coord2(int(b.x + b.width))
            y_min, y_max = downsamp_coord2(int(b.y)), downsamp_coord2(int(b.y + b.height))
            expected[y_min:(y_max + 1), x_min:(x_max + 1)] = 1
        np.testing.assert_array_equal(rsna.mask(image_id, 320), expected.astype(bool))


def test_rsna_class_filter(phantom_root):
    everything = RSNADataset(phantom_root / "rsna", classes="all")
    paper = RSNADataset(phantom_root / "rsna", classes=("Normal", "Lung Opacity"))
    dropped = paper.skipped.counts.get("class not in ['Normal', 'Lung Opacity']", 0)
    assert dropped > 0 and len(paper._all) + dropped == len(everything._all)
    assert {r.category for r in paper._all.values()} == {"Normal", "Lung Opacity"}
    assert RSNADataset(phantom_root / "rsna").classes == ("Normal", "Lung Opacity")  # the default
    assert paper.splits == everything.splits  # a filter never moves an image to another split
    assert paper.fingerprint != everything.fingerprint
    only = RSNADataset(phantom_root / "rsna", classes=("Lung Opacity",))
    assert set(only._all) == set(everything.ids(label=1))
    with pytest.raises(DatasetError, match="unknown RSNA class"):
        RSNADataset(phantom_root / "rsna", classes=("Pneumonia",))


def test_rsna_split_is_written_and_stable(phantom_root, tmp_path):
    root = copy_dataset(phantom_root / "rsna", tmp_path / "rsna")
    (root / "splits.csv").unlink()
    first = RSNADataset(root)
    assert (root / "splits.csv").is_file()
    second = RSNADataset(root)
    assert first.splits == second.splits
    assert RSNADataset(root, split="test").ids() == sorted(r.image_id for r in RSNADataset(root, split="test").records)


def test_make_splits_is_stratified_and_seeded():
    labels = {f"id{i:03d}": int(i % 3 == 0) for i in range(300)}
    a, b = make_splits(labels, seed=1), make_splits(dict(reversed(list(labels.items()))), seed=1)
    assert a == b  # independent of listing order
    test_pos = sum(labels[i] for i, s in a.items() if s == "test")
    assert test_pos == 20  # 20% of 100 positives
    assert make_splits(labels, seed=2) != a


@pytest.mark.parametrize("header", [["patientId", "x", "y", "w", "h", "Target"],
                                    ["patient", "x", "y", "width", "height", "Target"]])
def test_rsna_wrong_columns(phantom_root, tmp_path, header):
    root = copy_dataset(phantom_root / "rsna", tmp_path / "rsna")
    rows = rows_of(root / "stage_2_train_labels.csv")
    write_rows(root / "stage_2_train_labels.csv", [header] + rows[1:])
    with pytest.raises(DatasetError, match="lacks the column"):
        RSNADataset(root)


@pytest.mark.parametrize("edit, message", [
    (lambda r: r[:1] + ["abc"] + r[2:], "must be a number"),
    (lambda r: r[:3] + ["-20"] + r[4:], "non-positive size"),
    (lambda r: r[:5] + ["2"], "Target must be 0 or 1"),
])
def test_rsna_bad_rows(phantom_root, tmp_path, edit, message):
    root = copy_dataset(phantom_root / "rsna", tmp_path / "rsna")
    rows = rows_of(root / "stage_2_train_labels.csv")
    line = next(i for i, r in enumerate(rows) if r[-1] == "1")
    rows[line] = edit(rows[line])
    write_rows(root / "stage_2_train_labels.csv", rows)
    with pytest.raises(DatasetError, match=f"line {line + 1}.*{message}"):
        RSNADataset(root)


def test_rsna_contradictory_target(phantom_root, tmp_path):
    root = copy_dataset(phantom_root / "rsna", tmp_path / "rsna")
    rows = rows_of(root / "stage_2_train_labels.csv")
    positive = next(r for r in rows if r[-1] == "1")
    rows.append([positive[0], "", "", "", "", "0"])
    write_rows(root / "stage_2_train_labels.csv", rows)
    with pytest.raises(DatasetError, match="Target 0 and Target 1"):
        RSNADataset(root)


def test_rsna_box_outside_image(phantom_root, tmp_path):
    root = copy_dataset(phantom_root / "rsna", tmp_path / "rsna")
    rows = rows_of(root / "stage_2_train_labels.csv")
    line = next(i for i, r in enumerate(rows) if r[-1] == "1")
    rows[line][1:5] = ["2000", "100", "50", "50"]
    write_rows(root / "stage_2_train_labels.csv", rows)
    dataset = RSNADataset(root)
    with pytest.raises(DatasetError, match="entirely outside"):
        dataset.mask(rows[line][0])
    # partly outside: clipped to the image
    rows[line][1:5] = ["1000", "1000", "100", "100"]
    write_rows(root / "stage_2_train_labels.csv", rows)
    mask = RSNADataset(root).native_mask(rows[line][0])
    assert mask[1000:, 1000:].all()


def test_rsna_counted_skips(phantom_root, tmp_path):
    root = copy_dataset(phantom_root / "rsna", tmp_path / "rsna")
    rows = rows_of(root / "stage_2_train_labels.csv")
    rows.append(["ghost-patient", "", "", "", "", "0"])  # label without image
    positive = next(r for r in rows if r[-1] == "1")
    rows.append(list(positive))  # exact duplicate box row
    write_rows(root / "stage_2_train_labels.csv", rows)
    orphan = next((root / "stage_2_train_images").glob("*.dcm"))
    shutil.copy(orphan, root / "stage_2_train_images" / "unlabelled.dcm")  # image without label
    dataset = RSNADataset(root, classes="all")
    assert dataset.skipped.counts == {"labels without an image file": 1, "duplicate box rows": 1,
                                      "image files without labels": 1}
    assert dataset.skipped.reasons["image files without labels"] == ["unlabelled"]
    assert dataset.summary()["skipped"] == dataset.skipped.counts


def test_rsna_missing_folder(tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        RSNADataset(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="RSNA label file not found"):
        RSNADataset(tmp_path / "empty")


def test_csv_with_bom_and_crlf(phantom_root, tmp_path):
    root = copy_dataset(phantom_root / "rsna", tmp_path / "rsna")
    text = (root / "stage_2_train_labels.csv").read_text()
    (root / "stage_2_train_labels.csv").write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode())
    assert RSNADataset(root).ids() == RSNADataset(phantom_root / "rsna").ids()


# -- SIIM --------------------------------------------------------------------------------------------

def test_siim_layout_and_rle(siim, phantom_root):
    assert len(siim) == 24
    path = siim.record(siim.ids()[0]).path
    rel = path.relative_to(phantom_root / "siim" / "dicom-images-train")
    assert len(rel.parts) == 3 and rel.stem == siim.ids()[0]  # study/series/ImageId.dcm
    header = rows_of(phantom_root / "siim" / "train-rle.csv")[0]
    assert header == ["ImageId", " EncodedPixels"]  # as Kaggle's file, leading space included
    for image_id in siim.ids(label=1):
        assert siim.native_mask(image_id).sum() > 0
    for image_id in siim.ids(label=0):
        assert not siim.native_mask(image_id).any()


def test_siim_multi_row_union(phantom_root, tmp_path):
    root = copy_dataset(phantom_root / "siim", tmp_path / "siim")
    rows = rows_of(root / "train-rle.csv")
    line = next(i for i, r in enumerate(rows) if i and r[1].strip() != "-1")
    extra = np.zeros((1024, 1024), bool)
    extra[10:20, 30:40] = True
    from trust_core.data import rle_encode
    rows.append([rows[line][0], " " + rle_encode(extra)])
    write_rows(root / "train-rle.csv", rows)
    image_id = rows[line][0]
    mask = SIIMDataset(root).native_mask(image_id)
    original = SIIMDataset(phantom_root / "siim").native_mask(image_id)
    np.testing.assert_array_equal(mask, original | extra)


@pytest.mark.parametrize("rle, message", [("12 x", "malformed RLE"), ("5 3 1", "malformed RLE"),
                                          ("", "empty EncodedPixels")])
def test_siim_malformed_rle(phantom_root, tmp_path, rle, message):
    root = copy_dataset(phantom_root / "siim", tmp_path / "siim")
    rows = rows_of(root / "train-rle.csv")
    rows[1][1] = rle
    write_rows(root / "train-rle.csv", rows)
    with pytest.raises(DatasetError, match=message):
        SIIMDataset(root)


def test_siim_rle_longer_than_image(phantom_root, tmp_path):
    root = copy_dataset(phantom_root / "siim", tmp_path / "siim")
    rows = rows_of(root / "train-rle.csv")
    rows[1][1] = " 1048000 1000"
    write_rows(root / "train-rle.csv", rows)
    with pytest.raises(DatasetError, match="past the end"):
        SIIMDataset(root).native_mask(rows[1][0])


def test_siim_duplicate_image_ids_in_tree(phantom_root, tmp_path):
    root = copy_dataset(phantom_root / "siim", tmp_path / "siim")
    some = next((root / "dicom-images-train").rglob("*.dcm"))
    (root / "dicom-images-train" / "copy").mkdir()
    shutil.copy(some, root / "dicom-images-train" / "copy" / some.name)
    with pytest.raises(DatasetError, match="appears twice"):
        SIIMDataset(root)


def test_siim_contradictory_rows(phantom_root, tmp_path):
    root = copy_dataset(phantom_root / "siim", tmp_path / "siim")
    rows = rows_of(root / "train-rle.csv")
    positive = next(r for r in rows[1:] if r[1].strip() != "-1")
    rows.append([positive[0], " -1"])
    write_rows(root / "train-rle.csv", rows)
    with pytest.raises(DatasetError, match="both -1"):
        SIIMDataset(root)


def test_open_dataset_spec(phantom_root):
    assert open_dataset(f"siim:{phantom_root / 'siim'}").kind == "siim"
    with pytest.raises(DatasetError, match="KIND:PATH"):
        open_dataset("nonsense")


# -- Folder ------------------------------------------------------------------------------------------

def test_folder_dataset_png_boxes_and_masks(tmp_path):
    from PIL import Image
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        Image.fromarray((rng.random((40, 50)) * 255).astype(np.uint8)).save(tmp_path / "images" / f"img{i}.png")
    mask = np.zeros((40, 50), np.uint8)
    mask[5:15, 10:30] = 255
    Image.fromarray(mask).save(tmp_path / "masks" / "img1.png")
    write_rows(tmp_path / "boxes.csv", [["image_id", "x", "y", "width", "height"], ["img0", 10, 10, 20, 10]])
    dataset = FolderDataset(tmp_path, image_size=20)
    assert dataset.ids(label=1) == ["img0", "img1"]
    assert dataset.native_mask("img0")[10:20, 10:30].all() and dataset.native_mask("img0").sum() == 200
    assert dataset.native_mask("img1").sum() == 200
    assert dataset[0].image.shape == (3, 20, 20)


def test_folder_labels_csv_duplicates(tmp_path):
    from PIL import Image
    (tmp_path / "images").mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "images" / "a.png")
    write_rows(tmp_path / "labels.csv", [["image_id", "label"], ["a", 1], ["a", 0]])
    with pytest.raises(DatasetError, match="duplicate image id"):
        FolderDataset(tmp_path)


def test_demo_dicoms_are_real_jpeg_baseline(rsna):
    import pydicom
    ds = pydicom.dcmread(rsna.record(rsna.ids()[0]).path)
    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.50"
    assert (ds.Rows, ds.Columns, ds.BitsStored, ds.PhotometricInterpretation) == (1024, 1024, 8, "MONOCHROME2")
    image = read_dicom(rsna.record(rsna.ids()[0]).path)
    assert image.pixels.shape == (1024, 1024) and image.identifiers == {}
