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
from seqlab.config import add_config_flags, config_from_args
from seqlab.data.splits import split_for_url, split_sizes
from seqlab.synth import corpus
from seqlab.synth.config import CorpusArgs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_flags(parser, CorpusArgs)
    parser.add_argument("--out", default=None, help="write corpus/ Parquet + manifest.json into this folder")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace what --out holds (another artifact or corpus)"
    )
    parser.add_argument("--labels", default=None, help="write a url,score CSV to this file")


def run(args: argparse.Namespace) -> int:
    flags = config_from_args(CorpusArgs, args)  # finite, in-range numbers before any work (exit 2)
    try:
        if args.out:
            check_output_dir(args.out, "corpus", overwrite=args.overwrite)  # before generating anything
        return _run(flags, args)
    except OSError as exc:  # a missing sentence bank, an unwritable --out or --labels, OutputTaken
        print(f"seqlab corpus: {exc}", file=sys.stderr)
        return 2


def _run(flags: CorpusArgs, args: argparse.Namespace) -> int:
    bank = corpus.load_sentence_bank(flags.sentences)
    docs = corpus.generate_documents(flags.n_docs, flags.seed, bank=bank, noise_sd=flags.noise_sd)
    urls = [corpus.article_url(d, flags.base_url) for d in docs]
    sizes = split_sizes([split_for_url(u) for u in urls])
    on_topic = sum(d.theme == corpus.ON_TOPIC_THEME for d in docs)
    scores = [d.score for d in docs]
    mean = sum(scores) / len(scores) if scores else float("nan")
    print(f"sentence bank: {', '.join(f'{t} {len(s)}' for t, s in bank.items())}")
    print(f"documents: {len(docs)} (seed {flags.seed}), {on_topic} with {corpus.ON_TOPIC_THEME} dominant")
    print(
        f"score: mean {mean:.2f}; noise floor RMSE {corpus.noise_floor_rmse(docs):.3f} (noise sd {flags.noise_sd})"
    )
    print(f"split sizes: {sizes}")
    if args.out:
        out = corpus.materialize_corpus(
            args.out,
            flags.n_docs,
            flags.seed,
            flags.noise_sd,
            bank_dir=flags.sentences,
            base_url=flags.base_url,
            overwrite=args.overwrite,
        )
        print(f"corpus written to {out}/corpus (manifest {out}/manifest.json)")
    if args.labels:
        path = corpus.write_labels_csv(docs, args.labels, flags.base_url)
        print(f"labels written to {path}")
    return 0
