"""``python -m pipelines.download``: see pipelines.download.cli."""

import sys

from pipelines.download.cli import main

sys.exit(main())
