"""seqlab.data: the real scrape pipeline — Arabic web pages -> a labeled Parquet corpus (see seqlab.corpus).

Pure modules (no Ray, no network): ``config`` (SourcesConfig, ScrapeJobConfig), ``urls`` (the canonical
URL form), ``labeling`` (manual labels CSV, the lexicon weak labeler), ``splits`` (train/val/test from the
URL), ``decode`` (bytes -> text, the windows-1256 rescue), ``extract`` (HTML -> article and metadata:
trafilatura + seqlab's Arabic rules; the pandas batch form Ray Data maps), ``heuristic`` (seqlab's own
main-text rules, extract's fallback).
Network, no Ray: ``scrape`` (the polite aiohttp crawler: robots.txt, per-host politeness, retries, resume,
sitemaps and feeds).
Ray at the edges: ``pipeline`` (one crawl task per group of hosts, then Ray Data: extract -> normalize ->
label -> split -> Parquet).
CLI verb: ``cli_scrape`` (``seqlab scrape``).

The bundled synthetic site and corpus (for the demo and tests) live in :mod:`seqlab.synth`, not here.
"""
