"""Reports: a per-image report (HTML, PDF) and the cohort results (ZIP of tables, scorecard, failure analysis
and figures), each built when asked."""
import streamlit as st

from trust_core.report import build_image_report, cohort_archive, render_html, render_pdf
from ui.frame import dataset_page, friendly_errors, run_page
from ui.state import finding, kind, model_name, preset, shared
from ui.widgets import extended_toggle, image_picker, shown_methods


def render() -> None:
    ws, dataset = dataset_page("Reports")
    ids = dataset.ids(split="test", label=1)
    image_id = image_picker(ids, dataset)
    extended_toggle()
    methods = tuple(shown_methods())
    identifiers = bool(shared("identifiers", False))  # the sidebar's choice, as on every page
    st.caption("Patient identifiers (name, ID, birth date…) are **included**: the sidebar's switch is on."
               if identifiers else "De-identified: the image is named by its pseudonym (the sidebar's switch "
               "'Show patient identifiers' includes them).")
    # A report belongs to what it was built from: another dataset, finding, image, model, preset or the
    # identifiers choice clears it (a stale report of another image was offered before).
    built_for = (str(ws.root), kind(), finding(), image_id, model_name(), preset(), methods, identifiers)
    if st.session_state.get("report", (None,))[0] != built_for:
        st.session_state.pop("report", None)
    if st.button("Build report", type="primary"):
        with friendly_errors(), st.spinner("Computing maps and rendering…"):
            report = build_image_report(ws, kind(), image_id, model_name(), methods=list(methods), preset=preset(),
                                        finding=finding(), include_identifiers=identifiers)
            st.session_state["report"] = (built_for, report.title, render_html(report), render_pdf(report))
    if "report" in st.session_state:
        _, title, html_text, pdf_bytes = st.session_state["report"]
        c1, c2 = st.columns(2)
        c1.download_button("Download HTML", html_text, file_name=f"{title}.html", mime="text/html")
        c2.download_button("Download PDF", pdf_bytes, file_name=f"{title}.pdf", mime="application/pdf")
        st.caption(f"Report {title} ready ({len(pdf_bytes) // 1024} kB PDF). Its preview (the HTML version):")
        st.iframe(html_text, height=900)  # the report's own HTML, as downloaded (our text, escaped)

    st.divider()
    st.subheader("Cohort summary")
    if ws.results(kind(), finding()) is None:
        st.info("Run an evaluation first (Runs page).")
    else:
        # built when asked (the failure analysis and every figure in SVG and PDF: ≈25 s on 2 cores, most of it
        # matplotlib drawing and embedding fonts), kept while it stays current
        summary = ws.layout.summary(kind())
        cohort_for = (str(ws.root), kind(), finding(), identifiers, summary.stat().st_mtime_ns)
        if st.session_state.get("cohort", (None,))[0] != cohort_for:
            st.session_state.pop("cohort", None)
        slot = st.empty()  # the button gives way to the download once the ZIP is built
        if "cohort" not in st.session_state and slot.button("Prepare cohort results (ZIP)"):
            with friendly_errors(), st.spinner("Tables, scorecard, failure analysis and every figure as SVG and PDF "
                                               "(about half a minute on 2 cores; kept for this session)…"):
                st.session_state["cohort"] = (cohort_for, cohort_archive(ws, kind(), include_identifiers=identifiers))
            slot.empty()
        if "cohort" in st.session_state:
            st.download_button("Download cohort results (ZIP: CSV, Parquet, summary, scorecard, failure analysis, "
                               "figures as SVG and PDF)", st.session_state["cohort"][1],
                               file_name=f"{kind()}_results.zip", mime="application/zip",
                               help="Image ids are replaced by pseudonyms unless identifiers are included above.")
    st.caption(f"Same exports on the command line: `trust report --workspace {ws.root} --dataset {kind()} "
               f"--image IMAGE_ID --model {model_name()} --out report.pdf` and `trust report … --cohort` (see README).")


run_page(__file__, render)
