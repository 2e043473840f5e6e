"""``seqlab site``: serve the generated corpus as a local website on loopback until Ctrl-C.

seqlab site                          # 3000 articles with faults at http://127.0.0.1:8765/
seqlab site --no-faults --latency-ms 50 --port 0
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter

from seqlab import interrupts
from seqlab.config import add_config_flags, config_from_args
from seqlab.synth import corpus
from seqlab.synth.config import SiteArgs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_flags(parser, SiteArgs, skip=("noise_sd", "base_url"))


def run(args: argparse.Namespace) -> int:
    from seqlab.synth.site import LocalSite, SiteStartError

    flags = config_from_args(SiteArgs, args)  # ports, latencies, sizes in range before anything binds
    try:
        bank = corpus.load_sentence_bank(flags.sentences)
    except FileNotFoundError as exc:
        print(f"seqlab site: {exc}", file=sys.stderr)
        return 2
    docs = corpus.generate_documents(flags.n_docs, flags.seed, bank=bank)
    site = LocalSite(docs, flags.site_config(), host=flags.host, port=flags.port)
    try:
        site.start()
    except SiteStartError as exc:
        print(f"seqlab site: {exc}", file=sys.stderr)
        return 2
    with site:
        outcomes = Counter(site.expected.values())
        print(f"serving {len(docs)} articles at {site.index_url}  (robots: {site.robots_url})")
        print("URLs by expected outcome: " + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())))
        if site.port == 8765 and not flags.base_path:
            print("labels for these URLs: data/labels.csv (seqlab corpus --labels FILE for other ports)")
        print("Ctrl-C to stop", flush=True)
        interrupts.sigterm_as_interrupt()  # `kill PID` stops as cleanly as Ctrl-C
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            print("stopping")
    return 0
