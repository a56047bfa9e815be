"""The one exception type a stage raises for bad input.

The CLI turns a :class:`PipelineError` into one line on stderr and exit code 2, before any compute
starts and without a traceback. Messages name the file and/or key and what was expected.
"""


class PipelineError(Exception):
    """Bad input: a missing file, a malformed row, a config value out of range."""
