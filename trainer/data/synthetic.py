"""Small synthetic builds (shards + manifest.json) for tests, benchmarks and the tiny config.

Every clip carries its own clock and its class, so tests can check both the
window alignment and that a model learns:

* frame k shows k as a block code (`shared.media.generator.paint_frame_code`),
  dimmed and lifted by a colour of the clip's class;
* log-mel row r holds r in bin 0 (the clip's time, 100 rows per second) and a
  band of high energy at the class's mel bins.

The build directory is laid out as a pipeline build is (shared.layout):
`NAME-0000i-of-0000n` TFRecord shards, the same records as `.array_record`
shards, `label_map.json` and `manifest.json` (shared.manifest).

    python -m trainer.data.synthetic --out /tmp/tiny/train --num_clips 64
"""

from __future__ import annotations

import argparse
import io
from typing import Mapping, Optional, Sequence

import numpy as np
from PIL import Image

from shared import contract, files, layout, records
from shared.manifest import Manifest, write_manifest
from shared.media import generator

DATASETS = ("audioset", "vggsound", "epic_kitchens")


_PALETTE = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [1, 0, 1], [0, 1, 1]], np.float32)


def class_colour(label: int) -> np.ndarray:
  """An RGB offset direction in [0, 1] per class: primaries first, then random."""
  if label < len(_PALETTE):
    return _PALETTE[label]
  return np.random.default_rng(1000 + label).random(3).astype(np.float32)


def class_band(label: int, num_classes: int) -> slice:
  """The mel bins that carry a class's energy band."""
  width = max(1, (contract.MEL_NUM_BINS - 8) // max(num_classes, 1))
  start = 8 + (label * width) % (contract.MEL_NUM_BINS - 8 - width + 1)
  return slice(start, start + width)


def synthetic_frame(index: int, label: int, width: int, height: int, texture: Optional[np.random.Generator]) -> bytes:
  """JPEG of frame `index` of a clip of class `label`."""
  # Dimmed code plus a class colour: the class shows on black and white blocks
  # alike, and read_frame_code still separates them (channel means < or > 125).
  image = generator.paint_frame_code(index, width, height).astype(np.float32) * 0.75 + 60.0 * class_colour(label)
  if texture is not None:  # photographic-like noise so JPEG sizes resemble real frames
    image += texture.normal(0.0, 12.0, size=image.shape)
  buffer = io.BytesIO()
  Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(buffer, format="JPEG", quality=contract.JPEG_QUALITY)
  return buffer.getvalue()


def synthetic_melspec(rows: int, label: int, num_classes: int, rng: np.random.Generator) -> np.ndarray:
  """[rows, 128]: bin 0 = row index, the class band = 6, noise elsewhere."""
  melspec = rng.normal(0.0, 0.5, size=(rows, contract.MEL_NUM_BINS)).astype(np.float32)
  melspec[:, class_band(label, num_classes)] += 6.0
  melspec[:, 0] = np.arange(rows, dtype=np.float32)
  return melspec


def synthetic_record(clip_index: int, *, dataset: str, seconds: float, label: int, num_classes: int,
                     frame_size: tuple[int, int], rng: np.random.Generator, texture: bool = False,
                     verb_noun: Optional[tuple[int, int]] = None, label_names: Sequence[str] = ()) -> records.ClipRecord:
  """One synthetic clip record; AudioSet clips get two labels (label, label + 1)."""
  width, height = frame_size
  samples = contract.num_audio_samples(seconds)
  labels = [label, (label + 1) % num_classes] if dataset == "audioset" and num_classes > 1 else [label]
  names = [label_names[i] if i < len(label_names) else f"class_{i}" for i in labels]
  texture_rng = np.random.default_rng(clip_index) if texture else None
  verb, noun = verb_noun if verb_noun is not None else (contract.NO_LABEL, contract.NO_LABEL)
  clip_id = f"synthetic_{clip_index:06d}"
  return records.ClipRecord(
      clip_id=clip_id, dataset=dataset, source_id=clip_id, start_s=0.0, end_s=seconds,
      jpeg_frames=[synthetic_frame(k, label, width, height, texture_rng) for k in range(contract.num_frames(seconds))],
      frame_width=width, frame_height=height,
      melspec=synthetic_melspec(contract.num_mel_rows(samples), label, num_classes, rng),
      num_audio_samples=samples, label_indices=labels, label_names=names, has_audio=True,
      decoded_duration_s=seconds, source_fps=float(contract.VIDEO_FPS), source_width=width, source_height=height,
      verb_index=verb, noun_index=noun,
      action_index=verb * 1000 + noun if verb_noun is not None else contract.NO_LABEL)


def write_build(out_dir: str, clips: Sequence[records.ClipRecord], *, dataset: str, split: str,
                label_map: contract.LabelMap, num_shards: int = 2, formats: Sequence[str] = layout.FORMATS,
                extra_label_maps: Optional[Mapping[str, contract.LabelMap]] = None) -> Manifest:
  """Writes clips in contiguous chunks into shards, plus the build's manifest."""
  files.makedirs(out_dir)
  serialized = [records.encode(clip) for clip in clips]
  build = layout.BuildLayout(out_dir)
  prefix = f"{dataset}-{split}"
  bounds = np.linspace(0, len(serialized), num_shards + 1).astype(int)
  shards: dict[str, list[str]] = {fmt: [] for fmt in formats}
  shard_clip_ids, shard_sizes = {}, {}
  for shard in range(num_shards):
    chunk = serialized[bounds[shard]:bounds[shard + 1]]
    for fmt in formats:
      name = layout.shard_file_name(prefix, shard, num_shards, fmt)
      write = records.write_tfrecord if fmt == layout.TFRECORD else records.write_array_record
      write(build.path(name), chunk)
      shards[fmt].append(name)
      shard_sizes[name] = files.size(build.path(name))
    listed = shards[layout.TFRECORD if layout.TFRECORD in formats else formats[0]][-1]
    shard_clip_ids[listed] = tuple(clip.clip_id for clip in clips[bounds[shard]:bounds[shard + 1]])
  values = np.concatenate([np.asarray(clip.melspec).reshape(-1) for clip in clips]).astype(np.float64)
  manifest = Manifest(
      dataset=dataset, split=split, requested=len(serialized), shards={k: tuple(v) for k, v in shards.items()},
      shard_clip_ids=shard_clip_ids, shard_sizes=shard_sizes, failed_clips=(), label_map=label_map, melspec_mean=float(values.mean()),
      melspec_std=float(values.std()), build_options={"num_shards": num_shards, "formats": ",".join(formats)},
      extra_label_maps=dict(extra_label_maps or {}))
  write_manifest(out_dir, manifest)
  return manifest


def write_synthetic_build(out_dir: str, *, dataset: str = "vggsound", split: str = "train", num_clips: int = 16,
                          num_classes: int = 4, seconds: float | Sequence[float] = 2.0,
                          frame_size: tuple[int, int] = (64, 48), num_shards: int = 2, seed: int = 0,
                          texture: bool = False, class_heads: Optional[dict[str, int]] = None,
                          formats: Sequence[str] = layout.FORMATS) -> Manifest:
  """Writes a synthetic build; clip i has class i % num_classes.

  Args:
    seconds: one duration for all clips, or one per clip (cycled).
    class_heads: for epic_kitchens, {'verb': V, 'noun': N}; a clip's verb
      and noun follow from its class, so both heads are learnable.
  """
  if dataset not in DATASETS:
    raise ValueError(f"dataset must be one of {DATASETS}, got {dataset!r}")
  rng = np.random.default_rng(seed)
  durations = [seconds] if isinstance(seconds, (int, float)) else list(seconds)
  names = [f"class_{i}" for i in range(num_classes)]
  clips = []
  heads = class_heads or {"verb": 97, "noun": 300}
  for i in range(num_clips):
    label = i % num_classes
    verb_noun = (label % heads["verb"], (3 * label + 1) % heads["noun"]) if dataset == "epic_kitchens" else None
    record = synthetic_record(i, dataset=dataset, seconds=durations[i % len(durations)], label=label,
                              num_classes=num_classes, frame_size=frame_size, rng=rng, texture=texture,
                              verb_noun=verb_noun, label_names=names)
    clips.append(record)
  extra = {}
  if dataset == "epic_kitchens":
    # As pipelines/ writes them: keyed by the label map's name.
    maps = [contract.LabelMap.from_names(f"epic_{head}", [f"{head}_{i}" for i in range(size)])
            for head, size in heads.items()]
    extra = {m.name: m for m in maps}
  return write_build(out_dir, clips, dataset=dataset, split=split,
                     label_map=contract.LabelMap.from_names(dataset, names), num_shards=num_shards, formats=formats,
                     extra_label_maps=extra)


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--out", required=True, help="build directory to write")
  parser.add_argument("--dataset", default="vggsound", choices=DATASETS)
  parser.add_argument("--split", default="train")
  parser.add_argument("--num_clips", type=int, default=64)
  parser.add_argument("--num_classes", type=int, default=4)
  parser.add_argument("--seconds", type=float, default=2.0)
  parser.add_argument("--frame_width", type=int, default=64)
  parser.add_argument("--frame_height", type=int, default=48)
  parser.add_argument("--num_shards", type=int, default=2)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--texture", action="store_true", help="add noise so JPEGs are photo-sized")
  parser.add_argument("--verbs", type=int, default=97, help="epic_kitchens: verb classes")
  parser.add_argument("--nouns", type=int, default=300, help="epic_kitchens: noun classes")
  args = parser.parse_args(argv)
  manifest = write_synthetic_build(
      args.out, dataset=args.dataset, split=args.split, num_clips=args.num_clips, num_classes=args.num_classes,
      seconds=args.seconds, frame_size=(args.frame_width, args.frame_height), num_shards=args.num_shards,
      seed=args.seed, texture=args.texture, class_heads={"verb": args.verbs, "noun": args.nouns})
  print(f"wrote {manifest.counts.written} clips to {args.out}")


if __name__ == "__main__":
  main()
