"""Chest films with known lesions: the demo's anatomies and cases (:mod:`.films` writes them as real
RSNA/SIIM/NIH datasets).

No RSNA or SIIM image can be obtained here, so the embedded demo is generated, on one of two anatomies:

* ``rg1`` (the demo's default): the real chest film of pydicom-data (``RG1_UNCR``, a CR PA film), re-windowed,
  then per case deformed (rotation, scale, habitus, a smooth elastic field) and re-exposed (gamma, gain,
  offset, noise); lesions are placed in its lung fields, which were outlined by hand once (:data:`RG1_LUNGS`).
  Every demo film is thus the same patient's anatomy, varied, with the film's own findings in all of them;
* ``phantom``: fully synthetic PA films with body outline, lung fields with vascular markings,
  mediastinum and heart, spine, posterior ribs, clavicles and diaphragm domes, plus acquisition variation
  (patient size, position, rotation, exposure, gamma, noise).

On either:

* pneumonia-like opacities (RSNA): 1–3 textured airspace opacities inside the lungs, varying in size,
  position and density; the ground truth is one box per opacity, as Kaggle's boxes;
* pneumothorax-like regions (SIIM): a collapsed lung leaves an irregular, darker rim without vascular
  markings along the apex and lateral wall, bounded by a thin visceral pleural line; the ground truth is
  the rim mask, written as Kaggle relative RLE (one row per connected component).

Files follow the distributed layouts exactly (CSV columns, RLE convention, folder nesting, 1024×1024
8-bit MONOCHROME2 DICOMs with JPEG Baseline transfer syntax as in the Kaggle releases), so the same loaders
serve the demo and the real datasets. Everything is seeded: the same seed writes the same files.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np


SIZE = 1024
BASE = 512  # anatomy is synthesized at this resolution and upsampled (fine noise is added at SIZE)
UID_PREFIX = "1.2.826.0.1.3680043.8.498."
SPLIT_FRACTIONS = (0.6, 0.15, 0.25)  # larger val/test than usual: the demo sets are small
ANATOMIES = ("rg1", "phantom")  # the demo's default first
# RG1_UNCR's lung fields, outlined by hand on the film's centred square resized to BASE pixels (x, y);
# side -1 is the patient's right (the image's left), as in the synthetic anatomy.
RG1_LUNGS = {
    -1: [(140, 48), (190, 45), (215, 70), (218, 150), (205, 200), (200, 260), (205, 330), (215, 380), (170, 385),
         (120, 392), (80, 395), (60, 370), (55, 300), (60, 220), (72, 150), (95, 90), (115, 60)],
    1: [(300, 48), (350, 45), (400, 60), (430, 100), (450, 170), (458, 250), (462, 330), (465, 395), (430, 395),
        (400, 370), (360, 330), (320, 280), (295, 230), (285, 150), (288, 80)],
}


@dataclass(frozen=True)
class PhantomCase:
    image: np.ndarray  # uint8 (SIZE, SIZE)
    boxes: list[tuple[int, int, int, int]]  # RSNA: (x, y, width, height)
    mask: np.ndarray | None  # SIIM: bool (SIZE, SIZE)
    label: int
    category: str
    sex: str
    age: int
    view: str


def _smooth_noise(rng: np.random.Generator, shape, sigma: float) -> np.ndarray:
    """Zero-mean, unit-std Gaussian-filtered noise."""
    field = cv2.GaussianBlur(rng.standard_normal(shape).astype(np.float32), (0, 0), sigma)
    return field / (field.std() + 1e-8)


def _ellipse(u, v, cu, cv_, au, av, power=2.0):
    return (np.abs((u - cu) / au) ** power + np.abs((v - cv_) / av) ** power)


def _soft(inside_measure: np.ndarray, edge: float) -> np.ndarray:
    """Smooth indicator of ``measure < 1`` with a transition of width ``edge``."""
    return np.clip((1.0 - inside_measure) / edge, 0.0, 1.0).astype(np.float32)


class _Anatomy:
    """One patient's anatomy at BASE resolution (float fields in [0, 1])."""

    def __init__(self, rng: np.random.Generator):
        n = BASE
        # Patient pose and habitus: affine jitter of the normalized coordinate grid.
        angle = np.deg2rad(rng.normal(0, 2.0))
        scale = rng.uniform(0.92, 1.05)
        shift_u, shift_v = rng.normal(0, 0.015, 2)
        g = (np.arange(n, dtype=np.float32) + 0.5) / n
        uu, vv = np.meshgrid(g, g)
        cu, cv_ = uu - 0.5 - shift_u, vv - 0.5 - shift_v
        u = (np.cos(angle) * cu - np.sin(angle) * cv_) / scale + 0.5
        v = (np.sin(angle) * cu + np.cos(angle) * cv_) / scale + 0.5
        self.u, self.v = u.astype(np.float32), v.astype(np.float32)
        u, v = self.u, self.v
        width = rng.uniform(0.40, 0.48)
        self.body = _soft(_ellipse(u, v, 0.5, 0.62, width, 0.62, 2.4), 0.06)
        # Lungs: rounded apices, domed bases (the diaphragm), medial borders at the mediastinum.
        self.lungs = []
        for side, cx in ((-1, 0.5 - rng.uniform(0.165, 0.185)), (1, 0.5 + rng.uniform(0.165, 0.185))):
            au, av = rng.uniform(0.115, 0.135), rng.uniform(0.27, 0.31)
            cy = rng.uniform(0.44, 0.48)
            shape = _ellipse(u, v, cx, cy, au, av, 2.2)
            dome = v - (cy + av * 0.78 - 0.10 * ((u - cx) / au) ** 2 + (0.02 if side > 0 else 0.0))
            lung = _soft(shape, 0.08) * np.clip(1 - dome / 0.02, 0, 1)
            self.lungs.append(dict(side=side, cx=cx, cy=cy, au=au, av=av, field=lung.astype(np.float32)))
        self.lung = np.clip(self.lungs[0]["field"] + self.lungs[1]["field"], 0, 1)
        heart_w = rng.uniform(0.13, 0.17)
        self.heart = _soft(_ellipse(u, v, 0.53 + rng.normal(0, 0.01), 0.63, heart_w, 0.12, 2.0), 0.25)
        self.spine = _soft(np.abs(u - 0.5) / 0.035, 0.5) * (v > 0.08) * self.body
        self.bones = self._ribs_and_clavicles(rng)
        self.markings = self._vessels(rng)

    def _ribs_and_clavicles(self, rng) -> np.ndarray:
        n = BASE
        layer = np.zeros((n, n), np.float32)
        thickness = max(2, int(n * rng.uniform(0.011, 0.015)))
        for lung in self.lungs:
            side, cx = lung["side"], lung["cx"]
            top, bottom = lung["cy"] - lung["av"] * 0.95, lung["cy"] + lung["av"] * 0.85
            for k, y0 in enumerate(np.linspace(top, bottom, 9)):
                xs = np.linspace(0.5 + side * 0.03, cx + side * (lung["au"] * 1.35), 40)
                t = (xs - xs[0]) / (xs[-1] - xs[0])
                ys = y0 + 0.06 * t ** 1.6 - 0.035 * np.sin(np.pi * t)  # posterior rib arcs
                pts = self._to_pixels(xs, ys)
                cv2.polylines(layer, [pts], False, 1.0, thickness, cv2.LINE_AA)
        for side in (-1, 1):  # clavicles
            xs = np.linspace(0.5 + side * 0.04, 0.5 + side * 0.3, 20)
            ys = 0.17 + 0.03 * np.sin(np.linspace(0, np.pi, 20)) - 0.02 * np.abs(xs - 0.5) / 0.3
            cv2.polylines(layer, [self._to_pixels(xs, ys)], False, 1.0, int(thickness * 1.8), cv2.LINE_AA)
        # Drawn in the canonical frame; resample into this patient's jittered frame.
        layer = cv2.GaussianBlur(layer, (0, 0), 1.2)
        return cv2.remap(layer, self.u * BASE - 0.5, self.v * BASE - 0.5, cv2.INTER_LINEAR)

    @staticmethod
    def collapsed(lung: dict, su: np.ndarray, sv: np.ndarray) -> np.ndarray:
        """Where the lung, shrunk towards its hilum (sampled at ``su, sv``), still is."""
        return _ellipse(su, sv, lung["cx"], lung["cy"], lung["au"], lung["av"], 2.2) < 1.0

    @staticmethod
    def _to_pixels(xs, ys) -> np.ndarray:
        """Normalized canonical coordinates → polyline points of a BASE canvas."""
        return (np.stack([xs, ys], axis=1) * BASE).astype(np.int32).reshape(-1, 1, 2)

    def _vessels(self, rng) -> np.ndarray:
        # Branching-looking markings: ridges of band-passed noise, denser near the hila.
        n = BASE
        fine = _smooth_noise(rng, (n, n), 1.5) - 0.6 * _smooth_noise(rng, (n, n), 5.0)
        ridges = np.exp(-(fine ** 2) / 0.08)
        hilum = np.zeros((n, n), np.float32)
        for lung in self.lungs:
            d = np.hypot(self.u - (0.5 + lung["side"] * 0.08), self.v - lung["cy"])
            hilum += np.exp(-d / 0.12)
        return (ridges * (0.35 + hilum) * self.lung).astype(np.float32)


@functools.lru_cache(maxsize=1)
def _rg1() -> tuple[np.ndarray, list[tuple[int, np.ndarray]]]:
    """RG1_UNCR as brightness in [0, 1] (percentiles 0.5–99.5 of its stored values, MONOCHROME1 inverted),
    its centred square at SIZE, and its two lung fields at BASE (soft-edged)."""
    from pydicom.data import get_testdata_file

    from ..data.dicom import read_dicom

    film = read_dicom(get_testdata_file("RG1_UNCR.dcm"))
    brightness = -film.modality_values if film.inverted else film.modality_values
    lo, hi = np.percentile(brightness, [0.5, 99.5])
    image = np.clip((brightness - lo) / (hi - lo), 0, 1).astype(np.float32)
    h, w = image.shape
    side = min(h, w)
    square = image[(h - side) // 2:(h - side) // 2 + side, (w - side) // 2:(w - side) // 2 + side]
    lungs = []
    for lung_side, outline in RG1_LUNGS.items():
        field = np.zeros((BASE, BASE), np.float32)
        cv2.fillPoly(field, [np.array(outline, np.int32)], 1.0)
        lungs.append((lung_side, cv2.GaussianBlur(field, (0, 0), 2.0)))
    return cv2.resize(square, (SIZE, SIZE), interpolation=cv2.INTER_AREA), lungs


class _FilmAnatomy:
    """RG1's anatomy for one case: the film deformed (pose, habitus, elastic), with its lung fields."""

    def __init__(self, rng: np.random.Generator):
        film, lungs = _rg1()
        n = BASE
        angle = np.deg2rad(rng.normal(0, 2.5))
        scale, habitus = rng.uniform(0.93, 1.06), rng.uniform(0.94, 1.06)
        shift_u, shift_v = rng.normal(0, 0.02, 2)
        g = (np.arange(n, dtype=np.float32) + 0.5) / n
        self.u, self.v = np.meshgrid(g, g)  # lesions are drawn in the output frame
        cu, cv_ = self.u - 0.5 - shift_u, self.v - 0.5 - shift_v
        su = (np.cos(angle) * cu - np.sin(angle) * cv_) / (scale * habitus) + 0.5
        sv = (np.sin(angle) * cu + np.cos(angle) * cv_) / scale + 0.5
        su = (su + 0.010 * _smooth_noise(rng, (n, n), 40.0)).astype(np.float32)  # a smooth elastic field
        sv = (sv + 0.010 * _smooth_noise(rng, (n, n), 40.0)).astype(np.float32)
        big_u = cv2.resize(su, (SIZE, SIZE), interpolation=cv2.INTER_LINEAR)
        big_v = cv2.resize(sv, (SIZE, SIZE), interpolation=cv2.INTER_LINEAR)
        self.film = cv2.remap(film, big_u * SIZE - 0.5, big_v * SIZE - 0.5, cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REFLECT)
        self.lungs = []
        for side, field in lungs:
            warped = cv2.remap(field, su * n - 0.5, sv * n - 0.5, cv2.INTER_LINEAR, borderValue=0.0)
            ys, xs = np.nonzero(warped > 0.5)
            self.lungs.append(dict(side=side, field=warped, cx=(xs.mean() + 0.5) / n, cy=(ys.mean() + 0.5) / n,
                                   au=(xs.max() - xs.min()) / (2 * n), av=(ys.max() - ys.min()) / (2 * n)))
        self.lung = np.clip(self.lungs[0]["field"] + self.lungs[1]["field"], 0, 1)

    @staticmethod
    def collapsed(lung: dict, su: np.ndarray, sv: np.ndarray) -> np.ndarray:
        return cv2.remap(lung["field"], (su * BASE - 0.5).astype(np.float32), (sv * BASE - 0.5).astype(np.float32),
                         cv2.INTER_LINEAR, borderValue=0.0) > 0.5


def _render_film(anatomy: _FilmAnatomy, rng, extra_density: np.ndarray, air: np.ndarray,
                 markings_weight: np.ndarray) -> np.ndarray:
    """The deformed film with its lesions, re-exposed, at SIZE (float in [0, 1]). Where markings vanish (a
    pneumothorax), the film's lung texture is smoothed away."""
    image = anatomy.film.copy()
    vanish = cv2.resize(1.0 - markings_weight, (SIZE, SIZE), interpolation=cv2.INTER_LINEAR)
    if vanish.max() > 0:
        image = image * (1 - vanish) + cv2.GaussianBlur(image, (0, 0), 6.0) * vanish
    image += cv2.resize(extra_density - air, (SIZE, SIZE), interpolation=cv2.INTER_CUBIC)
    image += 0.015 * cv2.resize(_smooth_noise(rng, (BASE, BASE), 20.0), (SIZE, SIZE))
    gamma = rng.uniform(0.8, 1.25)
    image = np.clip(image, 0, 1) ** gamma
    image = rng.uniform(0.85, 1.1) * image + rng.normal(0.0, 0.03)
    image += rng.uniform(0.008, 0.02) * rng.standard_normal(image.shape).astype(np.float32)
    return np.clip(image, 0, 1)


def _render(anatomy: _Anatomy, rng, extra_density: np.ndarray, air: np.ndarray,
            markings_weight: np.ndarray) -> np.ndarray:
    """Attenuation → display image at SIZE (float in [0, 1])."""
    density = (0.08 + 0.52 * anatomy.body - 0.36 * anatomy.lung * (1 - 0.8 * anatomy.heart)
               + 0.12 * anatomy.heart * anatomy.body + 0.10 * anatomy.spine + 0.16 * anatomy.bones
               + 0.14 * anatomy.markings * markings_weight + extra_density - air)
    density += 0.02 * _smooth_noise(rng, density.shape, 20.0)  # soft-tissue inhomogeneity
    image = cv2.resize(density, (SIZE, SIZE), interpolation=cv2.INTER_CUBIC)
    # Exposure and detector response vary per acquisition.
    gamma = rng.uniform(0.8, 1.25)
    image = np.clip(image, 0, 1) ** gamma
    image = rng.uniform(0.85, 1.1) * image + rng.normal(0.0, 0.03)
    image += rng.uniform(0.008, 0.02) * rng.standard_normal(image.shape).astype(np.float32)
    return np.clip(image, 0, 1)


def _opacity(anatomy: _Anatomy, rng) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """A pneumonia-like opacity at BASE resolution and its box in SIZE pixels."""
    n = BASE
    lung = anatomy.lungs[rng.integers(2)]
    inside = np.argwhere(lung["field"] > 0.9)
    cy, cx = inside[rng.integers(len(inside))] / n
    size = rng.uniform(0.045, 0.09)
    field = np.zeros((n, n), np.float32)
    for _ in range(rng.integers(2, 5)):  # a few merging lobules
        oy, ox = rng.normal(0, size * 0.6, 2)
        sy, sx = size * rng.uniform(0.6, 1.2), size * rng.uniform(0.6, 1.2)
        field += np.exp(-(((anatomy.u - cx - ox) / sx) ** 2 + ((anatomy.v - cy - oy) / sy) ** 2) / 2)
    field = field / field.max()
    texture = 0.65 + 0.35 * np.clip(_smooth_noise(rng, (n, n), 3.0), -2, 2) / 2
    field = (field * texture * np.clip(lung["field"] * 1.2, 0, 1)).astype(np.float32)
    ys, xs = np.nonzero(field > 0.3 * field.max())
    scale = SIZE / n
    x0, y0 = int(xs.min() * scale), int(ys.min() * scale)
    x1, y1 = int((xs.max() + 1) * scale), int((ys.max() + 1) * scale)
    return field, (x0, y0, x1 - x0, y1 - y0)


def _pneumothorax(anatomy: _Anatomy, rng) -> tuple[np.ndarray, np.ndarray]:
    """Pneumothorax rim at BASE resolution (float in [0, 1]) and the collapsed-lung pleural line."""
    lung = anatomy.lungs[rng.integers(2)]
    hx, hy = 0.5 + lung["side"] * 0.07, lung["cy"] + 0.02  # collapse towards the hilum
    theta = np.arctan2(anatomy.v - hy, anatomy.u - hx)
    # Irregular collapse: the retained fraction varies smoothly with direction.
    base = rng.uniform(0.62, 0.88)
    wobble = sum(rng.normal(0, 0.05) * np.cos(k * theta + rng.uniform(0, 2 * np.pi)) for k in range(1, 5))
    keep = np.clip(base + wobble, 0.35, 0.95)
    su = hx + (anatomy.u - hx) / keep
    sv = hy + (anatomy.v - hy) / keep
    collapsed = anatomy.collapsed(lung, su, sv)
    lung_mask = lung["field"] > 0.5
    rim = lung_mask & ~collapsed
    # Pneumothorax collects apically and laterally: keep the part above a random level.
    level = lung["cy"] + rng.uniform(-0.05, 0.25) * lung["av"]
    rim &= (anatomy.v < level) | (np.abs(anatomy.u - 0.5) > np.abs(lung["cx"] - 0.5) + lung["au"] * 0.5)
    rim = cv2.morphologyEx(rim.astype(np.uint8), cv2.MORPH_OPEN, np.ones((5, 5), np.uint8))
    edge = cv2.morphologyEx(collapsed.astype(np.uint8), cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8))
    pleural_line = (edge.astype(bool) & cv2.dilate(rim, np.ones((5, 5), np.uint8)).astype(bool))
    return rim.astype(np.float32), cv2.GaussianBlur(pleural_line.astype(np.float32), (0, 0), 0.8)


def _distractor(anatomy: _Anatomy, rng) -> np.ndarray:
    """A non-pneumonia finding (device, button, nodule) for the 'Not Normal' negatives."""
    n = BASE
    field = np.zeros((n, n), np.float32)
    for _ in range(rng.integers(1, 4)):
        c = (int(rng.uniform(0.2, 0.8) * n), int(rng.uniform(0.15, 0.75) * n))
        cv2.circle(field, c, int(rng.uniform(0.008, 0.02) * n), 1.0, -1, cv2.LINE_AA)
    return cv2.GaussianBlur(field, (0, 0), 1.0)


def make_case(seed: int, kind: str, positive: bool, not_normal: bool = False,
              anatomy: str = "phantom") -> PhantomCase:
    """One radiograph. ``kind`` is 'rsna' (opacities, boxes) or 'siim' (pneumothorax, mask); ``anatomy`` one
    of :data:`ANATOMIES`."""
    if anatomy not in ANATOMIES:
        raise ValueError(f"unknown anatomy {anatomy!r}; choose one of {ANATOMIES}")
    rng = np.random.default_rng(seed)
    render = _render_film if anatomy == "rg1" else _render
    # RG1's own lung texture (and its nodules) hides faint opacities more than the phantom's: denser ones
    density = (0.32, 0.52) if anatomy == "rg1" else (0.22, 0.40)
    anatomy = _FilmAnatomy(rng) if anatomy == "rg1" else _Anatomy(rng)
    zeros = np.zeros((BASE, BASE), np.float32)
    extra, air, markings = zeros.copy(), zeros.copy(), np.ones_like(zeros)
    boxes: list[tuple[int, int, int, int]] = []
    mask = None
    category = "Normal"
    if kind == "rsna":
        if positive:
            category = "Lung Opacity"
            for _ in range(rng.choice([1, 2, 3], p=[0.55, 0.35, 0.10])):
                field, box = _opacity(anatomy, rng)
                extra += rng.uniform(*density) * field
                boxes.append(box)
        elif not_normal:
            category = "No Lung Opacity / Not Normal"
            extra += 0.3 * _distractor(anatomy, rng)
    elif kind == "siim":
        if positive:
            category = "Pneumothorax"
            rim, line = _pneumothorax(anatomy, rng)
            soft_rim = cv2.GaussianBlur(rim, (0, 0), 1.5)
            air += rng.uniform(0.025, 0.06) * soft_rim
            markings = 1.0 - soft_rim
            extra += rng.uniform(0.03, 0.06) * line
            mask = cv2.resize(rim, (SIZE, SIZE), interpolation=cv2.INTER_LINEAR) > 0.5
    else:
        raise ValueError(f"unknown phantom kind {kind!r}")
    image = render(anatomy, rng, extra, air, markings)
    return PhantomCase(image=(image * 255 + 0.5).astype(np.uint8), boxes=boxes, mask=mask,
                       label=int(positive), category=category, sex=str(rng.choice(["M", "F"])),
                       age=int(rng.integers(18, 90)), view=str(rng.choice(["PA", "AP"], p=[0.6, 0.4])))
