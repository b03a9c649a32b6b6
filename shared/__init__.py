"""Code both halves of the project import: the data contract, the build format and media.

* contract: every number and name both halves must agree on.
* records: one clip as a SequenceExample; TFRecord and ArrayRecord shard files.
* layout, manifest, failures: the rest of a build on disk: where each file
  lies, the manifest record, why a clip is missing.
* files: local and gs:// file access (Beam's FileSystems for gs://).
* media: decoding, log-mel, the synthetic media generator.
"""
