"""Exception hierarchy. Every error about one element carries its dotted path."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "BindingAndClassError",
    "BindingError",
    "BundleError",
    "ClassNotAllowedError",
    "NestgraphError",
    "Problem",
    "SpecError",
    "WalkError",
    "format_problem",
]

ROOT_LABEL = "<root>"


@dataclass(frozen=True)
class Problem:
    """One finding: where (dotted path, optional line) and what is wrong.

    The one record of a problem everywhere: on errors (``err.problems``) and on
    ``CheckReport.problems``. ``str()`` gives ``path (line N): message``;
    :func:`format_problem` gives the compiler-style ``file:line: path: message``.
    """

    path: str | None
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = ROOT_LABEL if self.path == "" else self.path
        if where is None:
            return self.message if self.line is None else f"line {self.line}: {self.message}"
        if self.line is not None:
            where = f"{where} (line {self.line})"
        return f"{where}: {self.message}"


def format_problem(problem: Problem, file: str | None = None) -> str:
    """``file:line: path: message``, the form editors jump to (parts that are unknown are left out).

    >>> format_problem(Problem("heads.cls.w", "no variable 'w:0' in the graph", 20), "m.yaml")
    "m.yaml:20: heads.cls.w: no variable 'w:0' in the graph"
    """
    where = [part for part in (file, None if problem.line is None else str(problem.line)) if part]
    parts = [":".join(where)] if where else []
    if problem.path is not None:
        parts.append(ROOT_LABEL if problem.path == "" else problem.path)
    parts.append(problem.message)
    return ": ".join(parts)


class NestgraphError(Exception):
    """Base class of every error nestgraph raises on purpose.

    ``path`` is the dotted path of the (first) element concerned, ``problems``
    every finding when several were collected at once.
    """

    def __init__(
        self,
        message: str | None = None,
        *,
        path: str | None = None,
        problems: Sequence[Problem] = (),
        file: str | None = None,
    ) -> None:
        #: The file (spec, bundle or meta graph) the error concerns, when there is one.
        self.file = file
        self.problems: tuple[Problem, ...] = tuple(problems)
        if path is None and self.problems:
            path = self.problems[0].path
        self.path = path
        #: The message without the leading path, for callers that place it themselves.
        self.detail = message if message is not None else _summarise(self.problems)
        if message is None:
            message = _summarise(self.problems)
        elif path is not None and not self.problems:
            message = f"{ROOT_LABEL if path == '' else path}: {message}"
        self.message = message
        super().__init__(message)


def _summarise(problems: Sequence[Problem]) -> str:
    if len(problems) == 1:
        return str(problems[0])
    lines = [f"{len(problems)} problems:"]
    lines.extend(f"  {p}" for p in problems)
    return "\n".join(lines)


class SpecError(NestgraphError, ValueError):
    """A malformed spec, with the file and line where known."""

    def __init__(
        self,
        message: str | None = None,
        *,
        path: str | None = None,
        problems: Sequence[Problem] = (),
        source: str | None = None,
        line: int | None = None,
    ) -> None:
        self.line = line if line is not None else next((p.line for p in problems), None)
        if message is not None and not problems:
            where = []
            if source is not None:
                where.append(source)
            if line is not None:
                where.append(f"line {line}")
            if where:
                message = f"{', '.join(where)}: {message}"
        elif source is not None and problems:
            message = f"{source}: {_summarise(problems)}"
        super().__init__(message, path=path, problems=problems, file=source)

    @property
    def source(self) -> str | None:
        """The spec's file (``file``; the name ``Spec.from_yaml(source=...)`` takes)."""
        return self.file


class WalkError(NestgraphError, ValueError):
    """A model that cannot be walked (nesting too deep, a field that does not exist)."""


class BindingError(NestgraphError, LookupError):
    """A name that is not in the graph, or that names an element of the wrong kind."""


class ClassNotAllowedError(NestgraphError):
    """A class path refused by the class-path policy."""

    def __init__(
        self,
        message: str | None = None,
        *,
        path: str | None = None,
        problems: Sequence[Problem] = (),
        class_path: str | None = None,
    ) -> None:
        self.class_path = class_path
        super().__init__(message, path=path, problems=problems)


class BindingAndClassError(BindingError, ClassNotAllowedError):
    """Names that do not bind and classes the policy refuses, found in one pass.

    Raised when both kinds of problem occur, so either ``except`` clause catches it.
    """


class BundleError(NestgraphError):
    """A bundle that is missing, truncated, corrupt or of another format version."""

    def __init__(self, message: str, *, path: str | None = None, file: str | None = None) -> None:
        if file is not None:
            message = f"{file}: {message}"
        super().__init__(message, path=path, file=file)
