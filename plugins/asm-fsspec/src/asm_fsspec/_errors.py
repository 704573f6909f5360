"""Masking credentials, and mapping fsspec/s3fs/botocore failures to AsmErrors (private).

Every message that leaves this plugin goes through :class:`Secrets.mask`: the
values of credential-like storage options and a URL's password never reach a
log, an exception or a repr.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Final
from urllib.parse import urlsplit

from asm import AsmError
from asm.redaction import mask_url

__all__ = ["Secrets", "map_errors"]

#: Storage-option names whose values are credentials (s3fs ``key``/``secret``/``token``,
#: botocore's ``aws_secret_access_key``, adlfs' ``account_key``/``sas_token``, ...).
_SECRET_NAME: Final = re.compile(r"secret|token|passw|credential|key|sas|signature|auth", re.IGNORECASE)
#: Shorter values are left alone: masking them would mangle ordinary words in messages.
_MIN_SECRET_LENGTH: Final = 4
MASK: Final = "***"


class Secrets:
    """The credential values of one store's URL and storage options, to mask in text.

    >>> secrets = Secrets("s3://bucket/x", {"key": "AKIAEXAMPLE", "secret": "s3cr3t-value"})
    >>> secrets.mask("signature for s3cr3t-value failed")
    'signature for *** failed'
    >>> secrets.masked_options()
    {'key': '***', 'secret': '***'}
    """

    def __init__(self, url: str, options: Mapping[str, Any]) -> None:
        self._options = dict(options)
        values: set[str] = set()
        _collect(self._options, values)
        password = urlsplit(url).password if "://" in url else None
        if password:
            values.add(password)
        self._values = sorted((v for v in values if len(v) >= _MIN_SECRET_LENGTH), key=len, reverse=True)
        self.url = self.mask(url)

    def mask(self, text: str) -> str:
        """``text`` with every credential value, and the password of every URL in it
        (however short), replaced by ``***``."""
        text = mask_url(text)
        for value in self._values:
            text = text.replace(value, MASK)
        return text

    def masked_options(self) -> dict[str, Any]:
        """The storage options with credential values replaced by ``***`` (for reprs)."""
        return _masked(self._options)


def _collect(options: Mapping[str, Any], into: set[str]) -> None:
    for name, value in options.items():
        if isinstance(value, Mapping):
            _collect(value, into)
        elif isinstance(value, str) and _SECRET_NAME.search(str(name)):
            into.add(value)


def _masked(options: Mapping[str, Any]) -> dict[str, Any]:
    return {
        name: _masked(value)
        if isinstance(value, Mapping)
        else (MASK if isinstance(value, str) and _SECRET_NAME.search(str(name)) else value)
        for name, value in options.items()
    }


@contextmanager
def map_errors(
    secrets: Secrets, doing: str, *, key: str | None = None, missing: str = "storage", write: bool = False
) -> Iterator[None]:
    """Turn a failure of the filesystem into an :class:`AsmError` saying what to do.

    ``doing`` names the operation (``"writing 'runs/x'"``); ``missing`` says
    what a ``FileNotFoundError`` means here: ``"artifact"`` (the key is not
    stored: ``artifact_not_found``) or ``"storage"`` (the bucket or root folder
    is missing: ``storage_not_found``); ``write`` picks ``storage_write_failed``
    over ``storage_read_failed`` for any other failure. Messages are masked,
    and the original exception is not chained (its text may hold credentials).
    """
    try:
        yield
    except AsmError:
        raise
    except FileNotFoundError as exc:
        details = {"url": secrets.url, **({"key": key} if key is not None else {})}
        if missing == "artifact" and key is not None:
            raise AsmError(
                "artifact_not_found", f"artifact {key!r} does not exist; list keys with .list()", details=details
            ) from None
        raise AsmError(
            "storage_not_found",
            f"{doing} failed: {secrets.url} does not exist ({_text(secrets, exc)}); create the bucket "
            "(or folder) first, or fix [artifact_stores.fsspec] url",
            details=details,
        ) from None
    except PermissionError as exc:
        raise AsmError(
            "storage_permission_denied",
            f"{doing} failed: no permission on {secrets.url} ({_text(secrets, exc)}); check the credentials "
            "(AWS_* environment variables, ~/.aws, the instance role) and the bucket's policy",
            details={"url": secrets.url},
        ) from None
    except (NotADirectoryError, IsADirectoryError, FileExistsError) as exc:
        raise AsmError(
            "validation_error",
            f"{doing} failed: key {key!r} clashes with another artifact ({_text(secrets, exc)}); on this store "
            "a key cannot also be the folder of other keys (e.g. 'a' and 'a/b'): choose another key",
            details={"url": secrets.url, "key": key},
        ) from None
    except Exception as exc:  # noqa: BLE001 - s3fs/botocore raise many types; none may escape raw
        name = type(exc).__name__
        connection = isinstance(exc, ConnectionError | TimeoutError) or "Connect" in name or "Timeout" in name
        failed = "storage_write_failed" if write else "storage_read_failed"
        code = "storage_connection_failed" if connection else failed
        fix = "check that the endpoint is reachable, then retry" if connection else "check the URL and storage options"
        raise AsmError(
            code,
            f"{doing} failed on {secrets.url}: {name}: {_text(secrets, exc)}; {fix}",
            details={"url": secrets.url, "error": name},
        ) from None


def _text(secrets: Secrets, exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return secrets.mask(text[:300])
