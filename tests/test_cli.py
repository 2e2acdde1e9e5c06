"""The command-line front: parsing only (no stage runs here)."""

import subprocess
import sys

from raympa.cli import build_parser


def test_predict_takes_repeated_checkpoints_before_audio():
    args = build_parser().parse_args(
        ["predict", "--checkpoint", "a.pt", "--checkpoint", "b.pt", "x.wav", "y.mp3"])
    assert args.checkpoint == ["a.pt", "b.pt"]
    assert args.audio == ["x.wav", "y.mp3"]


def test_help_imports_no_heavy_module():
    code = ("import sys; from raympa.cli import build_parser\n"
            "try:\n    build_parser().parse_args(['train', '--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('torch', 'ray', 'librosa', 'optuna') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"
