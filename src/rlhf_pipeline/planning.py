"""Planning cost: what keeps ``snakemake -n`` of a large sweep fast (issue 28). Used by the Snakefile only.

Snakemake calls every input, params and resources function of every job through
``snakemake.common.get_function_params``, which runs ``inspect.signature`` on it each time (about 40 us; a
1,211-job plan makes some 7,000 such calls for the workflow's own functions). That function first looks for
an attribute (``snakemake.common.FUNC_OVERWRITE_PARAMS_ATTR``, set by Snakemake's own ``subpath`` and
``prepend_param`` wrappers) holding the parameters; :func:`presign` sets it once per function, to exactly
what ``inspect.signature`` returns, so Snakemake passes each function the same arguments as before. A
Snakemake without that attribute name is left as it is (the functions still work, only slower).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Callable, Iterable
from typing import Any

try:
    from snakemake.common import FUNC_OVERWRITE_PARAMS_ATTR
except ImportError:  # another Snakemake: nothing to set
    FUNC_OVERWRITE_PARAMS_ATTR = None


def presign(func: Callable[..., Any]) -> Callable[..., Any]:
    """``func``, with its parameters recorded where Snakemake reads them (a decorator; returns ``func``)."""
    if FUNC_OVERWRITE_PARAMS_ATTR is not None and not hasattr(func, FUNC_OVERWRITE_PARAMS_ATTR):
        with contextlib.suppress(AttributeError, TypeError, ValueError):  # a bound method, a builtin: as it is
            setattr(func, FUNC_OVERWRITE_PARAMS_ATTR, inspect.signature(func).parameters)
    return func


def parameters(func: Callable[..., Any]) -> Any:
    """``inspect.signature(func).parameters``, as recorded by :func:`presign` when it was."""
    recorded = getattr(func, FUNC_OVERWRITE_PARAMS_ATTR, None) if FUNC_OVERWRITE_PARAMS_ATTR else None
    return recorded if recorded is not None else inspect.signature(func).parameters


def _functions(items: Iterable[Any]) -> Iterable[Callable[..., Any]]:
    """The functions among a rule's input or params items (as Snakemake stores them)."""
    for item in items:
        func = getattr(getattr(item, "_file", item), "callable", None) if not callable(item) else item
        if func is not None:
            yield func


def presign_rules(rules: Iterable[Any]) -> int:
    """:func:`presign` every input and params function of ``rules`` (Snakemake's rule objects), once all
    are defined; the number of functions. Resources functions are presigned where they are made."""
    seen = {id(f): f for rule in rules for f in _functions([*rule.input, *rule.params])}
    for func in seen.values():
        presign(func)
    return len(seen)


@functools.cache
def _output_index(rules: tuple[Any, ...]) -> Any:
    from snakemake.output_index import OutputIndex

    return OutputIndex(list(rules))


def producing_rules(rules: Iterable[Any], path: str) -> list[Any]:
    """The rules of ``rules`` (a workflow's, all defined) whose output matches ``path``, in their order: what
    ``[r for r in rules if r.is_producer(path)]`` gives, with only the few rules that Snakemake's own output
    index (the constant prefix and suffix of every output pattern) leaves being matched."""
    rules = tuple(rules)
    maybe = _output_index(rules).match(path)
    return [r for r in rules if r in maybe and r.is_producer(path)]
