"""Cascading randomization, played: the original maps above, the current state's below, with this image's SSIM
curve beside the cohort's, all in the browser viewer (one state per second, label and frames in step)."""
import streamlit as st

from trust_core.metrics import ssim
from ui.frame import dataset_page, friendly_errors, run_page
from ui.state import finding, kind, model_name, preset, take_randomization_focus
from ui.measures import ssim_curves
from ui.viewer import film_for, map_panel, show, truth_payload
from ui.widgets import (extended_toggle, figure_downloads, image_picker, method_label, prediction_line,
                        shown_methods)



def render() -> None:
    ws, dataset = dataset_page(
        "Cascading randomization",
        "State 0 is the trained model; each next state re-initializes one more block, top-down: the output "
        "layer first, then block by block towards the input, the stem last (Adebayo et al.'s cascade). A "
        "trustworthy map should change as the model is destroyed.")
    with friendly_errors():
        states = ws.state_names(model_name())
        results = ws.results(kind(), finding())

    ids = dataset.ids(split="test", label=1)
    if not ids:
        st.info("No positive test image.")
        st.stop()
    table = ws.table(kind(), "randomization") if results else None
    if table is not None and len(table):  # the images of the evaluation's SSIM cohort first
        scored = list(dict.fromkeys(table.image_id))
        ids = scored + [i for i in ids if i not in set(scored)]
    picker, chooser = st.columns([2, 3])  # image and methods side by side: the viewer and its curve in view
    with picker:
        image_id = image_picker(ids, dataset, viewer="randomization_viewer")
        extended_toggle()
    focus = take_randomization_focus()  # a click elsewhere: its method, at its state
    default = ["grad", "gbp", "gradcam", "xrai"]
    if focus and focus["method"] in shown_methods() and focus["method"] not in default:
        default = [focus["method"]] + default
    if focus:
        st.session_state.pop("rand_methods", None)
    with chooser:
        methods = st.multiselect("Methods", shown_methods(), default=default, format_func=method_label,
                                 key="rand_methods")
    if not methods:
        st.info("Choose at least one method.")
        st.stop()

    # every state's maps first (cached after the first time), so that playback never waits on Python
    progress = st.progress(0.0, text="Maps of every randomization state (cached after the first time)…")
    per_state = []
    with friendly_errors():
        for k, state in enumerate(states):
            per_state.append(ws.maps(kind(), [image_id], model_name(), methods=methods, preset=preset(),
                                     state=state, finding=finding()))
            progress.progress((k + 1) / len(states), text=f"Maps of state {k + 1}/{len(states)}: {state}")
    progress.empty()
    original = per_state[0]
    prediction_line(ws, dataset, image_id, model_name(), int(original.targets[0]))
    live = {m: [None if (maps.flags[m][0] or original.flags[m][0]) else ssim(original[m][0], maps[m][0])
                for maps in per_state] for m in methods}
    framing = ws.framing(model_name())
    with friendly_errors():
        film = film_for(dataset, image_id, framing)
    reference = [map_panel(f"{m}@0", method_label(m), original[m][0], flag=original.flags[m][0], caption="original")
                 for m in methods]
    frames = []
    for i, (state, maps) in enumerate(zip(states, per_state)):
        frames.append({"label": f"state {i}/{len(states) - 1}: {state}", "panels": [
            map_panel(f"{m}@{i}", method_label(m), maps[m][0], flag=maps.flags[m][0] or original.flags[m][0],
                      caption=f"SSIM {live[m][i]:.2f}" if live[m][i] is not None else "")
            for m in methods]})
    st.caption("▶ plays one state per second in the browser; the slider scrubs. Panels zoom and pan together. "
               "Curves: this image's SSIM (solid, from the maps shown), the evaluation cohort's mean (dashed) "
               "and each method's random-pair baseline (dotted).")
    show(film, reference, truth=truth_payload(dataset, image_id, framing, film["shape"]), layout="states",
         frames=frames, curve=ssim_curves(results, states, methods, live), key="randomization_viewer",
         height=230 if len(methods) <= 4 else 170, reference_title="original (state 0: the trained model)",
         focus=dict(focus, frame=min(focus["frame"], len(states) - 1)) if focus else None)
    if not (results or {}).get("criteria", {}).get("randomization"):
        st.caption("Cohort curves and baselines appear once an evaluation has run for this dataset (Runs page).")
    else:
        st.caption("The cohort's randomization curves for a paper (every method, with its random-pair baseline):")
        figure_downloads(ws, "randomization_curves", "randomization_curves")


run_page(__file__, render)
