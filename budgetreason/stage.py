"""A stage's package that is also the stage's entry function.

The public API names four stages by verb (``budgetreason.plan``, ``.train``, ``.evaluate``,
``.report``) and the code is laid out in packages of the same names. Python gives one
attribute one value, and importing ``budgetreason.plan.memory`` sets ``budgetreason.plan`` to the
package, so the package itself is made callable: calling it imports the entry function (only
then, so ``import budgetreason`` stays light) and calls it. ``budgetreason.plan("a40", ...)`` and
``budgetreason.plan.memory`` both keep working, whatever was imported first.
"""

from __future__ import annotations

import importlib
import inspect
import sys
import types
from typing import Any


class StagePackage(types.ModuleType):
    """A package whose call is its entry function's call; its signature is the entry function's."""

    __entry__: tuple[str, str]

    def entry(self) -> Any:
        module, name = self.__entry__
        return getattr(importlib.import_module(module), name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.entry()(*args, **kwargs)

    def __repr__(self) -> str:
        module, name = self.__entry__
        return f"<stage package {self.__name__!r}, callable as {module}.{name}>"

    @property
    def __signature__(self) -> inspect.Signature:
        return inspect.signature(self.entry())


def callable_package(package: str, module: str, function: str) -> None:
    """Make the package named `package` call `module.function` (called from that package's ``__init__``)."""
    pkg = sys.modules[package]
    pkg.__class__ = StagePackage
    pkg.__entry__ = (module, function)
