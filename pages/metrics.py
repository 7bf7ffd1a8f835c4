"""Metrics: per-image AUPRC and SSIM per method, baselines as lines, the paper's values as markers."""
import plotly.graph_objects as go
import streamlit as st

from trust_core.evaluate.paper import AUPRC, SSIM
from ui.frame import friendly_errors, require_results, run_page
from ui.state import kind, workspace
from trust_core.evaluate.criteria import CRITERIA
from ui.widgets import extended_toggle, method_label, shown_criteria, shown_id, shown_methods


def render() -> None:
    st.title("Metrics")
    extended_toggle()
    results = require_results()
    with friendly_errors():
        ws = workspace()
        utility = ws.table(kind(), "utility")
        randomization = ws.table(kind(), "randomization")
    def strip_box(table, value: str, title: str, key: str, *, baselines=(), paper=None, method_baselines=None):
        figure = go.Figure()
        methods = shown_methods(set(table.method))
        for m in methods:
            sub = table[table.method == m]
            figure.add_trace(go.Box(y=sub[value], x=[method_label(m)] * len(sub), name=method_label(m), boxpoints="all",
                                    jitter=0.4, pointpos=0, customdata=[[i, m] for i in sub.image_id],
                                    text=[shown_id(i) for i in sub.image_id], showlegend=False,
                                    hovertemplate="image %{text}<br>" + value + " %{y:.3f}<extra></extra>"))
        for name, level, color in baselines:
            if level is not None:
                figure.add_hline(y=level, line_dash="dash", line_color=color, annotation_text=name)
        if method_baselines:  # a baseline per method (random pairs): a bar at its level, in the legend
            xs = [m for m in methods if isinstance(method_baselines.get(m), float)]
            figure.add_trace(go.Scatter(x=[method_label(m) for m in xs], y=[method_baselines[m] for m in xs],
                                        mode="markers", name="random-pair baseline",
                                        marker=dict(symbol="line-ew", size=40, line=dict(width=3, color="orange"))))
        if paper:
            xs = [method_label(m) for m in methods if paper.get(m) is not None]
            figure.add_trace(go.Scatter(x=xs, y=[paper[m] for m in methods if paper.get(m) is not None], mode="markers",
                                        marker=dict(symbol="diamond", size=12, color="black"), name="paper"))
        figure.update_layout(title=title, height=420, yaxis_title=value, margin=dict(t=40, b=10))
        event = st.plotly_chart(figure, width="stretch", on_select="rerun", key=key, selection_mode="points")
        points = event.selection.points if event and event.selection else []
        if points and points[0].get("customdata"):  # the click carries its image and its method
            image_id, method = points[0]["customdata"][:2]
            st.session_state["_image_id"] = image_id
            st.session_state["_explorer_method"] = method
            st.switch_page("pages/explorer.py")


    if utility is not None:
        block = results["criteria"]["utility"]
        baselines = block["baselines"]
        strip_box(utility, "auprc", f"Localization utility — AUPRC per image (n = {block['n_images']})", "auprc",
                  baselines=[("average mask (low)", baselines["average_mask"]["mean"], "orange"),
                             ("localizer (high)", baselines.get("localizer", {}).get("mean"), "green")],
                  paper=AUPRC.get(kind()))
    if randomization is not None and len(randomization):
        last = randomization[randomization.state_index == randomization.state_index.max()]
        per_image = last.groupby(["method", "image_id"]).ssim.mean().reset_index()
        strip_box(per_image, "ssim", "Randomization — SSIM(original, fully randomized) per image", "rand",
                  method_baselines={m: e["baseline"] for m, e in results["criteria"]["randomization"]["methods"].items()
                                    if e})
        st.caption("A method passes when its SSIM falls below its random-pair baseline: "
                   + ", ".join(f"{method_label(m)} {e['baseline']:.2f}"
                               for m, e in results["criteria"]["randomization"]["methods"].items()))
    for name in ("repeatability", "reproducibility"):
        table = ws.table(kind(), name)
        if table is not None and len(table):
            baseline = results["criteria"][name].get("baseline")
            strip_box(table, "ssim", f"{name.capitalize()} — SSIM per image", name,
                      baselines=[("localizers", baseline["mean"] if baseline else None, "green")],
                      paper=SSIM[name].get(kind()))
    for key in shown_criteria(results["criteria"]):  # beyond the paper: one plot each, from the registry
        criterion = CRITERIA[key]
        if criterion.group == "paper":
            continue
        with friendly_errors():
            table = ws.table(kind(), criterion.table)
        if table is None or not len(table):
            continue
        if "state_index" in table:  # a similarity at every randomization state: the fully randomized one
            table = table[table.state_index == table.state_index.max()]
        per_image = table.groupby(["method", "image_id"])[criterion.column].mean().reset_index()
        block = results["criteria"][key]
        baselines = {m: e.get("baseline") for m, e in block["methods"].items() if e}
        levels = {round(b, 6) for b in baselines.values() if isinstance(b, float)}
        shared_level = len(levels) == 1
        strip_box(per_image, criterion.column, f"{criterion.label} — per image (n = {block['n_images']})", key,
                  baselines=[("baseline", levels.pop(), "orange")] if shared_level else (),
                  method_baselines=None if shared_level else baselines)
        st.caption(f"{block['metric'][0].upper()}{block['metric'][1:]}: {criterion.direction}; baseline: "
                   f"{criterion.baseline}"
                   + (": " + ", ".join(f"{method_label(m)} {b:.2f}" for m, b in baselines.items()
                                       if isinstance(b, float)) if baselines else "")
                   + f". {criterion.reference}.")
    st.caption("Click a point to open that image in the explorer.")


run_page(__file__, render)
