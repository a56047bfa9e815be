# Building the Apptainer image (settings: config `container:`; helpers: the image section of common.smk).


rule build_image:
    input:
        deffile=str(Path(workflow.basedir) / IMAGE_DEF),
        sources=[str(Path(workflow.basedir) / rel) for rel in IMAGE_SOURCES if rel != IMAGE_DEF],
    output:
        BUILT_IMAGE,
    log:
        "results/logs/build_image.log",
    localrule: container_config()["build_local"]
    # Apptainer itself from conda-forge under --sdm conda; a site's module or system install otherwise.
    conda:
        "../envs/apptainer.yaml"
    threads: image_build_resources().get("cpus_per_task", 1)
    resources:
        **image_build_resources(),
    # %files paths in the .def are relative to the repo root (the .def's parent folder), so the build runs there.
    shell:
        "out=$(realpath -m {output:q}) && def=$(realpath {input.deffile:q}) && "
        '(cd "$(dirname "$def")/.." && apptainer build --force --fakeroot "$out" "$def") > {log} 2>&1'
