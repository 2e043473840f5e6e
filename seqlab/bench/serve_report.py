"""What ``seqlab bench serve`` prints: the per-level tables, the ratios to the bare server with the goals'
verdicts (the fast path's), server CPU per unit of work by part, and failed requests."""

from __future__ import annotations

import math
import sys
from typing import Any

from seqlab.bench.load import percentile
from seqlab.bench.servers import PATHS

__all__ = [
    "BARE",
    "FAST",
    "SERVERS",
    "SERVE_PATHS",
    "print_completions",
    "print_score",
    "report_errors",
    "summarize",
]

SCORE_GOAL = 3.0  # fast-path Serve / bare requests/s at concurrency 32, with p99 at most half of bare's
COMPLETION_GOAL = 4.5  # fast-path Serve / bare aggregate tokens/s at concurrency 8
TTFT_GROWTH = 2.0  # fast-path TTFT p50 at the top completions level <= this x at the lowest
SCORE_AT, COMPLETION_AT = 32, 8  # the levels the goals are stated at
TEXTS_PER_REQUEST = 4  # texts per /v1/score body
TEXT_CHARS = (300, 800)  # length range of the texts to score (realistic paragraphs)
PROMPT_CHARS = 120  # prompt length in characters (~28 BPE tokens)
BARE, FAST = "bare FastAPI", "Serve fast path"
SERVE_PATHS = tuple(PATHS)  # Ray's default proxy, then the fast path
SERVERS = (BARE, *SERVE_PATHS)


def summarize(level: dict[str, Any]) -> dict[str, float]:
    ok = len(level["latency"])
    wall = level["wall"] or math.nan
    return {
        "concurrency": level["concurrency"],
        "ok": ok,
        "errors": level["errors"],
        "rps": ok / wall,
        "items_per_s": level["items"] / wall,
        "p50_ms": 1000 * percentile(level["latency"], 50),
        "p99_ms": 1000 * percentile(level["latency"], 99),
        "ttft_p50_ms": 1000 * percentile(level["ttft"], 50),
    }


def _at(rows: list[dict[str, float]], concurrency: int) -> dict[str, float] | None:
    return next((r for r in rows if r["concurrency"] == concurrency), None)


def _compare_level(levels: list[int], goal_level: int) -> int:
    """The goal's level when it was measured, else the largest level below it (else the smallest)."""
    below = [c for c in levels if c <= goal_level]
    return max(below) if below else min(levels)


def _verdict(met: bool, errors: int, level: int, goal_level: int) -> str:
    if errors:
        return f"NOT met ({errors} failed requests)"
    note = "" if level == goal_level else f", measured at {level} instead of {goal_level}"
    return ("met" if met else "NOT met") + note


def print_cpu(results: dict[str, dict[str, Any]], unit: str) -> None:
    """Server-side CPU per unit of work over all levels, Serve's split by part."""
    parts = []
    for name in SERVERS:
        cpu = results[name]["cpu_ms"]
        split = ", ".join(f"{part} {ms:.1f}" for part, ms in sorted(cpu.items(), key=lambda kv: -kv[1]))
        parts.append(f"{name} {sum(cpu.values()):.1f} ms" + (f" ({split})" if len(cpu) > 1 else ""))
    print(f"server CPU per {unit} (all levels): " + "; ".join(parts))
    idle = ", ".join(f"{name} {100 * results[name]['background_share']:.0f}%" for name in SERVERS)
    print(f"the other servers' idle background while each was loaded (share of a core): {idle}")


def _table(results: dict[str, dict[str, Any]], levels: list[int], header: str, row) -> None:
    print(f"  {'server':16} {'conc':>5} {'ok':>5} {'err':>4} {header}")
    for c in levels:
        for name in SERVERS:
            r = _at(results[name]["rows"], c)
            print(f"  {name:16} {c:5d} {r['ok']:5d} {r['errors']:4d} {row(r)}")


def print_score(results: dict[str, dict[str, Any]], levels: list[int]) -> None:
    print(f"\n/v1/score: {TEXTS_PER_REQUEST} texts of {TEXT_CHARS[0]}-{TEXT_CHARS[1]} chars per request")
    _table(
        results,
        levels,
        f"{'req/s':>9} {'texts/s':>9} {'p50 ms':>9} {'p99 ms':>9}",
        lambda r: f"{r['rps']:9.1f} {r['items_per_s']:9.1f} {r['p50_ms']:9.1f} {r['p99_ms']:9.1f}",
    )
    c = _compare_level(levels, SCORE_AT)
    bare = _at(results[BARE]["rows"], c)
    for name in SERVE_PATHS:
        srv = _at(results[name]["rows"], c)
        ratio, errors = srv["rps"] / bare["rps"], bare["errors"] + srv["errors"]
        goal = name == FAST
        print(
            f"{name} / bare throughput at concurrency {c}: {ratio:.2f}x"
            + (
                f" (goal >= {SCORE_GOAL}x: {_verdict(ratio >= SCORE_GOAL, errors, c, SCORE_AT)})"
                if goal
                else ""
            )
        )
        print(
            f"{name} p99 at concurrency {c}: {srv['p99_ms']:.1f} ms vs bare {bare['p99_ms']:.1f} ms"
            + (
                f" (goal <= half of bare: {_verdict(srv['p99_ms'] <= bare['p99_ms'] / 2, errors, c, SCORE_AT)})"
                if goal
                else ""
            )
        )
    print_cpu(results, "request")


def print_completions(results: dict[str, dict[str, Any]], levels: list[int], max_tokens: int) -> None:
    print(f"\n/v1/completions, streamed: greedy, max_tokens {max_tokens}, prompts of ~{PROMPT_CHARS} chars")

    def row(r: dict[str, float]) -> str:
        per_request = r["items_per_s"] / r["rps"] if r["rps"] else math.nan
        return f"{r['items_per_s']:9.1f} {r['ttft_p50_ms']:12.1f} {r['p50_ms']:9.1f} {per_request:8.1f}"

    _table(results, levels, f"{'tokens/s':>9} {'TTFT p50 ms':>12} {'p50 ms':>9} {'tok/req':>8}", row)
    c = _compare_level(levels, COMPLETION_AT)
    bare = _at(results[BARE]["rows"], c)
    for name in SERVE_PATHS:
        srv = _at(results[name]["rows"], c)
        ratio, errors = srv["items_per_s"] / bare["items_per_s"], bare["errors"] + srv["errors"]
        verdict = _verdict(ratio >= COMPLETION_GOAL, errors, c, COMPLETION_AT)
        print(
            f"{name} / bare aggregate tokens/s at concurrency {c}: {ratio:.2f}x"
            + (f" (goal >= {COMPLETION_GOAL}x: {verdict})" if name == FAST else "")
        )
    for name in SERVERS:
        ttft = {lvl: _at(results[name]["rows"], lvl)["ttft_p50_ms"] for lvl in levels}
        line = ", ".join(f"concurrency {lvl} {ms:.1f} ms" for lvl, ms in ttft.items())
        if name == FAST and len(levels) > 1:
            low, high = min(levels), max(levels)
            met = ttft[high] <= TTFT_GROWTH * ttft[low]
            line += f" (goal: at {high} <= {TTFT_GROWTH:g}x at {low}: {'met' if met else 'NOT met'})"
        print(f"TTFT p50 of {name}: {line}")
    print_cpu(results, "token")


def report_errors(name: str, raw: list[dict[str, Any]]) -> None:
    for level in raw:
        if level["first_error"]:
            print(
                f"  {name} at concurrency {level['concurrency']}: {level['errors']} failed, first: "
                f"{level['first_error'][:300]}",
                file=sys.stderr,
            )
