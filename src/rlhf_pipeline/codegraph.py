"""Which package source files a workflow stage runs, read from the package's import graph.

The workflow hashes each stage's source code into a rule param, so editing the code a stage runs
reruns that stage (Snakemake alone tracks only params, inputs and the shell command). This module
computes that source set instead of a hand-kept list, so a new module is covered as soon as a
stage imports it. It only parses source with :mod:`ast`: it never imports the modules it reads
(nor torch/transformers), so Snakemake can call it at plan time.

A stage's files are the transitive closure of intra-package imports from its CLI handler
``cmd_<stage>`` in ``cli.py`` (see :func:`stage_files`). Rules of the closure:

* Imports anywhere in a file count, including inside functions (the package keeps heavy imports
  lazy inside functions) and under ``try``. This over-approximates: a lazy import in a function the
  stage never calls still counts. That errs towards an extra rerun, never towards a stale result.
* Imports only under ``if TYPE_CHECKING:`` do not count: they never run, so they cannot shape a
  result (the ``else:`` branch of such an ``if`` does run, and counts).
* Importing a submodule executes every parent package's ``__init__.py``, so those count, and their
  own imports are followed (e.g. ``reward/__init__.py`` imports ``reward/heads.py``).
* ``from pkg.x import y`` counts ``pkg/x/y.py`` when ``y`` is a submodule (Python imports it),
  otherwise just ``pkg.x``. ``from . import y`` likewise.
* Imports of other top-level packages (third-party, stdlib) are ignored.
* Not seen: imports by computed name (``importlib.import_module(name)``, ``__import__``); the
  package uses none. A module loaded that way would have to be given as an extra entry module.
* An intra-package import that names no module of the package is an error (``ValueError``
  naming file and line), as it would be at run time.

The entry point of a stage is one function of ``cli.py``, not the whole file (see
:func:`stage_entry_imports`): the imports inside ``cmd_<stage>``, inside the top-level helpers of
``cli.py`` it refers to (transitively, e.g. ``_prompts``), and the ``cli.py`` module-level imports
whose names those refer to (e.g. ``load_config_arg`` brings in ``config.py``). Module-level imports
nothing in the handler uses do not count: ``launch.py`` is used only by ``main()``, which decides
how many processes run a stage before any handler runs. :func:`stage_code_hash` hashes the source
text of the handler and of the helpers it uses instead of all of ``cli.py``, so editing one handler
reruns only its stage, and adding a stage or editing the argument parser reruns none (argparse
defaults are therefore not hashed; the rules pass every value that matters explicitly).

:data:`DEFAULT_EXCLUDE` lists what cannot shape a result; it is neither hashed nor followed. An
entry is a file relative to the package dir, or ``file::name`` for one top-level definition:

* ``errors.py``: only the :class:`~rlhf_pipeline.errors.PipelineError` class; it changes error
  messages, never a value a stage writes.
* ``provenance.py``: writes the ``manifest.json`` sidecar (git commit, package versions, host,
  time), a record of how a result was made, never part of it.
* ``cli.py::_manifest``: the handlers' one call into ``provenance.py``.
* ``cli.py::_need_paths``: checks that inputs exist and raises; it passes nothing on.
"""

from __future__ import annotations

import ast
import functools
import hashlib
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

DEFAULT_EXCLUDE: frozenset[str] = frozenset({"errors.py", "provenance.py", "cli.py::_manifest", "cli.py::_need_paths"})
"""What cannot shape a stage's results (files, or ``file::name`` definitions); see the module docstring."""

HANDLER_PREFIX = "cmd_"

_Module = tuple[str, ...]  # a module's dotted name below the package: () is the package itself
_Import = tuple[int, str | None, tuple[str, ...], int]  # (level, module, imported names, line)
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)


# --- parsing ----------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=1024)
def _parse(source: str, filename: str) -> ast.Module:
    """Parsed once per (content, file) in a process: repeated hashes at plan time only read files."""
    return ast.parse(source, filename=filename)


@functools.lru_cache(maxsize=1024)
def _file_imports(source: str, filename: str) -> tuple[_Import, ...]:
    """Every import a file runs (anywhere but under ``if TYPE_CHECKING:``), once per (content, file)."""
    return tuple(imp for node in _runtime_import_nodes([_parse(source, filename)]) for imp in _raw_imports(node))


def _is_type_checking(test: ast.expr) -> bool:
    """True for ``TYPE_CHECKING`` and ``<anything>.TYPE_CHECKING`` (e.g. ``typing.TYPE_CHECKING``)."""
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _runtime_import_nodes(nodes: Iterable[ast.AST], into_scopes: bool = True) -> Iterator[ast.Import | ast.ImportFrom]:
    """Import statements anywhere under ``nodes`` except in the body of ``if TYPE_CHECKING:``;
    with ``into_scopes=False`` only those outside function and class bodies (module-level ones)."""
    for node in nodes:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            yield from _runtime_import_nodes(node.orelse, into_scopes)
        elif into_scopes or not isinstance(node, _SCOPES):
            yield from _runtime_import_nodes(ast.iter_child_nodes(node), into_scopes)


def _raw_imports(node: ast.Import | ast.ImportFrom) -> list[_Import]:
    """One ``(level, module, names, line)`` per imported module of an import statement."""
    if isinstance(node, ast.Import):
        return [(0, alias.name, (), node.lineno) for alias in node.names]
    return [(node.level, node.module, tuple(alias.name for alias in node.names), node.lineno)]


def _bindings(node: ast.Import | ast.ImportFrom) -> dict[str, _Import]:
    """The names a module-level import statement binds, each with the import that binds it."""
    out: dict[str, _Import] = {}
    for alias in node.names:
        if isinstance(node, ast.Import):  # `import a.b` binds a (and imports a.b); `import a.b as c` binds c
            out[alias.asname or alias.name.split(".")[0]] = (0, alias.name, (), node.lineno)
        elif alias.name != "*":
            out[alias.asname or alias.name] = (node.level, node.module, (alias.name,), node.lineno)
    return out


def _top_level_defs(tree: ast.Module) -> dict[str, ast.stmt]:
    """Top-level functions, classes and assigned names of a module, by name."""
    defs: dict[str, ast.stmt] = {}
    for stmt in tree.body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defs[stmt.name] = stmt
        elif isinstance(stmt, ast.Assign):
            for target in stmt.targets:
                defs.update((n.id, stmt) for n in ast.walk(target) if isinstance(n, ast.Name))
        elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
            defs[stmt.target.id] = stmt
    return defs


def _first_line(node: ast.stmt) -> int:
    """First line of a top-level definition, its decorators included."""
    return min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])


class _Package:
    """A package directory on disk, with what to leave out of every file set and source slice."""

    def __init__(self, package_dir: str | Path, exclude: Iterable[str] = ()) -> None:
        self.dir = Path(package_dir)
        if not (self.dir / "__init__.py").is_file():
            raise ValueError(f"{self.dir}: not a package directory (no __init__.py)")
        self.name = self.dir.resolve().name
        self._sources: dict[Path, str] = {}
        self._file_of: dict[_Module, Path | None] = {}
        self._imports: dict[_Module, list[_Module]] = {}
        self._slices: dict[tuple[_Module, str], tuple[list[_Module], str]] = {}
        self.exclude_files: set[str] = set()
        self.exclude_defs: set[tuple[str, str]] = set()
        for entry in exclude:
            file, _, name = entry.partition("::")
            file = Path(file).as_posix()
            if not (self.dir / file).is_file():
                raise ValueError(f"exclude {entry!r}: no file {file} in {self.dir} (renamed or removed?)")
            if name and name not in _top_level_defs(self.parse(Path(file))[1]):
                raise ValueError(f"exclude {entry!r}: {file} defines no top-level {name} (renamed or removed?)")
            if name:
                self.exclude_defs.add((file, name))
            else:
                self.exclude_files.add(file)

    # names and files

    def dotted(self, mod: _Module) -> str:
        return ".".join((self.name, *mod))

    def file_of(self, mod: _Module) -> Path | None:
        """The module's file relative to the package dir (a package wins over a same-named .py)."""
        if mod not in self._file_of:
            init, plain = Path(*mod, "__init__.py"), Path(*mod[:-1], mod[-1] + ".py") if mod else None
            self._file_of[mod] = (init if (self.dir / init).is_file() else
                                  plain if plain is not None and (self.dir / plain).is_file() else None)
        return self._file_of[mod]

    def module_named(self, dotted: str) -> _Module:
        """``pkg.a.b`` -> ``("a", "b")``; an error unless it names a module of this package."""
        head, *rest = dotted.split(".")
        if head != self.name or self.file_of(tuple(rest)) is None:
            raise ValueError(f"{dotted}: not a module of package {self.name} ({self.dir})")
        return tuple(rest)

    def module_of_file(self, path: str | Path) -> _Module:
        """The module a file (absolute, or relative to the package dir) defines; an error if none."""
        path = Path(path)
        rel = path.resolve().relative_to(self.dir.resolve()) if path.is_absolute() else path
        parts = rel.with_suffix("").parts
        mod = parts[:-1] if parts[-1] == "__init__" else parts
        if self.file_of(mod) != rel:
            raise ValueError(f"{self.dir / rel}: not a module file of package {self.name}")
        return mod

    def parse(self, rel: Path) -> tuple[str, ast.Module]:
        if rel not in self._sources:
            self._sources[rel] = (self.dir / rel).read_text(encoding="utf-8")
        return self._sources[rel], _parse(self._sources[rel], str(self.dir / rel))

    # imports

    def resolve(self, importer: _Module, imp: _Import) -> list[_Module]:
        """The package modules one import executes (parents aside), or [] when it is not intra-package."""
        level, module, names, line = imp
        rel = self.file_of(importer)
        where = f"{self.dir / rel}:{line}" if rel else f"{self.dotted(importer)}:{line}"
        if level == 0:
            head, *rest = (module or "").split(".")
            if head != self.name:
                return []
            base = tuple(rest)
        else:
            pkg = importer if rel is not None and rel.name == "__init__.py" else importer[:-1]
            if level - 1 > len(pkg):
                raise ValueError(f"{where}: relative import beyond the top-level package {self.name}")
            base = pkg[:len(pkg) - (level - 1)] + (tuple(module.split(".")) if module else ())
        if self.file_of(base) is None:
            raise ValueError(f"{where}: imports {self.dotted(base)}, which is not a module of the package")
        return [base] + [base + (n,) for n in names if n != "*" and self.file_of(base + (n,)) is not None]

    def imports_of(self, mod: _Module) -> list[_Module]:
        """Package modules a module's file imports at run time (anywhere in the file)."""
        if mod not in self._imports:
            rel = self.file_of(mod)
            assert rel is not None
            self.parse(rel)
            self._imports[mod] = [m for imp in _file_imports(self._sources[rel], str(self.dir / rel))
                                  for m in self.resolve(mod, imp)]
        return self._imports[mod]

    def entry_slice(self, mod: _Module, function: str) -> tuple[list[_Module], str]:
        """What one top-level function of ``mod`` needs: the package modules it imports, or uses via the
        module-level imports, and likewise for the same-module top-level definitions it refers to
        (transitively, less excluded ones); and the source text of all those definitions, in file order."""
        key = (mod, function)
        if key in self._slices:
            return self._slices[key]
        rel = self.file_of(mod)
        assert rel is not None
        source, tree = self.parse(rel)
        defs = _top_level_defs(tree)
        if not isinstance(defs.get(function), (ast.FunctionDef, ast.AsyncFunctionDef)):
            raise ValueError(f"{self.dir / rel}: no top-level function {function}")
        bindings: dict[str, _Import] = {}
        for stmt in _runtime_import_nodes(tree.body, into_scopes=False):
            bindings.update(_bindings(stmt))
        skip = {name for file, name in self.exclude_defs if file == rel.as_posix()} - {function}
        seen, queue, used = {function} | skip, [function], []
        imports: list[_Import] = []
        while queue:
            node = defs[queue.pop()]
            if node not in used:
                used.append(node)
                imports += [imp for n in _runtime_import_nodes([node]) for imp in _raw_imports(n)]
            for ref in sorted({n.id for n in ast.walk(node) if isinstance(n, ast.Name)} - seen):
                seen.add(ref)
                if ref in defs:
                    queue.append(ref)
                elif ref in bindings:
                    imports.append(bindings[ref])
        lines = source.splitlines(keepends=True)
        text = "\n".join("".join(lines[_first_line(n) - 1:n.end_lineno]) for n in sorted(used, key=_first_line))
        self._slices[key] = [m for imp in imports for m in self.resolve(mod, imp)], text
        return self._slices[key]

    def closure(self, start: Iterable[_Module]) -> list[Path]:
        """Files of ``start``, their parent packages and all they import, transitively, less excluded files."""
        seen: set[_Module] = set()
        files: set[Path] = set()
        queue = list(start)
        while queue:
            mod = queue.pop()
            if mod in seen:
                continue
            seen.add(mod)
            queue += [mod[:i] for i in range(len(mod))]  # parent packages run their __init__.py first
            rel = self.file_of(mod)
            assert rel is not None
            if rel.as_posix() in self.exclude_files:
                continue
            files.add(rel)
            queue += self.imports_of(mod)
        return sorted(files, key=Path.as_posix)

    # stages

    def stages(self, cli: str | Path) -> list[str]:
        """Stage names of the ``cmd_<stage>`` top-level functions of ``cli``, in file order."""
        rel = self.file_of(self.module_of_file(cli))
        assert rel is not None
        return [s.name[len(HANDLER_PREFIX):] for s in self.parse(rel)[1].body
                if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef)) and s.name.startswith(HANDLER_PREFIX)]

    def handler_slice(self, cli: str | Path, stage: str) -> tuple[list[_Module], str]:
        if stage not in self.stages(cli):
            raise ValueError(f"stage {stage!r}: {self.dir / cli} has no function {HANDLER_PREFIX}{stage} "
                             f"(stages: {', '.join(self.stages(cli))})")
        return self.entry_slice(self.module_of_file(cli), HANDLER_PREFIX + stage)

    def stage_hash(self, stage: str, cli: str, include_handler: bool) -> str:
        modules, text = self.handler_slice(cli, stage)
        extra = {f"{Path(cli).as_posix()}::{HANDLER_PREFIX}{stage}": text} if include_handler else None
        return source_hash(self.dir, self.closure(modules), extra)


# --- public API -------------------------------------------------------------------------------------

def module_files(package_dir: str | Path, entry_modules: Iterable[str], exclude: Iterable[str] = ()) -> list[Path]:
    """Source files (relative to ``package_dir``, sorted) that importing ``entry_modules`` executes.

    An entry is a dotted module name (``rlhf_pipeline.sft``: that file and all it imports) or
    ``module:function`` (``rlhf_pipeline.cli:cmd_sft``: what that function needs, see
    :func:`stage_entry_imports`; not the module's own file). ``exclude``: files relative to
    ``package_dir`` or ``file::name`` top-level definitions, neither returned nor followed; each must exist.
    """
    pkg = _Package(package_dir, exclude)
    start: list[_Module] = []
    for entry in entry_modules:
        name, _, function = entry.partition(":")
        start += pkg.entry_slice(pkg.module_named(name), function)[0] if function else [pkg.module_named(name)]
    return pkg.closure(start)


def stage_entry_imports(cli_path: str | Path, function_name: str, package_dir: str | Path | None = None,
                        exclude: Iterable[str] = ()) -> list[str]:
    """Package modules (dotted, sorted) one top-level function of ``cli_path`` brings in: its own
    imports (wherever in its body), those of the top-level definitions of the same file it refers to
    (transitively, less ``exclude``), and the file's module-level imports whose names all these refer
    to. Not followed further (that is :func:`module_files`). ``package_dir``: the dir of ``cli_path``."""
    pkg = _Package(Path(cli_path).parent if package_dir is None else package_dir, exclude)
    modules, _ = pkg.entry_slice(pkg.module_of_file(Path(cli_path).resolve()), function_name)
    return sorted({pkg.dotted(m) for m in modules})


def entry_source(cli_path: str | Path, function_name: str, package_dir: str | Path | None = None,
                 exclude: Iterable[str] = ()) -> str:
    """Source text of one top-level function of ``cli_path`` and of the same-file top-level definitions
    it refers to (transitively, less ``exclude``), in file order: the part of the file it runs."""
    pkg = _Package(Path(cli_path).parent if package_dir is None else package_dir, exclude)
    return pkg.entry_slice(pkg.module_of_file(Path(cli_path).resolve()), function_name)[1]


def cli_stages(cli_path: str | Path, package_dir: str | Path | None = None) -> list[str]:
    """Stages with a handler in ``cli_path``: ``cmd_gold_eval`` -> ``gold_eval``, in file order."""
    pkg = _Package(Path(cli_path).parent if package_dir is None else package_dir)
    return pkg.stages(Path(cli_path).resolve())


def stage_files(package_dir: str | Path, stage: str, exclude: Iterable[str] = DEFAULT_EXCLUDE,
                cli: str = "cli.py") -> list[Path]:
    """Source files (relative to ``package_dir``, sorted) stage ``stage`` runs: the closure of
    :func:`stage_entry_imports` of ``cmd_<stage>`` in ``package_dir/cli``, less ``exclude``. ``cli``
    itself is not among them (:func:`stage_code_hash` hashes the handler's text). Unknown stage: ``ValueError``."""
    pkg = _Package(package_dir, exclude)
    return pkg.closure(pkg.handler_slice(cli, stage)[0])


def source_hash(package_dir: str | Path, files: Iterable[str | Path], extra: Mapping[str, str] | None = None) -> str:
    """sha256 over each file's path relative to ``package_dir`` and its content (in path order, so the
    order of ``files`` does not matter), then over ``extra``'s (name, text) pairs; first 16 hex digits.
    Moving the package elsewhere keeps the hash; renaming a file or editing it changes it."""
    package_dir = Path(package_dir)
    rels = {(Path(f).resolve().relative_to(package_dir.resolve()) if Path(f).is_absolute() else Path(f)).as_posix()
            for f in files}
    blobs = [(rel, (package_dir / rel).read_bytes()) for rel in sorted(rels)]
    blobs += [(name, text.encode()) for name, text in sorted((extra or {}).items())]
    h = hashlib.sha256()
    for name, data in blobs:
        h.update(f"{name}\0{len(data)}\0".encode())  # lengths keep the (name, content) pairs unambiguous
        h.update(data)
    return h.hexdigest()[:16]


def stage_code_hash(package_dir: str | Path, stage: str, exclude: Iterable[str] = DEFAULT_EXCLUDE,
                    cli: str = "cli.py", include_handler: bool = True) -> str:
    """:func:`source_hash` of :func:`stage_files`, and (``include_handler``) of the source text of the
    stage's handler and the ``cli`` helpers it uses (:func:`entry_source`)."""
    return _Package(package_dir, exclude).stage_hash(stage, cli, include_handler)


def stage_hashes(package_dir: str | Path, exclude: Iterable[str] = DEFAULT_EXCLUDE, cli: str = "cli.py",
                 include_handler: bool = True) -> dict[str, str]:
    """:func:`stage_code_hash` of every stage with a handler in ``cli``, reading each file once."""
    pkg = _Package(package_dir, exclude)
    return {stage: pkg.stage_hash(stage, cli, include_handler) for stage in pkg.stages(cli)}
