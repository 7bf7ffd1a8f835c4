"""Cascading randomization, animated: maps over the X-ray as the weights are destroyed, top-down."""
import plotly.graph_objects as go
import streamlit as st

from trust_core.data.transforms import crop
from trust_core.metrics import ssim
from ui.frame import dataset_page, friendly_errors, run_page
from ui.state import finding, kind, model_name, preset
from ui.widgets import extended_toggle, image_picker, method_label, panel, shown_methods


def render() -> None:
    ws, dataset = dataset_page(
        "Cascading randomization",
        "State 0 is the trained model; each next state re-initializes one more block, from the logits down "
        "(forward order). A trustworthy map should change as the model is destroyed.")
    with friendly_errors():
        states = ws.state_names(model_name())
        results = ws.results(kind(), finding())

    ids = dataset.ids(split="test", label=1)
    if not ids:
        st.info("No positive test image.")
        st.stop()
    image_id = image_picker(ids, dataset)
    extended_toggle()
    methods = st.multiselect("Methods", shown_methods(), default=["grad", "gbp", "gradcam", "xrai"],
                             format_func=method_label)
    st.session_state.setdefault("rand_state", 0)
    playing = st.toggle("▶ Play", key="rand_playing")


    @st.fragment(run_every=1.0 if playing else None)
    def frame():
        if playing:
            st.session_state["rand_state"] = (st.session_state["rand_state"] + 1) % len(states)
        index = st.select_slider("State", options=list(range(len(states))), key="rand_state",
                                 format_func=lambda i: f"{i}: {states[i]}")
        with friendly_errors(), st.spinner("Computing maps for this state (cached afterwards)…"):
            original = ws.maps(kind(), [image_id], model_name(), methods=methods, preset=preset(), finding=finding())
            current = ws.maps(kind(), [image_id], model_name(), methods=methods, preset=preset(), state=states[index],
                              finding=finding())
        size = next(iter(current.values())).shape[1]
        framing = ws.framing(model_name())
        mask = dataset.mask(image_id, size, framing)
        image = crop(dataset.native_image(image_id), framing)
        cols = st.columns(max(1, len(methods)))
        values = {}
        for col, m in zip(cols, methods):
            flagged = current.flags[m][0] or original.flags[m][0]
            values[m] = None if flagged else ssim(original[m][0], current[m][0])
            with col:
                panel(image, current[m][0], mask=mask,
                      caption=f"{method_label(m)} · SSIM {values[m]:.2f}" if values[m] is not None else
                      f"{method_label(m)} · {flagged}")
        figure = go.Figure()
        curves = (results or {}).get("criteria", {}).get("randomization", {}).get("methods", {})
        for m in methods:
            curve = curves.get(m, {}).get("curve") if curves else None
            if curve:
                xs = [0] + [c["state_index"] for c in curve]
                ys = [1.0] + [c["mean"] for c in curve]
                figure.add_trace(go.Scatter(x=xs, y=ys, mode="lines+markers", name=f"{method_label(m)} (mean)"))
                baseline = curves[m].get("baseline")
                if baseline is not None:
                    figure.add_hline(y=baseline, line_dash="dot", annotation_text=f"{method_label(m)} baseline",
                                     line_color="gray")
        figure.add_vline(x=index, line_color="red", annotation_text=states[index])
        figure.update_layout(height=320, xaxis=dict(title="randomization state", tickvals=list(range(len(states))),
                                                    ticktext=states), yaxis=dict(title="SSIM to original", range=[-0.2, 1.05]),
                             margin=dict(t=30, b=10))
        st.plotly_chart(figure, width="stretch")
        if not curves:
            st.caption("Curves appear once an evaluation has run for this dataset (Runs page).")


    frame()


run_page(__file__, render)
