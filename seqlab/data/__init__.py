"""seqlab.data: the real scrape pipeline — Arabic web pages -> a labeled Parquet corpus (see seqlab.corpus).

Pure modules (no Ray, no network): ``config`` (SourcesConfig, ScrapeJobConfig), ``urls`` (the canonical
URL form), ``labeling`` (manual labels CSV, the lexicon weak labeler), ``splits`` (train/val/test from the
URL), ``extract`` (bytes -> text, HTML -> article; the pandas batch form Ray Data maps).
Network, no Ray: ``scrape`` (the polite aiohttp crawler: robots.txt, per-host politeness, retries, resume).
Ray at the edges: ``pipeline`` (one crawl task per group of hosts, then Ray Data: extract -> normalize ->
label -> split -> Parquet).
CLI verb: ``cli_scrape`` (``seqlab scrape``).

The bundled synthetic site and corpus (for the demo and tests) live in :mod:`seqlab.synth`, not here.
"""
