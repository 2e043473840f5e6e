"""The whole pipeline as one Ray job: scrape -> tune -> finetune -> deploy, skipping up-to-date stages.

ray job submit --working-dir . -- python jobs/pipeline.py --config jobs/pipeline.yaml [--tune.search.num_samples=8 ...]
"""

import sys
from pathlib import Path

# With --working-dir the repository is the job's cwd but not on sys.path (this file's folder is).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from seqlab.cli import main

if __name__ == "__main__":
    sys.exit(main(["pipeline", *sys.argv[1:]]))
