"""The report's opening: the study's question answered in a sentence or two, with numbers.

The answer is the best searched configuration (chosen on the validation metric) against the
baseline PCConvNet on the same seeds: the paired difference of test R² with its 95% interval,
the Wilcoxon p and the Benjamini-Hochberg adjusted p over every configuration compared with the
baseline (these resample seeds), then the paired bootstrap over the test recordings of the
seed-mean predictions (``raympa.analysis.bootstrap``: it resamples recordings), both from
``raympa.analysis.baseline_comparison``.
"""

from __future__ import annotations

import html

import numpy as np
import pandas as pd

from raympa.analysis import Analysis
from raympa.analysis.bootstrap import BOOTSTRAP_RESAMPLES
from raympa.analysis.selection import TEST_PROTOCOLS, label, protocol_name
from raympa.constants import BASELINE_MODEL

ALPHA = 0.05  # significance level the verdict uses (adjusted p)


def _p(v: float) -> str:
    return "not computable" if not np.isfinite(v) else f"{v:.3g}"


def _verdict(row: pd.Series) -> str:
    if not np.isfinite(row["p_bh"]):
        return "No test was possible (too few shared seeds)."
    if row["p_bh"] < ALPHA:
        side = "better" if row["mean_diff"] > 0 else "worse"
        return f"Over seeds it is {side} than {label(BASELINE_MODEL)} at adjusted p < {ALPHA}."
    limit = f" (with {int(row['n_pairs'])} seeds the smallest possible p is {2 / 2 ** int(row['n_pairs']):.3g})" \
        if row["n_pairs"] < 6 else ""
    return f"Over seeds the difference is not significant at {ALPHA} after adjustment{limit}."


def _sentence(row: pd.Series, study_metric: str) -> str:
    params = row["config_id"].split(", ", 1)[1] if ", " in row["config_id"] else ""
    what = label(row["model"]) + (f" ({params})" if params else "")
    return (f"{row['criterion']} / {row['band']}: the best configuration other than {label(BASELINE_MODEL)} by "
            f"{study_metric}, {what}, "
            f"reaches test R² {row['mean_config']:.3f} against {label(BASELINE_MODEL)}'s "
            f"{row['mean_baseline']:.3f} on the same {int(row['n_pairs'])} seeds "
            f"({TEST_PROTOCOLS[row['protocol']][1].split(',')[0]}): paired difference {row['mean_diff']:+.3f} "
            f"(95% CI {row['ci_low']:+.3f} to {row['ci_high']:+.3f}), Wilcoxon p = {_p(row['p_value'])}, "
            f"Benjamini-Hochberg adjusted p = {_p(row['p_bh'])} over the {int(row['n_comparisons'])} "
            f"comparisons with the baseline. {_verdict(row)}")


def _bootstrap(row: pd.Series) -> str:
    """The test over test recordings, or why there is none."""
    if not np.isfinite(row.get("boot_p", np.nan)):
        return "No bootstrap over test recordings (the latents files hold no per-recording predictions)."
    verdict = ("significant" if row["boot_p_bh"] < ALPHA else "not significant") + f" at {ALPHA} after adjustment"
    return (f"Over the {int(row['n_recordings'])} test recordings (paired bootstrap, {BOOTSTRAP_RESAMPLES} resamples "
            f"of the recordings, each model's prediction the mean over its {int(row['n_pairs'])} seeds): R² "
            f"{row['boot_r2_config']:.3f} against {row['boot_r2_baseline']:.3f}, difference {row['boot_diff']:+.3f} "
            f"(95% CI {row['boot_ci_low']:+.3f} to {row['boot_ci_high']:+.3f}), p = {_p(row['boot_p'])}, "
            f"Benjamini-Hochberg adjusted p = {_p(row['boot_p_bh'])}: {verdict}. The Wilcoxon test resamples "
            "seeds (new training runs); the bootstrap resamples test recordings (these trained models on new "
            "recordings like these).")


def _other_protocols(rows: pd.DataFrame) -> str:
    parts = [f"{protocol_name(r['protocol'])} {r['mean_diff']:+.3f} (CI {r['ci_low']:+.3f} to {r['ci_high']:+.3f}, "
             f"adjusted p {_p(r['p_bh'])})" for _, r in rows.iterrows()]
    return "Same comparison under the other test protocols: " + "; ".join(parts) + "." if parts else ""


def answer_html(a: Analysis) -> str:
    """The opening paragraph(s): the answer with numbers, or why there is none."""
    df = a.tables["baseline_comparison"]
    if df.empty:
        notes = a.notes.get("baseline") or ["no comparison with the baseline."]
        return f'<p class="answer"><strong>Answer:</strong> {html.escape(notes[0][0].upper() + notes[0][1:])}</p>'
    chosen = df[df["selected"].astype(bool)]
    primary = next((p for p in TEST_PROTOCOLS if p in set(chosen["protocol"])), None)
    if primary is None:
        return '<p class="answer"><strong>Answer:</strong> no configuration to compare with the baseline.</p>'
    out = []
    for _, row in chosen[chosen["protocol"] == primary].iterrows():
        rest = chosen[(chosen["protocol"] != primary) & (chosen["criterion"] == row["criterion"])
                      & (chosen["band"] == row["band"])]
        text = " ".join((_sentence(row, a.study.metric), _bootstrap(row), _other_protocols(rest)))
        out.append(f'<p class="answer"><strong>Answer:</strong> {html.escape(text.strip())}</p>')
    return "".join(out)
