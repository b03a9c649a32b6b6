"""shared.media.logmel against torchaudio's Kaldi fbank outputs (tests/data/logmel_reference)."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest

from shared import contract
from shared.media import logmel

REFERENCE_DIR = pathlib.Path(__file__).resolve().parents[2] / "data" / "logmel_reference"
REFERENCE_INDEX = json.loads((REFERENCE_DIR / "index.json").read_text())
# float32 arithmetic alone moves low-energy bins by ~2e-3 (reference/README.md).
MAX_ABS_DIFF = 5e-3
MEAN_ABS_DIFF = 1e-4


def test_reference_was_made_with_the_contract_parameters():
  params = REFERENCE_INDEX["params"]
  assert params["sample_frequency"] == contract.AUDIO_SAMPLE_RATE
  assert params["num_mel_bins"] == contract.MEL_NUM_BINS
  assert params["frame_length"] == contract.MEL_FRAME_LENGTH_MS
  assert params["frame_shift"] == contract.MEL_FRAME_SHIFT_MS
  assert params["window_type"] == contract.MEL_WINDOW
  assert params["htk_compat"] == contract.MEL_HTK_COMPAT
  assert params["snip_edges"] == contract.MEL_SNIP_EDGES
  assert params["dither"] == contract.MEL_DITHER


@pytest.mark.parametrize("case", REFERENCE_INDEX["cases"], ids=lambda case: case["name"])
def test_matches_torchaudio_kaldi_fbank(case):
  waveform = np.load(REFERENCE_DIR / f"{case['name']}.wave.npy")
  reference = np.load(REFERENCE_DIR / f"{case['name']}.logmel.npy")
  assert waveform.shape == (case["samples"],)
  result = logmel.log_mel(waveform)
  assert result.dtype == np.float32
  assert result.shape == reference.shape == (case["frames"], contract.MEL_NUM_BINS)
  assert result.shape[0] == contract.num_mel_rows(waveform.shape[0])
  difference = np.abs(result.astype(np.float64) - reference)
  assert difference.max() <= MAX_ABS_DIFF
  assert difference.mean() <= MEAN_ABS_DIFF


def test_mean_of_the_waveform_is_removed():
  waveform = np.load(REFERENCE_DIR / "chirp_2p5s.wave.npy")
  np.testing.assert_allclose(logmel.log_mel(waveform + 0.25), logmel.log_mel(waveform), atol=1e-3)


def test_silence_is_the_log_floor():
  result = logmel.log_mel(np.zeros(16_000, np.float32))
  np.testing.assert_allclose(result, np.log(np.finfo(np.float32).eps))


@pytest.mark.parametrize("samples", [140, 159, 160, 161, 16_000, 160_000 + 79, 160_000 + 80])
def test_row_count_follows_kaldi(samples):
  waveform = np.random.default_rng(samples).normal(size=samples).astype(np.float32)
  assert logmel.log_mel(waveform).shape == ((samples + 80) // 160, contract.MEL_NUM_BINS)


def test_rejects_what_it_cannot_frame():
  for too_short in (0, 100, 139):  # Kaldi's mirrored edges need 140 samples
    with pytest.raises(ValueError):
      logmel.log_mel(np.zeros(too_short, np.float32))
  with pytest.raises(ValueError):
    logmel.log_mel(np.zeros((2, 16_000), np.float32))


def test_filterbank_is_kaldi_shaped():
  banks = logmel.mel_filterbank()
  assert banks.shape == (257, contract.MEL_NUM_BINS)
  assert not banks[-1].any()  # Kaldi gives the Nyquist bin no weight
  assert not banks[0].any()  # 0 Hz lies below the 20 Hz low edge
  # The lowest triangles are narrower than an FFT bin (31.25 Hz) and some
  # catch no bin at all: Kaldi keeps them (their rows are the log floor).
  heights = banks.max(axis=0)
  assert np.sum(heights == 0) <= 8 and np.all(heights[64:] > 0.5) and np.all(heights <= 1.0)
  peaks = banks.argmax(axis=0)[heights > 0]
  assert np.all(np.diff(peaks) >= 0)  # centres rise with the bin index


def test_a_tone_lands_in_its_mel_bin():
  rate = contract.AUDIO_SAMPLE_RATE
  tone = np.sin(2 * np.pi * 1000.0 * np.arange(rate) / rate).astype(np.float32)
  loudest_bin = int(np.bincount(logmel.log_mel(tone).argmax(axis=1)).argmax())
  assert loudest_bin == int(logmel.mel_filterbank()[round(1000.0 * 512 / rate)].argmax())


def test_blocks_of_rows_give_the_same_log_mel():
  # 3.3 s: 330 rows, so blocks of 100 and of 7 rows both meet the mirrored
  # edges and cut rows apart mid-waveform; one block of everything is the
  # whole-waveform computation.
  rng = np.random.default_rng(3)
  waveform = (0.1 * rng.standard_normal(int(3.3 * contract.AUDIO_SAMPLE_RATE)) + 0.05).astype(np.float32)
  whole = logmel.log_mel(waveform, rows_per_block=10**9)
  assert whole.shape == (contract.num_mel_rows(waveform.size), contract.MEL_NUM_BINS)
  for rows_per_block in (100, 7):
    np.testing.assert_allclose(logmel.log_mel(waveform, rows_per_block=rows_per_block), whole, rtol=0, atol=1e-5)
  with pytest.raises(ValueError):
    logmel.log_mel(waveform, rows_per_block=0)
