"""`raympa fba-index` and `raympa demo-data`: ratings tables, real and simulated."""

from __future__ import annotations

import argparse
import sys
import time

from raympa import constants as C


def _add_fba_index(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("fba-index", help="index of FBA auditions from the MIG-FbaData annotation layout")
    p.set_defaults(handler=run_fba_index)
    p.add_argument("--annotations", required=True, help="MIG-FbaData checkout (holds FBA2013..FBA2018 and the scores CSV)")
    p.add_argument("--audio", default=None, help="audio root (<year>-<year+1>/<band>/<id>/<id>.mp3)")
    p.add_argument("--pitchtracks", default=None, help="root of <id>_pyin_pitchtrack.txt files")
    p.add_argument("--scores", default=None,
                   help="folder of MIDI scores named <year>_<band>_<instrument>_<segment>.mid (instrument in "
                        "lower case, letters and digits only, e.g. 2014_symphonicband_bbclarinet_technical_etude.mid)")
    p.add_argument("--out", required=True, help="index file (.csv, or .parquet)")
    p.add_argument("--years", default="2013-2018", help="e.g. 2013-2018 or 2013,2015 (default %(default)s)")
    p.add_argument("--bands", default="middleschool,symphonicband", help="comma list (default %(default)s)")
    p.add_argument("--instruments", default="Alto Saxophone,Bb Clarinet,Flute", help="comma list (default %(default)s)")
    p.add_argument("--segment", default="technical_etude", help="audition segment (default %(default)s)")
    p.add_argument("--split-seed", type=int, default=0, help="seed of the 8:1:1 student split (default %(default)s)")
    p.add_argument("--keep-unusable", action="store_true", help="keep unusable rows, with a note column saying why")


def _add_demo_data(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo-data", help="render simulated auditions + ratings.csv (the embedded default data)")
    p.set_defaults(handler=run_demo_data)
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--n", type=int, default=240, help="number of auditions (default %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default %(default)s)")
    p.add_argument("--band", choices=C.STUDY_BANDS, default="middleschool",
                   help="band whose etudes, players and judge are simulated (default %(default)s)")
    p.add_argument("--fba-annotations", default=None, help="MIG-FbaData checkout: real etude MIDIs and rating distribution")
    p.add_argument("--split-seed", type=int, default=0, help="seed of the 8:1:1 split (default %(default)s)")
    p.add_argument("--duration", type=float, default=None,
                   help="nominal etude length in s (default: 30 middleschool, 48 symphonicband, FBA medians)")
    p.add_argument("--jobs", type=int, default=None, help="rendering processes (default: CPU count)")
    p.add_argument("--like-fba", default=None, metavar="DIR",
                   help="MIG-FbaData checkout: one audition per usable FBA index row of --band (its student id, "
                        "year, instrument, real ratings and split; --n is then unused)")
    p.add_argument("--contours", default=None, metavar="DIR",
                   help="also extract the pitch contours into DIR in the rendering processes (what "
                        "`raympa extract --table OUT/ratings.csv --out DIR` writes, paper's parameters, faster)")
    p.add_argument("--cache-dir", default=None,
                   help="contour cache for --contours (default $RAYMPA_CACHE or ~/.cache/raympa)")
    p.add_argument("--no-cache", action="store_true", help="with --contours: neither read nor write the cache")


def register(sub: argparse._SubParsersAction) -> None:
    """Add this module's subcommands."""
    _add_fba_index(sub)
    _add_demo_data(sub)


def run_fba_index(args: argparse.Namespace) -> int:
    """``raympa fba-index``: write the index and print the removal counts."""
    from raympa import constants as C
    from raympa.fba import IndexOptions, build_index, parse_years
    from raympa.ratings import write_ratings

    try:
        options = IndexOptions(
            years=parse_years(args.years),
            bands=_comma_list(args.bands),
            instruments=_comma_list(args.instruments),
            segment=args.segment,
            split_seed=args.split_seed,
            keep_unusable=args.keep_unusable,
        )
        table, counts = build_index(args.annotations, audio=args.audio, pitchtracks=args.pitchtracks,
                                    scores=args.scores, options=options)
    except (FileNotFoundError, ValueError) as err:
        print(f"raympa fba-index: error: {err}", file=sys.stderr)
        return 2
    out = write_ratings(table, args.out)
    print(counts.to_string())
    usable = table[table["usable"]] if "usable" in table.columns else table
    print(f"\nsplit (usable rows): {usable['split'].value_counts().reindex(list(C.SPLITS), fill_value=0).to_dict()}")
    print(f"rows with a reference score: {int((table['reference_path'] != '').sum())}")
    print(f"wrote {len(table)} rows to {out}")
    return 0


def run_demo_data(args: argparse.Namespace) -> int:
    """``raympa demo-data``: render the simulated auditions and print a summary."""
    from raympa import constants as C
    from raympa.demo import make_demo, make_demo_like_fba
    from raympa.demo.folder import ContourOutput

    contours = (ContourOutput(args.contours, cache_dir=args.cache_dir, use_cache=not args.no_cache)
                if args.contours else None)
    t0 = time.perf_counter()
    try:
        if args.like_fba is not None:
            table = make_demo_like_fba(args.out, args.like_fba, band=args.band, seed=args.seed,
                                       split_seed=args.split_seed, duration_s=args.duration, jobs=args.jobs,
                                       contours=contours)
        else:
            table = make_demo(args.out, n=args.n, seed=args.seed, band=args.band,
                              fba_annotations=args.fba_annotations, split_seed=args.split_seed,
                              duration_s=args.duration, jobs=args.jobs, contours=contours)
    except (FileNotFoundError, ValueError) as err:
        print(f"raympa demo-data: error: {err}", file=sys.stderr)
        return 2
    dt = time.perf_counter() - t0
    print(f"wrote {len(table)} auditions to {args.out}" + (f" and their contours to {args.contours}" if contours else "")
          + f" in {dt:.1f} s")
    print(table[list(C.RATED_COLUMNS)].describe().loc[["mean", "std", "min", "max"]].round(3).to_string())
    print(f"split: {table['split'].value_counts().reindex(list(C.SPLITS), fill_value=0).to_dict()}")
    return 0


def _comma_list(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())
