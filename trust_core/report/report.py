"""Per-image and cohort reports (HTML and PDF), de-identified by default. No UI code here.

A per-image report holds the image with its ground truth, every map overlaid, the metrics table
(AUPRC per method, flags), every method parameter, and the model and dataset provenance. Patient
identifiers (name, id, birth date, accession number, institution, dates) appear only when
``include_identifiers=True``; otherwise the image is named by its keyed pseudonym (``img-`` + 10 hex digits
of HMAC-SHA256 with the workspace's secret key, :mod:`trust_core.pseudonyms`), which the report never holds.
"""
from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..data.dicom import read_dicom
from ..data.transforms import crop
from ..errors import DicomError
from ..evaluate.outputs import read_summary
from ..layout import ANALYSIS_FEATURES
from ..metrics import auprc
from ..metrics.stats import MIN_PAIRED_N
from ..models.info import info_of
from ..prose import explained_sentence, negative_class_warning
from ..pseudonyms import pseudonym, pseudonymizer
from ..saliency import METHODS, PRESETS
from ..saliency.registry import FAST_PRESET
from .render import VERDICT_COLOURS, overlay, rgb, to_jpeg
from .summary import scorecard_table


PANEL_MAX = 1536  # report panels: the film's own resolution up to this many pixels a side


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
    prediction: str = ""  # what the model predicts and which class the maps explain (page 1)
    warnings: list[str] = field(default_factory=list)  # the preset's and the explained class's (page 1)
    verdicts: dict[str, dict[str, str]] = field(default_factory=dict)  # method → criterion label → cohort verdict
    verdict_source: str = ""
    created: str = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))
    _panels: list | None = field(default=None, repr=False, compare=False)

    def panels(self) -> list[tuple[str, bytes]]:
        """(caption, JPEG) for the image with its ground truth, then each method's overlay, at the film's own
        resolution (at most :data:`PANEL_MAX` pixels a side): the map is upsampled onto the film, not the film
        shrunk to the map."""
        height, width = self.image.shape
        scale = min(1.0, PANEL_MAX / max(height, width))
        size = (round(height * scale), round(width * scale))  # the film's own shape
        if self._panels is not None:  # rendered once for the HTML and the PDF alike
            return self._panels
        out = [("X-ray + ground truth", to_jpeg(overlay(self.image, None, mask=self.mask, boxes=self.boxes,
                                                           size=size)))]
        scores = {r["key"]: r["auprc"] for r in self.metrics}
        for method, saliency in self.maps.items():
            caption = METHODS[method].label + (f" - AUPRC {scores[method]:.3f}" if scores.get(method) is not None else "")
            out.append((caption, to_jpeg(overlay(self.image, saliency, mask=self.mask, boxes=self.boxes, size=size))))
        self._panels = out
        return out


def build_image_report(workspace, kind: str, image_id: str, model_name: str, *, methods=None,
                       preset: str = FAST_PRESET, include_identifiers: bool = False, finding: str | None = None,
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
    title = image_id if include_identifiers else pseudonym(image_id, workspace)  # the workspace's key
    output = workspace.prediction(kind, image_id, model_name, finding=finding)
    explained = int(result.targets[0])
    prediction = (f"{model_name} predicts class {output['predicted']}. "
                  + explained_sentence(output, explained, lambda k: workspace.class_name(model_name, k), bold=False,
                                       lead="The maps explain") + f"; ground truth: label {dataset.label(image_id)}.")
    warnings = []
    if not PRESETS[preset].paper:
        warnings.append(f"Preset {PRESETS[preset].label}: {PRESETS[preset].description} "
                        f"{provenance['preset_distance'][0].upper()}{provenance['preset_distance'][1:]}.")
    negative = workspace.negative_class(model_name, len(output["scores"]), output["activation"])
    if explained == negative:
        warnings.append(negative_class_warning(explained, workspace.class_name(model_name, explained), bold=False,
                                               predicted_negative=output["predicted"] == negative))
    verdicts, source = cohort_verdicts(workspace, kind, finding, list(result))
    native = crop(dataset.native_image(image_id), framing)
    return ImageReport(title=title, image=native, mask=crop(dataset.native_mask(image_id), framing),
                       boxes=dataset.boxes(image_id, None, framing), maps={m: v[0] for m, v in result.items()},
                       metrics=rows, params={k: v for k, v in result.params.items()}, provenance=provenance,
                       identifiers=identifiers, prediction=prediction, warnings=warnings, verdicts=verdicts,
                       verdict_source=source)


def cohort_verdicts(workspace, kind: str, finding, methods) -> tuple[dict[str, dict[str, str]], str]:
    """Each method's verdict on every criterion the dataset's evaluation scored (the scorecard's), and a line
    saying where they come from; empty when no evaluation has run."""
    from ..evaluate.criteria import CRITERIA

    results = workspace.results(kind, finding)
    if results is None:
        return {}, f"No evaluation has run for {kind.upper()}: no verdicts (trust evaluate, or the Runs page)."
    table = scorecard_table(results, kind)
    out = {m: {} for m in methods}
    why: dict[str, list[str]] = {}  # criterion label → the reasons its inconclusive verdicts give (once each)
    for row in table.itertuples():
        if row.method in out and row.criterion in CRITERIA and CRITERIA[row.criterion].group == "paper":
            label = CRITERIA[row.criterion].label
            out[row.method][label] = row.verdict or "-"
            if row.verdict == "inconclusive" and row.why and row.why not in why.setdefault(label, []):
                why[label].append(row.why)
    n = {k: b.get("n_images") for k, b in results["criteria"].items()}
    counts = {}  # criterion label → the paired n of its verdicts (one number, or a range across methods)
    for row in table.itertuples():
        if row.criterion in CRITERIA and CRITERIA[row.criterion].group == "paper" and row.n is not None:
            counts.setdefault(CRITERIA[row.criterion].label, set()).add(int(row.n))
    said_n = "; ".join(f"{label} n = {min(v)}" + (f"–{max(v)}" if max(v) != min(v) else "")
                       for label, v in counts.items())
    reasons = "".join(f" {label} inconclusive: {'; '.join(texts)}." for label, texts in why.items() if texts)
    return out, (f"Verdicts are the cohort's ({kind.upper()} evaluation, preset {results.get('preset')}, "
                 f"{n.get('utility', '?')} images for utility): whether each method passes each of Arun et al.'s "
                 f"criteria against its baseline, not a property of this image alone. Paired images per verdict: "
                 f"{said_n}. A verdict needs at least {MIN_PAIRED_N} paired images.{reasons}")


def _fmt(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def _verdict_rows(report: ImageReport) -> tuple[list[str], list[list[str]]]:
    """Page 1's table: per method, this image's AUPRC and flag, then the cohort's verdict per criterion."""
    criteria = list(dict.fromkeys(c for v in report.verdicts.values() for c in v))
    header = ["method", "AUPRC (this image)"] + criteria + ["flag"]
    rows = [[r["method"], _fmt(r["auprc"])] + [report.verdicts.get(r["key"], {}).get(c, "-") for c in criteria]
            + [r["flag"]] for r in report.metrics]
    return header, rows


def render_html(report: ImageReport) -> str:
    """A self-contained HTML page (images embedded at the film's resolution)."""
    esc = lambda v: html.escape(_fmt(v))
    panels = "".join(
        f'<figure><img src="data:image/jpeg;base64,{base64.b64encode(jpeg).decode()}" alt="{esc(caption)}">'
        f"<figcaption>{esc(caption)}</figcaption></figure>" for caption, jpeg in report.panels())
    header, rows = _verdict_rows(report)
    colours = {k: background for k, (background, _text) in VERDICT_COLOURS.items()}
    verdicts = "<tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr>" + "".join(
        "<tr>" + "".join(f'<td style="background:{colours[c]}">{esc(c)}</td>' if c in colours else f"<td>{esc(c)}</td>"
                         for c in row) + "</tr>" for row in rows)
    warnings = "".join(f'<p class="warn">&#9888; {esc(w)}</p>' for w in report.warnings)
    params = "".join(f"<tr><td>{esc(k)}</td><td>{esc(v)}</td></tr>" for k, v in sorted(report.params.items()))
    prov = "".join(f"<tr><td>{esc(k)}</td><td>{esc(v)}</td></tr>" for k, v in report.provenance.items())
    ids = ("<h2>Patient identifiers (included on request)</h2><table>" + "".join(
        f"<tr><td>{esc(k)}</td><td>{esc(v)}</td></tr>" for k, v in report.identifiers.items()) + "</table>"
           if report.identifiers else "<p><em>De-identified report: no patient identifiers.</em></p>")
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Saliency report {esc(report.title)}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1100px}}h1{{overflow-wrap:anywhere}}
.maps{{display:grid;grid-template-columns:repeat(2,1fr);gap:10px}}figure{{margin:0;text-align:center}}
img{{width:100%;height:auto}}table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:3px 8px;font-size:90%;overflow-wrap:break-word}}
.warn{{background:#fdf0c4;border-left:4px solid #b45309;padding:6px 10px}}</style></head><body>
<h1>Saliency report — {esc(report.title)}</h1><p>Created {esc(report.created)} by Saliency Trust Explorer.</p>
{ids}{warnings}<h2>Prediction</h2><p>{esc(report.prediction)}</p>
<h2>Verdicts per method</h2><table>{verdicts}</table><p><small>{esc(report.verdict_source)}</small></p>
<h2>Maps</h2><p><small>Each map over the film at the film's own resolution; ground truth: boxes in green, masks in
cyan.</small></p><div class="maps">{panels}</div>
<h2>Provenance</h2><table>{prov}</table><h2>Method parameters</h2><table>{params}</table>
<p>Protocol: Arun et al., Radiology: AI 2021.</p></body></html>"""


def render_pdf(report: ImageReport) -> bytes:
    """A PDF with the same content as the HTML report (fpdf2): page 1 holds the warnings, the prediction, the
    verdicts per method and the first maps, two to a row at the film's resolution; the provenance follows the
    last map."""
    from fpdf import FPDF
    from fpdf.fonts import FontFace

    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(True, margin=12)
    pdf.add_page()
    width = pdf.epw
    pdf.set_font("Helvetica", "B", 15)
    pdf.multi_cell(width, 8, _latin(f"Saliency report - {report.title}"), new_x="LMARGIN", new_y="NEXT")  # wraps
    pdf.set_font("Helvetica", size=9)
    pdf.cell(0, 5, _latin(f"Created {report.created} by Saliency Trust Explorer"), new_x="LMARGIN", new_y="NEXT")
    if report.identifiers:
        pdf.set_font("Helvetica", "B", 10)
        pdf.cell(0, 6, "Patient identifiers (included on request)", new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", size=9)
        for k, v in report.identifiers.items():
            pdf.multi_cell(width, 5, _latin(f"{k}: {_fmt(v)}"), new_x="LMARGIN", new_y="NEXT")
    else:
        pdf.cell(0, 5, "De-identified report: no patient identifiers.", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)
    for warning in report.warnings:
        pdf.set_fill_color(253, 240, 196)
        pdf.set_font("Helvetica", "B", 9)
        pdf.multi_cell(width, 5, _latin(f"Warning: {warning}"), fill=True, border="L", new_x="LMARGIN",
                       new_y="NEXT", padding=1.5)
        pdf.ln(1.5)
    pdf.set_font("Helvetica", "B", 11)
    pdf.cell(0, 7, "Prediction", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=9)
    pdf.multi_cell(width, 5, _latin(report.prediction), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "B", 11)
    pdf.cell(0, 8, "Verdicts per method", new_x="LMARGIN", new_y="NEXT")
    header, rows = _verdict_rows(report)
    pdf.set_font("Helvetica", size=8)
    widths = [32, 22] + [24] * (len(header) - 3) + [max(20, width - 54 - 24 * (len(header) - 3))]
    with pdf.table(col_widths=widths, width=width, text_align="LEFT", line_height=4.5,
                   headings_style=FontFace(emphasis="BOLD", fill_color=(235, 235, 235))) as table:
        table.row([_latin(h) for h in header])
        for row in rows:
            cells = table.row()
            for text in row:
                style = FontFace(fill_color=rgb(VERDICT_COLOURS[text][0])) if text in VERDICT_COLOURS else None
                cells.cell(_latin(text), style=style)
    pdf.set_font("Helvetica", "I", 8)
    pdf.multi_cell(width, 4, _latin(report.verdict_source), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    gap = 4
    height, width_px = report.image.shape
    side = min((width - gap) / 2, ((pdf.eph - 8) / 3 - 11) * width_px / height)  # two a row, three rows a page
    tall = side * height / width_px  # the film's aspect kept
    panels = report.panels()

    def row_height(row) -> float:  # a row: two panels, their captions wrapped (measured at the captions' font)
        pdf.set_font("Helvetica", size=9)
        return tall + 1 + 4.5 * max(len(pdf.multi_cell(side, 4.5, _latin(c), dry_run=True, output="LINES"))
                                    for c, _ in row) + 4

    # the maps follow the verdicts on page 1 where their heading and a first row fit; else from page 2
    if panels and pdf.get_y() + 7 + row_height(panels[:2]) > pdf.h - pdf.b_margin:
        pdf.add_page()
    pdf.set_font("Helvetica", "B", 11)
    pdf.cell(0, 7, "Maps (each over the film at its own resolution; ground truth: boxes green, masks cyan)",
             new_x="LMARGIN", new_y="NEXT")
    for start in range(0, len(panels), 2):
        row = panels[start:start + 2]
        needed = row_height(row)
        if pdf.get_y() + needed > pdf.h - pdf.b_margin:
            pdf.add_page()
        y = pdf.get_y()
        for col, (caption, jpeg) in enumerate(row):
            x = pdf.l_margin + col * (side + gap)
            pdf.image(io.BytesIO(jpeg), x=x, y=y, w=side, h=tall)
            pdf.set_xy(x, y + tall + 0.5)
            pdf.multi_cell(side, 4.5, _latin(caption), align="C")
        pdf.set_xy(pdf.l_margin, y + needed)
    pdf.ln(2)  # the provenance follows (its tables break across pages where they must)
    _table(pdf, "Provenance", [(k, _fmt(v)) for k, v in report.provenance.items()], (50, width - 50))
    _table(pdf, "Method parameters", [(k, _fmt(v)) for k, v in sorted(report.params.items())], (50, width - 50))
    return bytes(pdf.output())


def _latin(text: str) -> str:
    return str(text).replace("—", "-").replace("–", "-").replace("×", "x").replace("≥", ">=").replace(
        "≤", "<=").replace("σ", "sigma").replace("α", "alpha").replace("∂", "d").encode("latin-1", "replace").decode("latin-1")


def _table(pdf, title: str, rows: list[tuple], widths: tuple) -> None:
    """A titled two-column table whose cells wrap (nothing is cut off)."""
    pdf.set_font("Helvetica", "B", 10)
    pdf.cell(0, 7, title, new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=8)
    with pdf.table(col_widths=widths, width=sum(widths), text_align="LEFT", line_height=4.2,
                   first_row_as_headings=False) as table:
        for row in rows:
            table.row([_latin(text) for text in row])
    pdf.ln(2)


def cohort_results(layout, kind: str) -> Path:
    """The results folder of ``kind`` in the workspace of ``layout`` (a :class:`~trust_core.layout.Layout`),
    refused with what to do where no evaluation's results are there."""
    from ..errors import ConfigError

    folder = layout.results(kind)
    if read_summary(folder) is None:
        raise ConfigError(f"no evaluation results for {kind!r} in {layout.root} ({folder} holds no summary.json): "
                          f"run `trust evaluate … --out {folder}`, or give an evaluation's results to `trust workspace "
                          f"init --results`")
    return folder


def cohort_archive(workspace, kind: str, *, include_identifiers: bool = False, figures: bool = True) -> bytes:
    """A ZIP of the cohort results: per-image tables (CSV + Parquet), summary, configuration, scorecard, the
    failure analysis (``analysis.json`` and its tables, as stored beside the results, or computed for the
    archive when it has not run: nothing is written into the workspace) and the figures for a paper (``figures/``: SVG and PDF, :mod:`trust_core.analysis.figures`; ``figures=False``
    leaves them out, seconds faster).

    Image ids (the dataset's file keys, which in some datasets are patient or accession numbers) are
    replaced by their pseudonyms (keyed with the workspace's secret key, which the archive never holds)
    everywhere in the archive unless ``include_identifiers``.
    """
    import pandas as pd

    folder = cohort_results(workspace.layout, kind)
    summary = read_summary(folder)
    from ..analysis import ANALYSIS_FILE, analyze, read_analysis
    from ..errors import ConfigError

    tables = {p.stem: pd.read_parquet(p) for p in sorted(folder.glob("*.parquet")) if not p.name.startswith(".")}
    analysis = read_analysis(folder)
    if analysis is None:
        try:
            computed = analyze(folder, **workspace.analysis_sources(kind))
        except ConfigError:
            computed = None  # no localization criterion in these results: no failure analysis
        if computed is not None:
            analysis = computed.summary
            tables.update(computed.tables)
    features = tables[ANALYSIS_FEATURES].copy() if ANALYSIS_FEATURES in tables else None
    ids = set()
    for table in tables.values():
        if "image_id" in table:
            ids |= set(table["image_id"].astype(str))
    name = None if include_identifiers else pseudonymizer(workspace)
    if name is not None:
        for table in tables.values():
            if "image_id" in table:
                table["image_id"] = table["image_id"].astype(str).map(name)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for table_name, table in tables.items():
            archive.writestr(f"{kind}/{table_name}.csv", table.to_csv(index=False))
            parquet = io.BytesIO()
            table.to_parquet(parquet, index=False)
            archive.writestr(f"{kind}/{table_name}.parquet", parquet.getvalue())
        for path in sorted(folder.glob("*.json")):
            if path.name.startswith(".") or path.name == ANALYSIS_FILE:  # the analysis: the current one, below
                continue
            payload = json.loads(path.read_text())
            if name is not None:
                payload = _replace_ids(payload, ids, name)
            archive.writestr(f"{kind}/{path.name}", json.dumps(payload, indent=2))
        if analysis is not None:  # stored and of this version, or computed now (a stale file is left out)
            payload = json.loads(json.dumps(analysis, default=str))
            if name is not None:
                payload = _replace_ids(payload, ids, name)
            archive.writestr(f"{kind}/{ANALYSIS_FILE}", json.dumps(payload, indent=2))
        archive.writestr(f"{kind}/scorecard.csv", scorecard_table(summary, kind).to_csv(index=False))
        from ..analysis.figures import drawn_figures

        for name, data in (drawn_figures(folder, analysis=analysis, features=features).items() if figures else ()):
            archive.writestr(f"{kind}/figures/{name}", data)
    return buffer.getvalue()


def _replace_ids(value, ids: set[str], name):
    """A JSON value with every string that is an image id replaced by its pseudonym (``name``)."""
    if isinstance(value, dict):
        return {(name(k) if k in ids else k): _replace_ids(v, ids, name) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace_ids(v, ids, name) for v in value]
    if isinstance(value, str) and value in ids:
        return name(value)
    return value
