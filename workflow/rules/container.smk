# The Apptainer image the stages run in on a cluster, and the rule that builds it.
# Only `--sdm apptainer` runs (the SLURM profile sets it) use the image; elsewhere the `container:`
# directives are ignored, image_input() is empty, and nothing is built.
#
# Config (optional section; both keys default as shown):
#   container:
#     image: null          # null: build singularity/rlhf-pipeline-<hash>.sif here (rule build_image);
#                          # or an existing .sif path / a docker:// or oras:// URI to use instead
#     build_local: false   # true: build on the machine running Snakemake (login node), not as a SLURM job

import hashlib
from pathlib import Path

IMAGE_DEF = "singularity/rlhf-pipeline.def"
# What goes into the image's environment; editing any of them names a new image. src/ is copied into the
# image too but left out on purpose: runs take the code from the checkout (see the .def's header).
IMAGE_SOURCES = [IMAGE_DEF, "requirements.lock", "pyproject.toml"]
# A CUDA torch install needs far more than a training stage's default; config resources.build_image wins.
IMAGE_BUILD_RESOURCES = {"mem_mb": 16000, "runtime": 120, "cpus_per_task": 4, "disk_mb": 30000}


def container_config():
    return {"image": None, "build_local": False, **config.get("container", {})}


def image_hash():
    """sha256 over the image's sources (path + content), short; it names the image file."""
    h = hashlib.sha256()
    for rel in IMAGE_SOURCES:
        h.update(rel.encode())
        h.update((Path(workflow.basedir) / rel).read_bytes())
    return h.hexdigest()[:12]


BUILT_IMAGE = f"singularity/rlhf-pipeline-{image_hash()}.sif"


def container_image():
    """The image for `container:` directives: config container.image, else the one build_image makes."""
    return container_config()["image"] or BUILT_IMAGE


def uses_apptainer():
    """True when this run deploys software with Apptainer (`--sdm apptainer`, set by the SLURM profile)."""
    return deploys_with(DeploymentMethod.APPTAINER)


def image_input():
    """`[image]` for the input of every containerised rule under --sdm apptainer, else `[]`.

    A rule-built image is no dependency of the rules that name it in `container:` (Snakemake issue 848),
    so each of them lists it as an input too. ancient(): the file name carries the content hash, so its
    modification time says nothing about staleness. Remote URIs are pulled by Snakemake itself.
    """
    image = container_image()
    if not uses_apptainer() or "://" in image:
        return []
    return [ancient(image)]


def image_build_resources():
    res = {**IMAGE_BUILD_RESOURCES, **config.get("resources", {}).get("build_image", {})}
    return {k: v for k, v in res.items() if v not in (None, 0, "")}


rule build_image:
    input:
        [str(Path(workflow.basedir) / rel) for rel in IMAGE_SOURCES],
    output:
        BUILT_IMAGE,
    params:
        basedir=workflow.basedir,
        deffile=IMAGE_DEF,
    log:
        "results/logs/build_image.log",
    localrule: container_config()["build_local"]
    threads: image_build_resources().get("cpus_per_task", 1)
    resources:
        **image_build_resources(),
    # %files paths in the .def are relative to the repo root, so the build runs there.
    shell:
        "out=$(realpath -m {output:q}) && "
        "(cd {params.basedir:q} && apptainer build --force --fakeroot \"$out\" {params.deffile:q}) > {log} 2>&1"
