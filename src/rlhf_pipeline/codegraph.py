"""Which package source files a workflow stage runs, read from the package's import graph.

The workflow hashes each stage's source code into a rule param, so editing the code a stage runs
reruns that stage (Snakemake alone tracks only params, inputs and the shell command). This module
computes that source set instead of a hand-kept list, so a new module is covered as soon as a
stage imports it. It only parses source with :mod:`ast`: it never imports the modules it reads
(nor torch/transformers; :mod:`rlhf_pipeline.io` writes its cache), so Snakemake can call it at plan time.

A stage's files are the transitive closure of intra-package imports from its CLI handler
``cmd_<stage>`` (see :func:`stage_files`). Rules of the closure:

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
  package uses none outside ``cli.py``, which loads the family CLI modules by the names it lists.
  A module loaded that way would have to be given as an extra entry module.
* An intra-package import that names no module of the package is an error (``ValueError``
  naming file and line), as it would be at run time.

The CLI modules are read by definition, not as whole files. They are ``cli.py``, the family CLI
modules its ``FAMILIES`` tuple names (``data/cli.py``, ``reward/cli.py``, ..., read as source, never
imported) and the stage skeleton ``stage.py`` (:data:`DEFAULT_RUNNER`). A stage's entry is its handler
``cmd_<stage>`` in one of them and the skeleton's ``run``, which every stage runs through (config
from ``--config``, the handler, the manifest). From there (see :func:`stage_entry_imports`): the
imports inside those functions; the top-level definitions of CLI modules they refer to,
transitively (a family's own helpers such as ``_records``, and the skeleton's such as
``read_prompts``, imported by name); and the module-level imports whose names they refer to (e.g.
``load_config_arg`` brings in ``config.py``). A handler's decorator declares its command line (help,
arguments, inputs) and is not followed, except its ``config=``: the config class the skeleton builds,
whose module's defaults shape the result. The parent packages of the CLI modules used count
(importing ``reward.cli`` runs ``reward/__init__.py``). Module-level imports nothing in the entry uses
do not count: ``launch.py`` is used only by ``cli.main()``, which decides how many processes run a
stage before any handler runs.

:func:`stage_code_hash` hashes the source text of the used CLI definitions instead of whole CLI
modules, so editing one handler reruns only its stage, editing ``run`` reruns every stage, and adding
a stage or editing a stage's arguments reruns none (argparse defaults are therefore not hashed; the
rules pass every value that matters explicitly).

:data:`DEFAULT_EXCLUDE` lists what cannot shape a result; it is neither hashed nor followed. An
entry is a file relative to the package dir, or ``file::name`` for one top-level definition (left
out wherever it is referred to from, its own file or an import of it by name):

* ``errors.py``: only the :class:`~rlhf_pipeline.errors.PipelineError` class; it changes error
  messages, never a value a stage writes.
* ``provenance.py``: writes the ``manifest.json`` sidecar (git commit, package versions, host,
  time), a record of how a result was made, never part of it.
* ``stage.py::write_record``: the skeleton's one call into ``provenance.py``.
* ``stage.py::need_inputs`` and ``stage.py::need_paths``: check that inputs exist and raise; they
  pass nothing on.

Parsing the package takes most of a second, and the workflow plans often (every ``snakemake -n``, every
edit): :func:`stage_hashes` with a ``cache_dir`` keeps its result under a key of every ``.py`` file's
text (:func:`sources_key`), so a plan after no edit reads the files and parses none. The key is of the
text, not of sizes and times: a file edited to the same size within the same clock tick, or a checkout
that restores an old time, still changes it.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import json
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

DEFAULT_EXCLUDE: frozenset[str] = frozenset({"errors.py", "provenance.py", "stage.py::write_record",
                                             "stage.py::need_inputs", "stage.py::need_paths"})
"""What cannot shape a stage's results (files, or ``file::name`` definitions); see the module docstring."""

DEFAULT_RUNNER = "stage.py::run"
"""The function every stage runs through (``file::name``); part of every stage's entry."""

HANDLER_PREFIX = "cmd_"
"""A stage's handler is the top-level function ``cmd_<stage>`` of a CLI module (the stage's name with
underscores for dashes)."""

FAMILIES = "FAMILIES"
"""The name of ``cli.py``'s tuple of the family CLI modules (dotted, relative to ``cli.py``'s package)."""

FOLLOWED_DECORATOR_KEYWORDS = ("config",)
"""Keywords of a handler's decorator call that are part of the stage's entry (the rest declare the CLI)."""

_Module = tuple[str, ...]  # a module's dotted name below the package: () is the package itself
_Import = tuple[int, str | None, tuple[str, ...], int]  # (level, module, imported names, line)
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)
_BLOCKS = frozenset({"body", "orelse", "finalbody", "handlers", "cases"})  # fields that hold statements


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
    with ``into_scopes=False`` only those outside function and class bodies (module-level ones), in
    source order. An import is a statement, so only statement blocks are searched, never expressions."""
    stack = list(nodes)[::-1]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(reversed(node.orelse))
        elif into_scopes or not isinstance(node, _SCOPES):
            blocks = [getattr(node, name) for name in node._fields if name in _BLOCKS]
            stack.extend(reversed([child for block in blocks if isinstance(block, list) for child in block]))


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


def _decorator_keywords(node: ast.stmt) -> list[ast.keyword]:
    """The keywords of a definition's decorator calls that are part of a handler's entry."""
    return [k for d in getattr(node, "decorator_list", []) if isinstance(d, ast.Call)
            for k in d.keywords if k.arg in FOLLOWED_DECORATOR_KEYWORDS]


def _entry_parts(node: ast.stmt, handler: bool) -> list[ast.AST]:
    """What of a top-level definition is followed: all of it, or for a stage handler all but its
    decorators (they declare the command line), plus the followed decorator keywords' values."""
    decorators = getattr(node, "decorator_list", [])
    if not handler or not decorators:
        return [node]
    return ([n for n in ast.iter_child_nodes(node) if not any(n is d for d in decorators)]
            + [k.value for k in _decorator_keywords(node)])


def _entry_text(lines: list[str], node: ast.stmt, handler: bool) -> str:
    """Source text of a top-level definition (a handler's without its decorators, but with the followed
    decorator keywords)."""
    if not handler:
        return "".join(lines[_first_line(node) - 1:node.end_lineno])
    keywords = "".join(f"@{k.arg}={ast.unparse(k.value)}\n" for k in _decorator_keywords(node))
    return keywords + "".join(lines[node.lineno - 1:node.end_lineno])


class _Slice(NamedTuple):
    """What entry functions need (:meth:`_Package.entry_slice`)."""

    modules: list[_Module]  # package modules imported (not CLI modules)
    texts: dict[str, str]  # "file::name,name" -> source text of those definitions
    cli_modules: list[_Module]  # CLI modules whose definitions are used


class _Package:
    """A package directory on disk, with what to leave out of every file set and source slice, and (with
    ``cli``) its CLI modules, read by definition (see the module docstring)."""

    def __init__(self, package_dir: str | Path, exclude: Iterable[str] = (), cli: str | Path | None = None,
                 runner: str | None = None) -> None:
        self.dir = Path(package_dir)
        if not (self.dir / "__init__.py").is_file():
            raise ValueError(f"{self.dir}: not a package directory (no __init__.py)")
        self.name = self.dir.resolve().name
        self._sources: dict[Path, str] = {}
        self._file_of: dict[_Module, Path | None] = {}
        self._imports: dict[_Module, list[_Module]] = {}
        self._scopes: dict[_Module, tuple[dict[str, ast.stmt], dict[str, _Import]]] = {}
        self._slices: dict[tuple[tuple[_Module, str], ...], _Slice] = {}
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
        self.cli_modules = self._cli_modules(cli) if cli is not None else []
        self.runner: tuple[_Module, str] | None = None
        if runner is not None:
            file, _, name = runner.partition("::")
            if not (self.dir / file).is_file() or not isinstance(
                    _top_level_defs(self.parse(Path(file))[1]).get(name), (ast.FunctionDef, ast.AsyncFunctionDef)):
                raise ValueError(f"runner {runner!r}: no top-level function {name} in {self.dir / file}")
            self.runner = (self.module_of_file(file), name)
        self.sliced = set(self.cli_modules) | ({self.runner[0]} if self.runner else set())

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

    def scope(self, mod: _Module) -> tuple[dict[str, ast.stmt], dict[str, _Import]]:
        """A module's top-level definitions and the names its module-level imports bind."""
        if mod not in self._scopes:
            rel = self.file_of(mod)
            assert rel is not None
            tree = self.parse(rel)[1]
            bindings: dict[str, _Import] = {}
            for stmt in _runtime_import_nodes(tree.body, into_scopes=False):
                bindings.update(_bindings(stmt))
            self._scopes[mod] = _top_level_defs(tree), bindings
        return self._scopes[mod]

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

    def excluded(self, mod: _Module, name: str) -> bool:
        rel = self.file_of(mod)
        return rel is not None and (rel.as_posix(), name) in self.exclude_defs

    def entry_slice(self, entries: Sequence[tuple[_Module, str]]) -> _Slice:
        """What top-level functions (``(module, name)`` entries) need: the package modules they import, or
        use via module-level imports; likewise for the top-level definitions of the entries' modules and
        of the CLI modules they refer to (transitively, less excluded ones, which are never followed);
        the source text of all those definitions, by file, in file order; and the CLI modules used."""
        key = tuple(entries)
        if key in self._slices:
            return self._slices[key]
        sliced = self.sliced | {mod for mod, _ in entries}
        modules: list[_Module] = []
        used: dict[_Module, dict[str, ast.stmt]] = {}
        seen: set[tuple[_Module, str]] = set(entries)
        queue = list(entries)

        def follow(importer: _Module, imp: _Import) -> None:
            targets = self.resolve(importer, imp)
            names = imp[2]
            if targets and targets[0] in sliced and names and "*" not in names:
                for name in names:  # names from a CLI module: follow those definitions, not the whole file
                    if (targets[0], name) not in seen:
                        seen.add((targets[0], name))
                        if not self.excluded(targets[0], name):
                            queue.append((targets[0], name))
                return
            cli = [t for t in targets if t in sliced]
            if cli:
                raise ValueError(f"{self.dir / self.file_of(importer)}:{imp[3]}: imports CLI module "
                                 f"{self.dotted(cli[0])} as a module; import the names it uses from it")
            modules.extend(targets)

        while queue:
            mod, name = queue.pop()
            rel = self.file_of(mod)
            assert rel is not None
            defs, bindings = self.scope(mod)
            node = defs.get(name)
            if (mod, name) in entries and not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                raise ValueError(f"{self.dir / rel}: no top-level function {name}")
            if node is None:
                if name not in bindings:
                    raise ValueError(f"{self.dir / rel}: defines no top-level {name}")
                follow(mod, bindings[name])  # a name the CLI module imports from elsewhere
                continue
            if any(node is n for n in used.setdefault(mod, {}).values()):
                continue
            used[mod][name] = node
            parts = _entry_parts(node, self.is_handler(mod, name))
            for imp_node in _runtime_import_nodes(parts):
                for imp in _raw_imports(imp_node):
                    follow(mod, imp)
            for ref in sorted({n.id for part in parts for n in ast.walk(part) if isinstance(n, ast.Name)}):
                if (mod, ref) in seen:
                    continue
                seen.add((mod, ref))
                if ref in defs:
                    if not self.excluded(mod, ref):
                        queue.append((mod, ref))
                elif ref in bindings:
                    follow(mod, bindings[ref])
        texts = {}
        for mod, named in used.items():
            rel = self.file_of(mod)
            assert rel is not None
            lines = self.parse(rel)[0].splitlines(keepends=True)
            order = sorted(named.items(), key=lambda item: (_first_line(item[1]), item[0]))
            texts[f"{rel.as_posix()}::{','.join(n for n, _ in order)}"] = "\n".join(
                _entry_text(lines, node, self.is_handler(mod, n)) for n, node in order)
        self._slices[key] = _Slice(modules, dict(sorted(texts.items())), sorted(used))
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

    def _cli_modules(self, cli: str | Path) -> list[_Module]:
        """``cli`` and the family CLI modules its ``FAMILIES`` tuple names, in that order."""
        mod = self.module_of_file(cli)
        rel = self.file_of(mod)
        assert rel is not None
        out = [mod]
        for stmt in self.parse(rel)[1].body:
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target] \
                if isinstance(stmt, ast.AnnAssign) else []
            if not any(isinstance(t, ast.Name) and t.id == FAMILIES for t in targets):
                continue
            try:
                names = ast.literal_eval(stmt.value)
            except ValueError:
                raise ValueError(f"{self.dir / rel}:{stmt.lineno}: {FAMILIES} must be a literal tuple of "
                                 "module names") from None
            for name in names:
                family = mod[:-1] + tuple(name.split("."))
                if self.file_of(family) is None:
                    raise ValueError(f"{self.dir / rel}:{stmt.lineno}: {FAMILIES} names {name}, which is not a "
                                     f"module of package {self.name}")
                out.append(family)
        return out

    def is_handler(self, mod: _Module, name: str) -> bool:
        return name.startswith(HANDLER_PREFIX) and mod in self.cli_modules

    @functools.cached_property
    def handlers(self) -> dict[str, tuple[_Module, str]]:
        """Stage name -> (CLI module, handler name) of every ``cmd_<stage>`` top-level function of the CLI
        modules, in their order and file order."""
        out: dict[str, tuple[_Module, str]] = {}
        for mod in self.cli_modules:
            rel = self.file_of(mod)
            assert rel is not None
            for s in self.parse(rel)[1].body:
                if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef)) and s.name.startswith(HANDLER_PREFIX):
                    stage = s.name[len(HANDLER_PREFIX):]
                    if stage in out:
                        raise ValueError(f"stage {stage!r}: handlers in {self.file_of(out[stage][0])} and {rel}")
                    out[stage] = (mod, s.name)
        return out

    def stage_slice(self, stage: str) -> _Slice:
        """The slice of a stage's handler and the runner."""
        if stage not in self.handlers:
            files = ", ".join(str(self.file_of(m)) for m in self.cli_modules)
            raise ValueError(f"stage {stage!r}: {self.dir} has no function {HANDLER_PREFIX}{stage} in {files} "
                             f"(stages: {', '.join(self.handlers)})")
        return self.entry_slice([self.handlers[stage], *([self.runner] if self.runner else [])])

    def stage_files(self, stage: str) -> list[Path]:
        sl = self.stage_slice(stage)
        return self.closure([*sl.modules, *(mod[:-1] for mod in sl.cli_modules)])

    def stage_hash(self, stage: str, include_handler: bool) -> str:
        texts = self.stage_slice(stage).texts if include_handler else None
        return source_hash(self.dir, self.stage_files(stage), texts)


# --- public API -------------------------------------------------------------------------------------

def module_files(package_dir: str | Path, entry_modules: Iterable[str], exclude: Iterable[str] = ()) -> list[Path]:
    """Source files (relative to ``package_dir``, sorted) that importing ``entry_modules`` executes.

    An entry is a dotted module name (``rlhf_pipeline.sft``: that file and all it imports) or
    ``module:function`` (``rlhf_pipeline.data.cli:cmd_prepare_data``: what that function needs, see
    :func:`stage_entry_imports`; not the module's own file). ``exclude``: files relative to
    ``package_dir`` or ``file::name`` top-level definitions, neither returned nor followed; each must exist.
    """
    pkg = _Package(package_dir, exclude)
    start: list[_Module] = []
    for entry in entry_modules:
        name, _, function = entry.partition(":")
        start += pkg.entry_slice([(pkg.module_named(name), function)]).modules if function \
            else [pkg.module_named(name)]
    return pkg.closure(start)


def _cli_package(cli_path: str | Path, package_dir: str | Path | None, exclude: Iterable[str],
                 cli: str | Path | None, runner: str | None) -> _Package:
    """The package of ``cli_path`` with its CLI modules, as far as ``cli`` and ``runner`` exist in it."""
    package_dir = Path(cli_path).resolve().parent if package_dir is None else Path(package_dir)
    return _Package(package_dir, exclude, cli=cli if cli is not None and (package_dir / cli).is_file() else None,
                    runner=runner if runner is not None and (package_dir / runner.partition("::")[0]).is_file()
                    else None)


def stage_entry_imports(cli_path: str | Path, function_name: str, package_dir: str | Path | None = None,
                        exclude: Iterable[str] = (), cli: str | None = "cli.py",
                        runner: str | None = DEFAULT_RUNNER) -> list[str]:
    """Package modules (dotted, sorted) one top-level function of ``cli_path`` brings in: its own
    imports (wherever in its body), those of the top-level definitions of the same file and of the CLI
    modules it refers to (transitively, less ``exclude``; the CLI modules are ``cli``, its families and
    the module of ``runner``, those that exist in ``package_dir``), and the module-level imports whose
    names all these refer to. Not followed further (that is :func:`module_files`). ``package_dir``: the
    dir of ``cli_path``."""
    pkg = _cli_package(cli_path, package_dir, exclude, cli, runner)
    sl = pkg.entry_slice([(pkg.module_of_file(Path(cli_path).resolve()), function_name)])
    return sorted({pkg.dotted(m) for m in sl.modules})


def entry_source(cli_path: str | Path, function_name: str, package_dir: str | Path | None = None,
                 exclude: Iterable[str] = (), cli: str | None = "cli.py", runner: str | None = DEFAULT_RUNNER) -> str:
    """Source text of one top-level function of ``cli_path`` and of the top-level definitions of the
    CLI modules it refers to (as in :func:`stage_entry_imports`), file by file, in file order: the part
    of the CLI it runs. A handler's decorator is left out but for its ``config=``."""
    pkg = _cli_package(cli_path, package_dir, exclude, cli, runner)
    return "\n".join(pkg.entry_slice([(pkg.module_of_file(Path(cli_path).resolve()), function_name)]).texts.values())


def cli_stages(cli_path: str | Path, package_dir: str | Path | None = None) -> list[str]:
    """Stages with a handler in ``cli_path`` or the family CLI modules it lists: ``cmd_gold_eval`` ->
    ``gold_eval``, in ``FAMILIES`` and file order."""
    package_dir = Path(cli_path).resolve().parent if package_dir is None else package_dir
    return list(_Package(package_dir, cli=Path(cli_path).resolve()).handlers)


def stage_handlers(package_dir: str | Path, cli: str = "cli.py") -> dict[str, str]:
    """Stage -> where its handler is (``data/cli.py::cmd_prepare_data``), in ``FAMILIES`` and file order."""
    pkg = _Package(package_dir, cli=cli)
    return {stage: f"{pkg.file_of(mod).as_posix()}::{name}" for stage, (mod, name) in pkg.handlers.items()}


def stage_files(package_dir: str | Path, stage: str, exclude: Iterable[str] = DEFAULT_EXCLUDE,
                cli: str = "cli.py", runner: str | None = DEFAULT_RUNNER) -> list[Path]:
    """Source files (relative to ``package_dir``, sorted) stage ``stage`` runs: the closure of the
    modules its handler ``cmd_<stage>`` (in ``cli`` or a family CLI module ``cli`` lists) and ``runner``
    bring in (:func:`stage_entry_imports`), and of the parent packages of the CLI modules they use, less
    ``exclude``. No CLI module is among them (:func:`stage_code_hash` hashes the definitions used).
    Unknown stage: ``ValueError``."""
    return _Package(package_dir, exclude, cli=cli, runner=runner).stage_files(stage)


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
                    cli: str = "cli.py", include_handler: bool = True, runner: str | None = DEFAULT_RUNNER) -> str:
    """:func:`source_hash` of :func:`stage_files`, and (``include_handler``) of the source text of the
    CLI definitions the stage runs: its handler, the runner, and the CLI helpers they use (:func:`entry_source`)."""
    return _Package(package_dir, exclude, cli=cli, runner=runner).stage_hash(stage, include_handler)


def stage_hashes(package_dir: str | Path, exclude: Iterable[str] = DEFAULT_EXCLUDE, cli: str = "cli.py",
                 include_handler: bool = True, runner: str | None = DEFAULT_RUNNER,
                 cache_dir: str | Path | None = None) -> dict[str, str]:
    """:func:`stage_code_hash` of every stage with a handler in ``cli`` or its family CLI modules, reading
    each file once. With ``cache_dir``, the result is kept in ``cache_dir/``:data:`CACHE_FILE` under
    :func:`sources_key` (of this module's own source, every ``.py`` file of the package and the arguments),
    and read back while that key is unchanged: a plan after no edit reads the files but parses none. A
    missing, unreadable or unwritable cache only means computing the hashes."""
    exclude = sorted(exclude)
    if cache_dir is None:
        return _stage_hashes(package_dir, exclude, cli, include_handler, runner)
    settings = [[(e, (Path(package_dir) / e.partition("::")[0]).is_file()) for e in exclude], cli,
                include_handler, runner]  # an excluded file that goes is an error, as without the cache
    key = sources_key(package_dir, settings)
    cache = Path(cache_dir) / CACHE_FILE
    try:
        stored = json.loads(cache.read_text(encoding="utf-8"))
        if stored["key"] == key and all(isinstance(v, str) for v in stored["hashes"].values()):
            return dict(stored["hashes"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass  # none yet, or unreadable: compute
    hashes = _stage_hashes(package_dir, exclude, cli, include_handler, runner)
    if sources_key(package_dir, settings) == key:  # no file changed while they were read: kept under that key
        from .io import atomic_file  # (whole or not at all: plans running side by side read one or the other)

        try:
            with atomic_file(cache) as tmp:
                Path(tmp).write_text(json.dumps({"key": key, "hashes": hashes}), encoding="utf-8")
        except OSError:
            pass  # a read-only working directory: the next plan computes them again
    return hashes


def _stage_hashes(package_dir: str | Path, exclude: Iterable[str], cli: str, include_handler: bool,
                  runner: str | None) -> dict[str, str]:
    pkg = _Package(package_dir, exclude, cli=cli, runner=runner)
    return {stage: pkg.stage_hash(stage, include_handler) for stage in pkg.handlers}


CACHE_FILE = "stage_hashes.json"
"""The file :func:`stage_hashes` keeps its result in, in its ``cache_dir``."""


def sources_key(package_dir: str | Path, settings: object = None) -> str:
    """sha256 (hex) over everything :func:`stage_hashes` can read: the package's absolute path, the content of
    every ``.py`` file under it (by relative path, so adding, removing, renaming or editing one changes the
    key, whatever its size or modification time), this module's own source, the Python version (the
    ``ast`` the graph is read with) and ``settings`` (JSON-able: the other arguments)."""
    package_dir = Path(package_dir).resolve()
    h = hashlib.sha256(json.dumps([str(package_dir), sys.version, settings], default=str).encode())
    files = sorted((p.relative_to(package_dir).as_posix(), p) for p in package_dir.rglob("*.py") if p.is_file())
    for name, path in [("<codegraph>", Path(__file__)), *files]:
        data = path.read_bytes()
        h.update(f"{name}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()
