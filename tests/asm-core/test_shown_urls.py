"""Wherever asm shows a URL, its password is masked (``asm.redaction.mask_url``)."""

from __future__ import annotations

import tomllib

from asm._cli_commands import render_config
from asm.config import load_config
from asm.redaction import mask_url


def test_mask_url_hides_only_the_password() -> None:
    assert mask_url("postgresql+psycopg://app:s3cret@db:5432/asm") == "postgresql+psycopg://app:***@db:5432/asm"
    assert mask_url("redis://:s3cret@cache:6379/0") == "redis://:***@cache:6379/0"
    assert mask_url("see redis://u:a@b@c/0 and http://host/x") == "see redis://u:***@c/0 and http://host/x"
    assert mask_url("redis://cache:6379/0") == "redis://cache:6379/0"


def test_config_show_prints_no_database_or_redis_password() -> None:
    loaded = load_config(
        {
            "stores": {"sqlalchemy": {"url": "postgresql+psycopg://app:s3cret-db@db:5432/asm"}},
            "sinks": {"redis": {"url": "redis://:s3cret-redis@cache:6379/0"}},
        },
        env={},
        user_file="/nonexistent",
    )
    shown = render_config(loaded)
    assert "s3cret" not in shown
    parsed = tomllib.loads(shown)
    assert parsed["stores"]["sqlalchemy"]["url"] == "postgresql+psycopg://app:***@db:5432/asm"
    assert parsed["sinks"]["redis"]["url"] == "redis://:***@cache:6379/0"
