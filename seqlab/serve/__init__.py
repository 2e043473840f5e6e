"""seqlab.serve: the Ray Serve application that serves the scorer and the generator over HTTP.

* ``config`` — :class:`ServeArgs` (torch- and Ray-free), the builder's typed arguments;
* ``schemas`` — every HTTP request/response body, OpenAI-compatible where OpenAI has one;
* ``deployments`` — the scorer and generator deployments, each batching requests;
* ``ingress`` — the FastAPI app and its routes, each a few lines handing the body to a serving class:
  ``serving`` (handles, limits, the request deadline, generator streams), ``serving_score``,
  ``serving_generate`` (with rerank), ``serving_completions`` (OpenAI), ``serving_models`` (models,
  readiness, metrics, tokenizer); ``errors`` (one error shape), ``middleware`` (auth, body size);
* ``app`` — ``build_app(args)``, referenced by ``serve/config.yaml``;
* ``edge`` — proxy middleware; ``cli`` — ``seqlab serve``.
"""
