"""Providers shipped with asm-core (offline, for tests, examples and the default job)."""
