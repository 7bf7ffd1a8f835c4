"""Metrics: every scored criterion per image and method (the registry's tables), baselines as lines or per-method
bars, the paper's values as markers; a click opens that image at that method in the explorer."""

import plotly.graph_objects as go

import streamlit as st

from trust_core.evaluate.paper import paper_value
from ui.frame import friendly_errors, require_results, run_page
from ui.state import focus_randomization, kind, open_image, shared, workspace
from trust_core.evaluate.criteria import CRITERIA
from trust_core.saliency.registry import method_colour
from ui.widgets import extended_toggle, figure_downloads, id_namer, method_label, shown_criteria, shown_methods
from ui.pages import goto


def render() -> None:
    st.title("Metrics")
    extended_toggle()
    results = require_results()
    with friendly_errors():
        ws = workspace()
    def strip_box(table, value: str, title: str, key: str, *, axis: str, baselines=(), paper=None,
                  method_baselines=None, state=None):
        figure = go.Figure()
        methods = shown_methods(set(table.method))
        shown_as = id_namer()  # pseudonyms (the workspace's key) unless identifiers are asked for
        for m in methods:
            sub = table[table.method == m]
            figure.add_trace(go.Box(y=sub[value], x=[method_label(m)] * len(sub), name=method_label(m), boxpoints="all",
                                    marker_color=method_colour(m), line_color=method_colour(m),
                                    jitter=0.4, pointpos=0, customdata=[[shown_as(i), m] for i in sub.image_id],
                                    showlegend=False,
                                    hovertemplate="image %{customdata[0]}<br>" + axis + " %{y:.3f}<extra></extra>"))
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
        figure.update_layout(title=title, height=420, yaxis_title=axis, margin=dict(t=40, b=10))
        figure.update_xaxes(automargin=True)  # room for the method names, whole, when they turn on a narrow page
        event = st.plotly_chart(figure, width="stretch", on_select="rerun", key=key, selection_mode="points")
        points = (event or {}).get("selection", {}).get("points", [])  # (a dict, as the frontend sends it)
        if points and points[0].get("customdata"):  # the click carries its image, its method and its state
            shown, method = points[0]["customdata"][:2]
            open_image({shown_as(i): i for i in table.image_id}.get(shown, shown), method)
            if state is not None:  # a similarity at a randomization state: the cascade, at that state
                focus_randomization(method, state)
                goto("randomization")
            goto("explorer")


    keys = shown_criteria(results["criteria"])
    focus = shared("metrics_focus")
    if focus in keys:  # opened from a scorecard cell: its criterion first
        keys = [focus] + [k for k in keys if k != focus]
    for key in keys:  # every scored criterion, from the registry
        criterion = CRITERIA[key]
        block = results["criteria"][key]
        with friendly_errors():
            table = ws.table(kind(), criterion.table)
        if table is None or not len(table) or criterion.column not in table:
            continue
        state = None
        if "state_index" in table:  # a similarity at every randomization state: the fully randomized one
            state = int(table.state_index.max())
            table = table[table.state_index == state]
        per_image = table.groupby(["method", "image_id"])[criterion.column].mean().reset_index()
        entries = {m: e for m, e in block["methods"].items() if e}
        lines, bars = [], None
        if key == "utility":  # its two baselines: the average mask (low) and the localizer (high)
            lines = [("average mask (low)", block["baselines"]["average_mask"]["mean"], "orange"),
                     ("localizer (high)", block["baselines"].get("localizer", {}).get("mean"), "green")]
        elif criterion.family == "agreement":
            lines = [("localizers", (block.get("baseline") or {}).get("mean"), "green")]
        else:
            levels = {round(e.get("baseline"), 6) for e in entries.values() if isinstance(e.get("baseline"), float)}
            if len(levels) == 1:
                lines = [("baseline", levels.pop(), "orange")]
            else:  # one per method (random pairs of its own maps)
                bars = {m: e.get("baseline") for m, e in entries.items()}
        paper = {m: v for m in entries if isinstance(v := paper_value(key, kind(), m), float)}
        title = f"{criterion.label} — {block['metric']} per image (n = {block['n_images']})"
        axis = f"{block['metric']} per image" + (f" at state {state} (fully randomized)" if state is not None else "")
        strip_box(per_image, criterion.column, title, key, axis=axis, baselines=lines, paper=paper,
                  method_baselines=bars, state=state)
        figure_downloads(ws, f"metric_{key}", f"metric_{key}")
        st.caption(f"{criterion.direction.capitalize()}; baseline: {criterion.baseline}"
                   + (f". {criterion.reference}." if criterion.reference else ".")
                   + (f" Scored on {block['scored_maps_note']}." if block.get("scored_maps_note") else "")
                   + (f" Randomized states: {block['explained_class']}." if block.get("explained_class") else ""))
    st.caption("Click a point to open that image at that method: in the explorer, or for a randomization "
               "criterion on the Randomization page at the state it was scored at.")


run_page(__file__, render)
