"""Media code shared by the pipelines and the trainer's tests: decoding, features, generation."""
