"""nnspec: a declarative model-spec compiler for neural networks.

    spec = nnspec.parse(text, filename="model.nn")   # -> ir.Spec (plain data)
    program = nnspec.check(spec)                     # -> checked.Program (shapes, defaults)

Errors raise `nnspec.NNSpecError`, whose `.diagnostics` hold every problem found.
The front end (this module, parse, check) never imports JAX.
"""

from __future__ import annotations

from nnspec import ir
from nnspec.check import check as _check
from nnspec.checked import Program
from nnspec.diagnostics import Diagnostic, NNSpecError, Severity
from nnspec.parse import parse

__all__ = ["parse", "check", "check_text", "ir", "Program", "Diagnostic", "NNSpecError", "Severity"]
__version__ = "0.1.0"


def check(spec: "ir.Spec | str", *, filename: str = "<string>", memory_budget: int | None = None) -> Program:
    """Check IR (or source text, parsed first); raises NNSpecError with every diagnostic."""
    if isinstance(spec, str):
        return check_text(spec, filename=filename, memory_budget=memory_budget)
    return _check(spec, memory_budget=memory_budget)


def check_text(text: str, *, filename: str = "<string>", memory_budget: int | None = None) -> Program:
    """Parse and check source text, reporting the errors of both stages together."""
    from nnspec.check import check_source
    program, diags, src = check_source(text, filename, memory_budget=memory_budget)
    if program is None:
        raise NNSpecError(diags, src)
    return program
