"""The report page: ``write_report(study_dir)`` writes ``report.html`` and one CSV per table.

``report.html`` is a single page readable offline: plotly.js is written once, beside it
(``plotly.min.js``, default) or inline in the page (``plotlyjs="inline"``); never fetched from a
CDN. Its sections and figures come from :mod:`raympa.report.sections`.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any, Literal

from raympa import studyfolder
from raympa.analysis import AnalysisConfig, analyse
from raympa.report.sections import meta_html, notes_html, sections
from raympa.report.summary import answer_html

PlotlyJs = Literal["directory", "inline"]

# CSV written beside the report: file stem -> analysis table (every file is written, header-only
# when its table is empty, so scripts can rely on the names).
CSV_TABLES = {
    "r2_by_model": "r2_by_model",
    "r2_summary": "r2_summary",
    "tsne": "tsne",
    "centroid_distances": "centroid_distances",
    "centroid_distances_mean": "centroid_distances_mean",
    "davies_bouldin": "davies_bouldin",
    "db_vs_r2": "db_vs_r2",
    "sweep": "sweep",
    "param_importance": "param_importance",
    "best_configs": "best_configs",
    "significance": "significance",
    "baseline_comparison": "baseline_comparison",
    "late_best_epoch": "late_best_epoch",
    "failed_trials": "failed_trials",
}

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto; max-width: 1200px;
       padding: 1rem 2rem; color: #222; line-height: 1.45; }
h1 { font-size: 1.6rem; } h2 { border-bottom: 1px solid #ccc; padding-top: 1rem; }
table { border-collapse: collapse; font-size: 0.85rem; margin: 0.5rem 0; display: block; overflow-x: auto; max-width: 100%; }
th, td { border: 1px solid #ddd; padding: 2px 6px; text-align: right; }
th { background: #f4f4f4; } td:first-child, th:first-child { text-align: left; }
.note { background: #fff8e1; border-left: 4px solid #f0b400; padding: 0.3rem 0.6rem; margin: 0.3rem 0; }
.meta td { text-align: left; vertical-align: top; } pre { margin: 0; white-space: pre-wrap; }
.csv { font-size: 0.85rem; color: #555; } nav a { margin-right: 0.8rem; }
.answer { font-size: 1.05rem; background: #eef6ee; border-left: 4px solid #3a8a3a; padding: 0.4rem 0.8rem; }
"""


def _figure_html(fig: Any, div_id: str) -> str:
    import plotly.io as pio

    height = fig.layout.height or 450
    return pio.to_html(fig, full_html=False, include_plotlyjs=False, div_id=div_id,
                       default_height=f"{height}px", config={"displaylogo": False, "responsive": True})


def write_report(
    study_dir: str | Path,
    out_dir: str | Path | None = None,
    *,
    config: AnalysisConfig | None = None,
    plotlyjs: PlotlyJs = "directory",
    argv: list[str] | None = None,
) -> Path:
    """Write ``report.html`` and its CSV tables for a study folder.

    Args:
        study_dir: folder written by ``raympa.study`` (study.json, trials.csv, latents/).
        out_dir: report folder (default ``STUDY_DIR/report``).
        config: analysis settings (rating bins, t-SNE perplexity ...).
        plotlyjs: "directory" writes plotly.min.js once beside the page (about 4.6 MB);
            "inline" embeds it in the page. Both work offline.
        argv: the command line that asked for the report, recorded in the page.

    Returns:
        the path of ``report.html``.
    """
    from plotly.offline import get_plotlyjs

    if plotlyjs not in ("directory", "inline"):
        raise ValueError(f"plotlyjs={plotlyjs!r}; choose 'directory' or 'inline' (a CDN would not work offline)")
    a = analyse(study_dir, config)
    out = Path(out_dir) if out_dir is not None else studyfolder.report_dir(a.study.path)
    out.mkdir(parents=True, exist_ok=True)
    for stem, key in CSV_TABLES.items():
        a.tables[key].to_csv(out / f"{stem}.csv", index=False)

    js = get_plotlyjs()
    if plotlyjs == "directory":
        js_path = out / "plotly.min.js"
        if not js_path.is_file() or js_path.read_text(encoding="utf-8") != js:
            js_path.write_text(js, encoding="utf-8")
        head_js = '<script src="plotly.min.js" charset="utf-8"></script>'
    else:
        head_js = f'<script type="text/javascript">{js}</script>'

    title = html.escape(str(a.study.meta.get("name") or a.study.path.name))
    parts = []
    nav = []
    for sec, fig in sections(a):
        nav.append(f'<a href="#{sec.key}">{html.escape(sec.title.split(" (")[0])}</a>')
        parts.append(f'<section id="{sec.key}"><h2>{html.escape(sec.title)}</h2><p>{html.escape(sec.intro)}</p>')
        if fig is not None:
            parts.append(_figure_html(fig, f"fig-{sec.key}"))
        elif sec.figure:
            parts.append('<div class="note">No data for this figure (see the notes).</div>')
        parts.extend(sec.body)
        parts.append("</section>")
    question = a.study.meta.get("question")
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>raympa report: {title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>{_CSS}</style>
{head_js}
</head><body>
<h1>raympa report: {title}</h1>
{f"<p><strong>Question:</strong> {html.escape(str(question))}</p>" if question else ""}
{answer_html(a)}
<nav>{"".join(nav)}<a href="#study">Study: command, versions, data</a></nav>
{notes_html(a.notes["study"])}
{"".join(parts)}
<section id="study"><h2>Study: command, versions, data</h2>{meta_html(a, argv)}</section>
</body></html>
"""
    path = out / "report.html"
    path.write_text(page, encoding="utf-8")
    return path

