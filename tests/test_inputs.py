"""Input tables: jobs from a table or a folder, validated before any work starts."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from raympa import inputs


def test_jobs_from_table_resolves_paths_and_segments(tmp_path):
    df = pd.DataFrame({
        "recording_id": ["007", "b", "c"], "audio_path": ["sub/x.wav", "/abs/y.mp3", ""],
        "segment_start": ["1.5", "", "2"], "segment_duration": ["30", "", ""], "musicality": [0.5, 0.6, 0.7],
    })
    df.to_csv(tmp_path / "t.csv", index=False)
    jobs = inputs.jobs_from_table(tmp_path / "t.csv", path_column="audio_path")
    assert jobs["recording_id"].tolist() == ["007", "b", "c"]  # ids stay strings, leading zeros kept
    assert jobs["path"].tolist() == [str(tmp_path / "sub/x.wav"), "/abs/y.mp3", ""]
    assert jobs["segment_start"].tolist()[0] == 1.5 and math.isnan(jobs["segment_start"][1])
    assert jobs["segment_duration"][0] == 30.0 and math.isnan(jobs["segment_duration"][2])


@pytest.mark.parametrize("name, content", [("empty.csv", b""), ("binary.csv", b"\xff\xfe\x00\x81garbage" * 20),
                                           ("bad.parquet", b"not a parquet file")])
def test_unreadable_table_is_refused_in_one_line(tmp_path, name, content):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(ValueError, match="not a readable CSV or parquet table") as err:
        inputs.jobs(tmp_path / name, path_column="audio_path")
    assert "\n" not in str(err.value)


def test_missing_source_and_clashing_ids_are_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such folder or table"):
        inputs.jobs(tmp_path / "nope", path_column="audio_path")
    (tmp_path / "a.wav").write_bytes(b"")
    (tmp_path / "a.mp3").write_bytes(b"")
    with pytest.raises(ValueError, match="two files give the recording id 'a'"):
        inputs.jobs(tmp_path, path_column="audio_path")
