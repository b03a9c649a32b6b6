"""Where in a clip a training or test window lies: frame indices and log-mel rows.

The clock is the 25 fps frame grid. A window starts on a frame, s, which is
time s / 25 s; the log-mel row of that time is s * 4 (100 rows per second,
contract.MEL_FRAMES_PER_SECOND / contract.VIDEO_FPS = 4), so frames and rows of
a window always start at the same instant, to the row.

Inside a window of t seconds the paper samples `num_frames` frames uniformly
with stride t * 25 / num_frames frames (8 frames over 8 s: stride 25, frames
at 0, 1, ..., 7 s); frame k is s + floor(k * stride). The spectrogram is the
100 * t rows from row 4 * s. EPIC-KITCHENS samples 32 consecutive frames
(stride 1) and its own audio span, both from the same start.

At training time the start is uniform over every start that keeps the window
inside the clip; at test time `num_crops` starts are spread uniformly from the
first to the last such start (one crop: the centre). A clip shorter than the
window starts at 0 and is padded: frames past its end repeat its last frame,
rows past its end are zero log-mel (the caller fills them).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from shared import contract

if contract.MEL_FRAMES_PER_SECOND % contract.VIDEO_FPS:
  raise ImportError("log-mel rows per second must be a multiple of the frame rate for row-exact windows")
ROWS_PER_FRAME = contract.MEL_FRAMES_PER_SECOND // contract.VIDEO_FPS  # 4


@dataclasses.dataclass(frozen=True)
class WindowSpec:
  """The shape of one sampled window.

  Attributes:
    num_frames: RGB frames sampled per window (0: no RGB).
    frame_stride: distance between sampled frames, in 25 fps frames; may be
      fractional (frame k is start + floor(k * stride)).
    spectrogram_rows: log-mel rows per window (0: no spectrogram).
  """

  num_frames: int
  frame_stride: float
  spectrogram_rows: int

  def __post_init__(self):
    if self.num_frames < 0 or self.spectrogram_rows < 0 or not (self.num_frames or self.spectrogram_rows):
      raise ValueError(f"a window needs frames or spectrogram rows, got {self}")
    if self.num_frames and not self.frame_stride > 0:
      raise ValueError(f"frame_stride must be positive, got {self.frame_stride}")

  @classmethod
  def paper(cls, window_seconds: float, num_frames: int, frame_stride: float | None = None,
            spectrogram_seconds: float | None = None) -> "WindowSpec":
    """t-second window: stride t * 25 / num_frames unless given; 100 * t rows."""
    stride = frame_stride if frame_stride is not None else window_seconds * contract.VIDEO_FPS / max(num_frames, 1)
    seconds = window_seconds if spectrogram_seconds is None else spectrogram_seconds
    rows = seconds * contract.MEL_FRAMES_PER_SECOND
    if abs(rows - round(rows)) > 1e-6:
      raise ValueError(f"{seconds} s is not a whole number of log-mel rows")
    return cls(num_frames=num_frames, frame_stride=float(stride), spectrogram_rows=int(round(rows)))

  @property
  def frame_offsets(self) -> np.ndarray:
    """Offsets of the sampled frames from the window start, in frames."""
    return np.floor(np.arange(self.num_frames) * self.frame_stride + 1e-9).astype(np.int64)

  @property
  def span_frames(self) -> int:
    """Frames the window covers: the longer of the video and the audio span."""
    video = math.ceil(self.num_frames * self.frame_stride - 1e-9) if self.num_frames else 0
    audio = -(-self.spectrogram_rows // ROWS_PER_FRAME)
    return max(video, audio, 1)


def max_start(spec: WindowSpec, clip_frames: int) -> int:
  """The last start frame that keeps the window inside a clip of `clip_frames`."""
  return max(0, clip_frames - spec.span_frames)


def train_start(spec: WindowSpec, clip_frames: int, rng: np.random.Generator) -> int:
  """A uniformly random start frame."""
  return int(rng.integers(0, max_start(spec, clip_frames) + 1))


def test_starts(spec: WindowSpec, clip_frames: int, num_crops: int) -> list[int]:
  """`num_crops` start frames spread uniformly over the clip (one crop: centre)."""
  if num_crops < 1:
    raise ValueError(f"num_crops must be >= 1, got {num_crops}")
  last = max_start(spec, clip_frames)
  if num_crops == 1:
    return [last // 2]
  return [int(round(x)) for x in np.linspace(0, last, num_crops)]


def frame_indices(spec: WindowSpec, start: int, clip_frames: int) -> np.ndarray:
  """Indices of the stored frames to sample; past the end, the last frame."""
  return np.minimum(start + spec.frame_offsets, clip_frames - 1)


def first_row(start: int) -> int:
  """The log-mel row at the time of start frame `start`."""
  return start * ROWS_PER_FRAME
