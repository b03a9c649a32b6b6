"""The log-mel front end: Kaldi fbank in numpy, and its record layout.

:func:`log_mel` computes exactly what SPEC §3 defines, i.e.
``torchaudio.compliance.kaldi.fbank(w - w.mean(), sample_frequency=16000,
num_mel_bins=128, frame_length=25, frame_shift=10, window_type='hamming',
htk_compat=True, use_energy=False, dither=0.0, snip_edges=False)``, without
torchaudio. Every parameter comes from :mod:`shared.contract`.

Kaldi's recipe, step by step (all vectorised over frames):

1. frames of 400 samples every 160; with snip_edges=False there are
   (samples + 80) // 160 of them, centred on multiples of the hop, and the
   waveform is extended by mirroring it at both ends (the edge sample repeated);
2. per frame: remove its mean, pre-emphasise (x[j] -= 0.97 x[j-1], with
   x[-1] = x[0]), multiply by a symmetric Hamming window, zero pad to 512;
3. power spectrum, times triangular mel filters between 20 Hz and Nyquist
   (HTK mel scale, triangles in the mel domain), log with the float32 epsilon
   as a floor.
"""

from __future__ import annotations

import functools

import numpy as np

from shared import contract

# Kaldi floors mel energies at float32's machine epsilon before the log.
_LOG_FLOOR = float(np.finfo(np.float32).eps)


def _padded_window_size(window_size: int) -> int:
  """The FFT size: the window rounded up to a power of two, as Kaldi does."""
  if not contract.MEL_ROUND_TO_POWER_OF_TWO:
    return window_size
  return 1 << (window_size - 1).bit_length()


def _mel_scale(hz: np.ndarray) -> np.ndarray:
  return 1127.0 * np.log1p(np.asarray(hz, np.float64) / 700.0)


@functools.lru_cache(maxsize=4)
def mel_filterbank(num_bins: int = contract.MEL_NUM_BINS,
                   fft_size: int = _padded_window_size(contract.MEL_FRAME_LENGTH_SAMPLES),
                   sample_rate: int = contract.AUDIO_SAMPLE_RATE) -> np.ndarray:
  """Kaldi's triangular mel filters, [fft_size // 2 + 1, num_bins] float32.

  Triangles are linear in the mel domain between consecutive centres spread
  evenly from MEL_LOW_FREQ_HZ to MEL_HIGH_FREQ_HZ (<= 0 means Nyquist minus
  its magnitude). The Nyquist bin gets no weight, as in Kaldi. The result is
  read-only because it is cached.

  Args:
    num_bins: number of mel filters.
    fft_size: FFT length; the filters cover its fft_size // 2 + 1 bins.
    sample_rate: sampling rate in Hz.
  """
  nyquist = 0.5 * sample_rate
  high_hz = contract.MEL_HIGH_FREQ_HZ if contract.MEL_HIGH_FREQ_HZ > 0 else nyquist + contract.MEL_HIGH_FREQ_HZ
  mel_low, mel_high = _mel_scale(contract.MEL_LOW_FREQ_HZ), _mel_scale(high_hz)
  mel_delta = (mel_high - mel_low) / (num_bins + 1)
  edges = mel_low + mel_delta * np.arange(num_bins + 2)
  left, centre, right = edges[:-2, None], edges[1:-1, None], edges[2:, None]
  fft_mel = _mel_scale(sample_rate / fft_size * np.arange(fft_size // 2))[None, :]
  up = (fft_mel - left) / (centre - left)
  down = (right - fft_mel) / (right - centre)
  weights = np.maximum(0.0, np.minimum(up, down))  # [num_bins, fft_size // 2]
  banks = np.zeros((fft_size // 2 + 1, num_bins), np.float32)
  banks[:-1] = weights.T
  banks.flags.writeable = False
  return banks


@functools.lru_cache(maxsize=4)
def _hamming_window(window_size: int) -> np.ndarray:
  """Kaldi's (symmetric) Hamming window: 0.54 - 0.46 cos(2 pi n / (N - 1))."""
  if contract.MEL_WINDOW != "hamming":
    raise NotImplementedError(f"window {contract.MEL_WINDOW!r} is not implemented")
  window = np.hamming(window_size)
  window.flags.writeable = False
  return window


def _frames_of_rows(waveform: np.ndarray, mean: float, first_row: int, end_row: int, window_size: int,
                    shift: int) -> np.ndarray:
  """[end_row - first_row, window_size] float64 frames of Kaldi's with snip_edges=False, mean removed.

  Frame m covers samples [m * shift + shift // 2 - window_size // 2, ... +
  window_size); samples outside the waveform mirror it with the edge sample
  repeated (x[-1] = x[0], x[n] = x[n - 1]), exactly as torchaudio pads. Only
  the samples these rows reach are copied.
  """
  if contract.MEL_SNIP_EDGES:
    raise NotImplementedError("only snip_edges=False is implemented")
  num_samples = waveform.shape[0]
  pad = window_size // 2 - shift // 2
  if pad < 0:
    raise NotImplementedError("frame shift longer than twice the window")
  first = first_row * shift - pad
  indices = np.arange(first, (end_row - 1) * shift - pad + window_size)
  indices = np.where(indices < 0, -indices - 1, indices)
  indices = np.where(indices >= num_samples, 2 * num_samples - 1 - indices, indices)
  segment = waveform[indices].astype(np.float64) - mean
  return np.lib.stride_tricks.sliding_window_view(segment, window_size)[::shift]


# Rows computed at a time: their temporaries (frames, spectrum, power, about
# 14 KB a row) stay near 14 MB whatever the waveform's length, where a whole
# 150 s span at once would take 200 MB and three hours 13 GB.
ROWS_PER_BLOCK = 1000


def log_mel(waveform: np.ndarray, rows_per_block: int = ROWS_PER_BLOCK) -> np.ndarray:
  """Kaldi fbank log-mel of a 16 kHz mono waveform, as SPEC §3 defines it.

  The waveform's mean is removed first (SPEC §3); pass the raw decoded audio.
  Rows are computed a block at a time, so memory beyond the input and output
  does not grow with the waveform; the block size does not change the result
  (each row depends only on its own samples and the mean).

  Args:
    waveform: float array [samples] at contract.AUDIO_SAMPLE_RATE, long
      enough for Kaldi's mirrored edges (140 samples at these parameters).
    rows_per_block: rows computed at a time (memory, not results).

  Returns:
    float32 [contract.num_mel_rows(samples), contract.MEL_NUM_BINS].

  Raises:
    ValueError: the waveform is not one-dimensional or is too short to frame.
  """
  waveform = np.asarray(waveform)
  if waveform.ndim != 1 or waveform.size == 0:
    raise ValueError(f"waveform must be one-dimensional and non-empty, got shape {waveform.shape}")
  if rows_per_block <= 0:
    raise ValueError(f"rows_per_block must be positive, got {rows_per_block}")
  window_size = contract.MEL_FRAME_LENGTH_SAMPLES
  shift = contract.MEL_FRAME_SHIFT_SAMPLES
  fft_size = _padded_window_size(window_size)
  if contract.MEL_DITHER != 0.0:
    raise NotImplementedError("dither is not implemented")
  num_samples = waveform.shape[0]
  num_rows = contract.num_mel_rows(num_samples)
  # torchaudio mirrors the whole waveform once on the right; the last frame must not reach past it.
  pad = window_size // 2 - shift // 2
  if (num_rows - 1) * shift + window_size - pad - num_samples > num_samples:
    raise ValueError(f"waveform of {num_samples} samples is too short to frame")

  mean = float(np.mean(waveform, dtype=np.float64))
  filterbank = mel_filterbank(contract.MEL_NUM_BINS, fft_size, contract.AUDIO_SAMPLE_RATE)
  output = np.empty((num_rows, contract.MEL_NUM_BINS), np.float32)
  for first_row in range(0, num_rows, rows_per_block):
    end_row = min(num_rows, first_row + rows_per_block)
    frames = _frames_of_rows(waveform, mean, first_row, end_row, window_size, shift)
    if contract.MEL_REMOVE_DC_OFFSET:
      frames = frames - frames.mean(axis=1, keepdims=True)
    else:
      frames = frames.copy()
    # Pre-emphasis from the original predecessors (the right side is evaluated
    # before the in-place subtraction); the first sample is its own predecessor
    # (Kaldi's replicate padding).
    frames[:, 1:] -= contract.MEL_PREEMPHASIS * frames[:, :-1]
    frames[:, 0] *= 1.0 - contract.MEL_PREEMPHASIS
    frames *= _hamming_window(window_size)
    spectrum = np.fft.rfft(frames, n=fft_size, axis=1)
    power = spectrum.real**2 + spectrum.imag**2
    mel_energies = power @ filterbank
    output[first_row:end_row] = np.log(np.maximum(mel_energies, _LOG_FLOOR))
  return output
