"""Plotly HTML report of a study folder, with one CSV per figure.

``write_report(study_dir)`` turns the tables of :mod:`raympa.analysis` into ``report.html``, a
single page readable offline: plotly.js is written once, beside it (``plotly.min.js``, default)
or inline in the page (``plotlyjs="inline"``); never fetched from a CDN. The figures follow
Seshadri & Lerch (ISMIR 2021): R² box plots over seeds (Figures 2-3), t-SNE of test latents
(Figure 4), bin-centroid distances (Figure 5), Davies-Bouldin indices (Figure 6); then what the
paper lacked: DB index against R² across trials, sweep slices, parameter importance, the best
configurations with spread over seeds, and paired significance tests with effect sizes.
"""

from __future__ import annotations

import argparse
import html
import json
import platform
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from raympa.analysis import MODEL_LABELS, MODEL_ORDER, Analysis, AnalysisConfig, analyse

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
    "failed_trials": "failed_trials",
}
BIN_COLOURS = ("#440154", "#3b528b", "#21918c", "#5ec962", "#c8b100", "#f98e09", "#d1495b", "#7a0403")
MODEL_COLOURS = {"pcconvnet": "#636efa", "contrastive": "#ef553b", "contrastive-jl": "#00cc96"}
_PANEL_PX = 300  # height of one row of subplots, pixels
_PACKAGES = ("raympa", "numpy", "pandas", "scipy", "scikit-learn", "optuna", "plotly")


def _label(model: str) -> str:
    return MODEL_LABELS.get(model, model)


def _models(values: Any) -> list[str]:
    present = set(values)
    return [m for m in MODEL_ORDER if m in present] + sorted(present - set(MODEL_ORDER))


def _colour(model: str, i: int = 0) -> str:
    return MODEL_COLOURS.get(model, BIN_COLOURS[i % len(BIN_COLOURS)])


def _groups(df: Any) -> list[tuple[str, str]]:
    return list(dict.fromkeys(zip(df["criterion"], df["band"])))


# ----------------------------------------------------------------------------- figures
def fig_r2(a: Analysis) -> Any:
    """R² box plots over seeds: x = criterion, one box per model, rows = bands, columns = protocols."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    df = a.tables["r2_by_model"]
    if df.empty:
        return None
    bands = list(dict.fromkeys(df["band"]))
    protocols = list(dict.fromkeys(df["protocol"]))
    fig = make_subplots(rows=len(bands), cols=len(protocols), shared_yaxes=True,
                        subplot_titles=[f"{b} — {p}" for b in bands for p in protocols])
    for r, band in enumerate(bands, 1):
        for c, prot in enumerate(protocols, 1):
            sub = df[(df["band"] == band) & (df["protocol"] == prot)]
            for i, model in enumerate(_models(df["model"])):
                s = sub[sub["model"] == model]
                fig.add_trace(go.Box(
                    x=s["criterion"], y=s["r2"], name=_label(model), legendgroup=model,
                    showlegend=(r == 1 and c == 1), boxpoints="all", jitter=0.3, pointpos=0,
                    marker_color=_colour(model, i), text=[f"seed {v}" for v in s["seed"]],
                    hovertemplate="%{x}<br>R² %{y:.3f}<br>%{text}<extra>" + _label(model) + "</extra>",
                ), row=r, col=c)
    fig.update_layout(boxmode="group", height=_PANEL_PX * len(bands) + 80, yaxis_title="test R²",
                      margin=dict(t=60, b=40))
    return fig


def fig_tsne(a: Analysis) -> Any:
    """t-SNE scatter per representative trial: rows = criterion x band, columns = models."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    df = a.tables["tsne"]
    if df.empty:
        return None
    groups, models = _groups(df), _models(df["model"])
    titles = []
    for crit, band in groups:
        for m in models:
            s = df[(df["criterion"] == crit) & (df["band"] == band) & (df["model"] == m)]
            titles.append(f"{_label(m)} — {crit}, {band}" + (f" (seed {s['seed'].iloc[0]})" if len(s) else ""))
    fig = make_subplots(rows=len(groups), cols=len(models), subplot_titles=titles,
                        horizontal_spacing=0.04, vertical_spacing=0.3 / max(len(groups), 1))
    shown: set[int] = set()
    for r, (crit, band) in enumerate(groups, 1):
        for c, m in enumerate(models, 1):
            s = df[(df["criterion"] == crit) & (df["band"] == band) & (df["model"] == m)]
            for b in sorted(s["bin"].unique()):
                sb = s[s["bin"] == b]
                fig.add_trace(go.Scatter(
                    x=sb["tsne_x"], y=sb["tsne_y"], mode="markers", name=f"bin {b}", legendgroup=f"bin{b}",
                    showlegend=int(b) not in shown, marker=dict(color=BIN_COLOURS[int(b) % len(BIN_COLOURS)], size=6),
                    text=[f"{rid}: rating {y:.2f}" for rid, y in zip(sb["recording_id"], sb["rating"])],
                    hovertemplate="%{text}<extra>bin " + str(b) + "</extra>",
                ), row=r, col=c)
                shown.add(int(b))
    fig.update_xaxes(showticklabels=False)
    fig.update_yaxes(showticklabels=False)
    fig.update_annotations(font_size=11)  # subplot titles
    fig.update_layout(height=_PANEL_PX * len(groups) + 80, margin=dict(t=60, b=20), legend_title_text="rating bin")
    return fig


def fig_centroids(a: Analysis) -> Any:
    """Heatmaps of mean bin-centroid distances: rows = criterion x band, columns = models."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    df = a.tables["centroid_distances_mean"]
    if df.empty:
        return None
    groups, models = _groups(df), _models(df["model"])
    fig = make_subplots(rows=len(groups), cols=len(models), horizontal_spacing=0.06,
                        vertical_spacing=0.3 / max(len(groups), 1),
                        subplot_titles=[f"{_label(m)} — {c}, {b}" for c, b in groups for m in models])
    for r, (crit, band) in enumerate(groups, 1):
        for c, m in enumerate(models, 1):
            s = df[(df["criterion"] == crit) & (df["band"] == band) & (df["model"] == m)]
            if s.empty:
                continue
            mat = s.pivot_table(index="bin_i", columns="bin_j", values="distance", aggfunc="mean", dropna=False)
            fig.add_trace(go.Heatmap(
                z=mat.to_numpy(), x=[f"bin {j}" for j in mat.columns], y=[f"bin {i}" for i in mat.index],
                colorscale="Viridis", showscale=False, texttemplate="%{z:.2f}",
                hovertemplate="%{y} – %{x}: %{z:.3f}<extra></extra>",
            ), row=r, col=c)
    fig.update_yaxes(autorange="reversed")
    fig.update_annotations(font_size=11)  # subplot titles
    fig.update_layout(height=_PANEL_PX * len(groups) + 80, margin=dict(t=60, b=20))
    return fig


def fig_davies_bouldin(a: Analysis) -> Any:
    """DB index per model over seeds (selected configurations), x = criterion / band."""
    import plotly.graph_objects as go

    db = a.tables["davies_bouldin"]
    sel = db.merge(a.tables["r2_by_model"][["trial_id"]].drop_duplicates(), on="trial_id", how="inner")
    sel = sel.dropna(subset=["davies_bouldin"])
    if sel.empty:
        return None
    fig = go.Figure()
    for i, m in enumerate(_models(sel["model"])):
        s = sel[sel["model"] == m]
        fig.add_trace(go.Box(x=s["criterion"] + " / " + s["band"], y=s["davies_bouldin"], name=_label(m),
                             boxpoints="all", jitter=0.3, pointpos=0, marker_color=_colour(m, i)))
    fig.update_layout(boxmode="group", height=420, yaxis_title="Davies-Bouldin index (lower = tighter bins)",
                      margin=dict(t=30, b=40))
    return fig


def fig_db_vs_r2(a: Analysis) -> Any:
    """Scatter of DB index against test R² for every trial with latents, one panel per group."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    db = a.tables["davies_bouldin"].dropna(subset=["davies_bouldin", "test_r2_full"])
    if db.empty:
        return None
    groups = _groups(db)
    corr = a.tables["db_vs_r2"].set_index(["criterion", "band"])
    titles = []
    for g in groups:
        rho = corr["spearman_rho"].get(g) if g in corr.index else None
        titles.append(f"{g[0]}, {g[1]}" + (f" (Spearman ρ = {rho:.2f})" if rho == rho and rho is not None else ""))
    cols = min(len(groups), 2)
    rows = -(-len(groups) // cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=titles)
    for k, (crit, band) in enumerate(groups):
        s = db[(db["criterion"] == crit) & (db["band"] == band)]
        for i, m in enumerate(_models(db["model"])):
            sm = s[s["model"] == m]
            fig.add_trace(go.Scatter(
                x=sm["davies_bouldin"], y=sm["test_r2_full"], mode="markers", name=_label(m), legendgroup=m,
                showlegend=k == 0, marker=dict(color=_colour(m, i), size=7), text=sm["config_id"] + ", seed " + sm["seed"].astype(str),
                hovertemplate="DB %{x:.2f}, R² %{y:.3f}<br>%{text}<extra></extra>",
            ), row=k // cols + 1, col=k % cols + 1)
    fig.update_xaxes(title_text="Davies-Bouldin index")
    fig.update_yaxes(title_text="test R² (full)")
    fig.update_layout(height=_PANEL_PX * rows + 80, margin=dict(t=60, b=40))
    return fig


def fig_sweep(a: Analysis) -> Any:
    """Slice plots: selection metric against each swept parameter, rows = criterion x band."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    df = a.tables["sweep"]
    params = [p for p in a.study.swept if p != "model"]
    if df.empty or not params:
        return None
    groups = [g for g in _groups(df)
              if any(df[(df["criterion"] == g[0]) & (df["band"] == g[1])][p].astype(str).nunique() > 1 for p in params)]
    if not groups:
        return None
    metric = a.study.metric
    log_params = a.study.log_params
    fig = make_subplots(rows=len(groups), cols=len(params), shared_yaxes=True,
                        subplot_titles=[f"{p} — {c}, {b}" for c, b in groups for p in params])
    for r, (crit, band) in enumerate(groups, 1):
        s = df[(df["criterion"] == crit) & (df["band"] == band)]
        for c, p in enumerate(params, 1):
            for i, m in enumerate(_models(s["model"])):
                sm = s[s["model"] == m]
                fig.add_trace(go.Scatter(
                    x=sm[p], y=sm[metric], mode="markers", name=_label(m), legendgroup=m,
                    showlegend=(r == 1 and c == 1), marker=dict(color=_colour(m, i), size=7, opacity=0.8),
                    text=sm["config_id"] + ", seed " + sm["seed"].astype(str),
                    hovertemplate=p + " %{x}<br>" + metric + " %{y:.3f}<br>%{text}<extra></extra>",
                ), row=r, col=c)
            fig.update_xaxes(title_text=p + (" (log)" if p in log_params else ""), row=r, col=c,
                             type="log" if p in log_params and (s[p] > 0).all() else None)
        fig.update_yaxes(title_text=metric, row=r, col=1)
    fig.update_layout(height=_PANEL_PX * len(groups) + 80, margin=dict(t=60, b=40))
    return fig


def fig_importance(a: Analysis) -> Any:
    """Horizontal bars of parameter importance per criterion x band."""
    import plotly.graph_objects as go

    df = a.tables["param_importance"]
    if df.empty:
        return None
    fig = go.Figure()
    for crit, band in _groups(df):
        s = df[(df["criterion"] == crit) & (df["band"] == band)]
        fig.add_trace(go.Bar(x=s["importance"], y=s["param"], orientation="h", name=f"{crit}, {band}"))
    fig.update_layout(barmode="group", height=min(900, 140 + 28 * len(df)),
                      xaxis_title=f"fANOVA importance for {a.study.metric} (sums to 1 per group)",
                      margin=dict(t=30, b=40))
    return fig


# ----------------------------------------------------------------------------- HTML
_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto; max-width: 1200px;
       padding: 1rem 2rem; color: #222; line-height: 1.45; }
h1 { font-size: 1.6rem; } h2 { border-bottom: 1px solid #ccc; padding-top: 1rem; }
table { border-collapse: collapse; font-size: 0.85rem; margin: 0.5rem 0; }
th, td { border: 1px solid #ddd; padding: 2px 6px; text-align: right; }
th { background: #f4f4f4; } td:first-child, th:first-child { text-align: left; }
.note { background: #fff8e1; border-left: 4px solid #f0b400; padding: 0.3rem 0.6rem; margin: 0.3rem 0; }
.meta td { text-align: left; vertical-align: top; } pre { margin: 0; white-space: pre-wrap; }
.csv { font-size: 0.85rem; color: #555; } nav a { margin-right: 0.8rem; }
"""


@dataclass
class _Section:
    key: str
    title: str
    intro: str
    body: list[str]


def _notes_html(notes: list[str]) -> str:
    return "".join(f'<div class="note">{html.escape(n)}</div>' for n in notes)


def _table_html(df: Any, *, digits: int = 3, max_rows: int = 60) -> str:
    if df is None or df.empty:
        return "<p><em>(empty)</em></p>"
    shown = df.head(max_rows)
    out = shown.to_html(index=False, escape=True, na_rep="–", float_format=lambda v: f"{v:.{digits}g}"
                        if abs(v) < 1e-3 and v != 0 else f"{v:.{digits}f}", border=0)
    if len(df) > max_rows:
        out += f"<p class='csv'>first {max_rows} of {len(df)} rows; all in the CSV.</p>"
    return out


def _csv_link(*names: str) -> str:
    links = ", ".join(f'<a href="{n}.csv">{n}.csv</a>' for n in names)
    return f'<p class="csv">Numbers: {links}</p>'


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in _PACKAGES:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def _meta_html(a: Analysis, argv: list[str] | None) -> str:
    meta = a.study.meta
    rows = []
    for key, value in meta.items():
        text = value if isinstance(value, str) else json.dumps(value, indent=1, default=str)
        rows.append(f"<tr><th>{html.escape(str(key))}</th><td><pre>{html.escape(text)}</pre></td></tr>")
    fin, failed = a.study.finished, a.study.failed
    rows.append(f"<tr><th>trials</th><td>{len(fin)} finished, {len(failed)} failed or unfinished "
                f"(of {len(a.study.trials)}); selection metric {html.escape(a.study.metric)} ({a.study.mode})</td></tr>")
    rows.append(f"<tr><th>swept parameters</th><td>{html.escape(', '.join(a.study.swept) or 'none')}</td></tr>")
    report_cmd = " ".join(argv) if argv else f"raympa report {a.study.path}"
    rows.append(f"<tr><th>report command</th><td><pre>{html.escape(report_cmd)}</pre></td></tr>")
    rows.append(f"<tr><th>report versions</th><td><pre>{html.escape(json.dumps(_versions(), indent=1))}</pre></td></tr>")
    rows.append(f"<tr><th>report written</th><td>{datetime.now(timezone.utc).isoformat(timespec='seconds')}</td></tr>")
    return '<table class="meta">' + "".join(rows) + "</table>"


def _sections(a: Analysis) -> list[tuple[_Section, Any]]:
    """Each section with its figure (or None)."""
    n = a.notes
    t = a.tables
    sig = t["significance"]
    sig_show = sig.copy()
    for col in ("model_a", "model_b"):
        sig_show[col] = sig_show[col].map(_label)
    best = t["best_configs"]
    best_cols = [c for c in best.columns if not c.endswith(("_min", "_max"))]
    failed = t["failed_trials"]
    metric = a.study.metric
    return [
        (_Section("r2", "R² over seeds (paper Figures 2-3)",
                  "Test R² of every seed, per model, criterion and band, for both test protocols "
                  "(test_r2_full: whole recordings; test_r2_chunk: overlapping chunks). Where a model ran "
                  f"in several configurations, the one with the best mean {metric} over seeds is shown.",
                  [_notes_html(n["r2"]), _table_html(t["r2_summary"]), _csv_link("r2_by_model", "r2_summary")]),
         fig_r2(a)),
        (_Section("tsne", "t-SNE of test-set latents (paper Figure 4)",
                  "2-D t-SNE (scikit-learn) of the 16-d encoder outputs of the test recordings, coloured by "
                  "rating bin, for the seed with the median selection metric of each model. Distances between "
                  "far-apart points in t-SNE maps are not meaningful; the next two sections measure them.",
                  [_notes_html(n["tsne"]), _csv_link("tsne")]),
         fig_tsne(a)),
        (_Section("centroids", "Distances between rating-bin centroids (paper Figure 5)",
                  "Euclidean distance between the mean latent vectors of each pair of rating bins, averaged over "
                  "seeds. In a latent space ordered by rating, distances grow away from the diagonal; "
                  "centroid_order_rho in davies_bouldin.csv is Spearman's rho of distance against bin gap. "
                  "Scales differ between models (each panel has its own colour scale).",
                  [_notes_html(n["latent"]), _csv_link("centroid_distances", "centroid_distances_mean")]),
         fig_centroids(a)),
        (_Section("db", "Davies-Bouldin index (paper Figure 6)",
                  "Davies-Bouldin index (scikit-learn) of the test latents with rating bins as clusters, per "
                  "model over seeds. Lower means tighter, better separated bins.",
                  [_csv_link("davies_bouldin")]),
         fig_davies_bouldin(a)),
        (_Section("db_r2", "Does tighter clustering go with better R²?",
                  "Every trial with latents: Davies-Bouldin index against test R². The paper reports that a lower "
                  "index went with better regression on its three models; a negative Spearman rho here says the "
                  "same across all trials.",
                  [_notes_html(n["db_vs_r2"]), _table_html(t["db_vs_r2"]), _csv_link("db_vs_r2")]),
         fig_db_vs_r2(a)),
        (_Section("sweep", "Sweep: metric against each parameter",
                  f"Every finished trial's {metric} against each swept parameter (Optuna-style slice plots). "
                  "Parameters were varied jointly, so a slice mixes the other parameters' effects.",
                  [_notes_html(n["sweep"]), _csv_link("sweep")]),
         fig_sweep(a)),
        (_Section("importance", "Parameter importance",
                  f"Share of the variance of {metric} explained by each swept parameter, from Optuna's fANOVA "
                  "evaluator (a random forest fitted to the finished trials, seeds not a parameter).",
                  [_notes_html(n["importance"]), _table_html(t["param_importance"]), _csv_link("param_importance")]),
         fig_importance(a)),
        (_Section("best", "Best configurations",
                  f"Configurations ranked by mean {metric} over seeds, with standard deviation (ddof 1) and the "
                  "test R² of the same runs; min and max are in the CSV.",
                  [_notes_html(n["best"]), _table_html(best[best_cols]), _csv_link("best_configs")]),
         None),
        (_Section("significance", "Paired significance tests between models",
                  "Wilcoxon signed-rank tests (scipy) on test R², pairs matched by criterion, band and seed; "
                  "'all' pools every criterion and band. mean_diff, rank_biserial and cohen_dz are positive when "
                  "model_a scores higher; p_bh is Benjamini-Hochberg adjusted over the tests of one protocol. "
                  "With five seeds the smallest two-sided p of a single criterion x band test is 0.0625: "
                  "only pooled tests can reach 0.05. The paper reports no tests.",
                  [_notes_html(n["significance"]), _table_html(sig_show), _csv_link("significance")]),
         None),
        (_Section("failed", "Failed trials",
                  "Trials that ended in an error are left out of every figure above.",
                  [_table_html(failed) if not failed.empty else "<p>None.</p>", _csv_link("failed_trials")]),
         None),
    ]


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
    out = Path(out_dir) if out_dir is not None else a.study.path / "report"
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
    for sec, fig in _sections(a):
        nav.append(f'<a href="#{sec.key}">{html.escape(sec.title.split(" (")[0])}</a>')
        parts.append(f'<section id="{sec.key}"><h2>{html.escape(sec.title)}</h2><p>{html.escape(sec.intro)}</p>')
        if fig is not None:
            parts.append(_figure_html(fig, f"fig-{sec.key}"))
        elif sec.key not in ("best", "significance", "failed"):
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
<nav>{"".join(nav)}<a href="#study">Study: command, versions, data</a></nav>
{_notes_html(a.notes["study"])}
{"".join(parts)}
<section id="study"><h2>Study: command, versions, data</h2>{_meta_html(a, argv)}</section>
</body></html>
"""
    path = out / "report.html"
    path.write_text(page, encoding="utf-8")
    return path


def cli_report(args: argparse.Namespace) -> int:
    """Handler of ``raympa report STUDY_DIR [--out DIR] ...``; prints the report's path."""
    import shlex
    import sys

    defaults = AnalysisConfig()
    config = AnalysisConfig(
        n_bins=getattr(args, "n_bins", defaults.n_bins),
        metric=getattr(args, "metric", None),
        mode=getattr(args, "mode", None),
        tsne_perplexity=getattr(args, "perplexity", defaults.tsne_perplexity),
        seed=getattr(args, "seed", defaults.seed),
    )
    inline = bool(getattr(args, "inline", False))
    argv = ["raympa", "report", str(args.study_dir)]
    if args.out:
        argv += ["--out", str(args.out)]
    for flag, value, default in (("--n-bins", config.n_bins, defaults.n_bins), ("--metric", config.metric, None),
                                 ("--mode", config.mode, None), ("--perplexity", config.tsne_perplexity,
                                 defaults.tsne_perplexity), ("--seed", config.seed, defaults.seed)):
        if value != default:
            argv += [flag, str(value)]
    if inline:
        argv.append("--inline")
    try:
        path = write_report(args.study_dir, args.out, config=config,
                            plotlyjs="inline" if inline else "directory", argv=[shlex.join(argv)])
    except (FileNotFoundError, ValueError) as e:
        print(f"raympa report: {e}", file=sys.stderr)
        return 2
    print(path)
    return 0
