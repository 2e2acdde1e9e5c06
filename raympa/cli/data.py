"""`raympa fba-index` and `raympa demo-data`: ratings tables, real and simulated."""

from __future__ import annotations

import argparse


def _add_fba_index(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("fba-index", help="index of FBA auditions from the MIG-FbaData annotation layout")
    p.set_defaults(handler=run_fba_index)
    p.add_argument("--annotations", required=True, help="MIG-FbaData checkout (holds FBA2013..FBA2018 and the scores CSV)")
    p.add_argument("--audio", default=None, help="audio root (<year>-<year+1>/<band>/<id>/<id>.mp3)")
    p.add_argument("--pitchtracks", default=None, help="root of <id>_pyin_pitchtrack.txt files")
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
    p.add_argument("--band", choices=("middleschool", "symphonicband"), default="middleschool")
    p.add_argument("--fba-annotations", default=None, help="MIG-FbaData checkout: real etude MIDIs and rating distribution")
    p.add_argument("--split-seed", type=int, default=0, help="seed of the 8:1:1 split (default %(default)s)")
    p.add_argument("--duration", type=float, default=None,
                   help="nominal etude length in s (default: 30 middleschool, 48 symphonicband, FBA medians)")
    p.add_argument("--jobs", type=int, default=None, help="rendering processes (default: CPU count)")


def register(sub: argparse._SubParsersAction) -> None:
    """Add this module's subcommands."""
    _add_fba_index(sub)
    _add_demo_data(sub)


def run_fba_index(args: argparse.Namespace) -> int:
    from raympa.fba import cli_fba_index

    return int(cli_fba_index(args) or 0)


def run_demo_data(args: argparse.Namespace) -> int:
    from raympa.demo import cli_demo_data

    return int(cli_demo_data(args) or 0)
