"""Runs: start an evaluation from the app; it keeps running if you leave, and results appear when done."""
import streamlit as st

from trust_core.data import RSNADataset
from trust_core.data.groundtruth import MASK_RULES
from trust_core.evaluate import CRITERIA, EvalConfig, Evaluation
from trust_core.evaluate.criteria import PAPER_CRITERIA
from trust_core.randomization.cascade import MODES
from trust_core.saliency.registry import GRADCAM_DEFAULT_INTERPOLATION, GRADCAM_INTERPOLATIONS
from trust_core.evaluate.jobs import JobManager
from trust_core.saliency import PRESETS, resolve_methods
from ui.frame import friendly_errors, run_page
from ui.state import finding, kind, workspace
from ui.widgets import extended_toggle, method_label, shown_criteria, shown_methods


@st.cache_resource
def jobs() -> JobManager:
    """The job manager of this server process (every session's runs)."""
    return JobManager()


def render() -> None:

    st.title("Runs")
    extended_toggle()
    with friendly_errors():
        ws = workspace()
        classifiers = ws.classifiers(kind())
        localizers = ws.localizers(kind())
    st.caption(f"Evaluate {kind().upper()} with the workspace's models: the first replicate is randomized, "
               "replicates give repeatability, the other architecture reproducibility.")
    with st.form("run"):
        models = st.multiselect("Models (first = main)", classifiers,  # the dataset's own by default, not specs
                                default=[c for c in classifiers if not c.endswith(".toml")] or classifiers[:1])
        preset = st.selectbox("Preset", list(PRESETS), format_func=lambda p: PRESETS[p].label,
                              index=list(PRESETS).index("fast"))
        methods = st.multiselect("Methods", shown_methods(), default=resolve_methods("paper"), format_func=method_label)
        criteria = st.multiselect("Criteria", shown_criteria(), default=list(PAPER_CRITERIA),
                                  format_func=lambda c: CRITERIA[c].label)
        c1, c2 = st.columns(2)
        limit = c1.number_input("Utility images (max)", 1, 10_000, 16)
        ssim_images = c2.number_input("Images for SSIM criteria", 2, 100, 5)
        c3, c4 = st.columns(2)
        classes = None
        if kind() == "rsna":
            classes = c3.multiselect("RSNA classes", list(RSNADataset.CLASSES), default=list(RSNADataset.PAPER_CLASSES),
                                     help="The paper kept Normal and Lung Opacity patients only; 'No Lung Opacity / "
                                          "Not Normal' patients are neither lesions nor clean negatives.")
        mask_rule = c4.selectbox("Ground truth at the model size", list(MASK_RULES),
                                 format_func=lambda r: {"paper": "paper (truncated, inclusive boxes; mask != 0)",
                                                        "coverage": "coverage (half a pixel's area) — not the paper's"}[r])
        c5, c6 = st.columns(2)
        upsampling = c5.selectbox("Grad-CAM upsampling", list(GRADCAM_INTERPOLATIONS),
                                  format_func=lambda r: r + (" (paper: TF1 resize_bilinear)" if r == GRADCAM_DEFAULT_INTERPOLATION else ""))
        mode = c6.selectbox("Randomization", list(MODES))
        shuffled = []
        if "data_randomization" in shown_criteria():
            shuffled = st.multiselect("Models trained on shuffled labels (data randomization)", classifiers,
                                      help="`trust train --shuffle-labels` trains one; the data_randomization "
                                           "criterion compares the main model's maps with its.")
        submitted = st.form_submit_button("Start evaluation", type="primary")
    if submitted:
        if not models or not methods or not criteria:
            st.error("Choose at least one model, one method and one criterion.")
        elif kind() == "rsna" and not classes:
            st.error("Choose at least one RSNA class (the paper: Normal and Lung Opacity).")
        else:
            config = EvalConfig(methods=tuple(methods), preset=preset, criteria=tuple(criteria),
                                utility_limit=int(limit), ssim_images=int(ssim_images), group=8,
                                overrides={"gradcam_interpolation": upsampling}, randomization_mode=mode,
                                shuffled_models=tuple(str(ws.layout.model(m)) for m in shuffled))
            dataset = ws.dataset(kind(), classes=tuple(classes) if classes else None, mask_rule=mask_rule,
                                 finding=finding())
            build = lambda: Evaluation(dataset, [ws.layout.model(m) for m in models], config,
                                       localizers=[ws.layout.model(m) for m in localizers], cache=ws.store)
            label = f"{kind().upper()}" + (f" ({finding()})" if finding() else "")
            job = jobs().start(f"{label} · {preset} · {len(models)} models", ws.layout.results(kind()), build)
            st.success(f"Started job {job.id}: it keeps running if you change page.")


    @st.fragment(run_every=2.0)
    def job_list():
        listed = jobs().list()
        if not listed:
            st.caption("No evaluation job has run since this app server started (jobs are shared by every "
                       "session of the server).")
        for job in listed:
            st.markdown(f"**{job.label}** — {job.status}")
            st.progress(job.fraction, text=f"{job.done}/{job.total} units · {job.message}"[:200])
            if job.status == "failed":
                st.error(job.message)


    job_list()


run_page(__file__, render)
