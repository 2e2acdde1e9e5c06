"""Time ``raympa report`` on a fake study folder, and t-SNE with one OpenMP thread vs all cores.

    python benchmarks/report_speed.py --seeds 5 --n-test 300 --repeats 3
    python benchmarks/report_speed.py --seeds 3 --n-test 80 --chunks-per-recording 9 --repeats 1
    python benchmarks/report_speed.py --smoke-test

Writes ``benchmarks/results/report_speed.md`` (medians over repeats, and the ratio), with the
command that produced it. The fake study is tests/fake_study.py: 3 models x 2 criteria x 2 bands
x seeds, plus a 2-value margin sweep; ``n_test`` test recordings per trial (FBA's test sets hold
about 270 middle-school and 330 symphonic-band recordings at 8:1:1). With
``--chunks-per-recording`` every latents file also holds chunk latents, which the latent views use
(the default margin sweep's 80 test recordings of about 30 s give about 9 windows of 1000 frames at
hop 500 each).
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the fake study helper


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=5, help="seeds per configuration (default %(default)s, paper)")
    p.add_argument("--n-test", type=int, default=300, help="test recordings per trial (default %(default)s)")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats per variant (default %(default)s)")
    p.add_argument("--chunks-per-recording", type=int, default=0,
                   help="chunk latents per test recording (default %(default)s: recordings only)")
    p.add_argument("--smoke-test", action="store_true", help="tiny sizes, one repeat")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "report_speed.md"))
    args = p.parse_args(argv)
    if args.smoke_test:
        args.seeds, args.n_test, args.repeats = 2, 40, 1

    from fake_study import make_fake_study

    from raympa.analysis import AnalysisConfig, tsne_table, load_study
    from raympa.report import write_report

    with tempfile.TemporaryDirectory() as tmp:
        study_dir = make_fake_study(Path(tmp) / "study", seeds=tuple(range(args.seeds)), n_test=args.n_test,
                                    chunks_per_recording=args.chunks_per_recording)
        study = load_study(study_dir)
        n_trials = len(study.trials)
        # warm-up: imports, sklearn's first t-SNE call, plotly's validators
        write_report(study_dir, Path(tmp) / "warm", config=AnalysisConfig(tsne_max_iter=250))

        rows = []
        for label, cfg in (("t-SNE, 1 OpenMP thread (default)", AnalysisConfig(tsne_threads=1)),
                           ("t-SNE, all cores", AnalysisConfig(tsne_threads=None))):
            times = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                tsne_table(study, cfg)
                times.append(time.perf_counter() - t0)
            rows.append((label, statistics.median(times)))
        full = []
        for i in range(args.repeats):
            t0 = time.perf_counter()
            write_report(study_dir, Path(tmp) / f"r{i}")
            full.append(time.perf_counter() - t0)
        report_s = statistics.median(full)

    cmd = shlex.join(["python", "benchmarks/report_speed.py", *(argv if argv is not None else sys.argv[1:])])
    one, many = rows[0][1], rows[1][1]
    lines = [
        "# raympa report: speed",
        "",
        f"Command: `{cmd}`",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
        "other jobs may have been running (the CPU was shared when this was taken).",
        f"Study: {n_trials} trials (fake, tests/fake_study.py), {args.n_test} test recordings per trial, "
        f"{args.seeds} seeds, {args.chunks_per_recording or 'no'} chunk latents per recording (latent views on "
        f"{args.n_test * max(args.chunks_per_recording, 1)} points per trial); medians of {args.repeats} repeat(s) "
        "after a warm-up.",
        "",
        "| what | median s | ratio to 1 thread |",
        "|---|---|---|",
        f"| {rows[0][0]} | {one:.2f} | 1.00 |",
        f"| {rows[1][0]} | {many:.2f} | {many / one:.2f} |",
        f"| whole `write_report` (default settings) | {report_s:.2f} | |",
        "",
    ]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
