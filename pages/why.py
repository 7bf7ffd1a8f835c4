"""Why it fails: each method's localization score against the lesion's geometry and the model's confidence
(CheXlocalize's analysis, `trust analyze`), with the human ceiling where the dataset has several readings; a
click on a point opens that image at that method in the explorer."""
import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from trust_core.analysis import FEATURE_LABELS, FEATURES
from trust_core.analysis.associations import bin_label, ci_excludes_0, rho_text, trend_band
from trust_core.evaluate.criteria import CRITERIA
from trust_core.saliency.registry import method_colour
from ui.frame import friendly_errors, require_results, run_page
from ui.state import kind, open_image, workspace
from ui.widgets import id_namer, method_label, shown_methods
from ui.pages import goto


def rho_styles(rows: list[dict]) -> pd.DataFrame:
    """Blue where ρ's CI lies above 0, red where below, plain where it includes 0 or there is none."""
    colour = {1: "background-color: #dbeafe", -1: "background-color: #fee2e2", 0: ""}
    return pd.DataFrame([{FEATURE_LABELS[f]: colour[ci_excludes_0(rho)] for f, rho in row.items()} for row in rows])


def render() -> None:
    st.title("Why it fails")
    st.caption("When a saliency method localizes badly: each localization score per image against the lesion's "
               "geometry (number of instances, size relative to the film, elongation and irrectangularity of its "
               "minimum-area enclosing rectangle — CheXlocalize, Saporta et al. 2022) and the model's confidence. "
               "ρ: Spearman's rank correlation with its 95 % bootstrap CI over images (blue: the score rises with the "
               "feature, red: it falls; plain: the CI includes 0). No CI below 10 images, nor where one side is "
               "constant in more than 5 % of the bootstrap resamples (a pointing game hit on nearly every image): "
               "the CI over the other resamples would lean away from 0.")
    require_results()
    with friendly_errors():
        ws = workspace()
        analysis = ws.analysis(kind())
    if analysis is None:
        st.info("The failure analysis of these results has not run yet: it reads the stored tables and the ground "
                "truth (seconds; `trust analyze --run DIR` does the same).")
        if st.button("Analyze these results", type="primary"):
            with st.spinner("Measuring lesions and reading the model's confidence…"), friendly_errors():
                ws.analysis(kind(), compute=True)
            st.rerun()
        st.stop()
    criteria = list(analysis["criteria"])
    c1, c2 = st.columns(2)
    criterion = c1.selectbox("Criterion", criteria, format_func=lambda c: CRITERIA[c].label, key="why_criterion")
    feature = c2.selectbox("Feature", list(FEATURES), format_func=lambda f: FEATURE_LABELS[f], key="why_feature",
                           help="; ".join(f"{FEATURE_LABELS[k]}: {v}" for k, v in FEATURES.items()))
    block = analysis["criteria"][criterion]
    methods = shown_methods(set(block["methods"]))
    ceiling = analysis["ceiling"].get("by_criterion", {}).get(criterion)
    tests = analysis.get("tests", {})
    st.caption(f"{analysis['n_images']} images · confidence: {analysis['confidence']} · {analysis['ceiling']['note']}"
               + (f" · {tests['associations']} associations tested: {tests['ci_excludes_0']} with a 95 % CI excluding "
                  f"0, {tests['holm_below_0.05']} below 0.05 after Holm's adjustment (many tests: read single CIs "
                  f"with care)" if tests else ""))

    rows, spearman = [], []
    for method in methods:
        entry = block["methods"][method]
        row = {"method": method_label(method), "n": entry["n"], "mean": f"{entry['mean']:.3f}"}
        row.update({FEATURE_LABELS[f]: rho_text(entry["spearman"][f]) for f in FEATURES})
        spearman.append({f: entry["spearman"][f] for f in FEATURES})
        if "ceiling" in entry:
            c = entry["ceiling"]
            row["− human ceiling [95% CI]"] = f"{c['difference']:+.3f} [{c['ci_low']:+.3f}, {c['ci_high']:+.3f}]"
        rows.append(row)
    table = pd.DataFrame(rows)
    styles = rho_styles(spearman)
    st.dataframe(table.style.apply(lambda _: styles, axis=None, subset=list(styles.columns)) if rows else table,
                 hide_index=True, width="stretch")

    scores = ws.table(kind(), CRITERIA[criterion].table)
    features = ws.table(kind(), "analysis_features")
    if scores is None or features is None:
        st.warning("The analysis tables are missing beside the results: rerun the analysis (`trust analyze`).")
        st.stop()
    features = features.set_index("image_id")
    shown_as = id_namer()
    figure = go.Figure()
    for method in methods:
        colour = method_colour(method)
        part = scores[scores.method == method].groupby("image_id")[block["column"]].mean()
        frame = features.join(part.rename("score"), how="inner").dropna(subset=[feature, "score"])
        figure.add_trace(go.Scatter(
            x=frame[feature], y=frame.score, mode="markers", name=method_label(method), marker=dict(color=colour),
            customdata=[[shown_as(i), method] for i in frame.index],
            hovertemplate="image %{customdata[0]}<br>" + FEATURE_LABELS[feature] + " %{x:.3g}<br>score %{y:.3f}"
                          "<extra>" + method_label(method) + "</extra>"))
        if len(frame):
            xs = np.linspace(frame[feature].min(), frame[feature].max(), 30)
            band = trend_band(frame[feature], frame.score, xs)
            if band is not None:  # the least-squares trend with the 95 % CI of its mean
                fit, low, high = band
                figure.add_trace(go.Scatter(x=np.concatenate([xs, xs[::-1]]), y=np.concatenate([high, low[::-1]]),
                                            fill="toself", fillcolor=colour, opacity=0.12, line=dict(width=0),
                                            showlegend=False, hoverinfo="skip"))
                figure.add_trace(go.Scatter(x=xs, y=fit, mode="lines", showlegend=False,
                                            line=dict(width=1, color=colour), hoverinfo="skip"))
    if ceiling:
        figure.add_hrect(y0=ceiling["ci_low"], y1=ceiling["ci_high"], fillcolor="#15803d", opacity=0.15,
                         line_width=0, annotation_text=f"human ceiling {ceiling['mean']:.3f} (n = {ceiling['n']})")
    if feature == "instances":  # a count: whole-number ticks
        figure.update_xaxes(dtick=1, tickformat="d")
    figure.update_layout(height=460, margin=dict(t=30, b=10), xaxis_title=FEATURE_LABELS[feature],
                         title=dict(text="lines: least-squares trend with the 95 % CI of its mean", font=dict(size=12)),
                         yaxis_title=f"{block['label']}: {block['metric']}", legend=dict(orientation="h", y=-0.2))
    event = st.plotly_chart(figure, width="stretch", on_select="rerun", selection_mode="points", key="why_scatter")
    points = (event or {}).get("selection", {}).get("points", [])
    if points and points[0].get("customdata"):  # a point opens its image at its method in the explorer
        shown, method = points[0]["customdata"][:2]
        open_image({shown_as(i): i for i in features.index}.get(shown, shown), method)
        goto("explorer")

    bars = go.Figure()
    for method in methods:
        quartiles = block["methods"][method]["quartiles"].get(feature, [])
        bars.add_trace(go.Bar(x=[bin_label(q) for q in quartiles],
                              y=[q["mean"] for q in quartiles], name=method_label(method),
                              marker_color=method_colour(method),
                              customdata=[q["n"] for q in quartiles],
                              hovertemplate="%{x}<br>mean %{y:.3f} (n = %{customdata})<extra></extra>"))
    bars.update_layout(barmode="group", height=340, margin=dict(t=30, b=10), title="Mean score per feature quartile",
                       xaxis_title=FEATURE_LABELS[feature] + " (quartiles merge where values tie)",
                       yaxis_title=block["metric"], legend=dict(orientation="h", y=-0.3))
    st.plotly_chart(bars, width="stretch", key="why_quartiles")

    with st.expander("Multiple regression (all features together)"):
        st.caption("Ordinary least squares of the score on the standardized features: each coefficient is the "
                   "change of the score per standard deviation of its feature, the others held fixed (t-based 95 % CI).")
        reg_rows = []
        for method in methods:
            reg = block["methods"][method]["regression"]
            row = {"method": method_label(method), "n": reg["n"], "R²": round(reg["r2"], 3) if reg["r2"] == reg["r2"] else None}
            for f in FEATURES:
                c = reg["coefficients"].get(f)
                row[FEATURE_LABELS[f]] = "left out" if f in reg["left_out"] else (
                    f"{c['coef']:+.3f} [{c['ci_low']:+.3f}, {c['ci_high']:+.3f}]" if c else "—")
            row["note"] = reg["note"]
            reg_rows.append(row)
        st.dataframe(pd.DataFrame(reg_rows), hide_index=True, width="stretch")


run_page(__file__, render)
