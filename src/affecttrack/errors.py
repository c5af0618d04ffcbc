"""Errors a user can act on.

Anything raised as :class:`AffectTrackError` is printed by the CLI as one line (no traceback) and
ends the command with exit status 2, so every message must name the file and the problem.
"""


class AffectTrackError(Exception):
    """A problem the user can fix: bad arguments, missing or malformed inputs, incomplete stores."""


class InputError(AffectTrackError):
    """An input file or folder is missing, unreadable or malformed; the message names it."""

    def __init__(self, path: object, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem
