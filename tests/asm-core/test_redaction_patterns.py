"""The default secret patterns: the formats they find, and that each runs in
linear time (a regex that backtracks from every position froze the process:
``redact_text("A" * 40_000)`` took seconds)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import pytest

from asm._secret_patterns import DEFAULTS, hold_regex
from asm.redaction import DEFAULT_PATTERNS, EventRedactor, mask_url
from asm.testing.secrets import SECRET_PHRASE_OF, SECRETS

MB = 1 << 20
# Times are compared with a trivially linear regex over the same input, in the
# same test, never with a wall-clock figure. A linear pattern stays within a
# few times that baseline (100x allows for a loaded machine); a quadratic one is thousands of times over it at
# 1 MB, and already hundreds at the 16 KiB tried first (so a regression fails
# fast instead of running for an hour).
BOUND = 100
SIZES = (16 << 10, MB)
BASELINE = re.compile(r"[\s\S](?<=\x00)")  # one attempt at every position, never a match


def fill(piece: str, size: int) -> str:
    return (piece * (size // len(piece) + 1))[:size]


def seconds(work: Callable[[str], object], text: str) -> float:
    start = time.perf_counter()
    work(text)
    return time.perf_counter() - start


def ratio(work: Callable[[str], object], text: str) -> float:
    """``work``'s time on ``text`` over the baseline's; the best of up to six, each
    against a fresh baseline, when the first try looks slow (a busy machine
    pauses either of them)."""
    best = seconds(work, text) / seconds(BASELINE.search, text)
    for _ in range(5):
        if best <= BOUND:
            break
        best = min(best, seconds(work, text) / seconds(BASELINE.search, text))
    return best


def adversarial(kind: str) -> list[str]:
    """Inputs built from the kind's own alphabet: its phrase, the phrase cut
    inside the secret (a near miss each time), the secret glued to itself, the
    secret one character short, what comes before the secret (a key, a scheme,
    a header) and the secret's first character, each repeated to fill the input."""
    phrase, secret = SECRET_PHRASE_OF[kind], SECRETS[kind]
    at = phrase.index(secret)
    return [phrase, phrase[: at + len(secret) // 2], secret, secret[:-1], phrase[:at] or secret[:3], secret[0]]


# One hostile input per shape the patterns have had trouble with, for the whole redactor.
HOSTILE = ["A", "a:", "a://", "://a:", "-----BEGIN ", "sk-", "eyJ", "eyJaaaaaaaa.", "password=", "a_", "Bearer ", " "]


@pytest.mark.parametrize("kind", sorted(DEFAULT_PATTERNS))
def test_each_default_pattern_runs_in_linear_time(kind: str) -> None:
    (secret,) = [p for p in DEFAULTS if p.kind == kind]
    pattern = re.compile(secret.pattern)
    hold = re.compile(hold_regex([secret]))
    for size in SIZES:
        for piece in adversarial(kind):
            text = fill(piece, size)
            found = ratio(lambda t: sum(1 for _ in pattern.finditer(t)), text)
            assert found <= BOUND, f"{kind} on {size} chars of {piece!r}: {found:.0f}x the linear baseline"
            held = ratio(hold.search, text)
            assert held <= BOUND, f"{kind}'s hold on {size} chars of {piece!r}: {held:.0f}x the linear baseline"


@pytest.mark.parametrize("piece", HOSTILE)
def test_the_redactor_runs_in_linear_time(piece: str) -> None:
    # The repro: redact_text("A" * 40_000) took ~3 s (url_password backtracked from every position).
    redactor = EventRedactor()
    for size in SIZES:
        text = fill(piece, size)
        found = ratio(redactor.redact_text, text)
        assert found <= BOUND, f"redact_text on {size} chars of {piece!r}: {found:.0f}x the linear baseline"
        held = ratio(redactor._hold.search, text)
        assert held <= BOUND, f"the stream hold on {size} chars of {piece!r}: {held:.0f}x the linear baseline"
        quick = ratio(redactor._quick.search, text)
        assert quick <= BOUND, f"the delta check on {size} chars of {piece!r}: {quick:.0f}x the linear baseline"


@pytest.mark.parametrize(
    ("text", "kind", "secret"),
    [
        ("STRIPE_SECRET=sk_live_51HfakeFAKEfake0123456789", "stripe_key", "sk_live_51HfakeFAKEfake0123456789"),
        ("restricted rk_live_51HfakeFAKEfake0123456789 here", "stripe_key", "rk_live_51HfakeFAKEfake0123456789"),
        (
            "HF_TOKEN hf_abcdefghijklmnopqrstuvwxyzABCDEFGH",
            "huggingface_token",
            "hf_abcdefghijklmnopqrstuvwxyzABCDEFGH",
        ),
        (
            "git clone https://oauth2:glpat-AbCdEfGhIjKlMnOpQrSt@gitlab.com/x",
            "gitlab_token",
            "glpat-AbCdEfGhIjKlMnOpQrSt",
        ),
        ("REDIS_URL=redis://:s3cr3t-pass@cache:6379/0", "url_password", "s3cr3t-pass"),
        ("password=hunter2-fake", "key_value_secret", "hunter2-fake"),
        ("api_key: 'abcdef123456'", "key_value_secret", "abcdef123456"),
        ('{"secret_key": "qwertyuiop12"}', "key_value_secret", "qwertyuiop12"),
        ("ACCESS_TOKEN = fake.access.token", "key_value_secret", "fake.access.token"),
        ("auth_token:fake-auth-token-1", "key_value_secret", "fake-auth-token-1"),
        ("GITHUB_TOKEN=0123456789abcdef", "key_value_secret", "0123456789abcdef"),
        ('"dbPassword": "camelCaseValue1"', "key_value_secret", "camelCaseValue1"),
        ("export DB_PASSWORD='hunter2-fake'", "key_value_secret", "hunter2-fake"),
        (
            "$ head -3 ~/.ssh/id_rsa\n-----BEGIN OPENSSH PRIVATE KEY-----\n"
            "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAABlwAAAAdzc2gtcn\n"
            "NhAAAAAwEAAQAAAYEAfakefakefakefakefakefakefakefakefakefakefakefakefake\n",
            "pem_private_key",
            "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ",
        ),
        (
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIFHzBJBgkqhkiG9w0BBQ0wPDAbBgkqhkiG9w0BBQwwDgQI\n"
            "-----END ENCRYPTED PRIVATE KEY-----",
            "pem_private_key",
            "MIIFHzBJBgkqhkiG9w0BBQ0wPDAbBgkqhkiG9w0BBQwwDgQI",
        ),
        (
            "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nlQOYBF0fakefakefakefakefake\n=ab12\n"
            "-----END PGP PRIVATE KEY BLOCK-----",
            "pem_private_key",
            "lQOYBF0fakefakefakefakefake",
        ),
    ],
)
def test_formats_the_defaults_used_to_miss(text: str, kind: str, secret: str) -> None:
    cleaned = EventRedactor().redact_text(text)
    assert secret not in cleaned and f"[REDACTED:{kind}]" in cleaned, cleaned


@pytest.mark.parametrize(
    "text",
    [
        "task-management-system-design-doc",  # "sk-" inside a word is no key
        "the password is stored in the vault",
        "token: 42",
        "a basic internationalization question",
        "see https://example.com:8080/path and http://user@host/x",
        "tokens = count_tokens(text)",
        "the key-value store",
        "eyJhbGciOiJIUzI1NiJ9 alone is a header, not a token",
    ],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert EventRedactor().redact_text(text) == text


def test_a_url_keeps_its_user_and_host() -> None:
    assert EventRedactor().redact_text("redis://:pw-123@cache:6379") == "redis://:[REDACTED:url_password]@cache:6379"
    assert mask_url("redis://:pw-123@cache:6379/0") == "redis://:***@cache:6379/0"
    assert mask_url("postgresql://app:p@ss@db/x") == "postgresql://app:***@db/x"
    assert mask_url("sqlite:////var/lib/asm.db") == "sqlite:////var/lib/asm.db"


def test_a_config_pattern_replaces_the_default_of_its_kind() -> None:
    redactor = EventRedactor({"jwt": r"JWT-[0-9]{4}"})
    assert redactor.redact_text("JWT-1234 " + SECRETS["jwt"]) == "[REDACTED:jwt] " + SECRETS["jwt"]
