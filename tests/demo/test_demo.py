"""The main job at CI size: the whole chain, and the paper's claim on both tasks."""

import json
import os

from demo import __main__ as demo_main
from demo import report
from pipelines.download import ledger


def test_quick_demo_builds_trains_and_shows_where_fusion_is_needed(tmp_path, monkeypatch, capsys):
  # As typed by hand: a relative --workdir. In bfloat16, which the default (float32 on CPU) does not exercise.
  monkeypatch.chdir(tmp_path)
  workdir = "demo"
  assert demo_main.main(["--workdir", workdir, "--quick", "--variants", "bottleneck,audio,video",
                         "--interaction_variants", "bottleneck,late", "--sweep", "none",
                         "--precision", "bfloat16"]) == 0

  results = json.load(open(os.path.join(workdir, "results.json")))
  factorised = {v["variant"]: v["top1"] for v in results["tasks"]["factorised"]["variants"]}
  # The label is (colour, pitch): one modality knows half of it.
  assert factorised["bottleneck"] >= 0.85, factorised
  assert factorised["audio"] <= 0.7 and factorised["video"] <= 0.7, factorised
  assert factorised["bottleneck"] - max(factorised["audio"], factorised["video"]) >= 0.25, factorised
  # The label is colour XOR pitch: a sum of per-modality logits cannot represent it.
  interaction = {v["variant"]: v["top1"] for v in results["tasks"]["interaction"]["variants"]}
  assert interaction["bottleneck"] >= report.INTERACTION_FUSED_AT_LEAST == 0.9, interaction
  assert interaction["late"] <= report.INTERACTION_LATE_AT_MOST == 0.65, interaction

  # The builds ran for real: missing and broken clips are in the ledger, the rest in shards.
  for task in ("factorised", "interaction"):
    train = results["tasks"][task]["builds"]["train"]
    assert train["requested"] == train["written"] + train["failed"]
    failed = ledger.read_ledger(os.path.join(workdir, "builds", task, "train", "ledger")).select(status="failed")
    assert "http_404" in {record.reason for record in failed}
  for name in ("results.png", "rollout.png"):
    assert os.path.getsize(os.path.join(workdir, name)) > 10_000
  out = capsys.readouterr().out
  assert "fusion wins" in out and "only fusion inside the encoder learns colour XOR pitch" in out
