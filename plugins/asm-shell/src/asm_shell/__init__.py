"""asm-shell: the ``shell`` provider - a command as a run.

The run's prompt is the command: split into an argv list (``shlex``, no shell
involved) unless ``shell = true`` in ``[providers.shell]``, which runs it with
``/bin/sh -c``. A run option ``argv`` (a list) gives the argv directly. stdout
and stderr stream as ``message_streamed`` (``stream="stdout"`` / ``"stderr"``);
exit status 0 completes the run, anything else fails it with a
``provider_error`` carrying the exit code and the (cut) stderr. See
docs/providers.md for every option.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from asm.hookspecs import Register, hookimpl
from asm.plugins import lazy, lazy_attributes

if TYPE_CHECKING:
    from asm_shell._shell import ShellOptions as ShellOptions
    from asm_shell._shell import ShellProvider as ShellProvider
    from asm_shell._shell import create_provider as create_provider

__all__ = ["ShellOptions", "ShellProvider", "create_provider"]


@hookimpl
def asm_register_providers(register: Register) -> None:
    """Register the ``shell`` provider."""
    register("shell", lazy("asm_shell._shell:create_provider"))


__getattr__ = lazy_attributes(__name__, dict.fromkeys(__all__, "_shell"))
