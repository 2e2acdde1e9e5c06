"""Tests of raympa.report: files, offline HTML, CLI, and rendering in headless Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from fake_study import add_predictions, make_fake_study, make_fake_sweep

from raympa import cli
from raympa.analysis import AnalysisConfig
from raympa.report import CSV_TABLES, write_report

FAST = AnalysisConfig(tsne_max_iter=250)
N_FIGURES = 7  # R², t-SNE, centroids, DB, DB vs R², sweep, importance


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    study = make_fake_study(tmp_path_factory.mktemp("study"), seeds=(0, 1, 2), n_test=24)
    return write_report(study, config=FAST)


def test_report_writes_every_csv_and_plotly_once(report):
    out = report.parent
    assert report.name == "report.html" and out.name == "report"
    for stem in CSV_TABLES:
        assert (out / f"{stem}.csv").is_file(), stem
    page = report.read_text()
    assert page.count('<script src="plotly.min.js"') == 1
    assert (out / "plotly.min.js").stat().st_size > 1_000_000
    assert "cdn.plot.ly" not in page and "https://" not in page.split("<body>")[0]
    assert page.count('class="plotly-graph-div"') == N_FIGURES
    assert len(page) < 1_500_000  # plotly.js is beside it, not inside
    # study.json's text is shown, escaped
    assert "python studies/margin_sweep.py --smoke-test" in page
    assert "&lt;b&gt;not&lt;/b&gt; real FBA data" in page and "<b>not</b>" not in page
    assert "FloatingPointError: non-finite loss" in page  # the ERROR trial is listed
    r2 = pd.read_csv(out / "r2_by_model.csv")
    assert {"model", "criterion", "band", "seed", "protocol", "r2"} <= set(r2.columns)
    sig = pd.read_csv(out / "significance.csv")
    assert {"p_value", "rank_biserial", "cohen_dz", "p_bh"} <= set(sig.columns)


def test_report_inline_embeds_plotly_once(tmp_path):
    study = make_fake_study(tmp_path / "s", criteria=("note_accuracy",), bands=("middleschool",), seeds=(0, 1),
                            sweep_margins=(), n_test=10)
    path = write_report(study, tmp_path / "r", config=FAST, plotlyjs="inline")
    page = path.read_text()
    assert not (tmp_path / "r" / "plotly.min.js").exists()
    assert len(re.findall(r"plotly\.js v\d", page)) == 1  # the library's banner, once
    with pytest.raises(ValueError, match="offline"):
        write_report(study, tmp_path / "r", plotlyjs="cdn")  # type: ignore[arg-type]


def test_cli_report(tmp_path, capsys):
    study = make_fake_study(tmp_path / "s", criteria=("note_accuracy",), bands=("middleschool",), seeds=(0, 1),
                            sweep_margins=(), n_test=10, one_bin=True)
    assert cli.main(["report", str(study), "--out", str(tmp_path / "r"), "--perplexity", "5"]) == 0
    printed = capsys.readouterr().out.strip()
    assert Path(printed) == tmp_path / "r" / "report.html"
    page = Path(printed).read_text()
    assert "Davies-Bouldin index undefined" in page  # degenerate input: a note, not a crash
    assert "--perplexity 5.0" in page  # the report records its own command
    assert cli.main(["report", str(tmp_path / "nope")]) == 2


# ----------------------------------------------------------------------------- headless Chromium
def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


def render(html_path: Path, profile: Path) -> tuple[str, list[str]]:
    """Open a page in headless Chromium; return its DOM after scripts ran, and its console lines."""
    exe = _chromium()
    proc = subprocess.run(
        [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", f"--user-data-dir={profile}",
         "--enable-logging=stderr", "--v=0", "--virtual-time-budget=20000", "--dump-dom",
         html_path.resolve().as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
    return proc.stdout, console


needs_chromium = pytest.mark.skipif(_chromium() is None, reason="headless Chromium not installed "
                                    "(Debian: apt-get install chromium; scripts/install.sh --test does it)")


@needs_chromium
def test_report_renders_in_headless_chromium_without_console_errors(report, tmp_path):
    dom, console = render(report, tmp_path / "profile")
    assert console == []
    assert dom.count("js-plotly-plot") == N_FIGURES  # plotly.newPlot ran for every figure
    assert dom.count('class="main-svg"') >= N_FIGURES
    assert dom.count('class="point"') > 100  # markers were drawn (box points, t-SNE, scatter)


@needs_chromium
def test_render_check_catches_a_broken_page(report, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(report.parent, broken)
    (broken / "plotly.min.js").unlink()  # a report whose plotly.js went missing must fail the check
    dom, console = render(broken / "report.html", tmp_path / "profile")
    assert any("Plotly is not defined" in line for line in console)
    assert dom.count("js-plotly-plot") == 0


# ----------------------------------------------------------------------------- the sweep's report
@pytest.fixture(scope="module")
def sweep_report(tmp_path_factory) -> Path:
    study = add_predictions(make_fake_sweep(tmp_path_factory.mktemp("sweep")),
                            noise={"pcconvnet": 0.3, "contrastive": 0.2, "contrastive-jl": 0.1})
    return write_report(study, config=FAST)


def test_report_opens_with_the_answer_before_the_figures(sweep_report):
    page = sweep_report.read_text()
    answer = page.index('class="answer"')
    assert answer < page.index('class="plotly-graph-div"')
    text = page[answer:page.index("</p>", answer)]
    cmp_ = pd.read_csv(sweep_report.parent / "baseline_comparison.csv")
    row = cmp_[(cmp_["protocol"] == "test_r2_full") & cmp_["selected"]].iloc[0]
    assert f"paired difference {row['mean_diff']:+.3f}" in text
    assert f"95% CI {row['ci_low']:+.3f} to {row['ci_high']:+.3f}" in text
    assert f"Wilcoxon p = {row['p_value']:.3g}" in text and f"adjusted p = {row['p_bh']:.3g}" in text
    assert "PCConvNet" in text and "same 3 seeds" in text
    # beside the test over seeds, the paired bootstrap over the test recordings, each saying what it resamples
    assert (f"Over the {int(row['n_recordings'])} test recordings" in text
            and f"difference {row['boot_diff']:+.3f} (95% CI {row['boot_ci_low']:+.3f} to {row['boot_ci_high']:+.3f})"
            in text and f"adjusted p = {row['boot_p_bh']:.3g}" in text)
    assert "resamples seeds" in text and "resamples test recordings" in text


def test_report_says_which_protocol_and_latent_points(sweep_report):
    page = sweep_report.read_text()
    assert "full-length (test_r2_full)" in page and "chunk-1000 (test_r2_chunk)" in page
    assert "Latent-space views computed on" in page and "chunk-1000 windows" in page
    assert "Did training stop short?" in page
    assert (sweep_report.parent / "late_best_epoch.csv").is_file()


def test_sweep_slices_have_short_titles_and_only_trials_that_use_the_parameter(sweep_report):
    from raympa.analysis import analyse
    from raympa.report.figures import SLICE_COLUMNS, fig_sweep

    a = analyse(sweep_report.parent.parent, FAST)
    fig = fig_sweep(a)
    titles = [ann.text for ann in fig.layout.annotations]
    assert len(titles) == len([p for p in a.study.swept if p != "model"])
    assert all(len(re.sub("<.*?>", "", t)) <= 20 for t in titles)  # one parameter name each (one group)
    n_cols = len({round(fig.layout[k].domain[0], 3) for k in fig.layout if k.startswith("xaxis")})
    assert n_cols <= SLICE_COLUMNS
    # titles of panels side by side do not overlap: each fits in its panel's width (about 7 px per character)
    width = 1100 * (fig.layout.xaxis.domain[1] - fig.layout.xaxis.domain[0])
    assert all(7 * len(re.sub("<.*?>", "", t)) < width for t in titles)
    weighted = (a.study.finished["contrastive"] == "weighted").sum()
    margin_axis = next(k for k in fig.layout if k.startswith("xaxis") and "margin" in (fig.layout[k].title.text or ""))
    ref = "x" + margin_axis[len("xaxis"):]
    assert sum(len(tr.x) for tr in fig.data if tr.xaxis == ref) == weighted  # no rnc trial's default margin
