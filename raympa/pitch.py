"""Fast pYIN that reproduces librosa.pyin's contour.

pYIN: Mauch & Dixon, "pYIN: A fundamental frequency estimator using probabilistic threshold
distributions", ICASSP 2014; YIN: de Cheveigné & Kawahara, JASA 2002. The reference
implementation is librosa 0.11's ``librosa.pyin``; this module keeps its parameters, defaults and
return values (f0 in Hz with ``fill_na`` for unvoiced frames, voiced flag, voiced probability).

This first version delegates to librosa.pyin; the fast path replaces it in place.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def pyin(
    y: np.ndarray,
    *,
    sr: float,
    fmin: float,
    fmax: float,
    frame_length: int = 1024,
    hop_length: int | None = None,
    n_thresholds: int = 100,
    beta_parameters: tuple[float, float] = (2, 18),
    boltzmann_parameter: float = 2,
    resolution: float = 0.1,
    max_transition_rate: float = 35.92,
    switch_prob: float = 0.01,
    no_trough_prob: float = 0.01,
    fill_na: float | None = np.nan,
    center: bool = True,
    pad_mode: Any = "constant",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """pYIN f0 estimation with librosa.pyin's parameters and results.

    Returns:
        ``(f0, voiced_flag, voiced_prob)``, each of shape (..., n_frames): f0 in Hz
        (``fill_na`` where unvoiced), voiced flag (bool), voiced probability in [0, 1].
    """
    import librosa

    return librosa.pyin(
        y,
        sr=sr,
        fmin=fmin,
        fmax=fmax,
        frame_length=frame_length,
        hop_length=hop_length,
        n_thresholds=n_thresholds,
        beta_parameters=beta_parameters,
        boltzmann_parameter=boltzmann_parameter,
        resolution=resolution,
        max_transition_rate=max_transition_rate,
        switch_prob=switch_prob,
        no_trough_prob=no_trough_prob,
        fill_na=fill_na,
        center=center,
        pad_mode=pad_mode,
    )
