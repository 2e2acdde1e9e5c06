"""The report's sections: title, introduction, notes, tables and the figure of each.

The text says how each number was computed and which test protocol it used; the figures come
from :mod:`raympa.report.figures`.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from raympa import studyfolder
from raympa.analysis import Analysis
from raympa.analysis.selection import TEST_PROTOCOLS, label, protocol_name, r2_protocols
from raympa.report.figures import (
    fig_centroids,
    fig_davies_bouldin,
    fig_db_vs_r2,
    fig_importance,
    fig_r2,
    fig_sweep,
    fig_tsne,
)

PACKAGES = ("raympa", "numpy", "pandas", "scipy", "scikit-learn", "optuna", "plotly")  # versions on the page


@dataclass
class Section:
    """One section of the page: anchor, heading, introduction and HTML body after the figure."""

    key: str
    title: str
    intro: str
    body: list[str]
    figure: bool = True  # whether the section has a figure (a missing one gets a note)


def notes_html(notes: list[str]) -> str:
    return "".join(f'<div class="note">{html.escape(n)}</div>' for n in notes)


def table_html(df: Any, *, digits: int = 3, max_rows: int = 60) -> str:
    if df is None or df.empty:
        return "<p><em>(empty)</em></p>"
    shown = df.head(max_rows)
    out = shown.to_html(index=False, escape=True, na_rep="–", float_format=lambda v: f"{v:.{digits}g}"
                        if abs(v) < 1e-3 and v != 0 else f"{v:.{digits}f}", border=0)
    if len(df) > max_rows:
        out += f"<p class='csv'>first {max_rows} of {len(df)} rows; all in the CSV.</p>"
    return out


def csv_link(*names: str) -> str:
    links = ", ".join(f'<a href="{n}.csv">{n}.csv</a>' for n in names)
    return f'<p class="csv">Numbers: {links}</p>'


def meta_html(a: Analysis, argv: list[str] | None) -> str:
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
    versions = json.dumps(studyfolder.versions(PACKAGES, missing="not installed"), indent=1)
    rows.append(f"<tr><th>report versions</th><td><pre>{html.escape(versions)}</pre></td></tr>")
    rows.append(f"<tr><th>report written</th><td>{datetime.now(timezone.utc).isoformat(timespec='seconds')}</td></tr>")
    return '<table class="meta">' + "".join(rows) + "</table>"


def _protocols_text(a: Analysis) -> str:
    cols = r2_protocols(a.study.trials.columns)
    return "; ".join(f"{protocol_name(c)} ({c}): {TEST_PROTOCOLS[c][1]}" for c in cols) or "none recorded"


def _latent_text(a: Analysis) -> str:
    """Which test points the latent views used (chunks or recordings), for the section intros."""
    return " ".join(a.notes.get("points") or ["No latents."])


def _paper_sections(a: Analysis) -> list[tuple[Section, Any]]:
    """The paper's figures (2-6), each saying its protocol."""
    n, t, metric = a.notes, a.tables, a.study.metric
    points = _latent_text(a)
    return [
        (Section("r2", "R² over seeds (paper Figures 2-3)",
                 "Test R² of every seed, per model, criterion and band, one column of panels per test protocol: "
                 f"{_protocols_text(a)}. Where a model ran in several configurations, the one with the best mean "
                 f"{metric} over seeds is shown.",
                 [notes_html(n["r2"]), table_html(t["r2_summary"]), csv_link("r2_by_model", "r2_summary")]),
         fig_r2(a)),
        (Section("tsne", "t-SNE of test-set latents (paper Figure 4)",
                 "2-D t-SNE (scikit-learn) of the 16-d encoder outputs of the test set, coloured by rating bin, "
                 "for the seed with the median selection metric of each model. Distances between far-apart points "
                 f"in t-SNE maps are not meaningful; the next two sections measure them. {points}",
                 [notes_html(n["tsne"]), csv_link("tsne")]),
         fig_tsne(a)),
        (Section("centroids", "Distances between rating-bin centroids (paper Figure 5)",
                 "Euclidean distance between the mean latent vectors of each pair of rating bins, averaged over "
                 "seeds. In a latent space ordered by rating, distances grow away from the diagonal; "
                 "centroid_order_rho in davies_bouldin.csv is Spearman's rho of distance against bin gap. "
                 f"Scales differ between models (each panel has its own colour scale). {points}",
                 [notes_html(n["latent"]), csv_link("centroid_distances", "centroid_distances_mean")]),
         fig_centroids(a)),
        (Section("db", "Davies-Bouldin index (paper Figure 6)",
                 "Davies-Bouldin index (scikit-learn) of the test latents with rating bins as clusters, per "
                 f"model over seeds. Lower means tighter, better separated bins. {points}",
                 [csv_link("davies_bouldin")]),
         fig_davies_bouldin(a)),
        (Section("db_r2", "Does tighter clustering go with better R²?",
                 "Every trial with latents: Davies-Bouldin index against test R² on full-length recordings "
                 "(test_r2_full). The paper reports that a lower index went with better regression on its three "
                 "models; a negative Spearman rho here says the same across all trials.",
                 [notes_html(n["db_vs_r2"]), table_html(t["db_vs_r2"]), csv_link("db_vs_r2")]),
         fig_db_vs_r2(a)),
    ]


def _study_sections(a: Analysis) -> list[tuple[Section, Any]]:
    """What the paper lacked: the baseline comparison, sweep views, training length, tests, failures."""
    n, t, metric = a.notes, a.tables, a.study.metric
    sig_show = t["significance"].assign(model_a=lambda d: d["model_a"].map(label),
                                        model_b=lambda d: d["model_b"].map(label))
    base = t["baseline_comparison"]
    base_show = base.sort_values(["protocol", "selection_mean"], ascending=[True, not a.study.maximize])
    best = t["best_configs"]
    late = t["late_best_epoch"]
    failed = t["failed_trials"]
    return [
        (Section("baseline", "Every configuration against PCConvNet",
                 "Each searched configuration's test R² minus the baseline's on the seeds both ran (mean, 95% "
                 "Student-t interval, two-sided Wilcoxon p, Benjamini-Hochberg p_bh over all comparisons of one "
                 "protocol: these resample seeds); for full-length recordings also the paired bootstrap over the "
                 "test recordings of the seed-mean predictions (boot_diff, its 95% percentile interval, boot_p "
                 "and boot_p_bh: these resample recordings); "
                 f"'selected' is the configuration chosen on {metric}. Protocols: {_protocols_text(a)}.",
                 [notes_html(n["baseline"]), table_html(base_show.drop(columns=["note", "baseline_config"])),
                  csv_link("baseline_comparison")], figure=False),
         None),
        (Section("sweep", "Sweep: metric against each parameter",
                 f"Every finished trial's {metric} (validation, full-length recordings) against each swept "
                 "parameter, for the trials that use it (Optuna-style slice plots). Parameters were varied "
                 "jointly, so a slice mixes the other parameters' effects.",
                 [notes_html(n["sweep"]), csv_link("sweep")]),
         fig_sweep(a)),
        (Section("importance", "Parameter importance",
                 f"Share of the variance of {metric} explained by each searched parameter, from Optuna's fANOVA "
                 "evaluator (a random forest fitted to the finished trials, seeds not a parameter), per sub-space "
                 "of the conditional search space: a parameter is counted only in trials that used it (the margin "
                 "only with the weighted contrastive term, lambda only for the joint model ...). Active parameters "
                 "come from the study's Optuna journal, else from trials.csv with unused ones left blank "
                 "(column source).",
                 [notes_html(n["importance"]), table_html(t["param_importance"]), csv_link("param_importance")]),
         fig_importance(a)),
        (Section("best", "Best configurations",
                 f"Configurations ranked by mean {metric} over seeds, with standard deviation (ddof 1) and the "
                 "test R² of the same runs; min and max are in the CSV.",
                 [notes_html(n["best"]), table_html(best[[c for c in best.columns if not c.endswith(("_min", "_max"))]]),
                  csv_link("best_configs")], figure=False),
         None),
        (Section("epochs", "Did training stop short?",
                 "A trial whose best epoch (lowest validation loss) lies in the last 5% of its epochs was still "
                 "improving when it stopped; flagged trials are listed (best_epoch_at_end in the CSV).",
                 [notes_html(n["epochs"]), table_html(late[late["best_epoch_at_end"].astype(bool)]),
                  csv_link("late_best_epoch")], figure=False),
         None),
        (Section("significance", "Paired significance tests between models",
                 "Wilcoxon signed-rank tests (scipy) on test R², pairs matched by criterion, band and seed; "
                 "'all' pools every criterion and band. mean_diff, rank_biserial and cohen_dz are positive when "
                 "model_a scores higher; p_bh is Benjamini-Hochberg adjusted over the tests of one protocol. "
                 "With five seeds the smallest two-sided p of a single criterion x band test is 0.0625: "
                 "only pooled tests can reach 0.05. The paper reports no tests.",
                 [notes_html(n["significance"]), table_html(sig_show), csv_link("significance")], figure=False),
         None),
        (Section("failed", "Failed trials",
                 "Trials that ended in an error are left out of every figure above.",
                 [table_html(failed) if not failed.empty else "<p>None.</p>", csv_link("failed_trials")],
                 figure=False),
         None),
    ]


def sections(a: Analysis) -> list[tuple[Section, Any]]:
    """Each section with its figure (or None), in page order."""
    return _paper_sections(a) + _study_sections(a)
