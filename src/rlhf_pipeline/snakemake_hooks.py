"""One-line errors for the config files Snakemake reads itself.

Snakemake parses every ``--configfile`` before the workflow's own code runs (``ConfigSettings``), and its
messages for a bad file are a ``FileNotFoundError`` traceback (missing), or a line that does not name the
file (empty, malformed, not a mapping). :func:`install` registers an import hook that wraps Snakemake's
``snakemake.common.configfile.load_configfile`` when Snakemake imports it, so the same files fail with the
workflow's own one-line message (:func:`rlhf_pipeline.workflow_config.read_config_file`: ``config file
PATH: is empty ...``). Nothing of Snakemake is imported before Snakemake imports it, and a Snakemake
without that function is left as it is.

``make setup`` activates it for the project's venv with a ``.pth`` file
(``python -m rlhf_pipeline.snakemake_hooks --install``), since nothing of the workflow runs earlier.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys
import sysconfig
from pathlib import Path

TARGET = "snakemake.common.configfile"
PTH_NAME = "rlhf_pipeline_snakemake_hooks.pth"
PTH_LINE = "import rlhf_pipeline.snakemake_hooks as _h; _h.install()\n"


def problem(configpath) -> str | None:
    """The workflow's one-line message for a config file Snakemake is about to read, or None when it is fine."""
    from .errors import PipelineError
    from .workflow_config import read_config_file

    if not isinstance(configpath, str | Path):
        return None
    try:
        read_config_file(configpath)
    except PipelineError as e:
        return str(e)
    return None


# The wrapper stands in for a function of Snakemake's, and is compiled under a name in Snakemake's package
# directory: Snakemake prints the frames of a WorkflowError's traceback that lie outside its own package
# after the message, and this way the message stands alone (one line naming the file).
_WRAPPER = """
def load_configfile(configpath):
    message = _problem(configpath)
    if message is not None:
        raise _WorkflowError(message) from None
    return _original(configpath)
"""


def _checked(original):
    from snakemake.exceptions import WorkflowError

    namespace = {"_original": original, "_problem": problem, "_WorkflowError": WorkflowError}
    where = Path(sys.modules[original.__module__].__file__).parent / "<rlhf_pipeline config file check>"
    exec(compile(_WRAPPER, str(where), "exec"), namespace)
    wrapper = namespace["load_configfile"]
    wrapper.__wrapped__ = original
    wrapper.__doc__ = original.__doc__
    return wrapper


def patch(module) -> None:
    """Wrap ``module.load_configfile`` (Snakemake's) once; a module without it is left as it is."""
    original = getattr(module, "load_configfile", None)
    if original is not None and not hasattr(original, "__wrapped__"):
        module.load_configfile = _checked(original)
        settings = sys.modules.get("snakemake.settings.types")
        if settings is not None and getattr(settings, "load_configfile", None) is original:
            settings.load_configfile = module.load_configfile


class _Loader(importlib.abc.Loader):
    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        self.loader.exec_module(module)
        patch(module)


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):
        if fullname != TARGET:
            return None
        sys.meta_path.remove(self)
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            sys.meta_path.insert(0, self)
        if spec is None or spec.loader is None:
            return None
        spec.loader = _Loader(spec.loader)
        return spec


def install() -> None:
    """Wrap Snakemake's config-file loader as soon as Snakemake imports it (or now, if it has)."""
    if TARGET in sys.modules:
        patch(sys.modules[TARGET])
    elif not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())


def install_pth(site_packages: str | None = None) -> Path:
    """Write the ``.pth`` file that calls :func:`install` at every start of this environment's Python."""
    path = Path(site_packages or sysconfig.get_paths()["purelib"]) / PTH_NAME
    path.write_text(PTH_LINE)
    return path


if __name__ == "__main__":
    if sys.argv[1:] != ["--install"]:
        sys.exit("usage: python -m rlhf_pipeline.snakemake_hooks --install")
    print(f"wrote {install_pth()}")
