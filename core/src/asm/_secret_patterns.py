"""The secret formats asm redacts by default (see :mod:`asm.redaction`).

Each :class:`SecretPattern` says how to find a secret whole (``pattern``) and
how its unfinished start looks at the end of streamed text (``hold``), so a
stream can hold back just that tail until the next delta decides it.

Every pattern runs in linear time (``tests/asm-core/test_redaction_patterns.py``
feeds each one a megabyte of adversarial input): a repeated part never sits
between two things that could both match the same characters. In practice:
a token starts only where no token character precedes it (a look-behind, so
one run of token characters is scanned once), bodies are possessive
(``*+``), and whatever follows an unbounded body (the ``@`` of a URL, a PEM
END line) cannot be one of its characters. The families follow the maintained
secret-scanning rule sets (gitleaks, detect-secrets); the regexes are our own.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from typing import Final

import attrs

__all__ = ["DEFAULTS", "GENERIC_HOLD", "Hold", "SecretPattern", "hold_regex", "quick_regex", "words"]


@attrs.frozen
class Hold:
    """How an unfinished secret looks at the end of streamed text: a non-empty
    prefix of one of ``literals``, or a whole one followed by ``then`` (which
    may match nothing). ``after_first`` is an assertion made after the first
    character (where the secret may start), ``ignore_case`` for keys."""

    literals: tuple[str, ...]
    then: str = ""
    after_first: str = ""
    ignore_case: bool = False


@attrs.frozen
class SecretPattern:
    """One kind of secret."""

    kind: str
    #: the secret whole; where it has a group, only the group is the secret
    #: (a URL keeps its user and host, losing only the password)
    pattern: str
    #: lower-case literals, one of which every match contains (lower-cased): text
    #: with none of them is not searched for this kind at all (empty: always searched)
    anchors: tuple[str, ...] = ()
    #: for streamed text: from where one of these matches to the end, the text is
    #: held back until the next delta shows whether it is a secret
    holds: tuple[Hold, ...] = ()
    #: characters one of which every match contains (``=`` or ``:`` after a key):
    #: text with none of them is not searched for this kind either
    needs: str = ""
    #: for a streamed delta, instead of the anchors: what every match begins with
    #: (its literals exactly, then ``then``); a key and its ``=``, not the bare key
    quick: Hold | None = None


_TOKEN = r"A-Za-z0-9_\-"  # what most API tokens are made of
_HELD_TOKEN = r"[A-Za-z0-9_\-.+/=]*+"  # what a token being streamed may go on with
# A token starts where no token character precedes it. Checked after its first
# character, so that every regex begins with a literal: the engine then skips
# ahead to the candidates instead of trying each position.
_AFTER_FIRST = rf"(?<![{_TOKEN}][\s\S])"

#: For patterns asm knows nothing about (``[redact_patterns]``): the last
#: whitespace-free run of text might be the start of one.
GENERIC_HOLD: Final = r"\S(?<!\S[\s\S])\S*+"

_Trie = dict[str, "_Trie"]


def _trie(literals: Iterable[str]) -> _Trie:
    root: _Trie = {}
    for literal in literals:
        node = root
        for char in literal:
            node = node.setdefault(char, {})
        node[""] = {}
    return root


def _char(char: str, ignore_case: bool) -> str:
    if ignore_case and char.lower() != char.upper():
        return f"[{char.lower()}{char.upper()}]"
    return re.escape(char)


def _exact(node: _Trie, after_first: str, ignore_case: bool) -> str:
    """A regex for exactly the literals below ``node`` (a trie: no backtracking between them)."""
    alternatives = [
        _char(char, ignore_case) + after_first + _exact(child, "", ignore_case)
        for char, child in sorted(node.items())
        if char
    ]
    if not alternatives:
        return ""
    body = alternatives[0] if len(alternatives) == 1 else f"(?:{'|'.join(alternatives)})"
    return f"(?:{body})?" if "" in node else body


def _after(node: _Trie, then: str, ignore_case: bool) -> str:
    """What may follow the path to ``node`` in a prefix: more of a literal, or
    ``then`` after a whole one; all optional."""
    rest = [_char(char, ignore_case) + _after(child, then, ignore_case) for char, child in sorted(node.items()) if char]
    if "" in node and then:
        rest.append(then)
    return f"(?:{'|'.join(rest)})?" if rest else ""


def words(*literals: str, after_first: str = "", ignore_case: bool = False) -> str:
    """A regex matching exactly one of ``literals`` (``after_first``: an assertion
    made after their first character)."""
    return _exact(_trie(literals), after_first, ignore_case)


def _by_first_char(parts: Iterable[tuple[str, str]]) -> str:
    """An alternation of ``(first character, rest)`` regexes grouped by their first
    character, each a literal: the engine looks only at positions holding one of
    those characters, and there tries one group."""
    by_first: dict[str, list[str]] = {}
    for char, rest in parts:
        by_first.setdefault(char, []).append(rest)
    alternatives = [
        re.escape(char) + (rests[0] if len(rests) == 1 else f"(?:{'|'.join(rests)})")
        for char, rests in sorted(by_first.items())
    ]
    return "|".join(alternatives)


def _first_chars(hold: Hold, rest: Callable[[_Trie], str]) -> Iterator[tuple[str, str]]:
    for char, child in sorted(_trie(hold.literals).items()):
        for variant in sorted({char.lower(), char.upper()} if hold.ignore_case else {char}):
            yield variant, hold.after_first + rest(child)


def hold_regex(patterns: Iterable[SecretPattern], extra: Iterable[str] = ()) -> str:
    """One regex, anchored at the end, for a tail of text that may still become
    a secret of one of ``patterns`` (or match one of the ``extra`` holds): where
    its match starts, the text must be held back.

    Its alternatives are grouped by their first character, each a literal, so
    the engine looks only at positions holding one of those characters and
    there tries one alternative."""
    parts = [
        part
        for hold in (h for p in patterns for h in p.holds)
        for part in _first_chars(hold, lambda child, h=hold: _after(child, h.then, h.ignore_case))  # type: ignore[misc]
    ]
    alternatives = [_by_first_char(parts)] if parts else []
    alternatives += extra
    return rf"(?:{'|'.join(alternatives) or '(?!)'})\Z"


def quick_regex(patterns: Iterable[SecretPattern]) -> str:
    """One regex that finds, in one pass, anything in a text that needs a closer
    look: a tail that :func:`hold_regex` would hold, or a literal one of the
    ``patterns``' anchors (any case). No match: the text is released as it is."""
    patterns = list(patterns)
    holds = [h for p in patterns for h in p.holds]
    starts = [p.quick for p in patterns if p.quick is not None]
    anchors = Hold(tuple(sorted({a for p in patterns if p.quick is None for a in p.anchors})), ignore_case=True)
    parts = [
        part
        for hold in holds
        for part in _first_chars(hold, lambda child, h=hold: f"(?:{_after(child, h.then, h.ignore_case)})\\Z")  # type: ignore[misc]
    ]
    parts += [
        part
        for start in starts
        for part in _first_chars(start, lambda child, h=start: _exact(child, "", h.ignore_case) + h.then)  # type: ignore[misc]
    ]
    parts += _first_chars(anchors, lambda child: _exact(child, "", True))
    return _by_first_char(parts) or "(?!)"


def _token(kind: str, starts: tuple[str, ...], rest: str) -> SecretPattern:
    """A token that begins with one of ``starts`` (literals) and continues as ``rest``."""
    return SecretPattern(
        kind,
        words(*starts, after_first=_AFTER_FIRST) + rest,
        tuple(sorted({start.lower() for start in starts})),
        (Hold(starts, _HELD_TOKEN, _AFTER_FIRST),),
    )


# Key-value secrets: ``password=…``, ``api_key: "…"``, ``DB_PASSWORD = …``,
# ``"clientSecret": "…"``. The key is one of these words where a name or a
# camelCase part starts (``db_password``, ``userPassword``); ``token`` only as
# the end of a longer name (``GITHUB_TOKEN``), because "token: 42" is prose.
_KEYS = tuple(
    f"{a}{sep}{b}" if b else a
    for a, b in (
        ("password", ""),
        ("passwd", ""),
        ("secret", ""),
        ("secret", "key"),
        ("client", "secret"),
        ("api", "key"),
        ("api", "secret"),
        ("access", "key"),
        ("access", "token"),
        ("auth", "token"),
        ("refresh", "token"),
        ("private", "key"),
        ("account", "key"),
    )
    for sep in (("_", "-", ".", "") if b else ("",))
)
_KEY_SEP = r"[\"']?[ \t]*+(?::=|=>|[:=])[ \t]*+[\"'`]?"
_VALUE = r"[^\s\"'`,;<>(){}\[\]]"


def _exact_ignoring_case(node: _Trie) -> str:
    return _exact(node, "", True)


_KEY_START = r"(?:(?<![0-9A-Za-z][\s\S])|(?<=[a-z0-9][A-Z]))"  # after the key's first character
_KEY_NAMES = Hold(_KEYS, after_first=_KEY_START, ignore_case=True)
_TOKEN_NAME = Hold(("token",), after_first=r"(?<=[_.\-][\s\S])", ignore_case=True)
_KEY_VALUE = SecretPattern(
    "key_value_secret",
    # Literal first characters (both cases), not (?i): the engine skips to candidates.
    f"(?:{_by_first_char(p for h in (_KEY_NAMES, _TOKEN_NAME) for p in _first_chars(h, _exact_ignoring_case))})"
    rf"{_KEY_SEP}({_VALUE}{{6,}}+)",
    ("key", "pass", "secret", "token"),
    (
        Hold(
            (*_KEYS, "token"),
            rf"[\"']?[ \t]*+(?:(?::=|=>|[:=])[ \t]*+[\"'`]?{_VALUE}*+)?",
            _KEY_START,
            ignore_case=True,
        ),
    ),
    needs=":=",
    quick=Hold((*_KEYS, "token"), _KEY_SEP, _KEY_START, ignore_case=True),
)

_PEM_NAME = r"[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?"
_PEM_BODY = r"(?:[^-]|-(?!----))*+"  # anything up to the next run of five dashes
_WORD_START = r"(?<![\w][\s\S])"

#: The default kinds, in the order they are tried (the first wins where two overlap).
DEFAULTS: Final[tuple[SecretPattern, ...]] = (
    SecretPattern(
        "pem_private_key",
        # A whole block, or one cut short (``head id_rsa``): its header and the
        # base64 lines after it.
        rf"-----BEGIN {_PEM_NAME}-----(?:{_PEM_BODY}-----END {_PEM_NAME}-----"
        r"|(?:\s*+[A-Za-z0-9+/=]{16,}+|\s*+[A-Za-z][A-Za-z\-]*+:[^\n]*+)*+)",
        ("-----begin",),
        # Held from its BEGIN line (or what may become one) until its END line is whole.
        (
            Hold(
                ("-----BEGIN",),
                rf"[^-\n]*+(?:-{{0,4}}|-----{_PEM_BODY}(?:-{{1,5}}(?:E(?:N(?:D[^-\n]*+-{{0,4}})?)?)?)?)",
                r"(?<![-A-Z][\s\S])",  # not the dashes that end "...KEY-----"
            ),
        ),
    ),
    _token("anthropic_key", ("sk-ant-",), r"[A-Za-z0-9_\-]{20,}+"),
    _token("openai_key", ("sk-",), r"(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}+"),
    _token("stripe_key", ("sk_live_", "sk_test_", "rk_live_", "rk_test_", "whsec_"), r"[A-Za-z0-9]{10,}+"),
    _token("aws_access_key", ("AKIA", "ASIA", "ABIA", "ACCA"), r"[0-9A-Z]{16}\b"),
    SecretPattern(
        "aws_secret_key",
        r"(?i:aws_?secret_?access_?key)[\"']?[ \t]*+[:=][ \t]*+[\"']?([A-Za-z0-9/+=]{40,}+)",
        ("secret",),  # held as a key_value_secret (its key ends in access_key)
    ),
    _token("github_token", ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"), r"[A-Za-z0-9_]{22,}+"),
    _token(
        "gitlab_token",
        ("glpat-", "gldt-", "glptt-", "glrt-", "glcbt-", "glffct-", "glsoat-", "glimt-", "GR1348941"),
        r"[A-Za-z0-9_\-]{20,}+",
    ),
    _token("slack_token", ("xoxa-", "xoxb-", "xoxe-", "xoxp-", "xoxr-", "xoxs-", "xapp-"), r"[A-Za-z0-9\-]{10,}+"),
    SecretPattern(
        "slack_webhook",
        r"hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9+/_\-]{20,}+",
        ("hooks.slack.com",),
        (Hold(("hooks.slack.com/",), r"[A-Za-z0-9+/_\-]*+", _AFTER_FIRST),),
    ),
    SecretPattern(
        "discord_webhook",
        r"discord(?:app)?\.com/api/webhooks/[0-9]++/[A-Za-z0-9_\-]{20,}+",
        ("discord",),
        (Hold(("discord.com/api/webhooks/", "discordapp.com/api/webhooks/"), r"[0-9/A-Za-z_\-]*+", _AFTER_FIRST),),
    ),
    _token("huggingface_token", ("hf_", "api_org_"), r"[A-Za-z0-9]{30,}+"),
    _token("google_api_key", ("AIza",), r"[0-9A-Za-z_\-]{35}"),
    _token("google_oauth", ("ya29.", "GOCSPX-"), r"[0-9A-Za-z_\-]{20,}+"),
    _token("npm_token", ("npm_",), r"[A-Za-z0-9]{36}\b"),
    _token("pypi_token", ("pypi-AgEIcHlwaS5vcmc",), r"[A-Za-z0-9_\-]{40,}+"),
    _token("sendgrid_key", ("SG.",), r"[A-Za-z0-9_\-]{22}\.[A-Za-z0-9_\-]{43}"),
    _token("twilio_key", ("SK",), r"[0-9a-f]{32}\b"),
    _token("mailgun_key", ("key-",), r"[0-9a-f]{32}\b"),
    _token("shopify_token", ("shpat_", "shpss_", "shpca_", "shppa_"), r"[a-fA-F0-9]{32}\b"),
    _token("digitalocean_token", ("dop_v1_", "doo_v1_", "dor_v1_"), r"[a-f0-9]{64}\b"),
    _token("databricks_token", ("dapi",), r"[a-f0-9]{32}(?:-[0-9])?\b"),
    _token("linear_api_key", ("lin_api_",), r"[A-Za-z0-9]{40}\b"),
    _token("postman_key", ("PMAK-",), r"[a-f0-9]{24}-[a-f0-9]{34}\b"),
    _token("grafana_token", ("glsa_", "glc_"), r"[A-Za-z0-9_+/=]{32,}+"),
    _token("sentry_token", ("sntrys_", "sntryu_"), r"[A-Za-z0-9_+/=]{30,}+"),
    _token("vault_token", ("hvs.", "hvb."), r"[A-Za-z0-9_\-]{24,}+"),
    _token("doppler_token", ("dp.pt.", "dp.st.", "dp.sa.", "dp.ct."), r"[A-Za-z0-9]{40,}+"),
    _token("age_secret_key", ("AGE-SECRET-KEY-1",), r"[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}\b"),
    _token("groq_key", ("gsk_",), r"[A-Za-z0-9]{48,}+"),
    _token("replicate_token", ("r8_",), r"[A-Za-z0-9]{37}\b"),
    _token("xai_key", ("xai-",), r"[A-Za-z0-9]{70,}+"),
    _token("perplexity_key", ("pplx-",), r"[A-Za-z0-9]{40,}+"),
    _token("notion_token", ("ntn_", "secret_"), r"[A-Za-z0-9]{40,}+"),
    _token("heroku_key", ("HRKU-",), r"[A-Za-z0-9_\-]{30,}+"),
    SecretPattern(
        "telegram_bot_token",
        r"(?<![0-9])[0-9]{8,10}:AA[A-Za-z0-9_\-]{33}\b",
        (":aa",),
        # From the bot's id on: a number at the end of a delta waits for the next one.
        (Hold(tuple("0123456789"), r"[0-9]{0,9}+(?::(?:A(?:A[A-Za-z0-9_\-]*+)?)?)?", r"(?<![0-9][\s\S])"),),
    ),
    _token("jwt", ("eyJ",), r"[A-Za-z0-9_\-]{8,}+\.eyJ[A-Za-z0-9_\-]{8,}+\.[A-Za-z0-9_\-]{8,}+"),
    SecretPattern(
        "bearer_token",
        r"(?<![\w])(?i:bearer)[ \t]++([A-Za-z0-9._~+/=\-]{16,}+)",
        ("bearer",),
        (Hold(("bearer",), r"[ \t]++[A-Za-z0-9._~+/=\-]*+", _WORD_START, ignore_case=True),),
    ),
    SecretPattern(
        "basic_auth",
        # A digit, + or / somewhere: "basic internationalization" is not a credential.
        r"(?<![\w])(?i:basic)[ \t]++((?=[A-Za-z]*+[0-9+/])[A-Za-z0-9+/]{16,}+={0,2})",
        ("basic",),
        (Hold(("basic",), r"[ \t]++[A-Za-z0-9+/=]*+", _WORD_START, ignore_case=True),),
    ),
    SecretPattern(
        "url_password",
        # scheme://user:PASSWORD@host; the user may be empty (redis://:PASSWORD@host).
        # The password runs to the last @ before the path: an unescaped @ in it is common.
        r"://[^/\s:@]*+:([^/\s]+)@",
        ("://",),
        (Hold(("://",), r"[^/\s]*+"),),
        needs="@",
    ),
    _KEY_VALUE,
)
