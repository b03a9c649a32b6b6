"""The paper's training recipe as a ConfigDict, shared by the dataset configs.

Every field the trainer, the input pipeline and the evaluator read is set here
(model fields come from `trainer.models.get_model_config`, under
`config.model`). Dataset configs change only what differs.

Variants (the config file's argument, `--config trainer/configs/X.py:VARIANT`):
  av     both modalities, bottleneck fusion (B=4, L_f=8): the paper's MBT.
  audio  the audio-only baseline (spectrogram, no fusion).
  video  the video-only baseline (RGB, no fusion).
Fusion from the command line: --config.model.fusion_type=late|bottleneck|
self_attention|cross_attention --config.model.fusion_layer=8
--config.model.num_bottleneck_tokens=4.
"""

from __future__ import annotations

from typing import Optional

import ml_collections
from ml_collections import config_dict

from trainer.models import get_model_config

VARIANTS = {"av": ("rgb", "spectrogram"), "audio": ("spectrogram",), "video": ("rgb",)}


def parse_variant(arg: Optional[str]) -> str:
  variant = arg or "av"
  if variant not in VARIANTS:
    raise ValueError(f"config variant must be one of {sorted(VARIANTS)}, got {variant!r}")
  return variant


def paper_config(dataset: str, variant: str, *, num_classes: int = 0, class_heads: Optional[dict] = None,
                 num_frames: int = 8, window_seconds: float = 8.0, model_size: str = "B",
                 **model_overrides) -> ml_collections.ConfigDict:
  """The paper's recipe (sec. 4.2) for `dataset`; see the module docstring.

  `model_overrides` go to `get_model_config` (e.g. fusion_layer, image_size).
  """
  config = ml_collections.ConfigDict()
  config.dataset = dataset  # audioset | vggsound | epic_kitchens: picks labels, loss, metrics
  config.variant = variant
  config.seed = 0

  # Data: builds (directories with manifest.json and shards, local or gs://).
  config.data = ml_collections.ConfigDict()
  config.data.train_dir = f"gs://YOUR_BUCKET/{dataset}/train"
  config.data.eval_dir = f"gs://YOUR_BUCKET/{dataset}/eval"
  config.data.format = "arrayrecord"  # 'arrayrecord' (grain) or 'tfrecord' (tf.data)
  # grain: True reads every record whole through the ArrayRecord library (hash-checked each time); False checks
  # each record once per process, then reads local shards in place, only the bytes an example uses.
  config.data.verify_every_read = False
  config.data.window_seconds = window_seconds  # t: the log-mel span, and the video span by default
  config.data.frame_stride = config_dict.placeholder(float)  # None: t * 25 / num_frames
  config.data.min_resize = 256  # short side before the 224 crop
  config.data.num_test_crops = 4
  config.data.flip = True
  config.data.color_jitter = ml_collections.ConfigDict(dict(
      probability=0.8, brightness=32.0 / 255.0, contrast=0.4, saturation=0.4, grayscale_probability=0.1))
  # SpecAugment as AST / the paper: one time mask <= 192 rows, one frequency mask <= 48 bins.
  config.data.spec_augment = ml_collections.ConfigDict(dict(
      time_mask_max_rows=192, time_mask_count=1, freq_mask_max_bins=48, freq_mask_count=1))
  config.data.melspec_mean = config_dict.placeholder(float)  # None: the build manifest's
  config.data.melspec_std = config_dict.placeholder(float)
  config.data.read_threads = 8  # decoding threads per process
  config.data.worker_count = 0  # grain worker processes (0: threads only)
  config.data.shuffle_buffer = 4096  # tf.data only

  # Model: ViT-B MBT; the spectrogram rows follow data.window_seconds.
  config.model = get_model_config(
      model_size, modalities=VARIANTS[variant], num_classes=num_classes, class_heads=class_heads,
      num_frames=num_frames, audio_seconds=window_seconds, **{"stochastic_depth_rate": 0.3, **model_overrides})
  config.model.spectrogram_rows = (config.data.get_ref("window_seconds") * 100).to_int()
  config.init_from_vit = config_dict.placeholder(str)  # ViT ImageNet-21k .npz (vision_transformer format)
  # Initialisation choices (trainer/models/vit_init.py): this project's defaults; Scenic's are
  # fusion_tokens='posemb' (from the ViT positional table) and spectrogram_cls='zeros'.
  config.vit_init = ml_collections.ConfigDict(dict(fusion_tokens="normal", spectrogram_cls="vit"))

  # Optimisation: SGD momentum 0.9, lr 0.5, 2.5 warmup epochs then cosine, 50 epochs, batch 64, clip 1.
  config.batch_size = 64  # global, over all hosts and devices
  config.num_epochs = 50.0
  config.total_steps = config_dict.placeholder(int)  # None: num_epochs of the training build
  config.warmup_epochs = 2.5
  config.warmup_steps = config_dict.placeholder(int)  # None: warmup_epochs of the training build
  config.learning_rate = 0.5
  config.momentum = 0.9
  config.grad_clip_norm = 1.0
  config.label_smoothing = 0.0  # Scenic's AudioSet config uses 0.3; the paper does not mention it
  config.mixup = ml_collections.ConfigDict(dict(alpha=0.3, per_modality=True))  # modality mixup

  # Bookkeeping.
  config.log_every_steps = 50
  config.checkpoint_every_steps = 1000
  config.keep_checkpoints = config_dict.placeholder(int)  # None: keep all (the evaluator plots them)
  config.eval_every_steps = 0  # 0: no evaluation inside training (run trainer.evaluate)
  config.eval_batch_size = 8  # clips per global batch at test time (x num_test_crops windows each)
  config.stop_after_steps = config_dict.placeholder(int)  # leave early without a final save (tests)
  config.distributed = False  # jax.distributed.initialize() (TPU pods); env MBT_DISTRIBUTED=1 also
  return config
