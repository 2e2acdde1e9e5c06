"""Plotly HTML report of a study folder, with one CSV per figure.

``write_report(study_dir)`` turns the tables of :mod:`raympa.analysis` into ``report.html``:

* :mod:`~raympa.report.figures`: one Plotly figure per analysis table;
* :mod:`~raympa.report.sections`: each section's text, notes, tables and figure;
* :mod:`~raympa.report.page`: the page itself, plotly.js (offline) and the CSV files.
"""

from __future__ import annotations

from raympa.report.page import CSV_TABLES, PlotlyJs, write_report

__all__ = ["CSV_TABLES", "PlotlyJs", "write_report"]
