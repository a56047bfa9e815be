# The prompt data every RLHF stage reads (results/data/{dataset}/{train,val,test}.jsonl).


include: "getters/data.smk"


wildcard_constraints:
    dataset=r"[^/]+",


rule prepare_data:
    output:
        train="results/data/{dataset}/train.jsonl",
        val="results/data/{dataset}/val.jsonl",
        test="results/data/{dataset}/test.jsonl",
        manifest="results/data/{dataset}/manifest.json",
    log:
        "results/logs/prepare_data/{dataset}.log",
    benchmark:
        "results/benchmarks/prepare_data/{dataset}.tsv"
    resources:
        **resources("prepare_data"),
    params:
        cfg=dataset_section,
        seed=config["seed"],
        code=code_hash("prepare_data"),
    shell:
        "python -m rlhf_pipeline prepare-data --config {params.cfg:q} --seed {params.seed} "
        "--out-dir results/data/{wildcards.dataset} --manifest {output.manifest} > {log} 2>&1"
