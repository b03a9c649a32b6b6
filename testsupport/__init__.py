"""Stand-ins that make the tests, the demo and the benchmarks real without the network.

Not a runtime package: Beam workers never install it (deploy/dataflow/Dockerfile
copies shared/, pipelines/ and trainer/ only).

* media_server: an HTTP server on 127.0.0.1 serving real media files with
  Range support and injected faults (HTTP errors, stalls, truncation, bodies
  that are not media), in place of YouTube.
* synthetic_audioset: AudioSet segment CSVs in the real format at any size.
"""
