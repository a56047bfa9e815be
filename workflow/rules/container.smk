# The Apptainer image the stages run in on a cluster, and the rule that builds it. Only `--sdm apptainer`
# runs (the SLURM profile sets it) use the image; elsewhere the workflow's `container:` (the Snakefile) is
# ignored, image_input() is empty, and nothing is built. Settings: config `container:`.

from pathlib import Path


include: "getters/container.smk"


rule build_image:
    input:
        deffile=str(Path(workflow.basedir) / IMAGE_DEF),
        sources=[str(Path(workflow.basedir) / rel) for rel in IMAGE_SOURCES if rel != IMAGE_DEF],
    output:
        BUILT_IMAGE,
    log:
        "results/logs/build_image.log",
    localrule: config["container"]["build_local"]
    # Apptainer itself from conda-forge under --sdm conda; a site's module or system install otherwise.
    conda:
        "../envs/apptainer.yaml"
    # not in the workflow's image: it builds it
    container:
        None
    threads: image_build_resources().get("cpus_per_task", 1)
    resources:
        **image_build_resources(),
    # %files paths in the .def are relative to the repo root (the .def's parent folder), so the build runs there.
    shell:
        "out=$(realpath -m {output:q}) && def=$(realpath {input.deffile:q}) && "
        '(cd "$(dirname "$def")/.." && apptainer build --force --fakeroot "$out" "$def") > {log} 2>&1'
