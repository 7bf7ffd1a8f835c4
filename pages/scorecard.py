"""Scorecard: method × criterion, with CI, baselines, pass/fail and the paper's value beside ours."""

import pandas as pd
import streamlit as st

from trust_core.evaluate import CRITERIA, EVAL_CODE_VERSION
from trust_core.evaluate.paper import SOURCE
from trust_core.evaluate.verdicts import SMALL_SAMPLE_N, VERDICT_MARKS, VERDICT_VS_PAPER
from trust_core.metrics.stats import MIN_PAIRED_N
from trust_core.report import VERDICT_COLOURS, provenance_line, scorecard_table
from ui.frame import fast_distance_text, friendly_errors, run_page
from ui.widgets import extended_toggle, figure_downloads, shown_criteria, shown_methods
from ui.state import finding, focus_metrics, focus_randomization, kind, open_image, workspace
from ui.pages import goto




def verdict_style(verdict) -> str:
    """A coloured chip for a verdict cell: green pass, red fail, amber inconclusive."""
    background, text = VERDICT_COLOURS.get(verdict, ("#eeeeee", "#333333"))
    return f"background-color: {background}; color: {text}; font-weight: 600"


def forest(sub, block: dict, criterion: str) -> None:
    """A forest plot of one criterion in two panels on one method axis. Left: per method our mean and its
    95 % CI, the baseline(s) and the paper's value. Right: the paired per-image difference ours − baseline
    and its 95 % CI against 0, coloured by verdict: what the verdict reads (the left panel's CI leaves out
    the baseline's own spread over the images, so it may lie clear of the baseline where the verdict is
    inconclusive)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    figure = make_subplots(rows=1, cols=2, shared_yaxes=True, column_widths=[0.55, 0.45], horizontal_spacing=0.04,
                           subplot_titles=("ours [95 % CI], baseline, paper", "ours − baseline, paired [95 % CI]"))
    figure.add_trace(go.Scatter(
        x=sub.value, y=sub.label, mode="markers", name="ours", marker=dict(size=9, color="#334155"),
        error_x=dict(type="data", symmetric=False, array=sub.ci_high - sub.value, arrayminus=sub.value - sub.ci_low,
                     thickness=2)), row=1, col=1)
    high = "baseline_high" in sub and sub.baseline_high.notna().any()
    baseline = sub[sub.baseline.notna()]
    if len(baseline):
        figure.add_trace(go.Scatter(x=baseline.baseline, y=baseline.label, mode="markers",
                                    name="baseline (low)" if high else "baseline",
                                    marker=dict(symbol="line-ns", size=18, line=dict(width=3, color="orange"))),
                         row=1, col=1)
    if high:
        top = sub[sub.baseline_high.notna()]
        figure.add_trace(go.Scatter(x=top.baseline_high, y=top.label, mode="markers", name="baseline (high: localizer)",
                                    marker=dict(symbol="line-ns", size=18, line=dict(width=3, color="#15803d"))),
                         row=1, col=1)
    paper = sub[sub.paper.map(lambda v: isinstance(v, float))]
    if len(paper):
        figure.add_trace(go.Scatter(x=paper.paper.astype(float), y=paper.label, mode="markers", name="paper",
                                    marker=dict(symbol="diamond", size=10, color="black")), row=1, col=1)
    paired = sub[sub.difference.notna() & sub.difference_ci.map(lambda ci: ci is not None and not pd.isna(ci).any())]
    for verdict, part in paired.groupby("verdict"):
        low, high_ci = part.difference_ci.map(lambda ci: ci[0]), part.difference_ci.map(lambda ci: ci[1])
        figure.add_trace(go.Scatter(
            x=part.difference, y=part.label, mode="markers", name=verdict,
            marker=dict(size=10, color=VERDICT_MARKS.get(verdict)),
            error_x=dict(type="data", symmetric=False, array=high_ci - part.difference,
                         arrayminus=part.difference - low, thickness=2)), row=1, col=2)
    figure.add_vline(x=0, line=dict(color="#64748b", dash="dot"), row=1, col=2)
    figure.update_xaxes(title_text=block["metric"], row=1, col=1)
    figure.update_xaxes(title_text="difference (the verdict)", row=1, col=2)
    figure.update_annotations(font_size=11)
    figure.update_layout(height=125 + 28 * len(sub), margin=dict(t=48, b=30, l=10, r=10),  # titles below the modebar
                         yaxis=dict(autorange="reversed"), legend=dict(orientation="h", y=-0.3, font=dict(size=10)))
    st.plotly_chart(figure, width="stretch", key=f"forest_{criterion}")


def open_at(ws, criterion: str, row) -> None:
    """A chosen scorecard row opens its method on the image it scored worst on for this criterion: in the
    explorer, or for a randomization criterion in the cascade at the state it was scored at; or its criterion
    first on Metrics."""
    spec = CRITERIA[criterion]
    worst, state = None, None
    with friendly_errors():
        table = ws.table(kind(), spec.table)
    if table is not None and "state_index" in table:  # randomization: scored at the fully randomized state
        state = int(table.state_index.max())
        table = table[table.state_index == state]
    if table is not None and spec.column in table and len(table[table.method == row.method]):
        mine = table[table.method == row.method].groupby("image_id")[spec.column].mean()
        worst = mine.idxmin() if spec.higher_is_better else mine.idxmax()
    c1, c2 = st.columns(2)
    where = (f"🎲 {row.label} in the cascade at state {state}" if state is not None
             else f"🔎 {row.label} in the explorer")
    if c1.button(where + (" (its worst image here)" if worst is not None else ""), key=f"open_explorer_{criterion}"):
        open_image(worst, row.method)
        if state is not None:
            focus_randomization(row.method, state)
            goto("randomization")
        goto("explorer")
    if c2.button(f"📊 {spec.label} on Metrics", key=f"open_metrics_{criterion}"):
        focus_metrics(criterion)
        goto("metrics")


def render() -> None:
    st.title("Can these saliency maps be trusted?")
    st.caption("Four trust criteria of Arun et al., Radiology: AI 2021 — localization utility, sensitivity to "
               "model randomization, repeatability, reproducibility — each against its baseline; the toggle adds "
               "the field's newer tests and methods where the run scored them.")
    extended_toggle()
    with friendly_errors():
        ws = workspace()
        results = ws.results(kind(), finding())
        config = ws.results_config(kind())

    if results is None:
        stored = ws.results_finding(kind())
        if stored and finding() and stored != finding():
            st.info(f"The {kind().upper()} results of this workspace are for **{stored}**: choose it as the finding "
                    f"in the sidebar, or evaluate {finding()} on the **Runs** page.")
        else:
            st.info(f"No evaluation results for {kind().upper()} yet: start one on the **Runs** page, or run "
                    "`trust demo`.")
        st.stop()

    if results.get("code_version") != EVAL_CODE_VERSION:
        st.warning(f"These results were scored by older evaluation code ({results.get('code_version', 'evaluate-1')}; "
                   f"now {EVAL_CODE_VERSION}: each criterion on the map form its authors score, randomized states "
                   "explaining the trained model's class, 10,000 bootstrap resamples, mIoU binarized with >). "
                   "Rerun the evaluation on the **Runs** page (or `trust demo`).", icon="⚠️")
    preset = results["preset"]
    if not results.get("preset_is_paper"):
        st.warning(f"These results use the **{preset}** preset, not the paper's (arun2021): fewer noise samples "
                   "and integration steps. Rerun with arun2021 for numbers comparable to the paper. "
                   + fast_distance_text(ws.root), icon="⚠️")
    models = ", ".join(f"{m['arch']} (seed {m['meta'].get('seed')})" for m in config["models"]) if config else "?"
    shown = kind().upper() + (f" — {results['dataset']['finding']}" if results.get("dataset", {}).get("finding") else "")
    st.markdown(f"**Dataset** {shown} · **models** {models} · **preset** {preset} · "
                f"{results['stats']['image_maps']} image-states")
    st.caption(provenance_line(results) + f" · a verdict needs at least {results.get('verdict_min_n', MIN_PAIRED_N)} "
               "paired images; fewer, or no baseline, reads inconclusive (the table says why)")

    with st.expander("Verdict and paper rule: why they can differ"):
        st.markdown(VERDICT_VS_PAPER + " Each row says where its two differ (column *verdict vs paper rule*).")
    table = scorecard_table(results, kind())
    shown = shown_criteria(results["criteria"])
    if len(table):
        table = table[table.method.isin(shown_methods(set(table.method))) & table.criterion.isin(shown)]
    per_row = 4
    cols = [c for start in range(0, len(shown), per_row) for c in st.columns(per_row)]
    for col, criterion in zip(cols, shown):
        sub = table[table.criterion == criterion]
        counts = sub.verdict.value_counts() if len(sub) else {}
        col.metric(CRITERIA[criterion].label, f"{counts.get('pass', 0)}/{len(sub)} pass" if len(sub) else "n/a",
                   help=results["criteria"].get(criterion, {}).get("rule", ""))
        if len(sub):
            block = results["criteria"].get(criterion, {})
            col.caption(f"{counts.get('fail', 0)} fail · {counts.get('inconclusive', 0)} inconclusive · "
                        f"n = {block.get('n_images', '?')} images")

    def cell(row) -> str:
        return f"{row.value:.3f} [{row.ci_low:.2f}–{row.ci_high:.2f}]"

    if len(table):
        table["ours"] = table.apply(cell, axis=1)
        table["paper_text"] = table.paper.map(lambda v: "—" if v is None or (isinstance(v, float) and pd.isna(v))
                                              else (f"{v:.3f}" if isinstance(v, float) else str(v)))
        table["baseline_text"] = table.apply(
            lambda r: "—" if r.baseline is None or pd.isna(r.baseline) else f"{r.baseline:.3f}" + (
                f" / {r.baseline_high:.3f}" if r.baseline_high is not None and not pd.isna(r.baseline_high) else ""),
            axis=1)
        table["difference_text"] = table.difference_ci.map(
            lambda ci: "—" if ci is None or any(pd.isna(v) for v in ci) else f"[{ci[0]:+.3f}, {ci[1]:+.3f}]")
        for criterion in shown:
            sub = table[table.criterion == criterion]
            if not len(sub):
                continue
            block = results["criteria"][criterion]
            st.subheader(f"{CRITERIA[criterion].label} — {block['metric']} (n = {block['n_images']})")
            st.caption(f"Verdict — {block['rule'].rstrip('.')}. Paper rule — {block.get('paper_rule', '—')}."
                       + (f" Scored on {block['scored_maps_note']}." if block.get("scored_maps_note") else "")
                       + (f" Randomized states: {block['explained_class']}." if block.get("explained_class") else ""))
            small = sub[sub.n.notna() & (sub.n < SMALL_SAMPLE_N)]
            if len(small):
                st.warning(f"Small sample: {len(small)} of {len(sub)} verdicts rest on fewer than {SMALL_SAMPLE_N} "
                           f"paired images (n = {int(small.n.min())}"
                           + (f"–{int(small.n.max())}" if small.n.max() != small.n.min() else "")
                           + "). Their intervals are wide; more images may change them.", icon="⚠️")
            # ours, the paper's value, the baseline and the paired CI first (the reading); then why and how
            view = sub[["label", "verdict", "ours", "paper_text", "baseline_text", "difference_text", "n", "why",
                        "paper_rule_text", "versus_paper", "excluded"]].rename(columns={
                "label": "method", "ours": "ours [95% CI]", "baseline_text": "baseline (low / high)"
                if criterion == "utility" else "baseline", "difference_text": "95% CI of ours − baseline",
                "paper_rule_text": "paper rule", "paper_text": "paper", "excluded": "flagged", "n": "n (paired)",
                "versus_paper": "verdict vs paper rule",
                "why": "why inconclusive"})
            event = st.dataframe(view.style.map(verdict_style, subset=["verdict"]), hide_index=True, width="stretch",
                                 on_select="rerun", selection_mode="single-row", key=f"scorecard_{criterion}")
            rows = event.selection.rows if event and event.selection else []
            if rows and rows[0] < len(sub):
                open_at(ws, criterion, sub.iloc[rows[0]])
            forest(sub, block, criterion)
            figure_downloads(ws, f"forest_{criterion}", f"forest_{criterion}")
        st.caption(f"Paper values: {SOURCE}. Randomization in the paper is reported as pass/fail.")

    with st.expander("Datasets and models in this workspace"):
        for entry in ws.index():
            if entry["dataset"] == kind():
                score = (f"test AUC {entry['test_auc']:.3f}" if entry.get("test_auc") is not None
                         else f"val Dice {entry.get('val_dice', 0):.3f}")
                st.markdown(f"- `{entry['file']}` — {entry['arch']}, seed {entry['seed']}, {entry['role']}, {score}")
        summary = ws.dataset(kind(), finding=finding()).summary()
        st.json(summary["per_split"])
        if summary["skipped"]:
            st.caption("Skipped while reading: " + ", ".join(f"{n} {why}" for why, n in summary["skipped"].items()))


run_page(__file__, render)
