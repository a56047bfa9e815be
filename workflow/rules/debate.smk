# Debate tournaments (debaters argue, a judge decides; ratings from the rounds), the published human debates as
# tournament human, and training debaters on tournaments: SFT on transcripts, then iterated DPO on self-play, and PPO
# against the judge (results/debate/, results/data/debate/).

import re


include: "getters/debate.smk"


wildcard_constraints:
    tournament="|".join(map(re.escape, DEBATE_TOURNAMENTS)) or "^$",
    judge="|".join(map(re.escape, DEBATE_JUDGES)) or "^$",
    chunk=r"\d+",
    iteration=r"\d+",


rule debate_data:
    output:
        train="results/data/debate/{dataset}/train.jsonl",
        val="results/data/debate/{dataset}/val.jsonl",
        test="results/data/debate/{dataset}/test.jsonl",
        manifest="results/data/debate/{dataset}/manifest.json",
    log:
        "results/logs/debate_data/{dataset}.log",
    benchmark:
        "results/benchmarks/debate_data/{dataset}.tsv"
    resources:
        **resources("debate_data"),
    params:
        cfg=as_json(DEBATE.dataset.to_dict()),
        code=code_hash("debate_data"),
    shell:
        "python -m rlhf_pipeline debate-data --config {params.cfg:q} --out-dir results/data/debate/{wildcards.dataset} "
        "--manifest {output.manifest} > {log} 2>&1"


rule debate_human:
    input:
        source=human_source(),
    output:
        questions=HUMAN_QUESTIONS,
        transcripts="results/debate/human/transcripts/chunk0.jsonl",
        manifest="results/debate/human/manifest.json",
    log:
        "results/logs/debate_human.log",
    benchmark:
        "results/benchmarks/debate_human.tsv"
    resources:
        **resources("debate_human"),
    params:
        cfg=as_json(DEBATE.human.to_dict()),
        threshold=DEBATE.quote_fuzzy_threshold,
        code=code_hash("debate_human"),
    shell:
        "python -m rlhf_pipeline debate-human --config {params.cfg:q} --quote-fuzzy-threshold {params.threshold} "
        "--questions {output.questions} --out {output.transcripts} --manifest {output.manifest} > {log} 2>&1"


rule debate_chunk:
    input:
        questions=debate_questions(),
        prompts=DEBATE.prompts,
        models=debate_models,
    output:
        transcripts="results/debate/{tournament}/transcripts/chunk{chunk}.jsonl",
        manifest="results/debate/{tournament}/transcripts/chunk{chunk}.manifest.json",
    log:
        "results/logs/debate_chunk/{tournament}/chunk{chunk}.log",
    benchmark:
        "results/benchmarks/debate_chunk/{tournament}/chunk{chunk}.tsv"
    threads: threads("debate_chunk")
    resources:
        **resources("debate_chunk"),
    params:
        cfg=tournament_run,
        state=checkpoint_dir,
        code=code_hash("debate_chunk"),
    shell:
        "exec python -m rlhf_pipeline debate-chunk --config {params.cfg:q} --chunk {wildcards.chunk} "
        "--questions {input.questions} --out {output.transcripts} --state-dir {params.state:q} "
        "--manifest {output.manifest} > {log} 2>&1"


rule debate_summary:
    input:
        transcripts=debate_chunks,
    output:
        rounds=report(
            "results/debate/{tournament}/rounds.csv",
            category="Debate",
            subcategory="{tournament}",
            caption="../report/debate_rounds.rst",
        ),
        ratings=report(
            "results/debate/{tournament}/ratings.csv",
            category="Debate",
            subcategory="{tournament}",
            caption="../report/debate_ratings.rst",
        ),
        judge=report(
            "results/debate/{tournament}/judge.csv",
            category="Debate",
            subcategory="{tournament}",
            caption="../report/debate_judge.rst",
        ),
        win_matrix=report(
            "results/debate/{tournament}/win_matrix.png",
            category="Debate",
            subcategory="{tournament}",
            caption="../report/debate_win_matrix.rst",
        ),
        calibration_csv="results/debate/{tournament}/calibration.csv",
        calibration=report(
            "results/debate/{tournament}/calibration.png",
            category="Debate",
            subcategory="{tournament}",
            caption="../report/debate_calibration.rst",
        ),
    log:
        "results/logs/debate_summary/{tournament}.log",
    wildcard_constraints:
        tournament=TRANSCRIBED_NAMES,
    localrule: True
    params:
        bootstrap=tournament_bootstrap,
        seed=tournament_seed,
        code=code_hash("debate_summary"),
    shell:
        "python -m rlhf_pipeline debate-summary --transcripts {input.transcripts} --out-dir results/debate/{wildcards.tournament} "
        "--bootstrap {params.bootstrap} --seed {params.seed} > {log} 2>&1"


rule debate_rejudge:
    input:
        transcripts=debate_chunks,
        prompts=DEBATE.prompts,
    output:
        rounds="results/debate/{tournament}/rejudge/{judge}/rounds.csv",
        ratings="results/debate/{tournament}/rejudge/{judge}/ratings.csv",
        judge="results/debate/{tournament}/rejudge/{judge}/judge.csv",
        win_matrix="results/debate/{tournament}/rejudge/{judge}/win_matrix.png",
        calibration_csv="results/debate/{tournament}/rejudge/{judge}/calibration.csv",
        calibration="results/debate/{tournament}/rejudge/{judge}/calibration.png",
        transcripts=directory("results/debate/{tournament}/rejudge/{judge}/transcripts"),
        manifest="results/debate/{tournament}/rejudge/{judge}/manifest.json",
    log:
        "results/logs/debate_rejudge/{tournament}/{judge}.log",
    wildcard_constraints:
        tournament=TRANSCRIBED_NAMES,
    threads: threads("debate_rejudge")
    resources:
        **resources("debate_rejudge"),
    params:
        cfg=rejudge_config,
        bootstrap=tournament_bootstrap,
        seed=tournament_seed,
        max_failed_share=tournament_max_failed_share,
        code=code_hash("debate_rejudge"),
    shell:
        "python -m rlhf_pipeline debate-rejudge --transcripts {input.transcripts} --judge {wildcards.judge} "
        "--config {params.cfg:q} --prompts {input.prompts} --out-dir results/debate/{wildcards.tournament}/rejudge/{wildcards.judge} "
        "--bootstrap {params.bootstrap} --seed {params.seed} --max-failed-share {params.max_failed_share} "
        "--manifest {output.manifest} > {log} 2>&1"


# --- training debaters on their own tournaments (debate.training) ---------------------------------


rule debate_sft:
    input:
        transcripts=training_source_chunks(),
        questions=training_questions(),
        prompts=DEBATE.prompts,
    output:
        model=directory("results/debate/sft/model"),
        manifest="results/debate/sft/manifest.json",
    log:
        "results/logs/debate_sft.log",
    benchmark:
        "results/benchmarks/debate_sft.tsv"
    threads: threads("debate_sft")
    resources:
        **resources("debate_sft"),
    params:
        cfg=as_json(TRAINING.sft.to_dict()),
        tokenizer=TRAINING.tokenizer,
        prompt=TRAINING.debater.prompt,
        debaters=TRAINING.source_debaters,
        max_speeches=f"--max-speeches {TRAINING.max_speeches}" if TRAINING.max_speeches else "",
        simultaneous=training_simultaneous(TRAINING.source) if TRAINING.source else "true",
        ckpt=checkpoint_dir,
        code=code_hash("debate_sft"),
    shell:
        "exec python -m rlhf_pipeline debate-sft --config {params.cfg:q} --tokenizer {params.tokenizer:q} "
        "--transcripts {input.transcripts} --questions {input.questions} --prompts {input.prompts} "
        "--prompt {params.prompt:q} --debaters {params.debaters} {params.max_speeches} --simultaneous {params.simultaneous} "
        "--out {output.model} --ckpt-dir {params.ckpt:q} --manifest {output.manifest} > {log} 2>&1"


rule debate_dpo_pairs:
    input:
        transcripts=selfplay_chunks,
        questions=debate_questions(),
        prompts=DEBATE.prompts,
        model=dpo_start_model,
    output:
        pairs="results/debate/dpo/iter{iteration}/pairs.jsonl",
        summary="results/debate/dpo/iter{iteration}/pairs_summary.json",
    log:
        "results/logs/debate_dpo_pairs/iter{iteration}.log",
    benchmark:
        "results/benchmarks/debate_dpo_pairs/iter{iteration}.tsv"
    resources:
        **resources("debate_dpo_pairs"),
    params:
        cfg=as_json(TRAINING.pairs.to_dict()),
        prompt=TRAINING.debater.prompt,
        simultaneous=selfplay_simultaneous,
        code=code_hash("debate_pairs"),
    shell:
        "python -m rlhf_pipeline debate-pairs --config {params.cfg:q} --transcripts {input.transcripts} "
        "--questions {input.questions} --prompts {input.prompts} --prompt {params.prompt:q} "
        "--tokenizer {input.model} --simultaneous {params.simultaneous} --out {output.pairs} "
        "--summary {output.summary} > {log} 2>&1"


rule debate_dpo:
    input:
        pairs="results/debate/dpo/iter{iteration}/pairs.jsonl",
        init=dpo_start_model,
    output:
        model=directory("results/debate/dpo/iter{iteration}/model"),
        manifest="results/debate/dpo/iter{iteration}/manifest.json",
    log:
        "results/logs/debate_dpo/iter{iteration}.log",
    benchmark:
        "results/benchmarks/debate_dpo/iter{iteration}.tsv"
    threads: threads("debate_dpo")
    resources:
        **resources("debate_dpo"),
    params:
        cfg=dpo_config,
        ckpt=checkpoint_dir,
        code=code_hash("debate_dpo"),
    shell:
        "exec python -m rlhf_pipeline debate-dpo --config {params.cfg:q} --init {input.init} --pairs {input.pairs} "
        "--out {output.model} --ckpt-dir {params.ckpt:q} --manifest {output.manifest} > {log} 2>&1"


rule debate_ppo:
    input:
        train=debate_split("train"),
        val=debate_split("val"),
        prompts=DEBATE.prompts,
        init=debate_ppo_init,
        models=debate_ppo_opponent_models,
    output:
        model=directory(f"{PPO_DIR}/model"),
        eval=directory(f"{PPO_DIR}/eval"),
        train_log=f"{PPO_DIR}/train_log.csv",
        trajectories=directory(f"{PPO_DIR}/trajectories"),
        manifest=f"{PPO_DIR}/manifest.json",
    log:
        "results/logs/debate_ppo.log",
    benchmark:
        "results/benchmarks/debate_ppo.tsv"
    threads: threads("debate_ppo")
    resources:
        **resources("debate_ppo"),
    params:
        cfg=debate_ppo_config,
        ckpt=checkpoint_dir,
        code=code_hash("debate_ppo"),
    shell:
        "exec python -m rlhf_pipeline debate-ppo --config {params.cfg:q} --policy {input.init} --train {input.train} "
        "--eval {input.val} --out-dir results/debate/ppo --ckpt-dir {params.ckpt:q} --manifest {output.manifest} > {log} 2>&1"


rule debate_strength:
    input:
        rounds="results/debate/strength/rounds.csv",
        ratings="results/debate/strength/ratings.csv",
    output:
        csv=report(
            "results/debate/strength/judge_accuracy.csv",
            category="Debate",
            subcategory="strength",
            caption="../report/debate_strength.rst",
        ),
        png=report(
            "results/debate/strength/judge_accuracy.png",
            category="Debate",
            subcategory="strength",
            caption="../report/debate_strength.rst",
        ),
    log:
        "results/logs/debate_strength.log",
    localrule: True
    params:
        cfg=as_json(TRAINING.to_dict()),
        code=code_hash("debate_strength"),
    shell:
        "python -m rlhf_pipeline debate-strength --config {params.cfg:q} --rounds {input.rounds} "
        "--ratings {input.ratings} --out-csv {output.csv} --out-png {output.png} > {log} 2>&1"
