"""Provider ``gemini``: the Google Gemini API, streamed, with a tool loop.

Built on asm's HTTP provider kit (:mod:`asm.providers.http`: options, the tool
loop, errors, cancellation) and the ``google-genai`` SDK, whose API client
builds each request (base URL, API version, key header, its own headers) and
sends it over httpx2, which runs under trio through anyio; the SDK maps error
responses to ``google.genai.errors.APIError``. The provider reads the raw
Server-Sent Events itself (:mod:`asm_gemini._wire`), cheaper than the SDK's
pydantic models:

==============================================  ==========================================
wire                                            event
==============================================  ==========================================
a ``text`` part                                 ``message_streamed``
a ``text`` part with ``"thought": true``        ``thinking_streamed``
a ``functionCall`` part                         ``tool_call_started``
the tool's result / error (``functionResponse``)  ``tool_call_completed`` / ``tool_call_failed``
the chunk with ``finishReason``: the whole text  ``message_received``
``usageMetadata``                               ``token_usage_updated``, then ``turn_completed``
``finishReason`` SAFETY, ``promptFeedback``     the run fails: ``provider_error``, kind ``safety_blocked``
==============================================  ==========================================

Config (``[providers.gemini]``) and per-run options (``options={...}``)::

    model = "gemini-2.5-flash"    system_prompt = "..."   max_turns = 10
    max_tokens = 8192             temperature = 0.7 (0-2) permission_mode = "default"
    thinking = true | false       (default: on for models that think: gemini-2.5-*, gemini-3*)
    thinking_budget = 1024        (tokens; -1 lets the model decide, 0 turns thinking off on flash)
    api_key = "..."  (else GEMINI_API_KEY, else GOOGLE_API_KEY)
    base_url = "http://127.0.0.1:8765"   api_version = "v1beta"
    tools = ["get_weather"]
    sdk_opts = {timeout = 60, headers = {...}, safetySettings = [...], generationConfig = {topP = 0.9}}
               (timeout and headers to the client, the rest into each request)
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, ClassVar, Final

import attrs
import httpx2
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as genai_types

from asm.continuity import system_texts
from asm.providers import http as kit
from asm.tools import ToolOutcome
from asm_gemini import _wire

__all__ = ["GeminiOptions", "GeminiProvider", "create_provider"]

PROVIDER: Final = "gemini"
API_KEY_ENV: Final = "GEMINI_API_KEY"
#: Read when GEMINI_API_KEY is not set (the google-genai SDK reads both, this one second).
ALT_KEY_ENV: Final = "GOOGLE_API_KEY"
API_VERSIONS: Final = ("v1beta", "v1", "v1alpha")
#: Model families that think (and so may be asked for thought summaries).
THINKING_MODELS: Final = ("gemini-2.5", "gemini-3")


@attrs.frozen
class GeminiOptions(kit.HTTPOptions):
    """The ``gemini`` provider's options (config table and per-run overrides)."""

    RUN_KEYS: ClassVar[frozenset[str]] = kit.HTTPOptions.RUN_KEYS | {"thinking", "thinking_budget"}

    model: str = kit.option("gemini-2.5-flash", nonempty=True)
    temperature: float | None = kit.option(None, min=0.0, max=2.0)
    thinking: bool | None = None
    thinking_budget: int | None = kit.option(None, min=-1)
    api_version: str = kit.option("v1beta", choices=API_VERSIONS)

    def thinks(self) -> bool:
        """Whether to ask for thought summaries: ``thinking``, else by the model's family."""
        if self.thinking is not None:
            return self.thinking
        return self.model.startswith(THINKING_MODELS)


def _status(exc: genai_errors.APIError) -> kit.HTTPFailure:
    status, kind, message, extra, quota = _wire.read_error_body(exc.code, exc.details)
    response = getattr(exc, "response", None)
    headers = {**(dict(response.headers) if response is not None else {}), **extra}
    return kit.HTTPFailure(
        status, kind, message or str(exc.message or exc), headers, request_id=headers.get("x-request-id"), quota=quota
    )


_TIMEOUTS: Final = (httpx2.TimeoutException,)
_RULES: Final = (
    kit.StatusRule((genai_errors.APIError,), _status),
    kit.ErrorRule(_TIMEOUTS, "provider_timeout", "timeout", "{api} timed out ({exc}); retry the run"),
    kit.ErrorRule(
        (httpx2.UnsupportedProtocol, httpx2.InvalidURL),
        "provider_error",
        "invalid_base_url",
        "the {vendor} base URL is invalid ({exc}); fix base_url in [providers.{provider}]",
        retryable=False,
    ),
    kit.ErrorRule(
        (httpx2.TransportError,),
        "provider_unavailable",
        "connection_error",
        "lost the connection to {api} ({cause_type}: {cause}); retry the run",
    ),
)
SERVICE: Final = kit.Service(
    PROVIDER,
    "Gemini",
    API_KEY_ENV,
    sdk="google-genai",
    key_hint=f" ({ALT_KEY_ENV} is read too); get a key at https://aistudio.google.com/apikey",
    rules=_RULES,
    fixes={
        400: "fix the request (model, max_tokens, contents, tools or sdk_opts)",
        403: "the API key lacks access to this model or the API is not enabled for its project",
        404: "check the model name (e.g. gemini-2.5-flash), api_version and base_url",
    },
)


@attrs.frozen
class GeminiClient:
    """One run's client: the SDK's, on an httpx2 client the provider owns (and closes)."""

    sdk: genai.Client
    http: httpx2.AsyncClient

    async def close(self) -> None:
        """Close the connections."""
        await self.http.aclose()


class GeminiProvider(kit.HTTPProvider[GeminiOptions]):
    """The Gemini API as an asm provider (see the module docs).

    >>> provider = GeminiProvider(model="gemini-2.5-flash", tools=[get_weather])  # doctest: +SKIP
    """

    name = PROVIDER
    service = SERVICE
    options_class = GeminiOptions
    turn_class = _wire.GeminiTurn
    client_keys: ClassVar[frozenset[str]] = frozenset({"timeout", "headers", "max_retries"})

    def api_key(self, options: GeminiOptions) -> str | None:
        """``api_key``, else GEMINI_API_KEY, else GOOGLE_API_KEY; ``missing_api_key`` if none."""
        key = options.api_key or os.environ.get(API_KEY_ENV) or os.environ.get(ALT_KEY_ENV)
        if not key:
            raise self.service.missing_key()
        return key

    def new_ssl_context(self) -> Any:
        """httpx2's default context (the CA bundle it ships), loaded once per provider."""
        return httpx2.create_ssl_context()

    def client(
        self, options: GeminiOptions, api_key: str | None, client_opts: dict[str, Any], ssl_context: Any
    ) -> GeminiClient:
        """The SDK's client for one run, on an httpx2 client verifying with ``ssl_context``.

        ``max_retries`` (default 0: asm's workflow retries) becomes the SDK's
        retry options; a ``timeout`` in seconds bounds each request."""
        timeout = client_opts.get("timeout")
        http = httpx2.AsyncClient(verify=ssl_context, timeout=timeout, follow_redirects=True)
        retries = int(client_opts.get("max_retries") or 0)
        http_options = genai_types.HttpOptions(
            base_url=options.base_url or None,
            api_version=options.api_version,
            headers=client_opts.get("headers"),
            # A sync client is required beside the async one, else the SDK builds its own and loads a CA bundle.
            httpx_client=_NO_SYNC_CLIENT,
            httpx_async_client=http,
            retry_options=genai_types.HttpRetryOptions(attempts=retries + 1) if retries else None,
        )
        sdk = genai.Client(api_key=api_key, vertexai=False, http_options=http_options)
        return GeminiClient(sdk, http)

    def conversation(self, ctx: kit.RunContext[GeminiOptions]) -> list[Any]:
        """The messages as ``contents`` (system messages go to ``systemInstruction``)."""
        return _wire.conversation(ctx.run.messages, ctx.run.history)

    def request(self, ctx: kit.RunContext[GeminiOptions], conversation: list[Any]) -> dict[str, Any]:
        options = ctx.options
        system = system_texts(options.system_prompt, ctx.run)
        return _wire.generate_request(
            model=options.model,
            contents=conversation,
            system=system,
            tools=ctx.tools,
            max_tokens=options.max_tokens,
            temperature=options.temperature,
            thinking=options.thinks(),
            thinking_budget=options.thinking_budget,
            extra=ctx.extra,
        )

    @asynccontextmanager
    async def open_stream(self, client: GeminiClient, request: dict[str, Any]) -> AsyncIterator[Any]:
        """POST ``models/<model>:streamGenerateContent?alt=sse`` through the SDK's
        API client (the call ``generate_content_stream`` makes, minus its models);
        yield the raw httpx2 response."""
        body = dict(request)
        model = body.pop("model")
        # The SDK's sender, below its pydantic layer (private: google-genai is pinned below 4).
        api = client.sdk.aio._api_client
        sent = api._build_request("post", f"models/{model}:streamGenerateContent?alt=sse", body)
        response = await api._async_request(sent, None, stream=True)
        raw: Any = response.response_stream  # the httpx2.Response, unread
        try:
            yield raw
        finally:
            await raw.aclose()

    def tool_results(self, results: Sequence[tuple[kit.ToolCall, ToolOutcome]]) -> list[Any]:
        return _wire.tool_results(results)


class _NoSyncClient(httpx2.Client):
    """The sync client handed to the SDK so it builds none; asm only sends async requests."""

    def __init__(self) -> None:
        super().__init__(transport=httpx2.MockTransport(self._refuse))

    @staticmethod
    def _refuse(_request: httpx2.Request) -> httpx2.Response:
        raise RuntimeError("asm's gemini provider sends no synchronous requests")


_NO_SYNC_CLIENT: Final = _NoSyncClient()


def create_provider(config: dict[str, Any], *, registry: Any = None) -> GeminiProvider:
    """The ``gemini`` provider factory (``[providers.gemini]``): see :meth:`HTTPProvider.from_config`."""
    provider: GeminiProvider = GeminiProvider.from_config(config, registry=registry)
    return provider
