"""A run's TensorBoard scalars, in WORKDIR/tensorboard, whether the workdir is local or gs://.

TensorFlow's summary writer reaches gs:// through TensorFlow's own GCS
client, which always talks to the real endpoint (it has no endpoint setting:
no emulator, no other store). So the events of a remote workdir are written
to a local directory first and copied, each file whole, to the workdir
through `shared.files` (Beam's GCS client) at every flush: TensorBoard reads
the same event files from gs:// as ever, and one code path serves real GCS
and the emulator the tests use. Scalars only: an event file grows by about a
hundred bytes per value, so copying it whole costs little. A preempted run
loses at most what it logged since its last flush; a resumed run writes a new
event file beside the old ones, as TensorBoard expects.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Optional

import tensorflow as tf
from tensorflow.core.framework import summary_pb2

from shared import files

_SCALARS = summary_pb2.SummaryMetadata(plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"))


class TensorBoardLog:
  """Writes scalars for TensorBoard under `log_dir` (local or remote).

  Attributes:
    log_dir: where TensorBoard finds the event files.
  """

  def __init__(self, log_dir: str):
    self.log_dir = log_dir
    self._staging: Optional[str] = tempfile.mkdtemp(prefix="mbt-tensorboard-") if files.is_remote(log_dir) else None
    if self._staging is None:
      os.makedirs(log_dir, exist_ok=True)
    self._writer = tf.summary.create_file_writer(self._staging or log_dir)

  def scalars(self, step: int, values: dict[str, float]) -> None:
    """One value per tag at `step`, then a flush (log points are rare: every few hundred steps)."""
    with self._writer.as_default(step=step):
      for tag, value in values.items():
        # tf.summary.scalar would need the tensorboard package at write time; this is its event.
        tf.summary.write(tag, tf.constant(value, tf.float32), metadata=_SCALARS)
    self.flush()

  def flush(self) -> None:
    self._writer.flush()
    if self._staging is not None:
      for name in sorted(os.listdir(self._staging)):
        files.upload(os.path.join(self._staging, name), files.join(self.log_dir, name))

  def close(self) -> None:
    self.flush()
    self._writer.close()
    if self._staging is not None:
      shutil.rmtree(self._staging, ignore_errors=True)
      self._staging = None
