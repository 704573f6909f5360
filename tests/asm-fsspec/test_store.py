"""What the contract does not cover: files in and out, checksums on read, crashes,
bad URLs and credentials, and the plugin as configured by users."""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import random
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
from asm_fsspec import FsspecArtifactStore, create_fsspec_store
from asm_fsspec.testing import MotoServer, MotoUnavailable, moto_server
from fsspec.core import url_to_fs

from asm import AsmError, load_plugins, open_runtime

CHILD = Path(__file__).with_name("_crash_child.py")


@contextlib.contextmanager
def expect(code: str) -> Iterator[pytest.ExceptionInfo[AsmError]]:
    """The block must raise an AsmError with ``code``."""
    with pytest.raises(AsmError) as caught:
        yield caught
    assert caught.value.code == code, f"{caught.value.code}: {caught.value}"


def raw_fs(url: str, storage_options: dict[str, Any]) -> tuple[Any, str]:
    """The filesystem under a store, to look at (and tamper with) what it wrote."""
    fs, root = url_to_fs(url, skip_instance_cache=True, use_listings_cache=False, **storage_options)
    return fs, root.rstrip("/")


async def test_put_file_and_get_file_stream_a_large_file(
    store: FsspecArtifactStore, tmp_path: Path, url: str, storage_options: dict[str, Any]
) -> None:
    source = tmp_path / "big.bin"
    data = random.Random(7).randbytes(17 * 1024 * 1024 + 3)
    source.write_bytes(data)
    put = await store.put_file("sessions/ses_1/big.bin", source, content_type="application/octet-stream")
    assert (put.size, put.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    target = tmp_path / "out" / "copy.bin"
    target.parent.mkdir()
    target.write_bytes(b"an older file, replaced once the copy is complete")
    got = await store.get_file("sessions/ses_1/big.bin", target)
    assert target.read_bytes() == data
    assert (got.size, got.sha256, got.content_type) == (put.size, put.sha256, "application/octet-stream")
    assert sorted(p.name for p in target.parent.iterdir()) == ["copy.bin"], "no temporary file is left behind"
    fs, root = raw_fs(url, storage_options)
    assert fs.cat_file(f"{root}/sessions/ses_1/big.bin") == data, "the bytes are stored as put, under the key"


async def test_put_file_of_a_missing_file_is_invalid_input(store: FsspecArtifactStore, tmp_path: Path) -> None:
    with expect("invalid_input"):
        await store.put_file("k", tmp_path / "nope.bin")


async def test_bytes_changed_behind_the_stores_back_are_artifact_corrupt(
    store: FsspecArtifactStore, tmp_path: Path, url: str, storage_options: dict[str, Any]
) -> None:
    await store.put("sessions/ses_1/out.txt", b"what was put", content_type="text/plain")
    fs, root = raw_fs(url, storage_options)
    fs.pipe_file(f"{root}/sessions/ses_1/out.txt", b"what was put, changed")
    with expect("artifact_corrupt"):
        await store.get("sessions/ses_1/out.txt")
    fs.pipe_file(f"{root}/sessions/ses_1/out.txt", b"what was pXt")  # same size, other digest
    with expect("artifact_corrupt") as caught:
        async for _ in store.open_read("sessions/ses_1/out.txt"):
            pass
    assert not caught.value.retryable and "put the artifact again" in caught.value.message
    target = tmp_path / "out.txt"
    with expect("artifact_corrupt"):
        await store.get_file("sessions/ses_1/out.txt", target)
    assert not target.exists(), "get_file wrote a file that failed its check"


@pytest.mark.parametrize("kind", ["file", "s3"])
def test_a_process_killed_midway_through_a_put_leaves_nothing_visible(
    kind: str, request: pytest.FixtureRequest
) -> None:
    url: str = request.getfixturevalue(f"{kind}_url")
    options = request.getfixturevalue("moto").storage_options if kind == "s3" else {}
    child = subprocess.Popen(
        [sys.executable, str(CHILD), url, json.dumps(options), "crash/blob.bin"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append(child.stdout.readline() if child.stdout else ""))
        reader.start()
        reader.join(timeout=120)
        assert line == ["midway\n"], f"the child did not get midway: {child.poll()=} {line=}"
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        _, stderr = child.communicate(timeout=30)
    assert child.returncode == -signal.SIGKILL, stderr

    async def look() -> None:
        async with FsspecArtifactStore(url, storage_options=options) as store:
            assert await store.list() == []
            with expect("artifact_not_found"):
                await store.get("crash/blob.bin")
            with expect("artifact_not_found"):
                await store.stat("crash/blob.bin")

    trio.run(look)
    fs, root = raw_fs(url, options)
    if kind == "file":
        leftovers = [Path(p).name for p in fs.find(root)]
        assert len(leftovers) == 1 and leftovers[0].startswith("blob.bin~tmp-"), leftovers
    else:
        bucket, _, prefix = root.partition("/")
        uploads = request.getfixturevalue("moto").client().list_multipart_uploads(Bucket=bucket)
        assert [u["Key"] for u in uploads.get("Uploads", [])] == [f"{prefix}/crash/blob.bin"], (
            "the killed put had a multipart upload in progress, which S3 never shows as an object"
        )


async def test_a_failed_multipart_put_is_aborted_on_s3(s3_url: str, moto: MotoServer) -> None:
    async def chunks() -> Any:
        yield b"x" * (9 * 1024 * 1024)  # more than one part: a multipart upload is under way
        raise OSError("the source went away")

    async with FsspecArtifactStore(s3_url, storage_options=moto.storage_options) as store:
        with pytest.raises(OSError, match="the source went away"):
            await store.put("k.bin", chunks())
        assert await store.list() == []
    bucket = s3_url.removeprefix("s3://").split("/")[0]
    assert moto.client().list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


async def test_a_key_that_is_also_a_folder_is_refused_on_file(file_url: str) -> None:
    async with FsspecArtifactStore(file_url) as store:
        await store.put("a", b"1")
        with expect("validation_error") as caught:
            await store.put("a/b", b"2")
        assert "cannot also be the folder" in caught.value.message
        await store.put("c/d", b"3")
        with expect("validation_error"):
            await store.put("c", b"4")
        assert [a.key for a in await store.list()] == ["a", "c/d"]
        await store.delete("c/d")
        await store.put("c", b"4")  # deleting the last key under c/ removed the folder


async def test_a_key_too_long_for_s3_with_the_prefix_is_refused(s3_url: str, moto: MotoServer) -> None:
    async with FsspecArtifactStore(s3_url, storage_options=moto.storage_options) as store:
        key = "/".join(["k" * 200] * 5)[:1020]
        with expect("validation_error"):
            await store.put(key, b"x")


async def test_an_invalid_list_prefix_is_refused(store: FsspecArtifactStore) -> None:
    for prefix in ("../", "/abs", "a\\b/", "a//"):
        with expect("validation_error"):
            await store.list(prefix)


# -- bad URLs, missing buckets, credentials ---------------------------------------


@pytest.mark.parametrize("url", ["nosuchscheme://bucket/x", "https://example.com/artifacts", ""])
def test_a_bad_url_is_invalid_config_saying_what_to_use(url: str) -> None:
    with pytest.raises(AsmError) as caught:
        FsspecArtifactStore(url)
    assert caught.value.code == "invalid_config"
    assert "s3://" in caught.value.message


def test_without_s3fs_an_s3_url_says_which_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "s3fs", None)  # import s3fs now fails, as when it is not installed
    loaded = importlib.import_module("fsspec.registry")._registry  # the classes fsspec already imported
    monkeypatch.delitem(loaded, "s3", raising=False)
    monkeypatch.delitem(loaded, "s3a", raising=False)
    with pytest.raises(AsmError) as caught:
        FsspecArtifactStore("s3://bucket/prefix")
    assert caught.value.code == "dependency_not_available"
    assert "pip install 'asm-fsspec[s3]'" in caught.value.message


async def test_a_missing_bucket_is_storage_not_found(moto: MotoServer) -> None:
    store = FsspecArtifactStore("s3://no-such-bucket-here/x", storage_options=moto.storage_options)
    with expect("storage_not_found") as caught:
        await store.__aenter__()
    assert "create the bucket" in caught.value.message
    with expect("storage_not_found"):
        await store.put("k", b"x")
    with expect("storage_not_found"):
        await store.list()


async def test_a_local_root_that_is_a_file_is_invalid_config(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    with expect("invalid_config"):
        async with FsspecArtifactStore((tmp_path / "file").as_uri()):
            pass


@pytest.fixture(scope="module")
def strict_moto() -> Any:
    """A second moto server that checks credentials after its first three requests
    (which make a bucket, a user with no permissions, and that user's key)."""
    try:
        with moto_server(env={"INITIAL_NO_AUTH_ACTION_COUNT": "3"}) as server:
            server.create_bucket("locked-bucket")
            iam = server.client("iam")
            iam.create_user(UserName="nobody")
            key = iam.create_access_key(UserName="nobody")["AccessKey"]
            yield server, key["AccessKeyId"], key["SecretAccessKey"]
    except MotoUnavailable as exc:
        pytest.skip(str(exc))


async def test_no_permission_is_storage_permission_denied_and_never_shows_the_secret(
    strict_moto: tuple[MotoServer, str, str],
) -> None:
    server, key_id, secret = strict_moto
    options = {"endpoint_url": server.endpoint_url, "key": key_id, "secret": secret}
    store = FsspecArtifactStore("s3://locked-bucket/x", storage_options=options)
    assert secret not in repr(store) and key_id not in repr(store) and "***" in repr(store)
    for action in (lambda: store.__aenter__(), lambda: store.put("k", b"x"), lambda: store.list()):
        with expect("storage_permission_denied") as caught:
            await action()
        assert "check the credentials" in caught.value.message
        assert secret not in str(caught.value) and key_id not in str(caught.value.details)


async def test_unknown_credentials_are_storage_permission_denied(strict_moto: tuple[MotoServer, str, str]) -> None:
    server, _, _ = strict_moto
    secret = "wrong-secret-value-1234"
    options = {"endpoint_url": server.endpoint_url, "key": "AKIANOTAREALKEY", "secret": secret}
    store = FsspecArtifactStore("s3://locked-bucket/x", storage_options=options)
    with expect("storage_permission_denied") as caught:
        await store.put("k", b"x")
    assert secret not in caught.value.message


async def test_an_unreachable_endpoint_is_storage_connection_failed(bucket: str) -> None:
    options = {"endpoint_url": "http://127.0.0.1:9", "config_kwargs": {"retries": {"max_attempts": 1}}}
    store = FsspecArtifactStore(f"s3://{bucket}/x", storage_options=options)
    with expect("storage_connection_failed") as caught:
        await store.put("k", b"x")
    assert caught.value.retryable


# -- as configured ------------------------------------------------------------------


def test_the_plugin_registers_the_fsspec_artifact_store() -> None:
    registry = load_plugins()
    assert registry.get("artifact_stores", "fsspec").distribution == "asm-fsspec"


async def test_a_runtime_configured_with_the_fsspec_store_uses_it(file_url: str) -> None:
    overrides: dict[str, Any] = {"artifact_store": "fsspec", "artifact_stores": {"fsspec": {"url": file_url}}}
    async with open_runtime(provider="echo", **overrides) as runtime:
        assert isinstance(runtime.artifact_store, FsspecArtifactStore)
        await runtime.artifact_store.put("sessions/ses_1/a.txt", b"kept")
    async with FsspecArtifactStore(file_url) as store:
        assert await store.get("sessions/ses_1/a.txt") == b"kept"


@pytest.mark.parametrize(
    ("table", "words"),
    [
        ({}, "needs a url"),
        ({"url": "memory://x", "bucket": "b"}, "unknown option 'bucket'"),
        ({"url": "memory://x", "block_size": 1024}, "at least 5 MiB"),
        ({"url": "memory://x", "max_threads": 0}, "at least 1"),
    ],
)
def test_a_bad_config_table_is_invalid_config(table: dict[str, Any], words: str) -> None:
    with pytest.raises(AsmError) as caught:
        create_fsspec_store(table)
    assert caught.value.code == "invalid_config"
    assert words in caught.value.message


def test_the_public_names() -> None:
    import asm_fsspec

    assert sorted(asm_fsspec.__all__) == [
        "FsspecArtifactStore",
        "FsspecOptions",
        "asm_register_artifact_stores",
        "create_fsspec_store",
    ]


def test_a_password_in_the_url_is_masked_however_short() -> None:
    # Credential values shorter than 4 characters are left alone in text (they would mangle
    # words); a URL's password is masked whatever its length, by asm's one URL rule.
    store = FsspecArtifactStore("memory://abc:pw1@bucket/x")
    assert "pw1" not in repr(store) and store.url == "memory://abc:***@bucket/x"
