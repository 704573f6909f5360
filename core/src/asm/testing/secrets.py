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

__all__ = ["SECRETS", "SECRET_PHRASES", "SECRET_PHRASE_OF", "SECRET_TEXT", "leaky_provider"]

#: kind -> the planted secret.
SECRETS: Final = {
    "pem_private_key": "MIIEfakePRIVATEkeyBODYline",
    "anthropic_key": "sk-ant-api03-Zx9fakefakefakefakefakefakefake01",
    "openai_key": "sk-proj-Qw8fakefakefakefakefakefakefake02",
    "stripe_key": "sk_live_51FakeStripeKey0fakefake0123",
    "aws_access_key": "AKIAIOSFODNN7FAKEKEY",
    "aws_secret_key": "wJalrXUtnFEMIxK7MDENGxbPxRfiCYFAKEKEY1234",
    "github_token": "ghp_" + "F" * 36,
    "gitlab_token": "glpat-FakeGitLab0Token12345",
    "slack_token": "xoxb-123456789012-fakefakefake",
    "slack_webhook": "T0FAKE000/B0FAKE000/FakeFakeFakeFakeFake1234",
    "discord_webhook": "123456789012345678/FakeDiscordWebhookToken-fake_fake",
    "huggingface_token": "hf_FakeHuggingFaceTokenAbCdEfGhIjKlMn",
    "google_api_key": "AIza" + "S" * 35,
    "google_oauth": "ya29.a0FakeGoogleOauthAccessToken12345",
    "npm_token": "npm_FakeNpmToken" + "0" * 24,
    "pypi_token": "pypi-AgEIcHlwaS5vcmc" + "FakePyPI" * 7,
    "sendgrid_key": "SG.FakeSendGridKey01234_-." + "FakeSendGridSecret" * 2 + "0123456",
    "twilio_key": "SK" + "0f" * 16,
    "mailgun_key": "key-" + "fa4e" * 8,
    "shopify_token": "shpat_" + "f4ce" * 8,
    "digitalocean_token": "dop_v1_" + "fa4e" * 16,
    "databricks_token": "dapi" + "f4ce" * 8,
    "linear_api_key": "lin_api_" + "FakeLinear" * 4,
    "postman_key": "PMAK-" + "fa4e" * 6 + "-" + "f4ce" * 8 + "00",
    "grafana_token": "glsa_FakeGrafanaServiceAccount0Tok_fa4ef4ce",
    "sentry_token": "sntrys_FakeSentryAuthToken0123456789abcdef",
    "vault_token": "hvs.FakeVaultServiceToken0123456789",
    "doppler_token": "dp.pt.FakeDopplerPersonalToken0123456789abcdefgh",
    "age_secret_key": "AGE-SECRET-KEY-1" + "QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L"[:29] * 2,
    "groq_key": "gsk_" + "FakeGroq" * 6 + "0123",
    "replicate_token": "r8_FakeReplicateToken0123456789abcdefghi",
    "xai_key": "xai-" + "FakeXai0" * 10,
    "perplexity_key": "pplx-" + "FakePerplexity00" * 3,
    "notion_token": "ntn_" + "FakeNotionIntegration0" * 2 + "ab",
    "heroku_key": "HRKU-FakeHerokuApiKey-0123456789abcdef",
    "telegram_bot_token": "123456789:AAFakeTelegramBotToken0123456789abc",
    "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJmYWtlLXVzZXIifQ.c2lnbmF0dXJlZmFrZWZha2U",
    "bearer_token": "fakebearertoken0123456789abcdef",
    "basic_auth": "dXNlcjpmYWtlLXBhc3N3b3Jk",
    "url_password": "hunter2-fake-password",
    "key_value_secret": "fake-db-passw0rd",
}

#: kind -> the secret in the text around it that real output would give it.
SECRET_PHRASE_OF: Final = {
    "pem_private_key": (
        f"-----BEGIN RSA PRIVATE KEY-----\n{SECRETS['pem_private_key']}\n-----END RSA PRIVATE KEY-----\n"
    ),
    "anthropic_key": f"anthropic {SECRETS['anthropic_key']} ",
    "openai_key": f"openai {SECRETS['openai_key']} ",
    "stripe_key": f"STRIPE_KEY {SECRETS['stripe_key']} ",
    "aws_access_key": f"aws {SECRETS['aws_access_key']} ",
    "aws_secret_key": f"aws_secret_access_key={SECRETS['aws_secret_key']} ",
    "github_token": f"gh {SECRETS['github_token']} ",
    "gitlab_token": f"gitlab {SECRETS['gitlab_token']} ",
    "slack_token": f"slack {SECRETS['slack_token']} ",
    "slack_webhook": f"hook https://hooks.slack.com/services/{SECRETS['slack_webhook']} ",
    "discord_webhook": f"hook https://discord.com/api/webhooks/{SECRETS['discord_webhook']} ",
    "huggingface_token": f"hf {SECRETS['huggingface_token']} ",
    "google_api_key": f"google {SECRETS['google_api_key']} ",
    "google_oauth": f"google {SECRETS['google_oauth']} ",
    "npm_token": f"//registry.npmjs.org/:_authToken {SECRETS['npm_token']} ",
    "pypi_token": f"pypi {SECRETS['pypi_token']} ",
    "sendgrid_key": f"sendgrid {SECRETS['sendgrid_key']} ",
    "twilio_key": f"twilio {SECRETS['twilio_key']} ",
    "mailgun_key": f"mailgun {SECRETS['mailgun_key']} ",
    "shopify_token": f"shopify {SECRETS['shopify_token']} ",
    "digitalocean_token": f"do {SECRETS['digitalocean_token']} ",
    "databricks_token": f"databricks {SECRETS['databricks_token']} ",
    "linear_api_key": f"linear {SECRETS['linear_api_key']} ",
    "postman_key": f"postman {SECRETS['postman_key']} ",
    "grafana_token": f"grafana {SECRETS['grafana_token']} ",
    "sentry_token": f"sentry {SECRETS['sentry_token']} ",
    "vault_token": f"VAULT_TOKEN {SECRETS['vault_token']} ",
    "doppler_token": f"doppler {SECRETS['doppler_token']} ",
    "age_secret_key": f"# age key\n{SECRETS['age_secret_key']}\n",
    "groq_key": f"groq {SECRETS['groq_key']} ",
    "replicate_token": f"replicate {SECRETS['replicate_token']} ",
    "xai_key": f"xai {SECRETS['xai_key']} ",
    "perplexity_key": f"perplexity {SECRETS['perplexity_key']} ",
    "notion_token": f"notion {SECRETS['notion_token']} ",
    "heroku_key": f"heroku {SECRETS['heroku_key']} ",
    "telegram_bot_token": f"bot {SECRETS['telegram_bot_token']} ",
    "jwt": f"jwt {SECRETS['jwt']} ",
    "bearer_token": f"Authorization: Bearer {SECRETS['bearer_token']} ",
    "basic_auth": f"Authorization: Basic {SECRETS['basic_auth']} ",
    "url_password": f"db postgres://app:{SECRETS['url_password']}@db:5432/x ",
    "key_value_secret": f"password={SECRETS['key_value_secret']} ",
}

#: Each secret in the text around it, in the order of :data:`SECRETS`.
SECRET_PHRASES: Final = tuple(SECRET_PHRASE_OF.values())

#: Every phrase, one after the other.
SECRET_TEXT: Final = "".join(SECRET_PHRASES)


def leaky_provider(name: str = "leaky") -> ScriptedProvider:
    """A provider that leaks every secret everywhere a run carries text: streamed
    deltas (cut every 7 characters, so most secrets are split across two or
    more: asm redacts a run's streamed text as one, see :mod:`asm.redaction`),
    the full message, tool input and output, an ``error_occurred`` and the
    stderr of a failure that ends the run."""
    stderr = "Traceback...\n" + SECRET_TEXT
    return ScriptedProvider(
        [
            *[MessageStreamed(SECRET_TEXT[i : i + 7]) for i in range(0, len(SECRET_TEXT), 7)],
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
