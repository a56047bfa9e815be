# Supervised fine-tuning of the policy every RLHF stage starts from (results/sft/model), and the world
# tokenizer it reads with `tokenizer: world` (results/tokenizer).


include: "getters/sft.smk"


rule world_tokenizer:
    input:
        train=data_file("train"),
    output:
        tokenizer=directory(WORLD_TOKENIZER),
        manifest="results/tokenizer/manifest.json",
    log:
        "results/logs/world_tokenizer.log",
    benchmark:
        "results/benchmarks/world_tokenizer.tsv"
    threads: threads("world_tokenizer")
    resources:
        **resources("world_tokenizer"),
    params:
        cfg=section("world_tokenizer"),
        code=code_hash("world_tokenizer"),
    shell:
        "exec python -m rlhf_pipeline world-tokenizer --config {params.cfg:q} --train {input.train} "
        "--out {output.tokenizer} --manifest {output.manifest} > {log} 2>&1"


rule sft:
    input:
        unpack(policy_tokenizer_input),
        train=data_file("train"),
        val=data_file("val"),
    output:
        model=directory("results/sft/model"),
        manifest="results/sft/manifest.json",
    log:
        "results/logs/sft.log",
    benchmark:
        "results/benchmarks/sft.tsv"
    threads: threads("sft")
    resources:
        **resources("sft"),
    params:
        cfg=section("sft"),
        tokenizer=policy_tokenizer(),
        code=code_hash("sft"),
        ckpt=checkpoint_dir,
    shell:
        "exec python -m rlhf_pipeline sft --config {params.cfg:q} --tokenizer {params.tokenizer:q} "
        "--train {input.train} --val {input.val} --out {output.model} --ckpt-dir {params.ckpt:q} "
        "--manifest {output.manifest} > {log} 2>&1"
