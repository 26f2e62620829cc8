"""Speech-activity detection (VAD) by frame energy and spectral flatness, in numpy.

RMS alone cannot tell quiet speech from noise: white noise at RMS 2e-4 passes a 1e-4 silence
check, and Whisper then returns "" for it. ``webrtcvad`` is not installed in this project's
environment, so this is the classic energy + spectral-flatness detector (e.g. Moattar &
Homayounpour, EUSIPCO 2009), written out:

- 30 ms frames every 10 ms (Hann window), power spectrum over 100-4000 Hz (the speech band);
- a frame is *active* when its level is at least ``min_dbfs`` (absolute, dBFS) and at least
  ``snr_db`` (3 dB) above the recording's noise floor (the 5th percentile of frame levels: a
  crowd scene's speech over babble varies by only ~4 dB), and its
  spectral flatness (geometric / arithmetic mean of the band's power) is at most
  ``max_flatness``: voiced speech has harmonics and formants (flatness about 0.01-0.2), white
  or broadband noise a flat spectrum (flatness about 0.5 for a periodogram of white noise);
- activity is smoothed by a majority vote over 5 frames (50 ms) and counted in seconds.

:func:`speech_seconds` returns the active duration; ``extract_audio`` fails an item whose
active speech is shorter than ``min_speech_seconds`` with the reason "no speech".
"""

from __future__ import annotations

import numpy as np

FRAME_S = 0.030
HOP_S = 0.010
BAND_HZ = (100.0, 4000.0)
MIN_DBFS = -60.0
SNR_DB = 3.0
FLOOR_PERCENTILE = 5
MAX_FLATNESS = 0.30
SMOOTH = 5


def frame_features(wave: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame level (dBFS, RMS of the frame) and spectral flatness in the speech band."""
    x = np.asarray(wave, dtype=np.float64).ravel()
    n = int(round(FRAME_S * sample_rate))
    hop = int(round(HOP_S * sample_rate))
    if x.size < n:
        x = np.pad(x, (0, n - x.size))
    count = 1 + (x.size - n) // hop
    idx = np.arange(n)[None, :] + hop * np.arange(count)[:, None]
    frames = x[idx]
    level = 10.0 * np.log10(np.mean(frames ** 2, axis=1) + 1e-20)
    spec = np.abs(np.fft.rfft(frames * np.hanning(n), axis=1)) ** 2
    freqs = np.fft.rfftfreq(n, 1.0 / sample_rate)
    band = (freqs >= BAND_HZ[0]) & (freqs <= min(BAND_HZ[1], sample_rate / 2))
    p = spec[:, band] + 1e-20
    flatness = np.exp(np.mean(np.log(p), axis=1)) / np.mean(p, axis=1)
    return level, flatness


def active_frames(wave: np.ndarray, sample_rate: int, min_dbfs: float = MIN_DBFS,
                  snr_db: float = SNR_DB, max_flatness: float = MAX_FLATNESS) -> np.ndarray:
    """Boolean speech activity per 10 ms frame (see the module docstring)."""
    level, flatness = frame_features(wave, sample_rate)
    floor = float(np.percentile(level, FLOOR_PERCENTILE))
    active = (level >= min_dbfs) & (level >= floor + snr_db) & (flatness <= max_flatness)
    if active.size >= SMOOTH:
        votes = np.convolve(active.astype(float), np.ones(SMOOTH), mode="same")
        active = votes > SMOOTH / 2
    return active


def speech_seconds(wave: np.ndarray, sample_rate: int, **kw) -> float:
    """Seconds of detected speech activity in ``wave``."""
    return float(active_frames(wave, sample_rate, **kw).sum() * HOP_S)
