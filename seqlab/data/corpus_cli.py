"""``seqlab corpus``: generate the bundled labeled corpus (any size, any seed).

seqlab corpus                                   # print the default set's statistics
seqlab corpus --out runs/corpus                 # materialize corpus/ Parquet + manifest.json
seqlab corpus --labels data/labels.csv          # write url,score labels for the local site
seqlab corpus --labels labels-9000.csv --base-url http://127.0.0.1:9000
"""

from __future__ import annotations

import argparse
import sys

from seqlab.artifacts import check_output_dir
from seqlab.data import corpus


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--n-docs", type=int, default=corpus.DEFAULT_N_DOCS, help="documents (default 3000)")
    parser.add_argument("--seed", type=int, default=corpus.DEFAULT_SEED, help="random seed (default 0)")
    parser.add_argument(
        "--noise-sd", type=float, default=corpus.DEFAULT_NOISE_SD, help="label noise sd (default 0.5)"
    )
    parser.add_argument("--sentences", default=None, help="sentence bank folder (default data/sentences)")
    parser.add_argument("--out", default=None, help="write corpus/ Parquet + manifest.json into this folder")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace what --out holds (another artifact or corpus)"
    )
    parser.add_argument("--labels", default=None, help="write a url,score CSV to this file")
    parser.add_argument(
        "--base-url",
        default=corpus.DEFAULT_BASE_URL,
        help=f"site address the URLs use (default {corpus.DEFAULT_BASE_URL}, 'seqlab site' defaults)",
    )


def run(args: argparse.Namespace) -> int:
    from seqlab.config import config_from_args
    from seqlab.data.config import CorpusArgs

    config_from_args(CorpusArgs, args)  # finite, in-range numbers before any work (ConfigError: exit 2)
    try:
        if args.out:
            check_output_dir(args.out, "corpus", overwrite=args.overwrite)  # before generating anything
        return _run(args)
    except OSError as exc:  # a missing sentence bank, an unwritable --out or --labels, OutputTaken
        print(f"seqlab corpus: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    bank = corpus.load_sentence_bank(args.sentences)
    docs = corpus.generate_documents(args.n_docs, args.seed, bank=bank, noise_sd=args.noise_sd)
    urls = [corpus.article_url(d, args.base_url) for d in docs]
    sizes = corpus.split_sizes([corpus.split_for_url(u) for u in urls])
    on_topic = sum(d.theme == corpus.ON_TOPIC_THEME for d in docs)
    scores = [d.score for d in docs]
    mean = sum(scores) / len(scores) if scores else float("nan")
    print(f"sentence bank: {', '.join(f'{t} {len(s)}' for t, s in bank.items())}")
    print(f"documents: {len(docs)} (seed {args.seed}), {on_topic} with {corpus.ON_TOPIC_THEME} dominant")
    print(
        f"score: mean {mean:.2f}; noise floor RMSE {corpus.noise_floor_rmse(docs):.3f} (noise sd {args.noise_sd})"
    )
    print(f"split sizes: {sizes}")
    if args.out:
        out = corpus.materialize_corpus(
            args.out,
            args.n_docs,
            args.seed,
            args.noise_sd,
            bank_dir=args.sentences,
            base_url=args.base_url,
            overwrite=args.overwrite,
        )
        print(f"corpus written to {out}/corpus (manifest {out}/manifest.json)")
    if args.labels:
        path = corpus.write_labels_csv(docs, args.labels, args.base_url)
        print(f"labels written to {path}")
    return 0
