r"""The end-to-end demo's MBT: tiny enough to train on a 2-core CPU in about a minute.

Trained by `python -m demo` on the synthetic clips it builds with the real
pipeline (demo/dataset.py), for two tasks. By hand, after a demo run left its
builds in runs/demo/builds:

    python -m trainer.train --config trainer/configs/demo.py:bottleneck --workdir runs/demo/train/x
    python -m trainer.train --config trainer/configs/demo.py:bottleneck,interaction \
        --config.model.fusion_layer=3 --workdir runs/demo/train/y

The argument is VARIANT[,TASK]. Variants: bottleneck (MBT, B=4, L_f=2 of 4
layers), cross_attention (vanilla cross-attention from L_f=2), late (late
fusion), audio (audio only), video (video only). Tasks: factorised (default;
the label is (scene colour, tone pitch), 4 classes) and interaction (colour
XOR pitch, 2 classes).

Expected on the test splits: factorised, every fusion variant >= 0.9 top-1
and the unimodal baselines about 0.5 (each modality knows half the label);
interaction, bottleneck and cross-attention >= 0.9 while late fusion, audio
and video stay near chance (0.5): XOR of the two modalities is out of reach
of a sum of per-modality logits. Bottleneck fusion needs two fusion layers to
carry the other modality into a CLS, so L_f = 3 of 4 is late fusion too.
Training: 120 steps on the factorised task, 400 on the interaction task
(`TASK_STEPS`), batch 16, SGD momentum, lr 0.1, warmup 10 then cosine.
"""

from trainer.configs import common

VARIANTS = {
    # name: (config variant, fusion_type, fusion_layer)
    "bottleneck": ("av", "bottleneck", 2),
    "cross_attention": ("av", "cross_attention", 2),
    "late": ("av", "late", 4),
    "audio": ("audio", "late", 4),
    "video": ("video", "late", 4),
}
TASK_CLASSES = {"factorised": 4, "interaction": 2}
# Training steps per task. Bottleneck fusion sits on a plateau at chance for
# about 100 steps before it learns XOR (its 4 fusion tokens get about 5% of a
# CLS token's attention at initialisation); a short cosine schedule would have
# decayed the learning rate by then.
TASK_STEPS = {"factorised": 120, "interaction": 400}


def parse_arg(arg):
  """(variant, task) from 'VARIANT[,TASK]' in either order."""
  parts = [p for p in (arg or "").split(",") if p]
  unknown = [p for p in parts if p not in VARIANTS and p not in TASK_CLASSES]
  if unknown:
    raise ValueError(f"demo config parts must be variants {sorted(VARIANTS)} or tasks {sorted(TASK_CLASSES)}, "
                     f"got {unknown}")
  name = next((p for p in parts if p in VARIANTS), "bottleneck")
  task = next((p for p in parts if p in TASK_CLASSES), "factorised")
  return name, task


def get_config(arg=None):
  name, task = parse_arg(arg)
  variant, fusion_type, fusion_layer = VARIANTS[name]
  config = common.paper_config("vggsound", variant, num_classes=TASK_CLASSES[task], num_frames=4,
                               window_seconds=1.6, model_size="tiny", image_size=32, fusion_type=fusion_type,
                               fusion_layer=fusion_layer, stochastic_depth_rate=0.0)
  config.demo_variant = name
  config.demo_task = task
  config.data.train_dir = f"runs/demo/builds/{task}/train"
  config.data.eval_dir = f"runs/demo/builds/{task}/test"
  config.data.min_resize = 40
  config.data.read_threads = 2
  config.data.num_test_crops = 2
  config.data.spec_augment.time_mask_max_rows = 16
  config.data.spec_augment.freq_mask_max_bins = 8
  config.model.rgb_patch_size = (8, 8)  # a 4x4 patch grid on 32x32 crops, for readable rollout maps
  config.mixup.alpha = 0.0  # the demo's classes are few and clean; mixup only slows learning here
  config.batch_size = 16
  config.eval_batch_size = 16
  config.total_steps = TASK_STEPS[task]
  config.warmup_steps = 10
  config.learning_rate = 0.1
  config.log_every_steps = 20
  config.checkpoint_every_steps = TASK_STEPS[task]
  config.keep_checkpoints = 1
  return config
