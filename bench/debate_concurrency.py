"""Throughput of a debate chunk's API calls against a served model, by ``concurrency``: one chunk of API
debaters and an API judge against a local OpenAI-compatible server that answers every request after a fixed
delay (``rlhf_pipeline.miniature.serve.EchoChat``, 200 ms by default; concurrent requests overlap, as on a real
server), at each concurrency in turn (a fresh server each, so each level has its own request limit).

    python bench/debate_concurrency.py [--latency 0.2] [--rounds 32] [--levels 1 2 4 8] [--best-of-n 1]

Prints requests, wall seconds, requests/s, the speed-up over concurrency 1 and the efficiency
(requests/s divided by concurrency x the sequential rate; the issue's bar is >= 0.8 up to 8), and the most
requests the server saw in flight at once. The transcripts of every level are checked to equal the
sequential one's (seeded calls: concurrency changes only the time).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from rlhf_pipeline.debate.config import DebateSection
from rlhf_pipeline.debate.prompts import load_prompts
from rlhf_pipeline.debate.tournament import run_chunk
from rlhf_pipeline.debate.types import Question
from rlhf_pipeline.io import read_jsonl
from rlhf_pipeline.miniature.serve import start_echo

ROOT = Path(__file__).resolve().parents[1]


def questions(n: int) -> list[Question]:
    passage = "Ada painted the telescope on Sunday. Anton repaired the clock on Monday."
    return [Question(f"q{i:03d}", f"s{i}", passage, "On which day did Ada paint the telescope?",
                     ["Sunday", "Saturday"], 0, "bench") for i in range(n)]


def section(url: str, concurrency: int, best_of_n: int) -> DebateSection:
    api = {"type": "openai_compatible", "model": "echo", "base_url": url, "concurrency": concurrency,
           "max_retries": 0, "timeout_s": 30}
    return DebateSection.from_dict({
        "debaters": {"x": {**api, "best_of_n": {"n": best_of_n}}, "y": {**api, "seed": 1}},
        "judges": {"j": api},
        "tournaments": {"t": {"debaters": ["x", "y"], "judge": "j", "kind": "capped_round_robin",
                              "questions_per_pair": 10_000, "formats": ["debate"], "rounds": 1}}})


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--latency", type=float, default=0.2, help="seconds the server takes per request")
    p.add_argument("--rounds", type=int, default=32, help="debate rounds in the chunk (8 per question: x-vs-x, "
                   "x-vs-y, y-vs-x, y-vs-y, both sides each)")
    p.add_argument("--levels", type=int, nargs="+", default=[1, 2, 4, 8])
    p.add_argument("--best-of-n", type=int, default=1, help="debater x's best-of-N (n > 1 adds judge calls)")
    args = p.parse_args()
    prompts = load_prompts(ROOT / "config/debate/prompts.yaml")
    qs = questions(max(1, args.rounds // 8))  # 4 slot orders (balanced slots) x 2 sides per question
    base_rate, base_rows = None, None
    print(f"server latency {args.latency * 1000:.0f} ms; best-of-N {args.best_of_n}")
    print(f"{'concurrency':>11} {'requests':>8} {'seconds':>8} {'req/s':>7} {'speed-up':>8} {'efficiency':>10} "
          f"{'peak':>5}")
    with tempfile.TemporaryDirectory() as tmp:
        for c in args.levels:
            server, url, chat = start_echo(latency_s=args.latency)
            try:
                start = time.perf_counter()
                counts = run_chunk("t", section(url, c, args.best_of_n), qs, 0, f"{tmp}/c{c}.jsonl", f"{tmp}/s{c}",
                                   prompts, clock=lambda: 0.0)
                seconds = time.perf_counter() - start
            finally:
                server.shutdown()
                server.server_close()
            rows = [{k: v for k, v in r.items() if k != "provenance"} for r in read_jsonl(f"{tmp}/c{c}.jsonl")]
            rate = chat.requests / seconds
            if base_rate is None:
                base_rate, base_rows, base_c = rate, rows, c
            assert rows == base_rows, f"concurrency {c}: transcripts differ from concurrency {base_c}'s"
            assert counts["failed"] == 0
            speedup = rate / base_rate
            print(f"{c:>11} {chat.requests:>8} {seconds:>8.2f} {rate:>7.1f} {speedup:>8.2f} "
                  f"{speedup * base_c / c:>10.2f} {chat.peak:>5}")


if __name__ == "__main__":
    main()
