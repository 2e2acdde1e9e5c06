"""Tests of raympa.analysis on small fake study folders (tests/fake_study.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fake_study import add_predictions, make_fake_study, make_fake_sweep
from scipy.stats import wilcoxon
from sklearn.metrics import davies_bouldin_score

from raympa import analysis as A
from raympa.analysis.latent import latent_points_note
from raympa.analysis.bootstrap import paired_bootstrap_r2, r2_rows
from raympa.analysis.significance import _paired_test

FAST = A.AnalysisConfig(tsne_max_iter=250)


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory):
    return make_fake_study(tmp_path_factory.mktemp("study"), seeds=(0, 1, 2, 3, 4), n_test=30)


@pytest.fixture(scope="module")
def study(study_dir):
    return A.load_study(study_dir)


def test_load_study_separates_failed_trials_and_finds_swept_params(study):
    assert set(study.failed["status"]) == {"ERROR"}
    assert len(study.failed) == 1
    assert study.metric == "val_r2_full" and study.mode == "max"  # from study.json
    assert study.swept == ["model", "margin"]
    assert "model=contrastive-jl, margin=0.5" in set(study.finished["config_id"])


def test_load_study_rejects_a_folder_without_trials(tmp_path):
    with pytest.raises(FileNotFoundError, match="trials.csv"):
        A.load_study(tmp_path)


def test_r2_by_model_uses_best_config_by_validation_and_all_seeds(study):
    r2, notes = A.r2_by_model(study)
    jl = r2[(r2["model"] == "contrastive-jl") & (r2["criterion"] == "note_accuracy") & (r2["band"] == "middleschool")]
    assert set(jl["config_id"]) == {"model=contrastive-jl, margin=0.5"}
    assert sorted(jl[jl["protocol"] == "test_r2_full"]["seed"]) == [0, 1, 2, 3, 4]
    assert set(r2["protocol"]) == {"test_r2_full", "test_r2_chunk"}
    # 3 models x 2 criteria x 2 bands x 5 seeds x 2 protocols
    assert len(r2) == 3 * 2 * 2 * 5 * 2
    assert any("3 configurations" in n for n in notes)
    summary = A.r2_summary(r2)
    row = summary[(summary["model"] == "pcconvnet") & (summary["criterion"] == "rhythm_accuracy")
                  & (summary["band"] == "symphonicband") & (summary["protocol"] == "test_r2_full")].iloc[0]
    direct = r2[(r2["model"] == "pcconvnet") & (r2["criterion"] == "rhythm_accuracy")
                & (r2["band"] == "symphonicband") & (r2["protocol"] == "test_r2_full")]["r2"]
    assert row["n"] == 5 and row["mean"] == pytest.approx(direct.mean()) and row["std"] == pytest.approx(direct.std())


def test_latent_metrics_match_sklearn_and_reflect_cluster_structure(study):
    db, cd, notes = A.latent_metrics(study)
    missing = [t for t in study.finished["trial_id"] if not study.latents_path(t).is_file()]
    assert len(missing) == 1 and missing[0] not in set(db["trial_id"])
    assert any("no latents file" in n for n in notes)
    assert not set(study.failed["trial_id"]) & set(db["trial_id"])

    tid = db["trial_id"].iloc[0]
    lat, _ = A.load_latents(study, tid)
    assert db.set_index("trial_id").loc[tid, "davies_bouldin"] == pytest.approx(davies_bouldin_score(lat.z, lat.bins))
    mat = cd[cd["trial_id"] == tid].pivot(index="bin_i", columns="bin_j", values="distance").to_numpy()
    cents = np.stack([lat.z[lat.bins == b].mean(axis=0) for b in range(5)])
    assert mat == pytest.approx(np.linalg.norm(cents[:, None] - cents[None], axis=-1), abs=1e-5)
    assert np.allclose(mat, mat.T) and np.allclose(np.diag(mat), 0)

    # fake latents: contrastive-jl clusters tightly by rating, PCConvNet loosely
    mean_db = db.groupby("model")["davies_bouldin"].mean()
    assert mean_db["contrastive-jl"] < mean_db["contrastive"] < mean_db["pcconvnet"]
    rho = db.groupby("model")["centroid_order_rho"].mean()
    assert rho["contrastive-jl"] > 0.8
    corr, _ = A.db_vs_r2(db)
    assert (corr["spearman_rho"] < 0).all()  # lower DB goes with higher R² by construction


def test_rating_bins_have_inclusive_lower_bounds(study):
    lat, _ = A.load_latents(study, study.finished["trial_id"].iloc[0])
    # the fake latents start with ratings 0.0, 0.2, 0.4, 0.6, 1.0 (paper: 0.6 is bin 3, 1.0 bin C-1)
    assert lat.y[:5] == pytest.approx([0.0, 0.2, 0.4, 0.6, 1.0])
    assert list(lat.bins[:5]) == [0, 1, 2, 3, 4]


def test_tsne_adapts_perplexity_to_small_test_sets(tmp_path):
    small = make_fake_study(tmp_path, criteria=("note_accuracy",), bands=("middleschool",), seeds=(0, 1),
                            sweep_margins=(), n_test=8, with_failures=False)
    st = A.load_study(small)
    tsne, notes = A.tsne_table(st, FAST)
    assert set(tsne["model"]) == {"pcconvnet", "contrastive", "contrastive-jl"}
    assert (tsne.groupby("trial_id").size() == 8).all()
    assert (tsne["perplexity"] < 8).all() and tsne["perplexity"].iloc[0] == pytest.approx(7 / 3)
    assert np.isfinite(tsne[["tsne_x", "tsne_y"]].to_numpy()).all()


def test_significance_matches_scipy_and_has_effect_sizes(study):
    sig, _ = A.significance(study)
    full = sig[sig["protocol"] == "test_r2_full"]
    pooled = full[(full["scope"] == "all") & (full["model_a"] == "pcconvnet") & (full["model_b"] == "contrastive-jl")].iloc[0]
    assert pooled["n_pairs"] == 20
    assert pooled["mean_diff"] < 0 and pooled["rank_biserial"] == pytest.approx(-1.0) and pooled["cohen_dz"] < 0
    r2, _ = A.r2_by_model(study)
    wide = r2[r2["protocol"] == "test_r2_full"].pivot_table(index=["criterion", "band", "seed"], columns="model", values="r2")
    assert pooled["p_value"] == pytest.approx(wilcoxon(wide["pcconvnet"], wide["contrastive-jl"]).pvalue)
    one = full[full["scope"] == "note_accuracy / middleschool"]
    assert (one["n_pairs"] == 5).all() and one["note"].str.contains("0.0625").all()
    assert (full["p_bh"] >= full["p_value"] - 1e-12).all()


def test_paired_test_degenerate_inputs():
    same = _paired_test(np.array([0.3, 0.4]), np.array([0.3, 0.4]))
    assert np.isnan(same["p_value"]) and "zero" in same["note"]
    one = _paired_test(np.array([0.3]), np.array([0.2]))
    assert np.isnan(one["p_value"]) and "fewer than 2" in one["note"]
    mixed = _paired_test(np.array([1.0, 2.0, 0.0]), np.array([0.0, 0.0, 3.0]))  # d = 1, 2, -3
    assert mixed["rank_biserial"] == pytest.approx(0.0)  # W+ = 1 + 2 = W- = 3


def test_best_configs_and_param_importance(study):
    best, _ = A.best_configs(study)
    top = best[(best["criterion"] == "note_accuracy") & (best["band"] == "middleschool")].sort_values("rank")
    assert top.iloc[0]["config_id"] == "model=contrastive-jl, margin=0.5"
    assert top.iloc[0]["n_seeds"] == 5
    assert list(top["val_r2_full_mean"]) == sorted(top["val_r2_full_mean"], reverse=True)
    imp, notes = A.param_importance(study)
    grp = imp[(imp["criterion"] == "note_accuracy") & (imp["band"] == "middleschool")]
    assert set(grp["param"]) == {"model", "margin"}
    assert grp["importance"].sum() == pytest.approx(1.0)
    assert any("only model varies" in n for n in notes)


def test_degenerate_study_one_seed_one_bin_gives_notes_not_errors(tmp_path):
    d = make_fake_study(tmp_path, criteria=("note_accuracy",), bands=("middleschool",), seeds=(0,),
                        sweep_margins=(), n_test=12, one_bin=True)
    a = A.analyse(d, FAST)
    db = a.tables["davies_bouldin"]
    assert len(db) and db["davies_bouldin"].isna().all()
    assert any("Davies-Bouldin index undefined" in n for n in a.notes["latent"])
    sig = a.tables["significance"]
    assert sig["p_value"].isna().all() and sig["note"].str.contains("fewer than 2").all()
    assert any("one seed only" in n for n in a.notes["r2"])
    assert not a.tables["tsne"].empty  # t-SNE still draws the single-bin cloud
    # the ERROR trial is left out; the finished margin=2 trial without latents still counts here
    assert (a.tables["param_importance"]["n_trials"] == 4).all()
    assert any("confounded" in n for n in a.notes["importance"])  # 4 configurations for 2 parameters


def test_study_with_only_failed_trials(tmp_path):
    pd.DataFrame([{"trial_id": "a", "status": "ERROR", "error": "boom", "model": "pcconvnet",
                   "criterion": "note_accuracy", "seed": 0, "band": "middleschool", "val_r2_full": np.nan}]
                 ).to_csv(tmp_path / "trials.csv", index=False)
    a = A.analyse(tmp_path, FAST)
    assert a.tables["r2_by_model"].empty and len(a.tables["failed_trials"]) == 1
    assert any("study.json is missing" in n for n in a.notes["study"])
    assert any("no finished trials" in n for n in a.notes["r2"])


def test_trials_stopped_early_are_left_out(tmp_path):
    d = make_fake_study(tmp_path, criteria=("note_accuracy",), bands=("middleschool",), seeds=(0, 1),
                        sweep_margins=(), n_test=10, with_failures=False)
    trials = pd.read_csv(d / "trials.csv")
    trials["final"] = True
    trials.loc[0, "final"] = False  # an ASHA-stopped trial: TERMINATED but never reached its final report
    trials.to_csv(d / "trials.csv", index=False)
    st = A.load_study(d)
    assert trials.loc[0, "trial_id"] in set(st.failed["trial_id"])
    assert st.failed["status"].tolist() == ["STOPPED_EARLY"]
    assert len(st.finished) == len(trials) - 1
    assert any("stopped before their final report" in n for n in st.notes)


# ----------------------------------------------------------------------------- conditional sweeps
@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory):
    return make_fake_sweep(tmp_path_factory.mktemp("sweep"))


def _importance(d):
    imp, notes = A.param_importance(A.load_study(d))
    return imp, notes


def test_importance_reads_the_journal_per_subspace(sweep_dir):
    imp, notes = _importance(sweep_dir)
    assert set(imp["source"]) == {"optuna.journal"}
    assert any("not in the Optuna journal" in n for n in notes)  # the baseline
    st = A.load_study(sweep_dir)
    searched = st.finished[st.finished["model"] != "pcconvnet"]
    by = {s: g.set_index("param") for s, g in imp.groupby("subspace")}
    # a parameter some trials do not use is not in the all-trials sub-space (trials.csv holds its default there)
    assert set(by["all trials"].index) == {"model", "contrastive", "lr"}
    weighted = by["contrastive=weighted"]
    assert set(weighted.index) == {"model", "margin", "lr"}
    assert (weighted["n_trials"] == (searched["contrastive"] == "weighted").sum()).all()
    assert set(by["model=contrastive-jl"].index) == {"contrastive", "jl_lambda", "lr"}
    assert set(by["contrastive=rnc, model=contrastive"].index) == {"rnc_temperature", "lr"}
    # the fake metric depends on the margin and not on lr
    assert by["contrastive=weighted, model=contrastive"].loc["margin", "importance"] > 0.5
    for _, g in imp.groupby("subspace"):
        assert g["importance"].sum() == pytest.approx(1.0)


def test_importance_without_journal_blanks_inactive_parameters(sweep_dir, tmp_path):
    import shutil

    bare = tmp_path / "bare"
    shutil.copytree(sweep_dir, bare)
    (bare / "optuna.journal").unlink()
    imp, notes = _importance(bare)
    assert set(imp["source"]) == {"trials.csv"}
    assert any("left blank" in n for n in notes)
    ref, _ = _importance(sweep_dir)
    key = ["subspace", "param"]
    both = ref.merge(imp, on=key, suffixes=("_journal", "_csv"), how="outer")
    assert not both.isna().any().any()  # the same sub-spaces and parameters
    assert both["n_trials_journal"].tolist() == both["n_trials_csv"].tolist()
    assert both["importance_csv"].to_numpy() == pytest.approx(both["importance_journal"].to_numpy())


def test_baseline_comparison_pairs_seeds_and_adjusts_over_configurations(sweep_dir):
    from scipy.stats import false_discovery_control, t, wilcoxon

    st = A.load_study(sweep_dir)
    cmp_, _ = A.baseline_comparison(st)
    full = cmp_[cmp_["protocol"] == "test_r2_full"]
    assert len(full) == 16 and (full["n_pairs"] == 3).all() and (full["n_comparisons"] == 16).all()
    chosen = full[full["selected"]]
    assert len(chosen) == 1
    fin = st.finished
    # chosen on validation: the highest mean val_r2_full among the searched configurations
    by_val = fin[fin["model"] != "pcconvnet"].groupby("config_id")["val_r2_full"].mean()
    assert chosen["config_id"].iloc[0] == by_val.idxmax()
    row = chosen.iloc[0]
    c = fin[fin["config_id"] == row["config_id"]].set_index("seed")["test_r2_full"]
    b = fin[fin["model"] == "pcconvnet"].set_index("seed")["test_r2_full"]
    d = (c - b.loc[c.index]).to_numpy()
    half = t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))
    assert row["mean_diff"] == pytest.approx(d.mean()) and row["mean_diff"] > 0
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((d.mean() - half, d.mean() + half))
    assert row["p_value"] == pytest.approx(wilcoxon(c.to_numpy(), b.loc[c.index].to_numpy()).pvalue)
    assert full["p_bh"].to_numpy() == pytest.approx(false_discovery_control(full["p_value"].to_numpy(), method="bh"))


def test_baseline_comparison_without_a_baseline_says_so(tmp_path):
    d = make_fake_study(tmp_path, criteria=("note_accuracy",), bands=("middleschool",), seeds=(0, 1),
                        sweep_margins=(), n_test=10, with_failures=False)
    trials = pd.read_csv(d / "trials.csv")
    trials[trials["model"] != "pcconvnet"].to_csv(d / "trials.csv", index=False)
    cmp_, notes = A.baseline_comparison(A.load_study(d))
    assert cmp_.empty and any("no baseline" in n for n in notes)


def test_late_best_epochs_flagged_from_trials_csv(study, tmp_path):
    late, notes = A.late_best_epochs(study)
    flagged = late[late["best_epoch_at_end"]]
    assert len(flagged) == 1 and flagged["model"].iloc[0] == "contrastive-jl"  # best epoch 120 of 120
    assert flagged["best_epoch"].iloc[0] == 120 and flagged["epochs_run"].iloc[0] == 120
    assert any(n.startswith(f"1 of {len(study.finished)} finished trials") for n in notes)
    # a column written by training wins over the computed flag
    d = make_fake_study(tmp_path, criteria=("note_accuracy",), bands=("middleschool",), seeds=(0,),
                        sweep_margins=(), n_test=10, with_failures=False)
    trials = pd.read_csv(d / "trials.csv")
    trials["best_epoch_at_end"] = [True, False, False]
    trials.to_csv(d / "trials.csv", index=False)
    late, _ = A.late_best_epochs(A.load_study(d))
    assert late["best_epoch_at_end"].tolist() == [True, False, False]


def test_latent_views_use_chunk_latents_when_stored(sweep_dir):
    st = A.load_study(sweep_dir)
    tid = st.finished["trial_id"].iloc[0]
    lat, _ = A.load_latents(st, tid)
    assert lat.points == "chunk-1000 windows" and len(lat.z) == 20 * 6  # 6 chunks of each of 20 recordings
    assert len(np.unique(lat.recording_id)) == 20
    rec, _ = A.load_latents(st, tid, chunks=False)
    assert rec.points == "full-length recordings" and len(rec.z) == 20
    db, _, _ = A.latent_metrics(st, A.AnalysisConfig(n_bins=5))
    assert (db["n_test"] == 120).all() and set(db["points"]) == {"chunk-1000 windows"}
    note = latent_points_note(db)[0]
    assert "chunk-1000 windows" in note and "median 120 points from 20 recordings" in note
    assert "anecdotes" not in note  # at least 100 points per trial
    db_rec, _, _ = A.latent_metrics(st, A.AnalysisConfig(chunk_latents=False))
    assert "anecdotes" in latent_points_note(db_rec)[0]  # 20 recordings only


def test_r2_protocols_prefer_new_chunk_names():
    from raympa.analysis.selection import r2_protocols

    assert r2_protocols(["test_r2_full", "test_r2_chunk"]) == ["test_r2_full", "test_r2_chunk"]
    both = ["test_r2_chunk", "test_r2_chunkmix", "test_r2_full", "test_r2_chunk1000"]
    assert r2_protocols(both) == ["test_r2_full", "test_r2_chunk1000", "test_r2_chunkmix"]


def test_paired_bootstrap_r2_hand_computed():
    y, a, b = np.array([0.0, 1.0, 2.0]), np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 1.0])
    # resamples: y = [0,1,2] -> R² 1 vs 0; [0,0,2] and [0,2,2] -> SS_tot 8/3, b's SS_res 3, R² -1/8;
    # [1,1,1] has all-equal ratings: no R², left out
    idx = np.array([[0, 1, 2], [0, 0, 2], [1, 1, 1], [0, 2, 2]])
    res = paired_bootstrap_r2(y, a, b, indices=idx)
    assert (res["boot_r2_config"], res["boot_r2_baseline"], res["boot_diff"]) == pytest.approx((1.0, 0.0, 1.0))
    # d* = [1, 1.125, 1.125]: percentiles 2.5 / 97.5 at positions 0.05 and 1.95 of the sorted values
    assert (res["boot_ci_low"], res["boot_ci_high"]) == pytest.approx((1.00625, 1.125))
    # no resampled difference <= 0: p = 2 x (1 + 0) / (1 + 3)
    assert res["boot_p"] == pytest.approx(0.5) and res["n_recordings"] == 3
    same = paired_bootstrap_r2(y, a, a, indices=idx)
    assert same["boot_p"] == 1.0 and (same["boot_ci_low"], same["boot_ci_high"]) == (0.0, 0.0)
    assert np.isnan(paired_bootstrap_r2(y[:1], a[:1], b[:1])["boot_p"])
    assert np.isnan(r2_rows(np.array([[1.0, 1.0]]), np.array([[1.0, 0.0]]))).all()  # all-equal ratings: no R²
    with pytest.raises(ValueError, match="one length"):
        paired_bootstrap_r2(y, a, b[:2])


def test_paired_bootstrap_r2_separates_a_better_model_and_not_an_equal_one():
    rng = np.random.default_rng(1)
    y = rng.uniform(0, 1, 80)
    good, poor, poor2 = (y + rng.normal(0, s, 80) for s in (0.1, 0.3, 0.3))
    win = paired_bootstrap_r2(y, good, poor)
    assert win["boot_diff"] > 0 and win["boot_ci_low"] > 0 and win["boot_p"] < 0.01
    tie = paired_bootstrap_r2(y, poor2, poor)
    assert tie["boot_ci_low"] < 0 < tie["boot_ci_high"] and tie["boot_p"] > 0.05
    assert paired_bootstrap_r2(y, good, poor) == win  # seeded: the same resamples every time


def test_baseline_comparison_bootstraps_the_test_recordings(tmp_path):
    from scipy.stats import false_discovery_control

    d = add_predictions(make_fake_sweep(tmp_path / "sweep", configs_per_leaf=2, n_test=40),
                        noise={"pcconvnet": 0.3, "contrastive": 0.2, "contrastive-jl": 0.1})
    st = A.load_study(d)
    cmp_, _ = A.baseline_comparison(st)
    full = cmp_[cmp_["protocol"] == "test_r2_full"]
    assert (full["n_recordings"] == 40).all() and full["boot_p"].notna().all()
    assert cmp_.loc[cmp_["protocol"] != "test_r2_full", "boot_p"].isna().all()  # no per-window predictions
    assert full["boot_p_bh"].to_numpy() == pytest.approx(false_discovery_control(full["boot_p"].to_numpy(), method="bh"))
    row = full[full["selected"]].iloc[0]
    fin = st.finished

    def seed_mean(config_id):
        preds = [np.load(st.latents_path(t)) for t in fin[fin["config_id"] == config_id]["trial_id"]]
        return preds[0]["y"], np.mean([p["pred"] for p in preds], axis=0)

    y, pc = seed_mean(row["config_id"])
    _, pb = seed_mean(row["baseline_config"])
    assert row[["boot_r2_config", "boot_r2_baseline", "boot_ci_low", "boot_ci_high", "boot_p"]].tolist() == \
        pytest.approx([*(paired_bootstrap_r2(y, pc, pb)[k] for k in (
            "boot_r2_config", "boot_r2_baseline", "boot_ci_low", "boot_ci_high", "boot_p"))])
    jl = full[full["model"] == "contrastive-jl"]
    assert (jl["boot_diff"] > 0).all()  # the less noisy predictions beat the baseline's on the recordings


def test_baseline_comparison_without_predictions_says_so(sweep_dir):
    cmp_, notes = A.baseline_comparison(A.load_study(sweep_dir))
    assert cmp_["boot_p"].isna().all() and any("no per-recording predictions" in n for n in notes)
