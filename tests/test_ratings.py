"""Ratings tables: validation, path resolution, and the 8:1:1 student split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from raympa import constants as C
from raympa.ratings import assign_splits, read_ratings, validate_ratings, write_ratings


def _table(n_students: int = 60, per_student: int = 2, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    inst = rng.choice(list(C.INSTRUMENTS), n_students)
    rows = []
    for s in range(n_students):
        for k in range(per_student):
            rows.append({"recording_id": f"{2013 + k}/middleschool/{s}", "student_id": str(s),
                         "instrument": inst[s], "note_accuracy": rng.random()})
    return pd.DataFrame(rows)


def test_split_deterministic_disjoint_by_student_and_8_1_1() -> None:
    df = _table(100)
    a = assign_splits(df, seed=3)
    b = assign_splits(df.sample(frac=1.0, random_state=0), seed=3).loc[df.index]
    assert (a == b).all()  # row order does not matter
    assert (assign_splits(df, seed=4) != a).any()  # another split seed, another split
    per_student = pd.DataFrame({"s": df["student_id"], "split": a}).groupby("s")["split"].nunique()
    assert (per_student == 1).all()  # a student never straddles splits
    students = pd.DataFrame({"s": df["student_id"], "split": a}).drop_duplicates("s")["split"].value_counts()
    assert students.to_dict() == {"train": 80, "val": 10, "test": 10}
    # stratified: each instrument has 8:1:1 up to one student per block boundary
    inst = pd.crosstab(df.drop_duplicates("student_id")["instrument"],
                       a[df.drop_duplicates("student_id").index])
    for _, row in inst.iterrows():
        n = row.sum()
        assert abs(row["test"] - 0.1 * n) <= 2 and abs(row["val"] - 0.1 * n) <= 2


def test_split_by_recording_when_no_student() -> None:
    df = _table(30, per_student=1).drop(columns="student_id")
    s = assign_splits(df, seed=0)
    assert s.value_counts().to_dict() == {"train": 24, "val": 3, "test": 3}
    with pytest.warns(UserWarning, match="at least 10 students"):
        assign_splits(df.iloc[:3], seed=0)


def test_read_ratings_computes_split_and_resolves_paths(tmp_path: Path) -> None:
    df = _table(20, per_student=1)
    df["audio_path"] = ["audio/a.wav"] * 10 + [""] * 10
    path = write_ratings(df, tmp_path / "t" / "ratings.csv")
    r = read_ratings(tmp_path / "t", split_seed=1)  # a folder means folder/ratings.csv
    assert list(r.columns[: len(C.RATINGS_COLUMNS)]) == list(C.RATINGS_COLUMNS)
    assert (r["split"] == assign_splits(df, seed=1).to_numpy()).all()
    assert r["audio_path"].iloc[0] == str(tmp_path / "t" / "audio" / "a.wav")
    assert r["audio_path"].iloc[-1] == ""
    assert r["student_id"].iloc[3] == "3" and np.isnan(r["musicality"]).all()
    r2 = read_ratings(path, resolve_paths=False)
    assert r2["audio_path"].iloc[0] == "audio/a.wav"
    # parquet round trip with the split stored
    write_ratings(r, tmp_path / "t.parquet")
    assert (read_ratings(tmp_path / "t.parquet", split_seed=99)["split"] == r["split"]).all()


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d.drop(columns="recording_id"), "recording_id"),
        (lambda d: d.drop(columns="note_accuracy"), "none of the rating columns"),
        (lambda d: d.assign(recording_id="x"), "duplicate"),
        (lambda d: d.assign(note_accuracy=1.5), "outside"),
        (lambda d: d.assign(split="training"), "split values"),
        (lambda d: d.assign(split=["train"] + [""] * (len(d) - 1)), "some rows only"),
        (lambda d: d.assign(segment_duration=0.0), "segment_duration 0"),
    ],
)
def test_validation_messages(change, message) -> None:
    with pytest.raises(ValueError, match=message):
        validate_ratings(change(_table(5, per_student=1)))


def test_minus_one_is_missing(tmp_path: Path) -> None:
    df = _table(10, per_student=1).assign(musicality=-1.0)
    with pytest.warns(UserWarning, match="-1"):
        out = validate_ratings(df)
    assert out["musicality"].isna().all()
    with pytest.raises(FileNotFoundError, match="demo-data"):
        read_ratings(tmp_path / "none.csv")


def test_split_is_8_1_1_within_each_band() -> None:
    a, b = _table(50, per_student=1), _table(30, per_student=1, seed=1)
    b["student_id"] = "b" + b["student_id"]
    b["recording_id"] = "b" + b["recording_id"]
    df = pd.concat([a.assign(band="middleschool"), b.assign(band="symphonicband")], ignore_index=True)
    split = assign_splits(df, seed=0)
    counts = pd.crosstab(df["band"], split)
    assert counts.loc["middleschool"].to_dict() == {"test": 5, "train": 40, "val": 5}
    assert counts.loc["symphonicband"].to_dict() == {"test": 3, "train": 24, "val": 3}


def test_reference_path_resolves_like_audio_path(tmp_path: Path) -> None:
    df = _table(10, per_student=1)
    df["piece_id"] = "2013/middleschool/Flute/technical_etude"
    df["reference_path"] = ["scores/a.mid"] * 5 + ["/abs/b.csv"] * 4 + [""]
    write_ratings(df, tmp_path / "t" / "ratings.csv")
    r = read_ratings(tmp_path / "t")
    assert r["reference_path"].iloc[0] == str(tmp_path / "t" / "scores" / "a.mid")
    assert r["reference_path"].iloc[5] == "/abs/b.csv" and r["reference_path"].iloc[-1] == ""
    assert (r["piece_id"] == "2013/middleschool/Flute/technical_etude").all()
    bare = read_ratings(write_ratings(_table(10, per_student=1), tmp_path / "u.csv"))
    assert (bare["piece_id"] == "").all() and (bare["reference_path"] == "").all()  # optional columns
