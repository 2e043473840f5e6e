"""Which corpus a job reads: the directory it was given, or the bundled generated corpus when none.

The rule sits above both the corpus contract (:mod:`seqlab.corpus`, which checks a given directory)
and the producer of the bundled corpus (:mod:`seqlab.synth.corpus`), so the contract depends on no
producer. The jobs that read a corpus (``seqlab tune``, ``seqlab finetune``) resolve ``data.path``
through :func:`resolve_corpus_dir`.
"""

from __future__ import annotations

from seqlab.corpus import check_corpus_dir

__all__ = ["resolve_corpus_dir"]


def resolve_corpus_dir(path: str | None) -> str:
    """The corpus directory to read: ``path`` (see :func:`seqlab.corpus.check_corpus_dir`), or the bundled
    generated corpus when ``path`` is None (materialized into a cache on first use).

    Raises:
        FileNotFoundError: ``path`` is a local directory without ``corpus/`` in it.
    """
    if path is None:
        from seqlab.synth.corpus import bundled_corpus_dir

        return str(bundled_corpus_dir())
    return check_corpus_dir(path)
