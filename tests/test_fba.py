"""FBA index: counts on the real annotations, and every kind of bad input on a tiny fake layout."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from raympa import fba
from raympa.ratings import read_ratings

TECH = "technical_etude"


def _scores_row(sid, year, band, inst, m=0.5, n=0.6, r=0.7, t=0.4):
    return {"student_id": sid, "year": year, "band": band, "instrument": inst, "lyrical_etude_note_accuracy": 0.3,
            f"{TECH}_musicality_tempo_style": m, f"{TECH}_note_accuracy": n,
            f"{TECH}_rhythmic_accuracy": r, f"{TECH}_tone_quality": t}


def _segment(root: Path, year: int, band: str, sid: int, text: str) -> None:
    d = root / f"FBA{year}" / band / "assessments" / str(sid)
    d.mkdir(parents=True, exist_ok=True)
    (d / f"{sid}_segment.txt").write_text(text)


@pytest.fixture()
def fake_fba(tmp_path: Path) -> Path:
    root = tmp_path / "fba"
    rows = [
        _scores_row(10001, 2013, "middleschool", "Flute"),  # tab-separated segment file
        _scores_row(10002, 2017, "middleschool", "Bb Clarinet"),  # space-separated
        _scores_row(10003, 2013, "middleschool", "Flute", n=-1),  # missing rating
        _scores_row(10004, 2013, "middleschool", "Flute"),  # no annotation folder
        _scores_row(10005, 2013, "middleschool", "Alto Saxophone"),  # folder, no segment file
        _scores_row(10006, 2013, "middleschool", "Flute"),  # malformed segment file
        _scores_row(29429, 2013, "middleschool", "Flute"),  # a bad id of the original code
        _scores_row(10008, 2013, "middleschool", "Trumpet"),  # not a study instrument
        _scores_row(10009, 2013, "concertband", "Flute"),  # not a study band
        _scores_row(10010, 2017, "symphonicband", "Flute", r=1.5),  # out of range
    ]
    root.mkdir()
    pd.DataFrame(rows).to_csv(root / fba.SCORES_CSV, index=False)
    header = "// data format: start_time(sec)\tduration(sec)\n"
    _segment(root, 2013, "middleschool", 10001, header + "1.5\t20.0\n30.25\t25.5\n60\t10\n")
    _segment(root, 2017, "middleschool", 10002,
             "// data format: start_time(sec) duration(sec)\n2.0 20.0\n40.5  31.0\n80 10\n")
    _segment(root, 2013, "middleschool", 10003, header + "1\t2\n3\t4\n")
    (root / "FBA2013" / "middleschool" / "assessments" / "10005").mkdir(parents=True)
    _segment(root, 2013, "middleschool", 10006, header + "1\t2\nthree\tfour\n")
    _segment(root, 2013, "middleschool", 29429, header + "1\t2\n3\t4\n")
    _segment(root, 2017, "symphonicband", 10010, header + "1\t2\n3\t4\n")
    return root


def test_fake_layout_reasons_and_segments(fake_fba: Path) -> None:
    table, counts = fba.build_index(fake_fba, options=fba.IndexOptions(keep_unusable=True))
    by_id = table.set_index("student_id")
    assert set(by_id.index) == {"10001", "10002", "10003", "10004", "10005", "10006", "29429", "10010"}
    assert by_id.loc["10001", "segment_start"] == pytest.approx(30.25)  # tab-separated, 2nd row
    assert by_id.loc["10001", "segment_duration"] == pytest.approx(25.5)
    assert by_id.loc["10002", "segment_start"] == pytest.approx(40.5)  # spaces, 2nd row
    assert by_id.loc["10002", "recording_id"] == "2017/middleschool/10002"
    expect = {"10003": "missing_rating", "10004": "no_annotation_folder", "10005": "no_segment_file",
              "10006": "bad_segment", "29429": "bad_id", "10010": "rating_out_of_range"}
    for sid, reason in expect.items():
        assert not by_id.loc[sid, "usable"]
        assert by_id.loc[sid, "note"].startswith(reason), (sid, by_id.loc[sid, "note"])
    assert "line 3" in by_id.loc["10006", "note"]
    assert np.isnan(by_id.loc["10003", "note_accuracy"])  # -1 never reaches the table
    assert by_id.loc["10001", "usable"] and by_id.loc["10002", "usable"]
    assert counts.loc["usable", "total"] == 2
    assert counts.loc["selected (years, band, instruments)", "total"] == 8
    removed = counts.loc[[f"- {r}" for r in fba.REASONS], "total"]
    assert removed.sum() == 6  # every non-usable row is counted under exactly one reason
    default, _ = fba.build_index(fake_fba)
    assert sorted(default["student_id"]) == ["10001", "10002"]


def test_audio_and_pitchtrack_lookup(fake_fba: Path, tmp_path: Path) -> None:
    audio = tmp_path / "audio"
    a1 = audio / "2013-2014" / "middleschoolscores" / "10001" / "10001.mp3"  # 2013 layout
    a1.parent.mkdir(parents=True)
    a1.write_bytes(b"")
    tracks = tmp_path / "tracks" / "x"
    tracks.mkdir(parents=True)
    (tracks / "10002_pyin_pitchtrack.txt").write_text("0.0,0.0\n")
    table, counts = fba.build_index(fake_fba, audio=audio, pitchtracks=tmp_path / "tracks")
    by_id = table.set_index("student_id")
    assert by_id.loc["10001", "audio_path"] == str(a1.resolve())
    assert by_id.loc["10002", "audio_path"] == ""
    assert "no audio file 10002.*" in by_id.loc["10002", "note"]
    assert by_id.loc["10002", "pitchtrack_path"].endswith("10002_pyin_pitchtrack.txt")
    assert counts.loc["usable without audio file", "total"] == 1
    # a table of paths instead of a folder
    (tmp_path / "paths.csv").write_text(f"student_id,audio_path\n10002,{a1}\n")
    table2, _ = fba.build_index(fake_fba, audio=tmp_path / "paths.csv")
    assert table2.set_index("student_id").loc["10002", "audio_path"] == str(a1)


def test_bad_annotation_folders(tmp_path: Path, fake_fba: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        fba.build_index(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="normalized_student_scores.csv"):
        fba.build_index(tmp_path / "empty")
    df = pd.read_csv(fake_fba / fba.SCORES_CSV).drop(columns=[f"{TECH}_note_accuracy"])
    df.to_csv(fake_fba / fba.SCORES_CSV, index=False)
    with pytest.raises(ValueError, match="technical_etude_note_accuracy"):
        fba.build_index(fake_fba)
    with pytest.raises(ValueError, match="segment"):
        fba.build_index(fake_fba, options=fba.IndexOptions(segment="scales"))


def test_parse_years() -> None:
    assert fba.parse_years("2013-2015") == (2013, 2014, 2015)
    assert fba.parse_years("2016,2013-2014") == (2013, 2014, 2016)
    with pytest.raises(ValueError):
        fba.parse_years("2015-2013")


def test_cli_writes_a_readable_index(fake_fba: Path, tmp_path: Path, capsys) -> None:
    from raympa.cli import main

    out = tmp_path / "idx.parquet"
    assert main(["fba-index", "--annotations", str(fake_fba), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "no_annotation_folder" in printed and "usable" in printed
    df = read_ratings(out)
    assert len(df) == 2 and set(df["split"]) <= {"train", "val", "test"}
    assert main(["fba-index", "--annotations", str(tmp_path / "missing"), "--out", str(out)]) == 2


def test_counts_on_shared_fba(shared_fba: Path) -> None:
    """The counts on the real annotations (2,747 / 3,281 valid ratings, 2,616 / 3,036 usable)."""
    table, counts = fba.build_index(shared_fba, options=fba.IndexOptions(keep_unusable=True))
    for band, valid, with_seg, final in (("middleschool", 2747, 2621, 2616), ("symphonicband", 3281, 3045, 3036)):
        c = counts[band]
        assert c["= after rating_out_of_range"] == valid
        assert c["= after no_segment_file"] == with_seg
        assert c["usable"] == final
    usable = table[table["usable"]]
    assert usable["recording_id"].is_unique
    assert usable["segment_duration"].gt(0).all()
    # the one zero-length technical etude belongs to a bad id (29429), so the final count holds
    assert table.set_index("student_id").loc["29429", "note"].startswith("bad_segment; bad_id")


def test_piece_ids_and_user_scores(fake_fba: Path, tmp_path: Path) -> None:
    """piece_id is always filled; reference_path comes from a --scores file named as documented."""
    scores = tmp_path / "scores"
    scores.mkdir()
    name = fba.score_file_name(2013, "middleschool", "Flute", TECH)
    assert name == "2013_middleschool_flute_technical_etude.mid"
    (scores / name).write_bytes(b"MThd")  # only the name matters to the index
    (scores / "unrelated.mid").write_bytes(b"MThd")
    table, _ = fba.build_index(fake_fba, scores=scores, options=fba.IndexOptions(keep_unusable=True))
    assert (table["piece_id"] == [fba.piece_id(y, b, i, TECH) for y, b, i in
                                  zip(table["year"], table["band"], table["instrument"])]).all()
    flute13 = (table["year"] == 2013) & (table["instrument"] == "Flute") & (table["band"] == "middleschool")
    assert (table.loc[flute13, "reference_path"] == str((scores / name).resolve())).all()
    assert (table.loc[~flute13, "reference_path"] == "").all()
    with pytest.raises(FileNotFoundError, match="score folder"):
        fba.build_index(fake_fba, scores=tmp_path / "nope")


def test_annotation_scores_fill_reference_path(shared_fba: Path) -> None:
    table, _ = fba.build_index(shared_fba, options=fba.IndexOptions(years=(2013, 2014, 2015, 2016)))
    sax = (table["band"] == "middleschool") & (table["instrument"] == "Alto Saxophone") & (table["year"] <= 2015)
    assert sax.sum() > 100 and table.loc[sax, "reference_path"].str.endswith(".mid").all()
    assert (table.loc[~sax, "reference_path"] == "").all()
    assert table["piece_id"].nunique() == table.groupby(["year", "band", "instrument"]).ngroups
