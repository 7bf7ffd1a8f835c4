"""Widgets the pages share: the image picker, method labels, the prediction line, the extended toggle."""
from __future__ import annotations

import streamlit as st

from trust_core.saliency import METHODS
from ui.state import shared, shared_widget


def id_namer():
    """How pages name the images of the current workspace: ``image_id`` → its pseudonym (as in reports: keyed
    with the workspace's secret key, :mod:`trust_core.pseudonyms`) unless the sidebar asks for identifiers.
    Get it once for many ids (the key is read once)."""
    from trust_core.pseudonyms import pseudonymizer
    from ui.state import workspace

    if shared("identifiers", False):
        return lambda image_id: image_id
    return pseudonymizer(workspace())


def shown_id(image_id: str) -> str:
    """An image as pages name it (see :func:`id_namer`; many images: use ``id_namer()`` once)."""
    return id_namer()(image_id)


def image_picker(ids: list[str], dataset, viewer: str | None = None) -> str:
    """The image selector every page shares (the current image follows you across pages), in the order
    given (the gallery's sort drives it), each image named by :func:`id_namer`; ``viewer``: the key of the
    page's viewer, whose ← → / PgUp PgDn keys step through the same list. Returns the image id."""
    current = shared("image_id")
    options = list(dict.fromkeys(ids))
    if current in dataset and current not in options:
        options.insert(0, current)
    if viewer is not None:
        from ui.viewer import navigation

        step = navigation(viewer)
        if step and options:
            at = options.index(current) if current in options else 0
            current = options[(at + step) % len(options)]
            st.session_state["_image_id"] = current
    name = id_namer()
    labels = [name(i) for i in options]  # the widget holds labels: what it shows is what it stores
    by_label = dict(zip(labels, options))
    st.session_state["image_id"] = labels[options.index(current)] if current in options else labels[0]

    def remember():
        st.session_state["_image_id"] = by_label[st.session_state["image_id"]]

    chosen = by_label[st.selectbox("Image", labels, key="image_id", on_change=remember)]
    st.session_state["_image_id"] = chosen
    return chosen


def method_label(key: str) -> str:
    return METHODS[key].label


def extended_help() -> str:
    """What the 'beyond the paper' switch adds, from the method and criterion registries (plugins included)."""
    from trust_core.evaluate.criteria import CRITERIA
    from trust_core.sets import PAPER_SET

    paper_methods = [m.label for m in METHODS.values() if m.group == PAPER_SET]
    paper_criteria = [c.label for c in CRITERIA.values() if c.group == PAPER_SET]
    more_methods = [m.label for m in METHODS.values() if m.group != PAPER_SET]
    more_criteria = [c.label for c in CRITERIA.values() if c.group != PAPER_SET]
    return (f"Off: Arun et al.'s {len(paper_methods)} methods and {len(paper_criteria)} criteria "
            f"({', '.join(paper_criteria)}). On: also the methods {', '.join(more_methods)}; and the criteria "
            f"{', '.join(more_criteria)}.")


def extended_toggle() -> bool:
    """The 'beyond the paper' switch every page shares: off shows the paper's methods and criteria (the
    default view), on adds every registered method and criterion."""
    return shared_widget(st.toggle, "Beyond the paper: extended methods and criteria", "extended", False,
                         help=extended_help())


def shown_methods(available=None) -> list[str]:
    """The methods to offer: the paper's set or every registered method (per the toggle), in registry order,
    restricted to ``available`` when given."""
    from trust_core.saliency.registry import resolve_methods

    from trust_core.sets import EXTENDED_SET, PAPER_SET

    keys = resolve_methods(EXTENDED_SET if shared("extended", False) else PAPER_SET)
    return [k for k in keys if available is None or k in available]


def shown_criteria(available=None) -> list[str]:
    """The criteria to offer, like :func:`shown_methods`."""
    from trust_core.evaluate.criteria import resolve_criteria
    from trust_core.sets import EXTENDED_SET, PAPER_SET

    keys = resolve_criteria(EXTENDED_SET if shared("extended", False) else PAPER_SET)
    return [k for k in keys if available is None or k in available]


def prediction_line(ws, dataset, image_id: str, model: str, explained: int, output: dict | None = None) -> None:
    """What the model predicts for this film and which class its maps explain (name and probability), with
    a warning when the maps explain the negative class: wherever maps are shown."""
    from ui.state import finding, kind

    from trust_core.prose import explained_sentence, negative_class_warning

    output = output or ws.prediction(kind(), image_id, model, finding=finding())
    st.markdown(explained_sentence(output, explained, lambda k: ws.class_name(model, k))
                + f" · ground truth: label {dataset.label(image_id)} · model {model}")
    negative = ws.negative_class(model, len(output["scores"]), output["activation"])
    if explained == negative:
        st.warning(negative_class_warning(explained, ws.class_name(model, explained),
                                          predicted_negative=output["predicted"] == negative)
                   + " The paper explained the predicted class; read them with that in mind.", icon="⚠️")


def figure_downloads(ws, name: str, key: str) -> None:
    """SVG and PDF downloads of one of the results folder's figures for a paper (``name`` as in
    :func:`trust_core.analysis.figures.figure_bytes`: ``forest_<criterion>``, ``randomization_curves``,
    ``utility_boxplots``), with its provenance line; drawn when a button is clicked, not on every rerun."""
    from trust_core.analysis.figures import FORMATS, figure_bytes
    from ui.state import kind

    run = ws.layout.results(kind())
    mimes = {"svg": "image/svg+xml", "pdf": "application/pdf"}
    row = st.container(horizontal=True)  # the buttons side by side, at their own width
    for fmt in FORMATS:
        row.download_button(f"⬇ {fmt.upper()}", data=lambda fmt=fmt: figure_bytes(run, name, fmt),
                               file_name=f"{kind()}_{name}.{fmt}", mime=mimes[fmt], on_click="ignore",
                               key=f"figure_{key}_{fmt}",
                               help=f"This figure for a paper ({fmt.upper()}, vector, with the provenance line)")


def number_columns(frame, **config) -> dict:
    """Streamlit column settings that show every float column of ``frame`` with three decimals (0.170, not
    0.17; 0.000, not 0), a pointing hit as 0 or 1; ``config`` adds or overrides columns."""
    import pandas as pd

    from ui.measures import POINTING_HELP

    out = {}
    for column in frame.columns:
        if column == "pointing hit":
            out[column] = st.column_config.NumberColumn(column, format="%d", help=POINTING_HELP)
        elif pd.api.types.is_float_dtype(frame[column]):
            out[column] = st.column_config.NumberColumn(str(column), format="%.3f")
    return {**out, **config}
