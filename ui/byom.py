"""Sidebar form: bring your own model (a model spec's fields + its weights), validated before anything is
written (``trust_core.models.spec.add_model``)."""
from __future__ import annotations

import streamlit as st

from trust_core.errors import TrustError
from trust_core.models.preprocessing import NORMALIZATIONS
from trust_core.models.spec import ACTIVATIONS
from trust_core.models.spec.flags import (parse_names, parse_normalization, parse_pairs, parse_target, spec_table,
                                          split_pairs)



def bring_your_own_model(ws) -> None:
    """An expander with the spec's fields; on success the new model is chosen in the picker."""
    added = st.session_state.pop("_byom_added", None)
    if added:
        st.success(f"Added {added}: chosen in the model picker above (its pages compute maps in its own "
                   f"input space).")
    with st.expander("➕ Bring your own model"):
        st.caption("Any PyTorch classifier: the spec's fields (README 'Bring your own model'). Weights are read "
                   "with weights_only=True or safetensors; nothing is saved unless the model loads and passes "
                   "its sanity check.")
        with st.form("byom", clear_on_submit=False, border=False):
            name = st.text_input("Name", key="byom_name", placeholder="chexnet14", help="file name in the workspace's models/")
            source = st.text_input("Source", key="byom_source", placeholder="torchvision:densenet121",
                                   help="torchvision:NAME, timm:NAME, torchxrayvision:CLASS, monai:NAME or a "
                                        "registry name (your own code or a .pt2: write its spec into models/)")
            limit = int(st.get_option("server.maxUploadSize"))
            weights = st.file_uploader("Weights (.pt, .pth, .pth.tar, .safetensors)",
                                       type=["pt", "pth", "tar", "safetensors"],
                                       help=f"a state_dict; at most {limit} MB here (the server's "
                                            f"server.maxUploadSize; larger: write the spec beside the file). "
                                            f"Omit for random weights")
            kwargs = st.text_input("Builder arguments", key="byom_kwargs", placeholder="num_classes=14",
                                   help="comma-separated NAME=VALUE (JSON values)")
            left, right = st.columns(2)
            size = left.number_input("Input size", key="byom_size", min_value=8, max_value=4096, value=224, step=1)
            channels = right.selectbox("Channels", (3, 1), key="byom_channels")
            normalization = left.selectbox("Normalization", [*NORMALIZATIONS, "custom"], key="byom_normalization",
                                           index=list(NORMALIZATIONS).index("imagenet"),
                                           format_func=lambda n: f"{n}: {NORMALIZATIONS[n][2]}" if n in NORMALIZATIONS
                                           else "custom mean/std")
            custom = st.text_input("Custom mean:std", key="byom_custom", placeholder="0.5:0.25 or 0.48,0.46,0.41:0.23,0.22,0.23",
                                   help="with 'custom': the training statistics in units of the [0, 1] film")
            activation = right.selectbox("Activation", ACTIVATIONS, key="byom_activation")
            resize = left.selectbox("Framing", ("stretch", "center_crop"), key="byom_resize",
                                    help="stretch: the whole film (the paper's); center_crop: its central square")
            classes = st.text_input("Class names", key="byom_classes", placeholder="Atelectasis, Cardiomegaly, …",
                                    help="comma-separated, in output order (optional)")
            target = st.text_input("Target class", key="byom_target", placeholder="Pneumonia",
                                   help="a class name or an index; empty: the predicted class (softmax heads)")
            layer = st.text_input("Grad-CAM layer", key="byom_layer", placeholder="detected", help="dotted module path (optional)")
            blocks = st.text_input("Cascade blocks", key="byom_blocks", placeholder="detected",
                                   help="comma-separated module paths (optional; default: the top-level stages)")
            submitted = st.form_submit_button("Check and add")
        if not submitted:
            return
        try:
            table = spec_table(
                source=source.strip(), target=parse_target(target), gradcam_layer=layer.strip() or None,
                kwargs=parse_pairs(split_pairs(kwargs), what="builder argument", identifiers=True),
                input_size=int(size), channels=int(channels), resize=resize,
                normalization=parse_normalization(custom, custom=True) if normalization == "custom" else normalization,
                cascade_blocks=parse_names(blocks), activation=activation, output_classes=parse_names(classes))
            with st.spinner("Loading and checking the model…"):
                path = ws.add_model(name.strip(), table, weights=weights.getvalue() if weights else None,
                                    weights_name=weights.name if weights else None)
        except TrustError as exc:
            st.error(f"Not added: {exc}")
            return
        st.session_state["_model"] = path.name
        st.session_state["_byom_added"] = path.name
        st.rerun()
