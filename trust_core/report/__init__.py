"""Rendering and reports (HTML/PDF, cohort archives); no UI code."""
from .render import COLORMAPS, VERDICT_COLOURS, colorize, overlay, to_png
from .report import ImageReport, build_image_report, cohort_archive, pseudonym, render_html, render_pdf
from .summary import provenance_line, scorecard_table

__all__ = ["COLORMAPS", "VERDICT_COLOURS", "ImageReport", "build_image_report", "cohort_archive", "colorize", "overlay",
           "pseudonym", "render_html", "render_pdf", "scorecard_table", "provenance_line", "to_png"]
