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
from seqlab.data import corpus


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--n-docs", type=int, default=corpus.DEFAULT_N_DOCS, help="articles (default 3000)")
    parser.add_argument("--seed", type=int, default=corpus.DEFAULT_SEED, help="corpus and fault seed")
    parser.add_argument("--sentences", default=None, help="sentence bank folder (default data/sentences)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    parser.add_argument("--port", type=int, default=8765, help="port (0 picks a free one; default 8765)")
    parser.add_argument("--base-path", default="", help="serve every page under this prefix, e.g. /news")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="delay added to every response")
    parser.add_argument("--crawl-delay", type=float, default=0.0, help="robots.txt Crawl-delay (seconds)")
    parser.add_argument("--no-faults", action="store_true", help="serve only index, sections, clean articles")


def run(args: argparse.Namespace) -> int:
    from seqlab.config import config_from_args
    from seqlab.data.config import SiteArgs
    from seqlab.data.site import LocalSite, SiteStartError

    config_from_args(SiteArgs, args)  # ports, latencies, sizes in range before anything binds
    try:
        bank = corpus.load_sentence_bank(args.sentences)
    except FileNotFoundError as exc:
        print(f"seqlab site: {exc}", file=sys.stderr)
        return 2
    docs = corpus.generate_documents(args.n_docs, args.seed, bank=bank)
    site = LocalSite(
        docs,
        host=args.host,
        port=args.port,
        base_path=args.base_path,
        latency_s=args.latency_ms / 1000.0,
        faults=not args.no_faults,
        seed=args.seed,
        crawl_delay=args.crawl_delay,
    )
    try:
        site.start()
    except SiteStartError as exc:
        print(f"seqlab site: {exc}", file=sys.stderr)
        return 2
    with site:
        outcomes = Counter(site.expected.values())
        print(f"serving {len(docs)} articles at {site.index_url}  (robots: {site.robots_url})")
        print("URLs by expected outcome: " + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())))
        if site.port == 8765 and not args.base_path:
            print("labels for these URLs: data/labels.csv (seqlab corpus --labels FILE for other ports)")
        print("Ctrl-C to stop", flush=True)
        interrupts.sigterm_as_interrupt()  # `kill PID` stops as cleanly as Ctrl-C
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            print("stopping")
    return 0
