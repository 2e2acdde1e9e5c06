"""A study's data: simulated auditions built on first use, or a ratings table with its contours."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from raympa import constants as C

if TYPE_CHECKING:
    import pandas as pd

    from raympa.dataset import ContourSet


def demo_data(
    data_dir: str | os.PathLike,
    *,
    bands: Sequence[str] = ("middleschool",),
    n: int = 120,
    seed: int = 0,
    duration_s: float | None = None,
) -> tuple["pd.DataFrame", "pd.DataFrame", dict[str, Any]]:
    """Build (if missing) and load simulated auditions and their contours, one folder per band.

    ``DATA_DIR/demo-n<n>-s<seed>[-d<duration>]/<band>/`` gets ``ratings.csv`` and ``audio/``
    (:func:`raympa.demo.make_demo`) and ``contours/`` (:func:`raympa.contours.extract`, on the
    running Ray). Returns the ratings and contours tables of all bands and a description (its
    ``path`` relative to ``data_dir``: study folders hold no machine paths).
    """
    import pandas as pd

    from raympa.contours import extract, load_contours
    from raympa.demo import make_demo
    from raympa.ratings import read_ratings

    tag = f"demo-n{n}-s{seed}" + (f"-d{duration_s:g}" if duration_s else "")
    root = Path(data_dir).expanduser().resolve() / tag
    ratings, contours = [], []
    for i, band in enumerate(bands):
        folder = root / band
        if not (folder / "ratings.csv").is_file():
            print(f"[raympa] rendering {n} demo auditions ({band}) into {folder}", file=sys.stderr)
            make_demo(folder, n=n, seed=seed + 1000 * i, band=band, duration_s=duration_s)
        table = read_ratings(folder / "ratings.csv")
        if not (folder / "contours" / "contours.parquet").is_file():
            print(f"[raympa] extracting contours of {len(table)} auditions into {folder / 'contours'}", file=sys.stderr)
            extract(table[["recording_id", "audio_path"]], folder / "contours")
        ratings.append(table)
        contours.append(load_contours(folder / "contours"))
    info = {"kind": "demo", "path": tag, "bands": list(bands), "n_per_band": n, "seed": seed,
            "duration_s": duration_s, "note": "simulated auditions (raympa.demo), not real FBA recordings"}
    return pd.concat(ratings, ignore_index=True), pd.concat(contours, ignore_index=True), info


def load_study_data(
    *,
    data: str = "demo",
    contours: str | None = None,
    data_dir: str | os.PathLike = "data",
    bands: Sequence[str] = ("middleschool",),
    demo_n: int = 120,
    demo_duration: float | None = None,
    reference: str = "none",
    criterion: str = C.CRITERIA[0],
) -> tuple["ContourSet", dict[str, Any]]:
    """The study's ContourSet: the demo (``data="demo"``), or the ratings table ``data`` with ``contours``.

    With ``reference`` ``table`` or ``peers`` the set carries each recording's aligned reference
    (:func:`raympa.references.build_references`; ``criterion`` ranks peers); recordings without
    one are left out with a warning.

    Raises:
        ValueError: a ratings table without contours, or no recording with both.
        FileNotFoundError: a missing ratings table or contours folder.
    """
    from raympa.dataset import ContourSet

    if data == "demo":
        ratings, table, info = demo_data(data_dir, bands=bands, n=demo_n, duration_s=demo_duration)
    else:
        from raympa.contours import load_contours
        from raympa.ratings import read_ratings

        if not contours:
            raise ValueError("--data TABLE needs --contours DIR (from raympa extract or raympa import-pitchtracks)")
        ratings = read_ratings(data)
        table = load_contours(contours)
        info = {"kind": "table", "ratings": Path(data).name, "contours": Path(contours).name}
    contour_set = ContourSet.from_tables(ratings, table)
    if len(contour_set) == 0:
        raise ValueError("no recording has both a rating and a contour")
    if reference != "none":
        from raympa.references import attach, build_references

        refs = build_references(reference, ratings, contour_set, criterion=criterion)
        contour_set = attach(contour_set, refs)
        info.update(reference=reference, references=refs.summary())
        if len(contour_set) == 0:
            raise ValueError(f"no recording has a reference ({refs.summary()})")
    info.update(n_recordings=len(contour_set), bands_present=sorted(set(contour_set.band.tolist())),
                splits={s: int((contour_set.split == s).sum()) for s in C.SPLITS})
    return contour_set, info
