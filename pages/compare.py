"""Compare maps: a workbench grid (images × methods × models × states, sortable, filterable, CSV) and two maps
A and B with their difference over the anatomy, in the viewer."""
import base64

import numpy as np
import pandas as pd
import streamlit as st

from trust_core.data import resize_image
from trust_core.data.transforms import crop
from trust_core.metrics import auprc, ssim
from trust_core.report import overlay, to_png
from ui.frame import dataset_page, friendly_errors, run_page
from ui.export import model_provenance, workbench_csv
from ui.measures import POINTING_HELP, localization_measures
from ui.state import finding, kind, model_name, preset, shared
from ui.viewer import film_for, map_panel, show, truth_payload
from ui.widgets import (extended_toggle, id_namer, image_picker, method_label, number_columns, prediction_line,
                        shown_methods)

GRID_LIMIT = 240  # maps per grid: beyond, the page asks to narrow the choice (each is a cached computation)


def thumbnail(image01, values, mask) -> str:
    rgb = overlay(image01, values, mask=mask, size=160)
    return "data:image/png;base64," + base64.b64encode(to_png(rgb)).decode()


def workbench(ws, dataset, ids, models) -> None:
    st.subheader("Workbench")
    st.caption("Every combination of the images, methods, models and randomization states chosen below, one row "
               "each with its thumbnail and scores. Click a column header to sort; narrow the choices to filter.")
    c1, c2 = st.columns([3, 2])  # wide enough for every method's full name on its chip
    shown_as = id_namer()  # pseudonyms (the workspace's key) unless identifiers are asked for
    shown = {shown_as(i): i for i in ids}
    current = shared("image_id")
    default_images = [shown_as(current)] if current in ids else list(shown)[:1]
    with c1:
        images = st.multiselect("Images", list(shown), default=default_images, key="wb_images")
        methods = st.multiselect("Methods", shown_methods(), default=shown_methods()[:4], format_func=method_label,
                                 key="wb_methods")
    with c2:
        chosen_models = st.multiselect("Models", models, default=[model_name()] if model_name() in models else
                                       models[:1], key="wb_models")
        state_names = sorted({s for m in chosen_models for s in ws.state_names(m)},
                             key=lambda s: min(ws.state_names(m).index(s) for m in chosen_models
                                               if s in ws.state_names(m)))  # the cascade's order, original first
        states = st.multiselect("States", state_names, default=state_names[:1], key="wb_states")
    combos = [(i, m, mo, s) for i in images for mo in chosen_models for s in states
              if s in ws.state_names(mo) for m in methods]
    if not combos:
        st.info("Choose at least one image, method, model and state.")
        return
    if len(combos) > GRID_LIMIT:
        st.warning(f"{len(combos)} maps chosen: narrow the choice to at most {GRID_LIMIT}.")
        return
    rows, provenance = [], {}
    progress = st.progress(0.0, text="Computing the grid's maps (cached after the first time)…")
    with friendly_errors():
        for k, (label, mo, s) in enumerate({(i, mo, s) for i, _m, mo, s in combos}):
            image_id = shown[label]
            maps = ws.maps(kind(), [image_id], mo, methods=methods, preset=preset(), state=s, finding=finding())
            original = maps if s == "original" else ws.maps(kind(), [image_id], mo, methods=methods,
                                                            preset=preset(), finding=finding())
            size = maps[methods[0]].shape[1]
            framing = ws.framing(mo)
            mask = dataset.mask(image_id, size, framing)
            film = resize_image(crop(dataset.native_image(image_id), framing), 160)
            if mo not in provenance:
                provenance[mo] = model_provenance(ws, mo)
            explained = int(maps.targets[0])
            for m in methods:
                values, flag = maps[m][0], maps.flags[m][0]
                rows.append({"map": thumbnail(film, values, mask),
                             "image": label, "method": method_label(m), "model": mo, "state": s,
                             **localization_measures(maps, m, 0, mask),
                             "SSIM to original": ssim(original[m][0], values) if flag is None and
                             original.flags[m][0] is None else None,
                             "note": flag or "", "_explained": f"{explained}: {ws.class_name(mo, explained)}",
                             "_cascade": ws.state_names(mo).index(s), "_method": methods.index(m),
                             "_seed": maps.params.get("seed")})
            progress.progress((k + 1) / len({(i, mo, s) for i, _m, mo, s in combos}))
    progress.empty()
    # images and models by name, states in the cascade's order, methods in the registry's
    table = pd.DataFrame(rows).sort_values(["image", "model", "_cascade", "_method"], kind="stable")
    numeric = ["AUPRC", "mass inside GT", "pointing hit", "SSIM to original"]
    f1, f2, f3 = st.columns([2, 1, 2])
    column = f1.selectbox("Filter on", ["(no filter)"] + numeric, key="wb_filter_column")
    if column != "(no filter)":
        side = f2.radio("keep", ["≤", "≥"], horizontal=True, key="wb_filter_side")
        level = f3.number_input("value", value=0.5, step=0.05, key="wb_filter_value")
        values = pd.to_numeric(table[column], errors="coerce")
        table = table[values <= level] if side == "≤" else table[values >= level]
        st.caption(f"{len(table)} of {len(rows)} maps with {column} {side} {level:g} (unscored maps left out).")
    if not len(table):
        return
    shown = table.drop(columns=["_explained", "_cascade", "_method", "_seed"])
    st.dataframe(shown, hide_index=True, width="stretch", placeholder="—",
                 height=min(720, 40 + 84 * len(table)), row_height=84,
                 column_config=number_columns(shown, map=st.column_config.ImageColumn("map", width="medium")))
    st.caption("pointing hit: " + POINTING_HELP)
    st.download_button("Download the grid as CSV",
                       workbench_csv(table, dataset=dataset, preset=preset(), dataset_label=kind() + (
                           f" ({finding()})" if finding() else ""), provenance=provenance),
                       file_name=f"workbench_{kind()}.csv", mime="text/csv",
                       help="One row per map with its provenance: preset, dataset and its fingerprint, the model's "
                            "weights and training seed, the class explained, the code versions")


def difference(ws, dataset, ids, models) -> None:
    st.subheader("A − B over the anatomy")
    image_id = image_picker(ids, dataset, viewer="compare_viewer")
    sides = []
    for column, side, default_method in zip(st.columns(2), ("A", "B"), ("grad", "gradcam")):
        with column:
            st.markdown(f"#### {side}")
            options = shown_methods()
            method = st.selectbox("Method", options, index=options.index(default_method),
                                  format_func=method_label, key=f"cmp_method_{side}")
            model = st.selectbox("Model", models, index=models.index(model_name()) if model_name() in models else 0,
                                 key=f"cmp_model_{side}")
            state = st.selectbox("Randomization state", ws.state_names(model), key=f"cmp_state_{side}")
            sides.append((method, model, state))

    with friendly_errors(), st.spinner("Computing maps (cached)…"):
        maps = [ws.maps(kind(), [image_id], model, methods=[method], preset=preset(), state=state,
                        finding=finding())
                for method, model, state in sides]
    shown_for = set()
    for (method, model, state), result in zip(sides, maps):
        if state == "original" and model not in shown_for:  # (a randomized model's prediction means nothing)
            shown_for.add(model)
            prediction_line(ws, dataset, image_id, model, int(result.targets[0]))
    a, b = maps[0][sides[0][0]][0], maps[1][sides[1][0]][0]
    flags = [maps[0].flags[sides[0][0]][0], maps[1].flags[sides[1][0]][0]]
    framing, framing_b = ws.framing(sides[0][1]), ws.framing(sides[1][1])  # the part of the film under each
    same_frame = framing_b == framing
    # each side scored against its own ground truth, at its own size and framing
    scores = [auprc(v, m) if f is None and m.any() else None
              for v, f, m in zip((a, b), flags, (dataset.mask(image_id, a.shape[0], framing),
                                                 dataset.mask(image_id, b.shape[0], framing_b)))]
    if not same_frame:
        st.warning(f"{sides[1][1]} frames the film differently ({framing_b}) from {sides[0][1]} ({framing}): B is "
                   f"drawn on A's framing, its AUPRC is scored on its own; no difference or SSIM between them.")
    if b.shape != a.shape:
        b = resize_image(b, a.shape[0])
    panels = [map_panel(f"{name}", f"{name}: {method_label(m)} · {mo} · {s}", v, flag=f,
                        caption=f"AUPRC {score:.3f}" if score is not None else "")
              for name, (m, mo, s), v, f, score in zip("AB", sides, (a, b), flags, scores)]
    comparable = same_frame and np.isfinite(a).all() and np.isfinite(b).all() and not any(flags)
    if comparable:
        panels.append(map_panel("diff", "A − B", (a - b).astype(np.float32), signed=True,
                                caption=f"SSIM(A, B) {ssim(a, b):.3f}"))
    with friendly_errors():
        film = film_for(dataset, image_id, framing)
    show(film, panels, truth=truth_payload(dataset, image_id, framing, film["shape"]), layout="row",
         key="compare_viewer", height=380)
    if comparable:
        st.caption("A − B in red where A is higher, blue where B is (maps normalized to [0, 1], so the difference "
                   "spans −1…1). SSIM: scikit-image, 7×7 window, data_range 2 (the paper's).")
    elif same_frame:
        st.warning("One of the maps is flagged (constant) or holds non-finite values: no difference or SSIM.")


def render() -> None:
    ws, dataset = dataset_page("Compare")
    with friendly_errors():
        models = ws.classifiers(kind())
    ids = dataset.ids(split="test", label=1)
    extended_toggle()
    difference(ws, dataset, ids, models)
    workbench(ws, dataset, ids, models)


run_page(__file__, render)
