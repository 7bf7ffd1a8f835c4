"""Overview: the workspace's datasets and models."""
import pandas as pd
import streamlit as st

from trust_core.demo import describe_workspace
from trust_core.errors import TrustError

st.title("Saliency Trust Explorer")
st.caption("Can this classifier's saliency maps be trusted to localize the abnormality? "
           "Four criteria after Arun et al., Radiology: AI 2021.")
try:
    info = describe_workspace(st.session_state.get("workspace"))
except TrustError as exc:
    st.error(str(exc))
    st.stop()

if not info["datasets"]:
    st.warning(f"No dataset in {info['workspace']}. Build the demo with `trust demo` (or `make run`).")
    st.stop()

st.subheader("Datasets")
cols = st.columns(len(info["datasets"]))
for col, (kind, summary) in zip(cols, info["datasets"].items()):
    with col:
        st.metric(kind.upper(), f"{summary['images']} images")
        st.dataframe(pd.DataFrame(summary["per_split"]).T, width="stretch")
        if summary["skipped"]:
            st.caption("Skipped: " + ", ".join(f"{n} {why}" for why, n in summary["skipped"].items()))

st.subheader("Models")
if info["models"]:
    table = pd.DataFrame(info["models"])[["file", "dataset", "arch", "seed", "role", "input_size",
                                          "val_auc", "test_auc"]]
    st.dataframe(table.style.format({"val_auc": "{:.3f}", "test_auc": "{:.3f}"}), width="stretch",
                 hide_index=True)
else:
    st.info("No trained model yet: `trust demo` trains the demo models.")
