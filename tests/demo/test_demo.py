"""The main job at CI size: the whole chain, and fusion beating both unimodal baselines."""

import json
import os

from demo import __main__ as demo_main
from pipelines.download import ledger


def test_quick_demo_builds_trains_and_fusion_wins(tmp_path, monkeypatch, capsys):
  # As typed by hand: a relative --workdir. In bfloat16, which the default (float32 on CPU) does not exercise.
  monkeypatch.chdir(tmp_path)
  workdir = "demo"
  assert demo_main.main(["--workdir", workdir, "--quick", "--variants", "bottleneck,audio,video",
                         "--precision", "bfloat16"]) == 0

  results = json.load(open(os.path.join(workdir, "results.json")))
  top1 = {v["variant"]: v["top1"] for v in results["variants"]}
  # The label is (colour, pitch): one modality knows half of it.
  assert top1["bottleneck"] >= 0.85, top1
  assert top1["audio"] <= 0.7 and top1["video"] <= 0.7, top1
  assert top1["bottleneck"] - max(top1["audio"], top1["video"]) >= 0.25, top1

  # The build ran for real: missing and broken clips are in the ledger, the rest in shards.
  train = results["builds"]["train"]
  assert train["requested"] == train["written"] + train["failed"]
  failed = ledger.read_ledger(os.path.join(workdir, "builds", "train", "ledger")).select(status="failed")
  reasons = {record.reason for record in failed}
  assert "http_404" in reasons, reasons
  for name in ("results.png", "rollout.png"):
    assert os.path.getsize(os.path.join(workdir, name)) > 10_000
  assert "fusion wins" in capsys.readouterr().out
