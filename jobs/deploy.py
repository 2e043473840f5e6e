"""Deploy stage as a Ray job: start or update the seqlab Serve app on the cluster, then return.

    ray job submit --working-dir . -- python jobs/deploy.py --config jobs/deploy.yaml [--app.scorer=URI ...]

The app stays up after the job ends (Serve's controller is detached); submit again to update it.
"""

import sys
from pathlib import Path

# With --working-dir the repository is the job's cwd but not on sys.path (this file's folder is).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from seqlab.cli import main

if __name__ == "__main__":
    sys.exit(main(["deploy", *sys.argv[1:]]))
