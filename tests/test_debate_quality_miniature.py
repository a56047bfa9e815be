"""Miniature of config/experiments/debate_quality.yaml (debate on QuALITY, Michael et al. 2023; debaters trained on
their own tournaments, Arnesen et al. 2024): the quality_rr round robin of two debaters served by an
OpenAI-compatible server (the miniature's own, rlhf_pipeline.miniature.serve, standing in for vLLM) judged by an HF
Llama 3, then LoRA SFT on llama8b's speeches, two self-play + best-of-4 + DPO iterations and the strength
tournament, all through the real rules on a tiny Llama-3-shaped model and QuALITY-format files."""

import json
import os
import socket
import subprocess
import sys
from contextlib import closing

import pandas as pd
import pytest
import yaml
from miniature_harness import OFFLINE, ROOT, make_assets, run_rules

from rlhf_pipeline.workflow_config import resolve_config

pytestmark = pytest.mark.integration

EXPERIMENT = "debate_quality"
OVERLAY = ROOT / "config/experiments/miniature" / f"{EXPERIMENT}.yaml"
REAL_PORT = 8000  # the real config's base_url, http://localhost:8000/v1 (vLLM's default port)


def port_is_free(port: int) -> bool:
    with closing(socket.socket()) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def start_server(workdir, model, env):
    """The miniature server on the real config's port when it is free, else on a free one; (process, base URL)."""
    port = REAL_PORT if port_is_free(REAL_PORT) else 0
    proc = subprocess.Popen([sys.executable, "-m", "rlhf_pipeline.miniature.serve", "--model", model, "--port",
                             str(port)], cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True)
    line = proc.stdout.readline()  # "serving <model> at <base_url>" once it listens
    assert line.startswith("serving "), f"the server did not start (exit code {proc.poll()})"
    return proc, line.split(" at ")[-1].strip()


def weights(model_dir):
    from safetensors.torch import load_file

    return load_file(model_dir / "model.safetensors")


def jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_debate_quality_miniature_runs_the_tournament_training_and_strength(tmp_path):
    wf = tmp_path / "wf"
    wf.mkdir()
    env = {**os.environ, **OFFLINE}
    real_cfg = resolve_config([ROOT / f"config/experiments/{EXPERIMENT}.yaml"], root=ROOT, check_paths=False)[0]
    real, mini = real_cfg.debate, resolve_config([OVERLAY], root=ROOT, check_paths=False)[0].debate
    make_assets(EXPERIMENT, wf)

    served = {d.model for d in mini.debaters.values() if d.type == "openai_compatible"}
    assert len(served) == 1  # one server, one model, as one vLLM instance serves both real debaters
    server, url = start_server(wf, served.pop(), env)
    try:
        layers, base_url = [], real.debaters["llama8b"].base_url
        if not url.endswith(f":{REAL_PORT}/v1"):  # port 8000 is taken: point the debaters at the server's port
            layer, base_url = wf / "server.yaml", url
            layer.write_text(yaml.safe_dump({f"debate.debaters.{name}.base_url": url for name, d in
                                             real.debaters.items() if d.type == "openai_compatible"}))
            layers.append(str(layer))
        run_rules(EXPERIMENT, wf, extra_configfiles=tuple(layers))  # to the config's targets
    finally:
        server.terminate()
        server.wait(timeout=30)
    res = wf / "results/debate"

    # QuALITY read as released: difficult_only keeps the questions annotated as hard, and the split is not empty
    data = json.loads((wf / "results/data/debate/quality/summary.json").read_text())
    assert data["skipped"]["not_difficult"] > 0 and data["questions"][real.dataset.split] > 0

    # quality_rr: every format of the real config, on the overlay's questions, judged with probabilities
    rr = real.tournaments["quality_rr"]
    judge = pd.read_csv(res / "quality_rr/judge.csv")
    assert list(judge["format"]) == rr.formats
    assert judge["accuracy"].between(0, 1).all() and (judge["failed"] == 0).all()
    assert (judge["n_questions"] == mini.tournaments["quality_rr"].questions).all()
    rounds = pd.read_csv(res / "quality_rr/rounds.csv")
    assert (rounds["status"] == "ok").all() and rounds["p_correct"].between(0, 1).all()
    pairs = {tuple(p) for p in rounds[rounds["format"] == "debate"][["debater_a", "debater_b"]].to_numpy()}
    a, b = rr.debaters
    # round robin: every pair (two different debaters in both slot orders), each debater also against itself
    assert pairs == {(a, a), (a, b), (b, a), (b, b)}
    assert set(pd.read_csv(res / "quality_rr/ratings.csv")["debater"]) == set(rr.debaters)
    records = [rec for k in range(mini.tournaments["quality_rr"].n_chunks)
               for rec in jsonl(res / f"quality_rr/transcripts/chunk{k}.jsonl")]
    speeches = [s for rec in records for s in rec["speeches"]]
    assert all(rec["provenance"][d]["base_url"] == base_url for rec in records for d in rec["provenance"]
               if d in rr.debaters)  # the debaters spoke through the OpenAI-compatible server
    assert max(s["turn"] for s in speeches) == mini.tournaments["quality_rr"].rounds - 1
    for name in rr.debaters:  # each debater's speeches: best of its configured n (alternatives kept only for n > 1)
        n = (real.debaters[name].best_of_n or rr.best_of_n).n
        assert {len(s["alternatives"]) for s in speeches if s["speaker"] == name} == {n if n > 1 else 0}, name

    # SFT (LoRA) on llama8b's speeches: adapters merged, so only the adapted projections differ from the base
    tr = real.training
    sft = json.loads((res / "sft/manifest.json").read_text())
    assert sft["speeches"] == sum(s["speaker"] in tr.source_debaters for s in speeches) > 0
    base = weights(wf / mini.training.sft.model)
    lora = {k for k in base if k.endswith(("self_attn.q_proj.weight", "self_attn.v_proj.weight"))}  # PEFT's Llama
    previous = base
    for model in ["sft/model"] + [f"dpo/iter{i}/model" for i in range(1, tr.iterations + 1)]:
        now = weights(res / model)
        assert {k for k, v in now.items() if not v.equal(previous[k])} == lora, model
        previous = now

    # both DPO iterations: best-of-4 self-play of the previous checkpoint, pairs over the threshold, trained on
    from rlhf_pipeline.models import load_tokenizer

    tok = load_tokenizer(str(res / "sft/model"))
    names = [name for name, _ in tr.checkpoints()]
    for i in range(1, tr.iterations + 1):
        it = res / f"dpo/iter{i}"
        plays = [s for k in range(mini.training.selfplay.n_chunks) for rec in jsonl(it / f"transcripts/chunk{k}.jsonl")
                 for s in rec["speeches"]]
        assert {s["speaker"] for s in plays} == {names[i - 1]}
        assert {len(s["alternatives"]) for s in plays} == {tr.selfplay.best_of_n.n}
        summary = json.loads((it / "pairs_summary.json").read_text())
        kept = jsonl(it / "pairs.jsonl")
        assert summary["best_of_n"] == len(plays) and summary["kept"] == len(kept) > 0
        assert all(p["gap"] > tr.pairs.threshold and 0 <= p["soft_label"] <= 1 for p in kept)
        # the trainers see the hf debater's prompt tokens: one BOS, not the template's plus the tokenizer's
        assert all(tok(text=p["prompt"])["input_ids"].count(tok.bos_token_id) == 1 for p in kept)
        assert json.loads((it / "model/dpo_metrics.json").read_text())["n_pairs"] == len(kept)

    # the strength table: every checkpoint and its best-of-4 variant, accuracies over the overlay's questions
    table = pd.read_csv(res / "strength/judge_accuracy.csv")
    n = tr.strength.best_of_n.n
    assert list(table["debater"]) == [d for c in names for d in (c, tr.bon_name(c))]
    assert list(table["best_of_n"]) == [1, n] * len(names)
    assert table[["debate_accuracy", "consultancy_accuracy"]].stack().between(0, 1).all()
    assert (table["debate_questions"] == mini.training.strength.questions).all()
    assert table[["bt_strength", "debate_accuracy_se", "consultancy_accuracy_se"]].notna().all().all()
    assert (res / "strength/judge_accuracy.png").stat().st_size > 5000
