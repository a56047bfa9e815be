# Supervised fine-tuning of the policy every RLHF stage starts from (results/sft/model: the model and its
# tokenizer; with `tokenizer: world` one made from the train split).


rule sft:
    input:
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
        tokenizer=config["tokenizer"],
        code=code_hash("sft"),
        ckpt=checkpoint_dir,
    shell:
        "exec python -m rlhf_pipeline sft --config {params.cfg:q} --tokenizer {params.tokenizer:q} "
        "--train {input.train} --val {input.val} --out {output.model} --ckpt-dir {params.ckpt:q} "
        "--manifest {output.manifest} > {log} 2>&1"
