"""Fake secrets to plant in what a provider emits, one per kind asm's default
redaction patterns know (:data:`asm.redaction.DEFAULT_PATTERNS`), so a test can
check that none reaches a store, a sink or a log::

    from asm.testing.secrets import SECRETS, leaky_provider

    run = await runtime.run_once("go", provider=leaky_provider())
    ...
    assert not any(secret in stored_text for secret in SECRETS.values())

Every value is fake and matches its pattern only in the context its phrase in
:data:`SECRET_PHRASES` gives it (a header, a URL, a PEM block).
"""

from __future__ import annotations

from typing import Final

from asm.errors import AsmError
from asm.events import ErrorOccurred, MessageReceived, MessageStreamed, ToolCallCompleted, ToolCallStarted
from asm.model import ProviderError
from asm.providers.scripted import Fail, ScriptedProvider

__all__ = ["SECRETS", "SECRET_PHRASES", "SECRET_TEXT", "leaky_provider"]

#: kind -> the planted secret.
SECRETS: Final = {
    "anthropic_key": "sk-ant-api03-Zx9fakefakefakefakefakefakefake01",
    "openai_key": "sk-proj-Qw8fakefakefakefakefakefakefake02",
    "aws_access_key": "AKIAIOSFODNN7FAKEKEY",
    "aws_secret_key": "wJalrXUtnFEMIxK7MDENGxbPxRfiCYFAKEKEY1234",
    "github_token": "ghp_" + "F" * 36,
    "slack_token": "xoxb-123456789012-fakefakefake",
    "google_api_key": "AIza" + "S" * 35,
    "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJmYWtlLXVzZXIifQ.c2lnbmF0dXJlZmFrZWZha2U",
    "bearer_token": "fakebearertoken0123456789abcdef",
    "url_password": "hunter2-fake-password",
    "pem_private_key": "MIIEfakePRIVATEkeyBODYline",
}

#: Each secret in the text around it that real output would give it.
SECRET_PHRASES: Final = (
    f"anthropic {SECRETS['anthropic_key']} ",
    f"openai {SECRETS['openai_key']} ",
    f"aws {SECRETS['aws_access_key']} ",
    f"aws_secret_access_key={SECRETS['aws_secret_key']} ",
    f"gh {SECRETS['github_token']} ",
    f"slack {SECRETS['slack_token']} ",
    f"google {SECRETS['google_api_key']} ",
    f"jwt {SECRETS['jwt']} ",
    f"Authorization: Bearer {SECRETS['bearer_token']} ",
    f"db postgres://app:{SECRETS['url_password']}@db:5432/x ",
    f"-----BEGIN RSA PRIVATE KEY-----\n{SECRETS['pem_private_key']}\n-----END RSA PRIVATE KEY-----",
)

#: Every phrase, one after the other.
SECRET_TEXT: Final = "".join(SECRET_PHRASES)


def leaky_provider(name: str = "leaky") -> ScriptedProvider:
    """A provider that leaks every secret everywhere a run carries text: streamed
    deltas (each secret whole inside one delta: deltas are scrubbed one by one,
    see :mod:`asm.redaction`), the full message, tool input and output, an
    ``error_occurred`` and the stderr of a failure that ends the run."""
    stderr = "Traceback...\n" + SECRET_TEXT
    return ScriptedProvider(
        [
            *[MessageStreamed(phrase) for phrase in SECRET_PHRASES],
            MessageReceived(SECRET_TEXT),
            ToolCallStarted("t1", "http", {"headers": {"auth": SECRET_TEXT}, "args": [SECRET_TEXT]}),
            ToolCallCompleted("t1", "http", {"body": SECRET_TEXT}),
            ErrorOccurred(
                "provider_error", SECRET_TEXT, ProviderError("fake", "process_error", SECRET_TEXT, stderr=stderr)
            ),
            Fail(
                AsmError(
                    "provider_error",
                    SECRET_TEXT,
                    details={"provider_error": ProviderError("fake", "process_error", SECRET_TEXT, 1, stderr)},
                )
            ),
        ],
        name=name,
    )
