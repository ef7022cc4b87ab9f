"""One error type for bad input, always naming where the problem is."""

from __future__ import annotations


class DataError(ValueError):
  """Bad input data: the message names the file, the line and the field or problem."""

  def __init__(self, path, line: int | None, problem: str, field: str | None = None):
    where = str(path)
    if line is not None:
      where += f":{line}"
    if field is not None:
      where += f" [{field}]"
    super().__init__(f"{where}: {problem}")
    self.path = str(path)
    self.line = line
    self.field = field
    self.problem = problem
