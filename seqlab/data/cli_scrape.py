"""``seqlab scrape``: Arabic sites -> ``OUT/corpus/`` + ``OUT/failures/`` Parquet + ``OUT/manifest.json``.

Three ways to say what to scrape:

    seqlab scrape --sources sources.yaml --out runs/corpus     # a SourcesConfig YAML
    seqlab scrape --out runs/corpus https://a.example/ ...     # seeds only, defaults for the rest
    seqlab scrape --out runs/corpus --sitemap https://a.example/sitemap.xml --feed https://a.example/rss
    seqlab scrape --config jobs/scrape.yaml                    # the full job config (as ray job submit uses)
    seqlab scrape --out runs/tech --focus runs/tune/best --max-pages 500 https://a.example/   # focused
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from seqlab.config import ConfigError, add_config_arguments, load_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("urls", nargs="*", help="seed URLs (shortcut: defaults for everything else)")
    parser.add_argument("--sources", help="YAML file of a SourcesConfig (seeds, allowed_domains, depth, ...)")
    parser.add_argument(
        "--sitemap",
        action="append",
        default=[],
        metavar="URL",
        help="a sitemap, sitemap index or .xml.gz whose pages are crawled as seeds (repeatable; "
        "robots.txt Sitemap: lines of the seeds' hosts are read anyway)",
    )
    parser.add_argument(
        "--feed", action="append", default=[], metavar="URL", help="an RSS or Atom feed (repeatable)"
    )
    parser.add_argument("--out", help="output directory (overrides the config's 'out')")
    parser.add_argument(
        "--overwrite", action="store_true", help="write into --out even if another stage's artifact is there"
    )
    parser.add_argument(
        "--focus",
        metavar="SCORER_DIR",
        help="focused crawl: this scorer (e.g. runs/tune/best) ranks the links and the best are fetched "
        "first (overrides sources.focus.scorer)",
    )
    parser.add_argument(
        "--focus-blend",
        type=float,
        metavar="W",
        help="weight of the linking page's score in a link's rank, 0-1 (default 0.3)",
    )
    parser.add_argument(
        "--max-pages",
        type=int,
        metavar="N",
        help="crawl budget: stop after N URLs processed (pages + failures, resumed ones included)",
    )
    parser.add_argument(
        "--labels",
        help="CSV of url,score manual labels; 'none' forces the lexicon weak labeler (default: the config's)",
    )


def build_config(args: argparse.Namespace):
    """--config, --sources or URLs, --out, --labels and dotted overrides as one ScrapeJobConfig."""
    from seqlab.data.config import ScrapeJobConfig, SourcesConfig

    lists = {"sitemaps": list(args.sitemap), "feeds": list(args.feed)}
    named = args.urls or args.sitemap or args.feed
    if args.config is None and not args.sources and not named:
        raise ConfigError(
            "say what to scrape: --sources FILE, --config FILE, one or more URLs, --sitemap URL or --feed URL"
        )
    if args.sources and args.urls:
        raise ConfigError("give either --sources FILE or seed URLs, not both")
    if args.config is not None and not args.sources and not args.urls and (args.sitemap or args.feed):
        raise ConfigError(
            "--sitemap/--feed go with seed URLs or --sources FILE; with --config use --sources.sitemaps=[URL]"
        )
    if args.config is None and args.out is None:
        raise ConfigError("out: missing output directory (use --out DIR)")
    sources = None  # --sources FILE or URLs replace the config's sources whole (every field is dumped)
    if args.sources:
        sources = load_config(SourcesConfig, args.sources).model_dump()
        for key, urls in lists.items():
            sources[key] = [*sources[key], *urls]
    elif named:
        sources = {**SourcesConfig.model_construct().model_dump(), "seeds": list(args.urls), **lists}
    overrides = list(args.overrides)
    if args.labels and args.labels.lower() in {"none", "null"}:
        overrides.insert(0, "labels=null")  # an explicit null, which a named flag's None cannot say
    labels = args.labels if args.labels and args.labels.lower() not in {"none", "null"} else None
    flags = {"sources": sources, "out": args.out, "labels": labels, "sources.max_pages": args.max_pages}
    if args.focus is not None and sources is not None and sources.get("focus"):
        flags["sources.focus.scorer"] = args.focus  # keep the file's blend and threshold
    elif args.focus is not None:
        flags["sources.focus"] = {"scorer": args.focus}
    if args.focus_blend is not None:
        if args.focus is None and not _has_focus(args, sources):
            raise ConfigError("--focus-blend goes with --focus SCORER_DIR (or focus: in the sources)")
        flags["sources.focus.blend"] = args.focus_blend
    return load_config(ScrapeJobConfig, args.config, overrides, flags=flags)


def _has_focus(args: argparse.Namespace, sources: dict | None) -> bool:
    if sources is not None:
        return sources.get("focus") is not None
    return args.config is not None  # the job config may set it; validation says so if it does not


def keep_earlier_labels(cfg, explicit_none: bool, overwrite: bool):
    """The config a re-run into an earlier scrape's ``--out`` should use so that its hand labels survive.

    That scrape was labeled from a CSV: a re-run with no ``--labels`` keeps that CSV (and says so); one with
    ``--labels none`` would put the lexicon's scores in their place, which needs ``--overwrite``.

    Raises:
        ValueError: the labels would be lost (the message says how to keep or replace them).
    """
    from seqlab.artifacts import read_manifest

    try:
        earlier = read_manifest(cfg.out)
    except (FileNotFoundError, ValueError, OSError):
        return cfg
    if earlier.get("stage") != "scrape" or earlier.get("labeler") != "labels_csv" or cfg.labels:
        return cfg
    path = earlier.get("labels_path")
    if explicit_none:
        if overwrite:
            return cfg
        raise ValueError(
            f"{cfg.out} was labeled from {path}; --labels none would replace those labels with the lexicon's "
            "scores: add --overwrite to do that, or leave --labels out to keep them"
        )
    if not path or not Path(path).is_file():
        raise ValueError(
            f"{cfg.out} was labeled from {path}, which is not there now: pass --labels FILE to keep hand "
            "labels, or --labels none --overwrite to relabel with the lexicon"
        )
    print(f"seqlab scrape: keeping the labels {cfg.out} was made with: {path}", file=sys.stderr)
    return cfg.model_copy(update={"labels": path})


def run(args: argparse.Namespace) -> int:
    cfg = build_config(args)
    from seqlab.artifacts import OutputTaken, check_output_dir
    from seqlab.data.labeling import read_labels_csv
    from seqlab.data.pipeline import ScrapeFailed, format_summary, run_scrape
    from seqlab.ray_utils import ray_session

    def fail(message: object) -> int:
        print(f"seqlab scrape: {message}", file=sys.stderr)
        return 2

    # Everything that can be checked is checked before Ray starts: a refusal must not cost a cluster start
    # or leave an empty --out behind.
    try:  # check_output_dir also refuses an --out that is a file
        check_output_dir(cfg.out, "scrape", overwrite=args.overwrite)
        explicit_none = bool(args.labels) and args.labels.lower() in {"none", "null"}
        cfg = keep_earlier_labels(cfg, explicit_none, args.overwrite)
        if cfg.labels:
            read_labels_csv(cfg.labels)
        if cfg.sources.focus is not None:
            from seqlab.data.scrape.focus import check_focus_scorer

            check_focus_scorer(cfg.sources.focus.scorer)
    except (OutputTaken, ValueError) as exc:
        return fail(exc)
    except OSError as exc:
        return fail(f"cannot read the labels file {cfg.labels}: {exc.strerror or exc}")
    with ray_session():
        try:
            summary = run_scrape(cfg, overwrite=args.overwrite)
        except (ScrapeFailed, OutputTaken) as exc:  # OutputTaken: another run took --out meanwhile
            return fail(exc)
    print(format_summary(summary))
    print(f"wrote {cfg.out}/corpus, {cfg.out}/failures, {cfg.out}/manifest.json", file=sys.stderr)
    return 0
