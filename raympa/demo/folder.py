"""The demo folder: students, etudes, performances and judges put together and written to disk.

Outputs of :func:`make_demo`: ``DIR/audio/<year>/<band>/<student_id>.wav``, ``DIR/ratings.csv``
(the ratings-table format of docs/data.md; ``audio_path`` relative to DIR; no segment columns
because each file is the etude), ``DIR/deviations.csv`` (recording_id, skill, intended and
realised amounts), ``DIR/etudes.csv`` (the scores played) and ``DIR/demo.json`` (the generator's
settings), ``DIR/scores/*.mid`` (each etude as a MIDI file, the rows' ``reference_path``; named
as ``raympa.fba.score_file_name`` says, so the folder also serves ``raympa fba-index --scores``).
``piece_id`` is ``<year>/<band>/<instrument>/technical_etude`` as in the FBA index: one etude per
year, band and instrument. Every audition has its own random stream, so the output is the same for any number of
worker processes.

With ``contours=DIR`` each worker extracts an audition's pitch contour right after writing it (the
fused path): the row function of ``raympa extract`` runs on the written file, so ``DIR`` and the
contour cache hold exactly what ``raympa extract --table OUT/ratings.csv --out DIR`` writes
(``node_id`` empty: no Ray), and rendering and extraction share one process pool instead of
running as two stages.
"""

from __future__ import annotations

import json
import math
import os
import sys
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from raympa import constants as C
from raympa import fba, raydata
from raympa.demo import etudes as E
from raympa.demo.judge import (
    BAND_STANDARDS,
    DEVIATIONS,
    HALO,
    JUDGE_WEIGHTS,
    TEMPO_SKILL,
    TEMPO_SPREAD,
    calibrate_judge,
    sample_amounts,
)
from raympa.demo.performance import Audition, perform, render_audition
from raympa.ratings import assign_splits, validate_ratings, write_ratings

DEMO_YEARS = (2013, 2014, 2015)  # one etude per year and instrument, like the FBA
SEGMENT = "technical_etude"  # the FBA audition segment the demo stands in for
SCORES_DIR = "scores"  # DIR/scores/<fba.score_file_name>: each etude as a MIDI file


def _score_path(year: int, band: str, instrument: str) -> str:
    """Where the etude of a year, band and instrument is written, relative to the demo folder."""
    return f"{SCORES_DIR}/{fba.score_file_name(year, band, instrument, SEGMENT)}"


def _etudes(seed: int, band: str, annotations: str | Path | None, duration_s: float | None,
            years: tuple[int, ...] = DEMO_YEARS) -> dict:
    """(year, instrument) -> Etude: the real FBA etude of that year (middle school, with
    annotations) or a generated one, fitted to the instrument's register."""
    real = E.fba_etude_midis(annotations) if (annotations is not None and band == "middleschool") else {}
    target = duration_s if duration_s is not None else E.TARGET_SECONDS[band]
    out = {}
    for year in years:
        for k, inst in enumerate(C.INSTRUMENTS):
            lo, hi = E.REGISTERS[band][inst]
            if year in real:
                et = E.read_midi_etude(real[year], name=f"fba{year}_tech").fit_range(lo, hi)
            else:
                rng = np.random.default_rng([seed, year, k, 7])
                et = E.generate_etude(rng, instrument=inst, level=band, name=f"gen{year}_{k}")
            out[(year, inst)] = et.with_seconds(target)
    return out


@dataclass(frozen=True)
class ContourOutput:
    """The fused path's contours: ``raympa extract``'s output folder and contour cache."""

    out: str | Path  # folder of contours.parquet + errors.csv
    cache_dir: str | Path | None = None  # None: $RAYMPA_CACHE or ~/.cache/raympa (as extract)
    use_cache: bool = True  # False: neither read nor write the cache

    @classmethod
    def of(cls, contours: str | Path | ContourOutput | None) -> ContourOutput | None:
        return contours if contours is None or isinstance(contours, ContourOutput) else cls(contours)


def _check(n: int, band: str) -> None:
    if n < 1:
        raise ValueError(f"n={n}; need at least one audition")
    if band not in C.STUDY_BANDS:
        raise ValueError(f"band {band!r}; choose one of {list(C.STUDY_BANDS)}")


def make_demo(
    out: str | Path,
    *,
    n: int,
    seed: int = 0,
    band: str = "middleschool",
    fba_annotations: str | Path | None = None,
    split_seed: int = 0,
    duration_s: float | None = None,
    jobs: int | None = None,
    render_audio: bool = True,
    contours: str | Path | ContourOutput | None = None,
) -> pd.DataFrame:
    """Render ``n`` simulated auditions into ``out`` and return the ratings table.

    Args:
        out: output folder (created).
        n: number of auditions (one per student).
        seed: everything but the split depends on it only (not on ``jobs``).
        band: ``middleschool`` (about 30 s etudes) or ``symphonicband`` (about 48 s, harder).
        fba_annotations: MIG-FbaData checkout: real etude MIDIs (middle school) and the real
            rating distribution and criterion correlation of ``band``.
        split_seed: seed of the 8:1:1 split.
        duration_s: nominal etude length override in seconds (tests, benchmarks).
        jobs: worker processes for the synthesis (default: CPU count).
        render_audio: False writes the tables only (no audio files).
        contours: also extract every audition's pitch contour in the rendering workers (the
            paper's extraction parameters) into this folder, as ``raympa extract`` would.
    """
    _check(n, band)
    _check_contours(contours, render_audio)
    judge = calibrate_judge(band, annotations=fba_annotations)
    rng = np.random.default_rng([seed, 0])
    students = sample_amounts(rng, n, skill_loading=judge.skill_loading, band=band)
    students.insert(0, "instrument", rng.choice(np.array(C.INSTRUMENTS), n))
    students.insert(0, "year", rng.choice(np.array(DEMO_YEARS), n))
    students.insert(0, "student_id", [f"{90000 + i}" for i in range(n)])
    noise = rng.standard_normal((n, len(C.RATED_COLUMNS) + 1))
    etudes = _etudes(seed, band, fba_annotations, duration_s)
    table, deviations, jobs_list = _perform_all(Path(out), students, etudes, band=band, seed=seed)
    ratings = judge.rate(deviations[list(DEVIATIONS)], noise)
    for crit in C.RATED_COLUMNS:
        table[crit] = ratings[crit].to_numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore" if n < 10 else "default")
        table["split"] = assign_splits(table, seed=split_seed).to_numpy()
    meta = {"n": n, "seed": seed, "band": band, "split_seed": split_seed, "duration_s": duration_s,
            "fba_annotations": str(fba_annotations) if fba_annotations else None}
    return _write_folder(Path(out), table, deviations, etudes, jobs_list, judge, meta,
                         jobs=jobs, render_audio=render_audio, contours=ContourOutput.of(contours))


def make_demo_like_fba(
    out: str | Path,
    annotations: str | Path,
    *,
    band: str = "middleschool",
    seed: int = 0,
    split_seed: int = 0,
    duration_s: float | None = None,
    jobs: int | None = None,
    render_audio: bool = True,
    contours: str | Path | ContourOutput | None = None,
) -> pd.DataFrame:
    """One simulated audition per usable row of the FBA index of ``band``, at the FBA's size.

    Each row keeps its student id, year, instrument, real ratings and split (``split_seed`` as in
    ``raympa fba-index``); its performance deviations are drawn to fit those ratings by inverting
    the judge with its noise (:func:`raympa.demo.judge.fit_amounts`), so the rating distribution,
    the correlation between criteria and the split sizes are exactly the FBA's. ``contours``: as
    :func:`make_demo`.

    Raises:
        FileNotFoundError: ``annotations`` is not a MIG-FbaData annotation folder.
        ValueError: the band has no usable rows.
    """
    from raympa.demo.judge import fit_amounts

    _check(1, band)
    _check_contours(contours, render_audio)
    # the split of `raympa fba-index` with its default bands (the split depends on the set of rows)
    index, _ = fba.build_index(annotations, options=fba.IndexOptions(split_seed=split_seed))
    index = index[index["band"] == band].reset_index(drop=True)
    if len(index) == 0:
        raise ValueError(f"{annotations}: no usable {band} rows in the FBA index")
    judge = calibrate_judge(band, annotations=annotations)
    rng = np.random.default_rng([seed, 3])
    amounts = fit_amounts(judge, index[list(C.RATED_COLUMNS)], rng)
    students = pd.concat([index[["student_id", "year", "instrument"]].reset_index(drop=True),
                          amounts.reset_index(drop=True)], axis=1)
    students["year"] = students["year"].astype(int)
    years = tuple(sorted(int(y) for y in students["year"].unique()))
    etudes = _etudes(seed, band, annotations, duration_s, years)
    table, deviations, jobs_list = _perform_all(Path(out), students, etudes, band=band, seed=seed)
    table["recording_id"] = index["recording_id"].to_numpy()
    deviations["recording_id"] = table["recording_id"].to_numpy()
    for crit in C.RATED_COLUMNS:
        table[crit] = index[crit].to_numpy()
    table["split"] = index["split"].to_numpy()
    meta = {"n": len(table), "seed": seed, "band": band, "split_seed": split_seed, "duration_s": duration_s,
            "like_fba": True, "fba_annotations": Path(annotations).name}
    return _write_folder(Path(out), table, deviations, etudes, jobs_list, judge, meta,
                         jobs=jobs, render_audio=render_audio, contours=ContourOutput.of(contours))


def _check_contours(contours: object, render_audio: bool) -> None:
    if contours is not None and not render_audio:
        raise ValueError("contours need the audio: render_audio=False writes the tables only")


def _perform_all(out: Path, students: pd.DataFrame, etudes: dict, *, band: str,
                 seed: int) -> tuple[pd.DataFrame, pd.DataFrame, list[Audition]]:
    """Every student's performance: the ratings-table rows (no ratings yet), deviations, audio jobs."""
    rows, dev_rows, jobs_list = [], [], []
    for i, st in enumerate(students.to_dict("records")):
        sid, year, inst = str(st["student_id"]), int(st["year"]), str(st["instrument"])
        rid = f"{year}/{band}/{sid}"
        rel = f"audio/{year}/{band}/{sid}.wav"
        srng = np.random.default_rng([seed, 1, i])  # the student's own stream
        et = etudes[(year, inst)]
        events, realised, extra = perform(et, st, srng, instrument=inst, pitch_range=E.RANGES[inst],
                                          register=E.REGISTERS["middleschool"][inst])
        vib = float(srng.uniform(0.3, 1.3))  # vibrato depth: a habit, not a skill
        jobs_list.append(Audition(rid, inst, events, extra["total_s"], vib, extra["wobble_cents"],
                                  float(realised["tone_noise"]), (seed, 2, i), str(out / rel)))
        rows.append({"recording_id": rid, "student_id": sid, "year": year, "band": band, "instrument": inst,
                     "audio_path": rel, "pitchtrack_path": "", "segment_start": np.nan, "segment_duration": np.nan,
                     "piece_id": fba.piece_id(year, band, inst, SEGMENT),
                     "reference_path": _score_path(year, band, inst)})
        dev_rows.append({"recording_id": rid, "skill": float(st["skill"]), "etude": et.name,
                         "tempo_bpm": round(et.tempo_bpm * float(st["tempo_factor"]), 2),
                         "seconds": round(extra["total_s"], 3), "notes_played": int(extra["n_played"]),
                         **{k: float(v) for k, v in realised.items()},
                         **{f"intended_{k}": float(st[k]) for k in DEVIATIONS}})
    return pd.DataFrame(rows), pd.DataFrame(dev_rows), jobs_list


def _write_folder(out: Path, table: pd.DataFrame, deviations: pd.DataFrame, etudes: dict,
                  jobs_list: list[Audition], judge, meta: dict, *, jobs: int | None,
                  render_audio: bool, contours: ContourOutput | None = None) -> pd.DataFrame:
    """Audio, ratings.csv, deviations.csv, etudes.csv, scores/*.mid and demo.json (and the contours)."""
    out.mkdir(parents=True, exist_ok=True)
    table = validate_ratings(table, source="demo")
    if render_audio and contours is not None:
        _render_and_extract(jobs_list, jobs, contours)
    elif render_audio:
        _render_all(jobs_list, jobs)
    write_ratings(table, out / "ratings.csv")
    deviations.to_csv(out / "deviations.csv", index=False, float_format="%.6g")
    _write_etudes(etudes, out / "etudes.csv")
    for (y, inst), et in etudes.items():
        E.write_midi_etude(et, out / _score_path(y, band=str(table["band"].iloc[0]), instrument=inst))
    meta = {**meta, "sample_rate": C.SAMPLE_RATE, "skill_loading": judge.skill_loading,
            "target_correlation": judge.target_correlation, "achieved_correlation": judge.achieved_correlation,
            "judge_noise": judge.noise_share, "halo": HALO, "judge_weights": JUDGE_WEIGHTS,
            "tempo_choice": {"log_sd": TEMPO_SPREAD, "skill_correlation": TEMPO_SKILL},
            "band_standard": asdict(BAND_STANDARDS[judge.band]),
            "deviations": {k: asdict(d) for k, d in DEVIATIONS.items()}}
    (out / "demo.json").write_text(json.dumps(meta, indent=2))
    return table


def _pool_map(fn: Any, items: list, jobs: int | None) -> list:
    """``fn`` over ``items`` in ``jobs`` worker processes (default: CPU count), results in any order."""
    workers = max(1, min(jobs or os.cpu_count() or 1, len(items)))
    if workers == 1:
        return [fn(it) for it in items]
    import multiprocessing as mp

    ctx = mp.get_context("spawn" if sys.platform == "darwin" else "fork")
    with ctx.Pool(workers) as pool:
        results = list(pool.imap_unordered(fn, items, chunksize=1))
        # let the workers exit on their own: the pool's exit terminates them, and workers forked from a
        # process that runs Ray print its SIGTERM handler's stack traces
        pool.close()
        pool.join()
    return results


def _render_all(jobs_list: list[Audition], jobs: int | None) -> None:
    _pool_map(render_audition, jobs_list, jobs)


@dataclass(frozen=True)
class _RenderExtract:
    """One worker item of the fused path: render an audition, then run extract's row function on it."""

    row_fn: Any  # raympa.contours.AudioRows

    def __call__(self, item: tuple[int, Audition]) -> dict[str, Any]:
        index, job = item
        render_audition(job)
        # the row `raympa extract --table OUT/ratings.csv` makes: audio_path resolved against OUT
        row = {"_index": index, "recording_id": job.recording_id, "path": str(Path(job.path).resolve()),
               "segment_start": math.nan, "segment_duration": math.nan}
        return raydata.process_row(row, self.row_fn) | {"node_id": ""}


def _render_and_extract(jobs_list: list[Audition], jobs: int | None, contours: ContourOutput) -> None:
    """Render every audition and extract its contour in the same worker; write the contours folder."""
    from raympa.config import ExtractConfig
    from raympa.contourfolder import write_outputs
    from raympa.contours import META_TYPES, AudioRows, resolve_cache_dir, warm_up

    config = ExtractConfig()
    row_fn = AudioRows.of(config, cache_dir=resolve_cache_dir(contours.cache_dir, contours.use_cache))
    warm_up(config)  # numba kernels compiled or loaded once, before the workers fork
    rows = _pool_map(_RenderExtract(row_fn), list(enumerate(jobs_list)), jobs)
    rows.sort(key=lambda r: r["_index"])
    out_dir = Path(contours.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_outputs(raydata.rows_to_arrow(rows, META_TYPES), out_dir, n_inputs=len(rows))


def _write_etudes(etudes: dict, path: Path) -> None:
    rows = []
    for (year, inst), et in etudes.items():
        for k in range(len(et.pitch)):
            rows.append({"year": year, "instrument": inst, "etude": et.name, "tempo_bpm": round(et.tempo_bpm, 3),
                         "note": k, "midi": int(et.pitch[k]), "start_beat": float(et.start[k]),
                         "dur_beat": float(et.dur[k]), "phrase": int(et.phrase[k])})
    pd.DataFrame(rows).to_csv(path, index=False)



def ceiling(folder: str | Path, *, folds: int = 5, seed: int = 0) -> pd.DataFrame:
    """The simulator's ceiling: cross-validated R² of predicting each rating from the true
    (realised) deviation amounts in ``deviations.csv``, with a linear model and with gradient
    boosting. A model that only sees audio cannot be expected to beat it.

    Returns:
        One row per criterion: ``r2_linear``, ``r2_boosting`` (mean over folds), ``n``.
    """
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.linear_model import LinearRegression
    from sklearn.model_selection import KFold, cross_val_score

    folder = Path(folder)
    ratings = pd.read_csv(folder / "ratings.csv", dtype={"recording_id": str})
    dev = pd.read_csv(folder / "deviations.csv", dtype={"recording_id": str})
    df = ratings.merge(dev, on="recording_id", validate="one_to_one")
    x = df[list(DEVIATIONS)].to_numpy()
    cv = KFold(folds, shuffle=True, random_state=seed)
    rows = []
    for crit in C.RATED_COLUMNS:
        y = df[crit].to_numpy()
        lin = cross_val_score(LinearRegression(), x, y, cv=cv, scoring="r2").mean()
        gbm = cross_val_score(HistGradientBoostingRegressor(max_iter=200, learning_rate=0.05, random_state=seed),
                              x, y, cv=cv, scoring="r2").mean()
        rows.append({"criterion": crit, "r2_linear": round(float(lin), 3), "r2_boosting": round(float(gbm), 3),
                     "n": len(df)})
    return pd.DataFrame(rows)
