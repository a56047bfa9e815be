# Getters of container.smk: the image's name, the rules' image input, build_image's resources.

import hashlib
from pathlib import Path

from snakemake_interface_executor_plugins.settings import DeploymentMethod

IMAGE_DEF = "singularity/rlhf-pipeline.def"
# What goes into the image's environment; editing any of them names a new image. src/ is copied into the
# image too but left out on purpose: runs take the code from the checkout (see the .def's header).
IMAGE_SOURCES = [IMAGE_DEF, "requirements.lock", "pyproject.toml"]
# A CUDA torch install needs far more than a training stage's default; config resources.build_image wins.
IMAGE_BUILD_RESOURCES = {"mem_mb": 16000, "runtime": 120, "cpus_per_task": 4, "disk_mb": 30000}


def image_hash():
    """sha256 over the image's sources (path + content), short; it names the image file."""
    h = hashlib.sha256()
    for rel in IMAGE_SOURCES:
        h.update(rel.encode())
        h.update((Path(workflow.basedir) / rel).read_bytes())
    return h.hexdigest()[:12]


BUILT_IMAGE = f"singularity/rlhf-pipeline-{image_hash()}.sif"


def container_image():
    """The workflow's image: config container.image, else the one build_image makes."""
    return config["container"]["image"] or BUILT_IMAGE


def image_input():
    """`[image]` under --sdm apptainer when the image is a local file (a rule may build it), else `[]`.
    ancient(): the file name carries the content hash, so its modification time says nothing about staleness.
    Remote URIs are pulled by Snakemake itself."""
    image = container_image()
    if not deploys_with(DeploymentMethod.APPTAINER) or "://" in image:
        return []
    return [ancient(image)]


def add_image_input(rules):
    """Make the image an input of every rule that runs in it (under --sdm apptainer), once all are defined.

    Snakemake does not make a rule-built `container:` image a dependency of the rules that name it (issue 848;
    declined upstream: an image is software, not data) and has no directive for an input all rules share, so
    the one `container:` of the workflow would leave every rule listing `image=image_input()`. Instead the
    image is added here, as input `image`, to each rule with a container and something to run, the way
    Snakemake adds a declared input (a rule with none declared gets the workflow's path modifier first);
    tests/test_container.py checks the result on the parsed rules and in an apptainer plan."""
    image = image_input()
    for each in rules:
        if image and each.container_img and not each.norun:
            each.input_modifier = each.input_modifier or workflow.modifier.path_modifier
            each.set_input(image=image)


def image_build_resources():
    """IMAGE_BUILD_RESOURCES updated by config resources.build_image (unset values inherit)."""
    own = config["resources"].get("build_image", {})
    return {**IMAGE_BUILD_RESOURCES, **{k: v for k, v in own.items() if v not in (None, 0, "")}}
