"""trainer.tensorboard_log: event files TensorBoard reads, in a local directory and on gs:// (the emulator)."""

import tensorflow as tf

from shared import files
from trainer.tensorboard_log import TensorBoardLog


def _scalars(log_dir: str) -> list[tuple[int, str, float]]:
  """(step, tag, value) of every scalar in the event files under `log_dir`, read as TensorBoard would."""
  found = []
  for path in sorted(files.list_files(log_dir)):
    with files.local_copy(path) as local:
      for event in tf.compat.v1.train.summary_iterator(local):
        for value in event.summary.value:
          found.append((event.step, value.tag, float(tf.make_ndarray(value.tensor))))
  return found


def _log_two_runs(log_dir: str) -> None:
  first = TensorBoardLog(log_dir)
  first.scalars(10, {"loss": 2.5, "learning_rate": 0.1})
  first.scalars(20, {"loss": 1.5})
  first.close()
  resumed = TensorBoardLog(log_dir)  # a resumed run: a second event file beside the first
  resumed.scalars(30, {"loss": 0.5})
  resumed.close()


EXPECTED = [(10, "learning_rate", 0.1), (10, "loss", 2.5), (20, "loss", 1.5), (30, "loss", 0.5)]


def _sorted(scalars):
  return sorted((step, tag, round(value, 6)) for step, tag, value in scalars)


def test_local_events(tmp_path):
  _log_two_runs(str(tmp_path / "tensorboard"))
  assert _sorted(_scalars(str(tmp_path / "tensorboard"))) == EXPECTED
  assert len(files.list_files(str(tmp_path / "tensorboard"))) == 2


def test_events_on_gcs_after_each_flush(gcs):
  log_dir = gcs.url("run", "tensorboard")
  log = TensorBoardLog(log_dir)
  log.scalars(10, {"loss": 2.5})
  assert _sorted(_scalars(log_dir)) == [(10, "loss", 2.5)]  # readable before the run ends
  log.close()
  _log_two_runs(gcs.url("other", "tensorboard"))
  assert _sorted(_scalars(gcs.url("other", "tensorboard"))) == EXPECTED
  assert not any(files.INCOMPLETE_MARKER in path for path in files.list_files(gcs.url("other", "tensorboard")))
