"""Compare two maps side by side: two methods, or one method under two models / randomization states."""
import numpy as np
import streamlit as st

from trust_core.data.transforms import crop
from trust_core.metrics import ssim
from trust_core.report import colorize
from ui.frame import dataset_page, friendly_errors, run_page
from ui.state import finding, kind, model_name, preset
from ui.widgets import extended_toggle, image_picker, method_label, panel, shown_methods


def render() -> None:
    ws, dataset = dataset_page("Compare")
    with friendly_errors():
        models = ws.classifiers(kind())
    ids = dataset.ids(split="test", label=1)
    extended_toggle()
    image_id = image_picker(ids, dataset)

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
    a, b = maps[0][sides[0][0]][0], maps[1][sides[1][0]][0]
    if b.shape != a.shape:
        from trust_core.data import resize_image
        b = resize_image(b, a.shape[0])
    framing = ws.framing(sides[0][1])  # the part of the film under A's maps
    if ws.framing(sides[1][1]) != framing:
        st.warning(f"{sides[1][1]} frames the film differently ({ws.framing(sides[1][1])}) from {sides[0][1]} "
                   f"({framing}): B is shown on A's framing")
    mask = dataset.mask(image_id, a.shape[0], framing)
    image = crop(dataset.native_image(image_id), framing)
    cols = st.columns(3)
    with cols[0]:
        panel(image, a, mask=mask, caption=f"A: {method_label(sides[0][0])} · {sides[0][1]} · {sides[0][2]}")
    with cols[1]:
        panel(image, b, mask=mask, caption=f"B: {method_label(sides[1][0])} · {sides[1][1]} · {sides[1][2]}")
    with cols[2]:
        if np.isfinite(a).all() and np.isfinite(b).all():
            st.image(colorize((a - b + 1) / 2, "coolwarm"), caption="A − B (blue: B higher, red: A higher)",
                     width="stretch")
            st.metric("SSIM(A, B)", f"{ssim(a, b):.3f}", help="scikit-image SSIM, 7×7 window, data_range 2 (paper)")
        else:
            st.warning("One of the maps is flagged (constant): no difference or SSIM.")


run_page(__file__, render)
