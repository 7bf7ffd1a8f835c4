"""Per-image and cohort reports (HTML and PDF), de-identified by default. No UI code here.

A per-image report holds the image with its ground truth, every map overlaid, the metrics table
(AUPRC per method, flags), every method parameter, and the model and dataset provenance. Patient
identifiers (name, id, birth date, accession number, institution, dates) appear only when
``include_identifiers=True``; otherwise the image is named by a pseudonym derived from its id.
"""
from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import html
import io
import json
import zipfile
from dataclasses import dataclass, field

import numpy as np

from ..data.dicom import read_dicom
from ..data.transforms import crop, crop_window
from ..errors import DicomError
from ..metrics import auprc
from ..models.info import info_of
from ..saliency import METHODS, PRESETS
from .render import overlay, to_png


def pseudonym(image_id: str) -> str:
    return "img-" + hashlib.sha256(image_id.encode()).hexdigest()[:10]


@dataclass
class ImageReport:
    title: str
    image: np.ndarray  # display image [0, 1]
    mask: np.ndarray | None
    boxes: list
    maps: dict[str, np.ndarray]
    metrics: list[dict]  # one row per method
    params: dict
    provenance: dict
    identifiers: dict = field(default_factory=dict)
    created: str = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))

    def panels(self) -> list[tuple[str, bytes]]:
        """(caption, PNG) for the image with its ground truth, then each method's overlay."""
        size = next(iter(self.maps.values())).shape[0] if self.maps else self.image.shape[0]
        out = [("X-ray + ground truth", to_png(overlay(self.image, None, mask=self.mask, boxes=self.boxes,
                                                          size=size)))]
        for method, saliency in self.maps.items():
            out.append((METHODS[method].label, to_png(overlay(self.image, saliency, mask=self.mask,
                                                               boxes=self.boxes, size=size))))
        return out


def build_image_report(workspace, kind: str, image_id: str, model_name: str, *, methods=None,
                       preset: str = "fast", include_identifiers: bool = False, finding: str | None = None,
                       **overrides) -> ImageReport:
    """Compute (or fetch from the cache) every map of one dataset image and assemble its report."""
    dataset = workspace.dataset(kind, finding=finding)
    result = workspace.maps(kind, [image_id], model_name, methods=methods, preset=preset, finding=finding,
                            **overrides)
    size = next(iter(result.values())).shape[1]
    framing = workspace.framing(model_name)  # the part of the film under the maps
    mask = dataset.mask(image_id, size, framing)
    rows = []
    for method, maps in result.items():
        value = None
        if result.flags[method][0] is None and mask.any():
            value = auprc(maps[0], mask)
        rows.append({"method": METHODS[method].label, "key": method, "auprc": value,
                     "flag": result.flags[method][0] or ""})
    identifiers = {}
    record = dataset.record(image_id)
    if include_identifiers:
        identifiers["image_id"] = image_id
        try:
            identifiers.update(read_dicom(record.path, include_identifiers=True).identifiers)
        except DicomError:
            pass
    model = workspace.model(model_name)
    provenance = {
        "dataset": kind.upper(), "dataset_fingerprint": dataset.fingerprint, "label": dataset.label(image_id),
        "split": dataset.splits[image_id], "model": model_name, "architecture": info_of(model).name,
        "model_seed": info_of(model).meta.get("seed"), "model_test_auc": info_of(model).meta.get("test_auc"),
        "explained_class": f"{int(result.targets[0])} ({workspace.class_name(model_name, int(result.targets[0]))})", "preset": f"{preset} — {PRESETS[preset].label}",
        "ground_truth": f"{dataset.mask_rule} rule" + (f"; RSNA classes {', '.join(dataset.classes)}"
                                                        if getattr(dataset, "classes", None) else "")
        + (f"; finding {dataset.finding}, negatives {dataset.negatives}" if getattr(dataset, "finding", None) else "")
        + (f", readers {dataset.readers}" if getattr(dataset, "readers", None) else ""),
        "gradcam_upsampling": result.params["gradcam_interpolation"],
        "xrai_postprocess": result.params["xrai_postprocess"],
    }
    if not PRESETS[preset].paper:
        from ..bench_presets import read_preset_fidelity

        figures = read_preset_fidelity(workspace.root)
        provenance["preset_distance"] = (
            f"not the paper's preset; SSIM of its maps to arun2021's ≥ {figures['fast_min_ssim']:.2f} per method, "
            f"{100 * figures['verdict_agreement']:.0f} % of verdicts agree (trust bench presets)"
            if figures and figures.get("fast_min_ssim") is not None and figures.get("verdict_agreement") is not None
            else "not the paper's preset; its distance from arun2021 is not measured here (trust bench presets)")
    title = image_id if include_identifiers else pseudonym(image_id)
    half = crop_window(dataset.native_shape(image_id), framing)[2] // 2
    return ImageReport(title=title, image=dataset.image(image_id, half, framing),
                       mask=crop(dataset.native_mask(image_id), framing)[::2, ::2],
                       boxes=dataset.boxes(image_id, half, framing), maps={m: v[0] for m, v in result.items()},
                       metrics=rows, params={k: v for k, v in result.params.items()}, provenance=provenance,
                       identifiers=identifiers)


def _fmt(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def render_html(report: ImageReport) -> str:
    """A self-contained HTML page (images embedded)."""
    esc = lambda v: html.escape(_fmt(v))
    panels = "".join(
        f'<figure><img src="data:image/png;base64,{base64.b64encode(png).decode()}" alt="{esc(caption)}">'
        f"<figcaption>{esc(caption)}</figcaption></figure>" for caption, png in report.panels())
    metrics = "".join(f"<tr><td>{esc(r['method'])}</td><td>{esc(r['auprc'])}</td><td>{esc(r['flag'])}</td></tr>"
                      for r in report.metrics)
    params = "".join(f"<tr><td>{esc(k)}</td><td>{esc(v)}</td></tr>" for k, v in sorted(report.params.items()))
    prov = "".join(f"<tr><td>{esc(k)}</td><td>{esc(v)}</td></tr>" for k, v in report.provenance.items())
    ids = ("<h2>Patient identifiers (included on request)</h2><table>" + "".join(
        f"<tr><td>{esc(k)}</td><td>{esc(v)}</td></tr>" for k, v in report.identifiers.items()) + "</table>"
           if report.identifiers else "<p><em>De-identified report: no patient identifiers.</em></p>")
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Saliency report {esc(report.title)}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;color:#222}}figure{{display:inline-block;margin:4px;
text-align:center}}img{{width:220px;image-rendering:pixelated}}table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:3px 8px;font-size:90%}}</style></head><body>
<h1>Saliency report — {esc(report.title)}</h1><p>Created {esc(report.created)} by Saliency Trust Explorer.</p>
{ids}<h2>Maps</h2>{panels}
<h2>Metrics</h2><table><tr><th>method</th><th>AUPRC</th><th>flag</th></tr>{metrics}</table>
<h2>Provenance</h2><table>{prov}</table><h2>Method parameters</h2><table>{params}</table>
<p>Protocol: Arun et al., Radiology: AI 2021. Ground truth drawn in cyan.</p></body></html>"""


def render_pdf(report: ImageReport) -> bytes:
    """A PDF with the same content as the HTML report (fpdf2)."""
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(True, margin=12)
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 15)
    pdf.cell(0, 9, _latin(f"Saliency report - {report.title}"), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=9)
    pdf.cell(0, 5, _latin(f"Created {report.created} by Saliency Trust Explorer"), new_x="LMARGIN", new_y="NEXT")
    if report.identifiers:
        pdf.set_font("Helvetica", "B", 10)
        pdf.cell(0, 6, "Patient identifiers (included on request)", new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", size=9)
        for k, v in report.identifiers.items():
            pdf.cell(0, 5, _latin(f"{k}: {_fmt(v)}"), new_x="LMARGIN", new_y="NEXT")
    else:
        pdf.cell(0, 5, "De-identified report: no patient identifiers.", new_x="LMARGIN", new_y="NEXT")
    x0, y0, w = 10, pdf.get_y() + 2, 45
    for k, (caption, png) in enumerate(report.panels()):
        col, row = k % 4, k // 4
        x, y = x0 + col * (w + 3), y0 + row * (w + 9)
        pdf.image(io.BytesIO(png), x=x, y=y, w=w, h=w)
        pdf.set_xy(x, y + w)
        pdf.cell(w, 5, _latin(caption), align="C")
    pdf.set_y(y0 + ((len(report.maps) + 1 + 3) // 4) * (w + 9) + 2)
    _table(pdf, "Metrics", [("method", "AUPRC", "flag")] +
           [(r["method"], _fmt(r["auprc"]), r["flag"][:60]) for r in report.metrics], (45, 25, 120))
    _table(pdf, "Provenance", [(k, _fmt(v)) for k, v in report.provenance.items()], (50, 140))
    _table(pdf, "Method parameters", [(k, _fmt(v)) for k, v in sorted(report.params.items())], (50, 140))
    return bytes(pdf.output())


def _latin(text: str) -> str:
    return str(text).replace("—", "-").replace("–", "-").replace("×", "x").replace("≥", ">=").replace(
        "≤", "<=").replace("σ", "sigma").replace("α", "alpha").replace("∂", "d").encode("latin-1", "replace").decode("latin-1")


def _table(pdf, title: str, rows: list[tuple], widths: tuple) -> None:
    pdf.set_font("Helvetica", "B", 10)
    pdf.cell(0, 7, title, new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=8)
    for row in rows:
        for text, width in zip(row, widths):
            pdf.cell(width, 5, _latin(text)[:90], border=1)
        pdf.ln()


def cohort_archive(workspace, kind: str, *, include_identifiers: bool = False) -> bytes:
    """A ZIP of the cohort results: per-image tables (CSV + Parquet), summary, configuration, scorecard.

    Image ids (the dataset's file keys, which in some datasets are patient or accession numbers) are
    replaced by their pseudonyms everywhere in the archive unless ``include_identifiers``.
    """
    import pandas as pd

    folder = workspace.layout.results(kind)
    if not (folder / "summary.json").is_file():
        raise FileNotFoundError(f"no evaluation results for {kind} in {workspace.root}")
    tables = {p.stem: pd.read_parquet(p) for p in sorted(folder.glob("*.parquet")) if not p.name.startswith(".")}
    ids = set()
    for table in tables.values():
        if "image_id" in table:
            ids |= set(table["image_id"].astype(str))
    if not include_identifiers:
        for table in tables.values():
            if "image_id" in table:
                table["image_id"] = table["image_id"].astype(str).map(pseudonym)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, table in tables.items():
            archive.writestr(f"{kind}/{name}.csv", table.to_csv(index=False))
            parquet = io.BytesIO()
            table.to_parquet(parquet, index=False)
            archive.writestr(f"{kind}/{name}.parquet", parquet.getvalue())
        for path in sorted(folder.glob("*.json")):
            if path.name.startswith("."):
                continue
            payload = json.loads(path.read_text())
            if not include_identifiers:
                payload = _replace_ids(payload, ids)
            archive.writestr(f"{kind}/{path.name}", json.dumps(payload, indent=2))
        archive.writestr(f"{kind}/scorecard.csv", scorecard_table(json.loads((folder / "summary.json").read_text()),
                                                                  kind).to_csv(index=False))
    return buffer.getvalue()


def _replace_ids(value, ids: set[str]):
    """A JSON value with every string that is an image id replaced by its pseudonym."""
    if isinstance(value, dict):
        return {(pseudonym(k) if k in ids else k): _replace_ids(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace_ids(v, ids) for v in value]
    if isinstance(value, str) and value in ids:
        return pseudonym(value)
    return value


def provenance_line(summary: dict) -> str:
    """What decides the numbers beside the method: dataset selection, ground-truth rule and the
    fidelity parameters (one line for the scorecard, reports and exports)."""
    dataset = summary.get("dataset", {})
    params = summary.get("parameters", {})
    parts = []
    if dataset.get("classes") is not None or dataset.get("classes_note"):
        classes = ", ".join(dataset["classes"]) if dataset.get("classes") else "all"
        parts.append(f"classes: {classes} ({dataset.get('classes_note', '')})")
    if dataset.get("finding"):
        parts.append(f"finding: {dataset['finding']} (negatives: {dataset.get('negatives_note') or dataset.get('negatives')}"
                     + (f"; readers: {dataset['readers']}" if dataset.get("readers") else "") + ")")
    if dataset.get("mask_rule"):
        parts.append(f"ground truth: {dataset['mask_rule']} rule")
    if params.get("gradcam_interpolation"):
        parts.append(f"Grad-CAM upsampling: {params['gradcam_interpolation']}")
    if params.get("xrai_postprocess"):
        parts.append(f"XRAI post-processing: {params['xrai_postprocess']}")
    if "noise_per_model" in params:
        parts.append("noise drawn per model state" if params["noise_per_model"] else "noise shared by all models")
    if summary.get("data_range") is not None:
        parts.append(f"SSIM data range {summary['data_range']:g}")
    return " · ".join(parts)


def scorecard_table(summary: dict, kind: str):
    """Method × criterion scorecard: our value, CI, baseline, verdict (pass / fail / inconclusive), the
    paper's point rule and the paper's value."""
    import pandas as pd

    from ..evaluate.paper import paper_value

    rows = []
    for criterion, block in summary["criteria"].items():
        for method, entry in block["methods"].items():
            if entry is None:
                continue
            baseline = entry.get("baseline_low", entry.get("baseline"))
            rows.append({"criterion": criterion, "method": method, "label": METHODS[method].label,
                         "metric": block["metric"], "value": entry["mean"], "ci_low": entry["ci_low"],
                         "ci_high": entry["ci_high"], "n": entry["n"], "excluded": entry["excluded"],
                         "baseline": baseline, "baseline_high": entry.get("baseline_high"),
                         "verdict": entry.get("verdict"), "paper_rule": entry.get("paper_rule"),
                         "difference_ci": entry.get("difference_ci"), "paper": paper_value(criterion, kind, method)})
    return pd.DataFrame(rows)
