"""Scrape stage as a Ray job: ``python jobs/scrape.py --config jobs/scrape.yaml [--field=value ...]``.

Equivalent to ``seqlab scrape --config ...``; joins the cluster given by RAY_ADDRESS (set by
``ray job submit``) or starts a local Ray.
"""

import sys
from pathlib import Path

# `ray job submit --working-dir .` runs this file from the repo root without installing seqlab.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from seqlab.cli import main

if __name__ == "__main__":
    sys.exit(main(["scrape", *sys.argv[1:]]))
