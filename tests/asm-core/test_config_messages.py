"""Config mistakes a newcomer makes, each one clear line: a plugin table under a
singular name, a directory given as the config file."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from asm import AsmError, load_config


def load(tmp_path: Path, text: str) -> AsmError:
    (tmp_path / "asm.toml").write_text(text, encoding="utf-8")
    with pytest.raises(AsmError) as caught:
        load_config(config_file=tmp_path / "asm.toml", env={}, user_file=tmp_path / "none.toml")
    assert caught.value.code == "invalid_config"
    return caught.value


@pytest.mark.parametrize(
    ("text", "written", "meant"),
    [
        ('[provider.echo]\nprefix = "> "\n', "[provider.echo]", "[providers.echo]"),
        ('[store.sqlite]\npath = "asm.db"\n', "[store.sqlite]", "[stores.sqlite]"),
        ("[policy.strict]\nmax_turns = 3\n", "[policy.strict]", "[policies.strict]"),
        ('[sink.jsonl]\npath = "e.jsonl"\n', "[sink.jsonl]", "[sinks.jsonl]"),
        ("[renderer.compact]\n", "[renderer.compact]", "[renderers.compact]"),
        ('[artifact_store.fsspec]\nurl = "memory://x"\n', "[artifact_store.fsspec]", "[artifact_stores.fsspec]"),
        ('[tool]\nname = "x"\n', "[tool]", "[tools.<name>]"),
    ],
)
def test_a_singular_plugin_table_is_named_with_its_plural(tmp_path: Path, text: str, written: str, meant: str) -> None:
    error = load(tmp_path, text)

    assert error.message == (
        f"project config {tmp_path / 'asm.toml'}: {written} is no table asm knows; did you mean {meant}? "
        "Plugin tables are plural"
    )


def test_a_singular_table_from_the_environment_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(AsmError) as caught:
        load_config(env={"ASM_PROVIDER__ECHO__PREFIX": "> "}, user_file=tmp_path / "none.toml", cwd=tmp_path)

    assert caught.value.message.startswith(
        "environment variable ASM_PROVIDER__ECHO__PREFIX: [provider.echo] is no table asm knows; "
        "did you mean [providers.echo]?"
    )


def test_the_plain_settings_of_the_same_names_still_load(tmp_path: Path) -> None:
    (tmp_path / "asm.toml").write_text('provider = "echo"\nstore = "memory"\n[providers.echo]\nprefix = "> "\n')

    config = load_config(config_file=tmp_path / "asm.toml", env={}, user_file=tmp_path / "none.toml").config

    assert (config.provider, config.store, config.providers) == ("echo", "memory", {"echo": {"prefix": "> "}})


@pytest.mark.parametrize("given", ["config_file", "ASM_CONFIG"])
def test_a_directory_as_the_config_file_says_it_is_a_directory(tmp_path: Path, given: str) -> None:
    where = {"config_file": "--config / config_file", "ASM_CONFIG": "ASM_CONFIG"}[given]
    with pytest.raises(AsmError) as caught:
        if given == "config_file":
            load_config(config_file=tmp_path, env={}, user_file=tmp_path / "none.toml")
        else:
            load_config(env={"ASM_CONFIG": str(tmp_path)}, user_file=tmp_path / "none.toml")

    assert caught.value.message == (
        f"config file {tmp_path} is a directory; pass the file ({tmp_path / 'asm.toml'}?); "
        f"check the path given to {where}"
    )


async def test_a_sink_file_in_a_missing_directory_creates_it_and_logs_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from asm.rendering import FileSink

    path = tmp_path / "logs" / "today" / "events.txt"
    caplog.set_level(logging.INFO, logger="asm")

    sink = FileSink(path)
    await sink.write("one\n", None)
    await sink.aclose()
    FileSink(path)

    assert path.read_text() == "one\n"
    assert [r.getMessage() for r in caplog.records if r.name == "asm.rendering"] == [
        f"created the directory {path.parent} for the sink file {path}"
    ]
