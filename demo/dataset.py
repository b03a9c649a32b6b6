"""A synthetic audio-visual dataset with two labellings: factorised and interaction.

Every clip has two visual and two audio attributes:

* colour of the scene (red or blue) and a moving shape (square or disc);
* pitch of a tone (low or high) and its rhythm (steady or pulsed).

Shape and rhythm are nuisances. The same clips carry two tasks:

* factorised: the label is (colour, pitch), four classes. Video alone tells
  the colour but not the pitch, audio the pitch but not the colour, so a
  unimodal model is right at most half of the time; late fusion, which adds
  up per-modality evidence, is enough to be right always.
* interaction: the label is colour XOR pitch, two classes: "congruent" (red
  and low, or blue and high) or "incongruent". Each modality alone is
  independent of the label (chance, 0.5), and so is anything that only adds
  a function of the video to a function of the audio: late fusion cannot
  represent XOR (it averages per-modality logits, and with Scenic's
  per-modality loss each modality's CLS must predict the label alone). Only
  fusion inside the encoder, where one modality's tokens read the other's,
  can be right.

Clips are written in VGGSound's form: media files served by the local media
server under their 11-character ids, and one ``vggsound.csv``-style
annotation file per task (``YTID,start_seconds,label,train|test``). Some
listed ids have no media and one is not media at all, so the build's failure
ledger has something to say.
"""

from __future__ import annotations

import csv
import dataclasses
import os
from typing import Optional

import numpy as np

from shared.media import generator

COLOURS = {"red": (200, 40, 40), "blue": (40, 60, 200)}
PITCHES_HZ = {"low": 400.0, "high": 1600.0}
SHAPES = ("square", "disc")
RHYTHMS = ("steady", "pulsed")
LABELS = tuple(f"{colour}-{pitch}" for colour in COLOURS for pitch in PITCHES_HZ)
FACTORISED = "factorised"
INTERACTION = "interaction"
TASKS = (FACTORISED, INTERACTION)
# The interaction task's positive pairs: low with red, high with blue.
CONGRUENT_PAIRS = (("red", "low"), ("blue", "high"))
INTERACTION_LABELS = ("congruent", "incongruent")


@dataclasses.dataclass(frozen=True)
class DemoClip:
  """One clip of the demo dataset.

  Attributes:
    ytid: its 11-character id (some begin with "-", as real YouTube ids do).
    split: "train" or "test".
    colour: "red" or "blue" (visual, part of the label).
    shape: "square" or "disc" (visual nuisance).
    pitch: "low" or "high" (audio, part of the label).
    rhythm: "steady" or "pulsed" (audio nuisance).
    container: "mp4" or "webm".
    fps: the source frame rate.
    seed: seeds the clip's noise and motion.
  """

  ytid: str
  split: str
  colour: str
  shape: str
  pitch: str
  rhythm: str
  container: str
  fps: float
  seed: int

  @property
  def label(self) -> str:
    """The factorised task's label, (colour, pitch)."""
    return f"{self.colour}-{self.pitch}"

  @property
  def interaction_label(self) -> str:
    """The interaction task's label, colour XOR pitch."""
    return INTERACTION_LABELS[0] if (self.colour, self.pitch) in CONGRUENT_PAIRS else INTERACTION_LABELS[1]

  def label_for(self, task: str) -> str:
    if task not in TASKS:
      raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    return self.label if task == FACTORISED else self.interaction_label


@dataclasses.dataclass(frozen=True)
class DemoDataset:
  """Where the generated dataset lies and what it holds.

  Attributes:
    media_dir: the media files, named ``{ytid}.{container}``.
    annotations: task -> the vggsound.csv-style file listing every clip with
      that task's labels.
    clips: the clips with media.
    missing_ids: listed ids without media (the server answers 404).
    not_media_ids: listed ids whose file is not media.
    start_s: every clip's span start in its media.
    clip_seconds: every clip's span length.
  """

  media_dir: str
  annotations: dict[str, str]
  clips: tuple[DemoClip, ...]
  missing_ids: tuple[str, ...]
  not_media_ids: tuple[str, ...]
  start_s: int
  clip_seconds: float


def _ytid(index: int) -> str:
  # Every seventh id begins with "-", which must never reach a tool as an option.
  return (f"-demo{index:06d}" if index % 7 == 3 else f"demo{index:07d}")[:11]


def frame_painter(clip: DemoClip):
  """(index, t, width, height) -> RGB frame: the scene colour, a moving shape, noise."""
  rng = np.random.default_rng(clip.seed)
  base = np.array(COLOURS[clip.colour], np.float32) + rng.uniform(-25, 25, size=3)
  phase = rng.uniform(0, 2 * np.pi)

  def paint(index: int, t: float, width: int, height: int) -> np.ndarray:
    frame_rng = np.random.default_rng((clip.seed, index))
    image = np.broadcast_to(base, (height, width, 3)).copy()
    image += frame_rng.normal(0, 12, size=image.shape)
    size = min(width, height) // 3
    cx = int((0.5 + 0.3 * np.cos(phase + 1.3 * t)) * width)
    cy = int((0.5 + 0.3 * np.sin(phase + 1.3 * t)) * height)
    ys, xs = np.ogrid[:height, :width]
    if clip.shape == "square":
      mask = (abs(xs - cx) <= size // 2) & (abs(ys - cy) <= size // 2)
    else:
      mask = (xs - cx) ** 2 + (ys - cy) ** 2 <= (size // 2) ** 2
    image[mask] = 235
    return np.clip(image, 0, 255).astype(np.uint8)

  return paint


def audio_painter(clip: DemoClip):
  """times -> mono samples: the clip's tone, steady or pulsed at 4 Hz, with noise."""
  rng = np.random.default_rng(clip.seed + 1)
  frequency = PITCHES_HZ[clip.pitch] * rng.uniform(0.95, 1.05)

  def paint(times: np.ndarray) -> np.ndarray:
    tone = 0.3 * np.sin(2 * np.pi * frequency * times)
    if clip.rhythm == "pulsed":
      tone *= (np.sin(2 * np.pi * 4.0 * times) > 0).astype(np.float64)
    noise = np.random.default_rng(clip.seed + 2).normal(0, 0.02, size=times.shape)
    return (tone + noise).astype(np.float32)

  return paint


def plan_clips(num_clips: int, test_fraction: float = 0.25, seed: int = 0) -> list[DemoClip]:
  """Balanced attribute combinations, shuffled, split into train and test."""
  rng = np.random.default_rng(seed)
  combos = [(c, s, p, r) for c in COLOURS for s in SHAPES for p in PITCHES_HZ for r in RHYTHMS]
  clips = []
  for index in range(num_clips):
    colour, shape, pitch, rhythm = combos[index % len(combos)]
    clips.append(DemoClip(ytid=_ytid(index), split="train", colour=colour, shape=shape, pitch=pitch,
                          rhythm=rhythm, container="mp4" if index % 2 else "webm",
                          fps=25.0 if index % 3 else 30.0, seed=seed * 100_003 + index))
  order = rng.permutation(num_clips)
  num_test = int(round(num_clips * test_fraction))
  test = set(order[:num_test].tolist())
  return [dataclasses.replace(c, split="test") if i in test else c for i, c in enumerate(clips)]


def write_demo_dataset(directory: str, num_clips: int = 320, *, clip_seconds: float = 2.0, width: int = 96,
                       height: int = 72, num_missing: int = 6, test_fraction: float = 0.25, seed: int = 0,
                       progress: Optional[callable] = None) -> DemoDataset:
  """Generates the media and the annotation file under `directory`.

  Args:
    directory: where to write (``media/``, ``vggsound_demo_factorised.csv``
      and ``vggsound_demo_interaction.csv``).
    num_clips: clips with media; num_missing more are listed without media,
      and one more is listed with a file that is not media.
    clip_seconds: each clip's span; the media run one second before and after.
    width: frame width of the sources.
    height: frame height of the sources.
    num_missing: listed ids the server will not have.
    test_fraction: share of clips in the test split.
    seed: everything is a function of it.
    progress: called with (done, total) while writing.
  """
  media_dir = os.path.join(directory, "media")
  os.makedirs(media_dir, exist_ok=True)
  start_s = 1
  clips = plan_clips(num_clips, test_fraction, seed)
  for done, clip in enumerate(clips, start=1):
    path = os.path.join(media_dir, f"{clip.ytid}.{clip.container}")
    if not os.path.exists(path):
      spec = generator.ClipSpec(duration_s=clip_seconds + 2 * start_s, width=width, height=height, fps=clip.fps,
                                container=clip.container, audio_sample_rate=16_000 if clip.container == "mp4"
                                else 48_000, audio_channels=1, seed=clip.seed)
      generator.write_clip(path + ".partial", spec, paint_frame=frame_painter(clip),
                           paint_audio=audio_painter(clip))
      os.replace(path + ".partial", path)
    if progress:
      progress(done, len(clips))

  extra = plan_clips(num_clips + num_missing + 1, test_fraction, seed)[num_clips:]
  missing = tuple(c.ytid for c in extra[:num_missing])
  not_media = (extra[-1].ytid,)
  with open(os.path.join(media_dir, f"{not_media[0]}.mp4"), "w") as f:
    f.write("<html><body>This video is not available.</body></html>\n")

  annotations = {}
  for task in TASKS:
    annotations[task] = os.path.join(directory, f"vggsound_demo_{task}.csv")
    with open(annotations[task], "w", newline="") as f:
      writer = csv.writer(f)
      for clip in list(clips) + list(extra):
        writer.writerow([clip.ytid, start_s, clip.label_for(task), clip.split])
  return DemoDataset(media_dir=media_dir, annotations=annotations, clips=tuple(clips), missing_ids=missing,
                     not_media_ids=not_media, start_s=start_s, clip_seconds=clip_seconds)


def media_name(media_dir: str, ytid: str) -> Optional[str]:
  """The file serving `ytid`, if any (the server maps ``/{ytid}`` onto it)."""
  for container in ("mp4", "webm"):
    if os.path.exists(os.path.join(media_dir, f"{ytid}.{container}")):
      return f"{ytid}.{container}"
  return None
