"""seqlab.serve: the Ray Serve application that serves the scorer and the generator over HTTP.

* ``config`` — :class:`ServeArgs` (torch- and Ray-free), the builder's typed arguments;
* ``schemas`` — every HTTP request/response body, OpenAI-compatible where OpenAI has one;
* ``deployments`` — the scorer and generator deployments, each batching requests;
* ``ingress`` — the FastAPI routes, auth, limits, deadlines, SSE;
* ``app`` — ``build_app(args)``, referenced by ``serve/config.yaml``;
* ``edge`` — proxy middleware; ``cli`` — ``seqlab serve``.
"""
