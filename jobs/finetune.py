"""Fine-tune or train GPT-2 with Ray Train: the ``ray job submit`` entry of ``seqlab finetune``.

    ray job submit --working-dir . -- python jobs/finetune.py --config jobs/finetune.yaml

Connects to the cluster in RAY_ADDRESS (set by ``ray job submit``), else starts a local Ray. Accepts the
same options as ``seqlab finetune`` (--data, --base-model, --out, --section.field=value overrides).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the working dir, when seqlab isn't installed

from seqlab.cli import main

if __name__ == "__main__":
    sys.exit(main(["finetune", *sys.argv[1:]]))
