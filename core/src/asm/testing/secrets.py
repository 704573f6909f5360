"""Fake secrets to plant in what a provider emits, one per kind asm's default
redaction patterns know (:data:`asm.redaction.DEFAULT_PATTERNS`), so a test can
check that none reaches a store, a sink or a log::

    from asm.testing.secrets import SECRETS, SECRET_TEXT

    provider = ScriptedProvider([MessageStreamed(SECRET_TEXT)])
    ...
    assert not any(secret in stored_text for secret in SECRETS.values())

Every value is fake and matches its pattern only in the context its phrase in
:data:`SECRET_PHRASES` gives it (a header, a URL, a PEM block).
"""

from __future__ import annotations

from typing import Final

__all__ = ["SECRETS", "SECRET_PHRASES", "SECRET_TEXT"]

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
