"""``/v1/score``, and the scores that rerank ``/v1/generate``'s candidates."""

from seqlab.serve.errors import ApiError
from seqlab.serve.schemas import ScoreRequest, ScoreResponse
from seqlab.serve.serving import Deadline, Serving
from seqlab.text.normalize import has_arabic

__all__ = ["ServingScore"]


class ServingScore(Serving):
    """Relevance scores from the scorer deployment."""

    async def score(self, body: ScoreRequest) -> ScoreResponse:
        """Relevance scores (0-10) of raw texts, normalized exactly as the scorer's training text was."""
        scorer = self.ctx.need("scorer")
        if len(body.texts) > self.limits.max_texts:
            raise ApiError(
                413, f"texts has {len(body.texts)} items; the limit is {self.limits.max_texts}", "texts"
            )
        for i, text in enumerate(body.texts):
            if len(text) > self.limits.max_text_chars:
                raise ApiError(
                    413,
                    f"texts[{i}] has {len(text)} characters; the limit is {self.limits.max_text_chars}",
                    f"texts[{i}]",
                )
        deadline = self.ctx.deadline()
        scores = await self.scores(body.texts, deadline)
        normalized = None
        if body.return_normalized:
            normalized = await deadline.call(lambda: scorer.prepare.remote(body.texts), "scorer")
        return ScoreResponse(
            scores=scores,
            no_arabic=[not has_arabic(t) for t in body.texts],  # the rule Scorer.no_arabic applies
            normalized=normalized,
            model=self.ctx.model_info("scorer"),
        )

    async def scores(self, texts: list[str], deadline: Deadline) -> list[float]:
        """The scorer's scores of ``texts`` (batched with other callers' by the scorer deployment)."""
        scorer = self.ctx.need("scorer")
        return await deadline.call(lambda: scorer.score.remote(texts), "scorer")
