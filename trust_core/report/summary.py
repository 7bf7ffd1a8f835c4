"""What a run's ``summary.json`` says, as the scorecard, the reports and the exports show it: the
method × criterion table and the provenance line."""
from __future__ import annotations

from ..saliency import METHODS


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
    if summary.get("map_storage"):
        from ..cache.codec import storage_note

        parts.append("maps: " + storage_note(summary["map_storage"], summary.get("maps_kept")))
    return " · ".join(parts)


def scorecard_table(summary: dict, kind: str):
    """Method × criterion scorecard: our value, CI, baseline, verdict (pass / fail / inconclusive) and why an
    inconclusive one is (``why``: too few paired images, no baseline, a CI across 0), the paper's point rule,
    why the two differ where they do (``versus_paper``) and the paper's value."""
    import pandas as pd

    from ..evaluate.paper import paper_value
    from ..evaluate.verdicts import baseline_of, paired_n, paper_rule_text, verdict_reason, verdict_vs_paper

    rows = []
    for criterion, block in summary["criteria"].items():
        for method, entry in block["methods"].items():
            if entry is None:
                continue
            baseline = baseline_of(entry)
            rows.append({"criterion": criterion, "method": method, "label": METHODS[method].label,
                         "metric": block["metric"], "value": entry["mean"], "ci_low": entry["ci_low"],
                         "ci_high": entry["ci_high"], "n": paired_n(entry), "excluded": entry["excluded"],
                         "baseline": baseline, "baseline_high": entry.get("baseline_high"),
                         "verdict": entry.get("verdict"), "why": verdict_reason(criterion, entry),
                         "paper_rule": entry.get("paper_rule"), "paper_rule_text": paper_rule_text(entry),
                         "versus_paper": verdict_vs_paper(entry),
                         "difference": entry.get("difference"), "difference_ci": entry.get("difference_ci"),
                         "paper": paper_value(criterion, kind, method)})
    return pd.DataFrame(rows)
