"""Synthetic data the project makes itself, apart from the real pipeline: offline demos and tests need a
corpus and a website with known answers, and no network.

Modules (none needs Ray or torch):

* :mod:`seqlab.synth.corpus`: the sentence bank -> documents with known relevance scores; the bundled corpus.
* :mod:`seqlab.synth.plan`: every page of the local site and the outcome a scraper should reach (pure).
* :mod:`seqlab.synth.render`: those pages as HTML (pure).
* :mod:`seqlab.synth.site`: the aiohttp app and :class:`~seqlab.synth.site.LocalSite` serving it on loopback.
* :mod:`seqlab.synth.config`: :class:`~seqlab.synth.config.SiteConfig` and the verbs' flag models.
* :mod:`seqlab.synth.cli_corpus`, :mod:`seqlab.synth.cli_site`: ``seqlab corpus`` and ``seqlab site``.

The real pipeline (:mod:`seqlab.data`) never imports from here; only the demo, benchmarks and tests do.
"""
