"""Ray job entry of the RNN scorer search (same code path as ``seqlab tune``).

    ray job submit --working-dir . -- python jobs/tune.py --config jobs/tune.yaml [--section.field=value ...]

Under ``ray job submit`` RAY_ADDRESS is set, so the search joins that cluster; run directly, it starts a
local Ray.
"""

import sys
from pathlib import Path

# With --working-dir the repository is the job's cwd but not on sys.path (this file's folder is).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from seqlab.cli import main

if __name__ == "__main__":
    sys.exit(main(["tune", *sys.argv[1:]]))
