"""The one exception type a stage raises for bad input, and its kind for a full disk.

The CLI turns a :class:`PipelineError` into one line on stderr and exit code 2, before any compute
starts and without a traceback. Messages name the file and/or key and what was expected.
:class:`DiskFull` is the same one line for a write that ran out of space mid-run
(:func:`rlhf_pipeline.io.disk_full_as_error`).
"""


class PipelineError(Exception):
    """Bad input: a missing file, a malformed row, a config value out of range."""


class DiskFull(PipelineError, OSError):
    """Writing ``path`` failed on a full disk (``ENOSPC``), an exhausted quota (``EDQUOT``) or a file size limit
    (``EFBIG``). Also an ``OSError`` with that ``errno``, so handlers that tolerate a failed write (e.g. of a
    cache) still do. ``str()`` is the one line: path, cause, free space, what to do."""

    def __init__(self, path, err_no: int, cause: str, detail: str, action: str):
        super().__init__(err_no, cause, str(path))
        self.path, self.cause, self.detail, self.action = str(path), cause, detail, action

    def __str__(self) -> str:
        return f"{self.path}: {self.cause} while writing ({self.detail}); {self.action}"

    def __reduce__(self):  # whole across processes (a pool worker's error reaches its parent pickled)
        return type(self), (self.path, self.errno, self.cause, self.detail, self.action)
