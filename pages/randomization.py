"""Cascading randomization, animated: maps over the X-ray as the weights are destroyed, top-down."""
import plotly.graph_objects as go
import streamlit as st

from trust_core.data.transforms import crop
from trust_core.metrics import ssim
from ui.frame import dataset_page, friendly_errors, run_page
from ui.state import finding, kind, model_name, preset
from ui.widgets import extended_toggle, image_picker, method_label, panel, shown_methods


@st.cache_resource
def prefetch():
    """One background worker per server that computes the next state's maps during playback, and the
    prefetches pending on it."""
    from concurrent.futures import ThreadPoolExecutor

    return ThreadPoolExecutor(1, thread_name_prefix="prefetch"), set()


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
    table = ws.table(kind(), "randomization") if results else None
    if table is not None and len(table):  # the images with their own SSIM curve first
        scored = list(dict.fromkeys(table.image_id))
        ids = scored + [i for i in ids if i not in set(scored)]
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
        values = {}
        for row, (label, maps) in enumerate((("original", original), (f"state {index}: {states[index]}", current))):
            st.caption(f"**{label}**")
            for col, m in zip(st.columns(max(1, len(methods))), methods):
                flagged = current.flags[m][0] or original.flags[m][0]
                if row == 1:
                    values[m] = None if flagged else ssim(original[m][0], current[m][0])
                with col:
                    caption = method_label(m) if row == 0 else (
                        f"{method_label(m)} · SSIM {values[m]:.2f}" if values[m] is not None else
                        f"{method_label(m)} · {flagged}")
                    panel(image, maps[m][0], mask=mask, caption=caption)
        if playing and methods:  # the next state's maps are computed while this one shows
            upcoming = states[(index + 1) % len(states)]
            job = (str(ws.root), kind(), image_id, model_name(), tuple(methods), preset(), upcoming, finding())
            pool, pending = prefetch()
            if job not in pending and len(pending) < 2:  # one ahead at most: no queue piles up
                pending.add(job)
                pool.submit(ws.maps, kind(), [image_id], model_name(), methods=methods, preset=preset(),
                            state=upcoming, finding=finding()).add_done_callback(lambda _f, j=job: pending.discard(j))
        figure = go.Figure()
        curves = (results or {}).get("criteria", {}).get("randomization", {}).get("methods", {})
        table = ws.table(kind(), "randomization") if curves else None
        mine = table[table.image_id == image_id] if table is not None else None
        palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]
        for k, m in enumerate(methods):
            color = palette[k % len(palette)]
            curve = curves.get(m, {}).get("curve") if curves else None
            if curve:
                xs = [0] + [c["state_index"] for c in curve]
                figure.add_trace(go.Scatter(x=xs, y=[1.0] + [c["mean"] for c in curve], mode="lines+markers",
                                            name=f"{method_label(m)} — cohort mean", line=dict(color=color)))
                if mine is not None and len(mine[mine.method == m]):
                    own = mine[mine.method == m].groupby("state_index").ssim.mean()
                    figure.add_trace(go.Scatter(x=[0] + list(own.index), y=[1.0] + list(own.values),
                                                mode="lines+markers", name=f"{method_label(m)} — this image",
                                                line=dict(color=color, dash="dash")))
                baseline = curves[m].get("baseline")
                if baseline is not None:
                    figure.add_trace(go.Scatter(x=[0, len(states) - 1], y=[baseline, baseline], mode="lines",
                                                name=f"{method_label(m)} — random-pair baseline",
                                                line=dict(color=color, dash="dot", width=1)))
        figure.add_vline(x=index, line_color="red")
        figure.update_layout(height=360, xaxis=dict(title="randomization state", tickvals=list(range(len(states))),
                                                    ticktext=states), yaxis=dict(title="SSIM to original", range=[-0.2, 1.05]),
                             margin=dict(t=30, b=10), legend=dict(font=dict(size=10)))
        st.plotly_chart(figure, width="stretch")
        if curves and (mine is None or not len(mine)):
            st.caption("This image is not among the evaluation's SSIM images: only the cohort means are drawn.")
        if not curves:
            st.caption("Curves appear once an evaluation has run for this dataset (Runs page).")


    frame()


run_page(__file__, render)
