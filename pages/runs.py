"""Runs: start an evaluation from the app; it keeps running if you leave, and results appear when done."""
import streamlit as st

from trust_core.data import RSNADataset
from trust_core.data.groundtruth import MASK_RULES
from trust_core.evaluate import CRITERIA, EvalConfig, Evaluation
from trust_core.evaluate.criteria import PAPER_CRITERIA
from trust_core.randomization.cascade import MODES
from trust_core.saliency.registry import GRADCAM_DEFAULT_INTERPOLATION, GRADCAM_INTERPOLATIONS
from trust_core.saliency import PRESETS, resolve_methods
from ui.frame import friendly_errors, redact, run_page
from ui.state import finding, jobs, kind, workspace
from ui.widgets import extended_toggle, method_label, shown_criteria, shown_methods
from trust_core.saliency.registry import FAST_PRESET



def render() -> None:

    st.title("Runs")
    extended_toggle()
    with friendly_errors():
        ws = workspace()
        classifiers = ws.classifiers(kind())
        localizers = ws.localizers(kind())
        stored = ((ws.results_config(kind()) or {}).get("config") or {})  # the stored run's choices: the defaults
    st.caption(f"Evaluate {kind().upper()} with the workspace's models: the first replicate is randomized, "
               "replicates give repeatability, the other architecture reproducibility.")
    with st.form("run"):
        models = st.multiselect("Models (first = main)", classifiers,  # the dataset's own by default, not specs
                                default=[c for c in classifiers if not c.endswith(".toml")] or classifiers[:1])
        preset = st.selectbox("Preset", list(PRESETS), format_func=lambda p: PRESETS[p].label,
                              index=list(PRESETS).index(stored.get("preset") if stored.get("preset") in PRESETS
                                                        else FAST_PRESET))
        methods = st.multiselect("Methods", shown_methods(), default=resolve_methods("paper"), format_func=method_label)
        criteria = st.multiselect("Criteria", shown_criteria(), default=list(PAPER_CRITERIA),
                                  format_func=lambda c: CRITERIA[c].label)
        c1, c2 = st.columns(2)
        # the stored run's counts (its utility limit None — every positive test image — is 0 here); 16 and 5 without one
        kept = stored.get("utility_limit", 16) if stored else 16
        limit = c1.number_input("Utility images (max; 0: every positive test image)", 0, 1_000_000,
                                int(kept or 0), help="Default: the stored run's")
        ssim_images = c2.number_input("Images for SSIM criteria", 2, 100_000, max(2, int(stored.get("ssim_images") or 5)),
                                      help="Default: the stored run's")
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
        mode = c6.selectbox("Randomization", list(MODES), index=list(MODES).index(stored["randomization_mode"])
                            if stored.get("randomization_mode") in MODES else 0)
        shuffled = []
        if "data_randomization" in shown_criteria():
            shuffled = st.multiselect("Models trained on shuffled labels (data randomization)", classifiers,
                                      help="`trust train --shuffle-labels` trains one; the data_randomization "
                                           "criterion compares the main model's maps with its.")
        submitted = st.form_submit_button("Plan the evaluation", type="primary",
                                          help="Checks the choices and estimates the work; you start it below")
    if submitted:
        st.session_state.pop("_run_plan", None)
        if not models or not methods or not criteria:
            st.error("Choose at least one model, one method and one criterion.")
        elif kind() == "rsna" and not classes:
            st.error("Choose at least one RSNA class (the paper: Normal and Lung Opacity).")
        else:
            config = EvalConfig(methods=tuple(methods), preset=preset, criteria=tuple(criteria),
                                utility_limit=int(limit) or None, ssim_images=int(ssim_images), group=8,
                                overrides={"gradcam_interpolation": upsampling}, randomization_mode=mode,
                                shuffled_models=tuple(str(ws.layout.model(m)) for m in shuffled))
            with friendly_errors(), st.spinner("Planning: models, images, units, a timed pass…"):
                dataset = ws.dataset(kind(), classes=tuple(classes) if classes else None, mask_rule=mask_rule,
                                     finding=finding())
                evaluation = Evaluation(dataset, [ws.layout.model(m) for m in models], config,
                                        localizers=[ws.layout.model(m) for m in localizers], cache=ws.store)
                st.session_state["_run_plan"] = (str(ws.root), kind(), finding(), preset, models, evaluation,
                                                 estimate(evaluation))

    plan = st.session_state.get("_run_plan")
    if plan and plan[:3] != (str(ws.root), kind(), finding()):  # planned for another workspace or dataset
        st.session_state.pop("_run_plan", None)
        plan = None
    if plan:
        _root, _kind, _finding, preset, models, evaluation, (image_states, per_image, per_pass, forwards) = plan
        total = image_states * per_image if per_image is not None else None
        seconds = total * per_pass if total is not None else None
        st.markdown(f"**Plan** — {len(evaluation.units())} units, {image_states} image-states × "
                    + (f"{per_image} forward+backward passes" if per_image is not None else "an unknown number of "
                       "passes (a plugin states no cost)")
                    + (f" (+ {forwards} forward-only)" if forwards else "") + " each"
                    + (f" ≈ **{_duration(seconds)}** on this machine ({per_pass * 1000:.0f} ms per pass measured "
                       "now); maps already in the cache are not recomputed." if seconds is not None else "."))
        replaces = ws.results(kind(), finding()) is not None or ws.results_finding(kind()) is not None
        confirmed = True
        if replaces:
            st.warning(f"This run **replaces the current {kind().upper()} results** (`results/{kind()}`), which "
                       "the scorecard, metrics, gallery and reports read.", icon="⚠️")
            confirmed = st.checkbox(f"Replace the {kind().upper()} results", value=False,
                                    key=f"confirm_replace_{id(evaluation)}")  # a new plan asks again
        if st.button("Start evaluation", type="primary", disabled=not confirmed):
            label = f"{kind().upper()}" + (f" ({finding()})" if finding() else "")
            known = {j.id for j in jobs().list()}
            job = jobs().start(f"{label} · {preset} · {len(models)} models", ws.layout.results(kind()),
                               lambda evaluation=evaluation: evaluation)
            st.session_state.pop("_run_plan", None)
            st.success(f"Started job {job.id}: it keeps running if you change page."
                       if job.id not in known else f"A run for these results is already going (job {job.id}): it "
                       "continues; start again when it has ended.")

    @st.fragment(run_every=2.0)
    def job_list():
        listed = jobs().list()
        if not listed:
            st.caption("No evaluation job has run since this app server started (jobs are shared by every "
                       "session of the server).")
        for job in listed:
            st.markdown(f"**{job.label}** — {job.status}")
            st.progress(job.fraction, text=redact(f"{job.done}/{job.total} units · {job.message}")[:200])
            if job.status == "failed":
                st.error(redact(job.message))


    job_list()


def estimate(evaluation) -> tuple[int, int | None, float, int | None]:
    """(image-states, forward+backward passes per image-state, seconds per pass measured on the main model,
    forward-only passes per image-state) of a planned evaluation."""
    import time

    import torch

    from trust_core.models.info import info_of
    from trust_core.saliency import explain
    from trust_core.saliency.registry import estimate_passes

    units = evaluation.units()
    image_states = sum(len(u.image_ids) for u in units)
    size = evaluation.size
    per_image, forwards = estimate_passes(evaluation.methods, evaluation.params, size=size)
    model = evaluation.models[0]
    x = torch.zeros((4, info_of(model).prep.channels, size, size))
    explain(model, x[:1], methods=["grad"])  # warm-up
    started = time.perf_counter()
    explain(model, x, methods=["grad"], batch_size=4)
    return image_states, per_image, (time.perf_counter() - started) / 4, forwards


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min" if seconds < 5400 else \
        f"{seconds / 3600:.1f} h"


run_page(__file__, render)
