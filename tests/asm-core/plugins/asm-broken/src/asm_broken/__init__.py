"""A plugin with a bug at import time."""

raise ImportError("asm_broken needs a module that is not installed (on purpose)")
