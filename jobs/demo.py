"""The demo pipeline as a Ray job: ``python jobs/demo.py --config jobs/demo.yaml [--field=value ...]``."""

import sys
from pathlib import Path

# `ray job submit --working-dir .` runs this file from the repo root without installing seqlab.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from seqlab.cli import main

if __name__ == "__main__":
    sys.exit(main(["demo", *sys.argv[1:]]))
