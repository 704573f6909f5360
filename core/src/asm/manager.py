"""SessionManager: sessions and runs through their state machines, one event stream.

>>> async def main():
...     manager = SessionManager(InMemorySessionStore(), provider=EchoProvider())
...     run = await manager.run_once("hello")
...     print(run.status, run.output)

Events reach ``on_event`` callbacks (sync or async), sinks and the
``asm_event`` hook only after the store acknowledged them, in seq order. A
provider's ``emit`` returns as soon as the event is in the run's bounded write
queue; a writer task commits what has queued in batches (group commit) and
hands the stored events on. A run ends only after all its events are stored.
"""

from __future__ import annotations

import contextlib
import contextvars
import inspect
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import attrs
import trio

from asm._run_gate import RunGate
from asm._trio import single_errors
from asm._unicode import scrub
from asm._write_queue import WriteQueue, new_event
from asm.continuity import WINDOW_SHARE, Continuation, TranscriptCache, estimate_tokens, plan, replay
from asm.cost import Pricing
from asm.errors import AsmError
from asm.events import (
    LIFECYCLE_TYPES,
    RUN_END_TYPES,
    ErrorRecovered,
    Event,
    EventData,
    MessageSent,
    RunCancelled,
    RunCompleted,
    RunFailed,
    RunStarted,
    RunTimeout,
    SessionCancelled,
    SessionCompleted,
    SessionCreated,
    SessionFailed,
    SessionPaused,
    SessionResumed,
    SessionStarted,
)
from asm.model import (
    Capabilities,
    ErrorInfo,
    ProviderError,
    Run,
    RunInput,
    RunResult,
    Session,
    TokenUsage,
    check_continuation,
    new_id,
    utcnow,
)
from asm.owners import current_owner, reporting_process_groups, with_process_group
from asm.plugins import PluginRegistry
from asm.policy import Policy, PolicyGuard, cli_tool_lists, merge_policies
from asm.ports import ArtifactStore, EventCallback, Provider, SessionStore
from asm.states import RunStatus, SessionStatus, check_run_transition, check_session_transition
from asm.stores import claim_refused
from asm.workspace import WorkspaceOptions
from asm.workspace._run import RunWorkspace

__all__ = ["SessionManager"]

# The run whose task (or writer) is running now: cancel_run from inside a run
# (e.g. an on_event callback) must not wait for that run to end.
_current_run: contextvars.ContextVar[str | None] = contextvars.ContextVar("asm_current_run", default=None)

ProviderLike = Provider | str | None
RecordT = TypeVar("RecordT", Session, Run)


@attrs.define
class _ActiveRun:
    scope: trio.CancelScope
    done: trio.Event = attrs.field(factory=trio.Event)
    reason: str | None = None
    #: ``scope.cancel()`` was called (through :meth:`cancel`): one attribute read for
    #: the emit of every event, where ``scope.cancel_called`` asks trio's clock each time
    cancelled: bool = False

    def cancel(self) -> None:
        """Cancel the run's scope."""
        self.cancelled = True
        self.scope.cancel()


class SessionManager:
    """Runs sessions and runs against a store and providers.

    ``provider`` is the default provider; ``providers`` resolves provider names
    (a mapping or a ``name -> Provider`` callable, e.g. a runtime's). With
    ``plugins``, the runtime hooks (``asm_event``, ``asm_transform_event``,
    lifecycle and approval hooks) are called. ``workspace`` is every run's
    ``workspace`` option unless it gives its own (:mod:`asm.workspace`: snapshot,
    diff, rollback), and its patch goes to ``artifact_store``.
    """

    def __init__(
        self,
        store: SessionStore,
        *,
        provider: Provider | None = None,
        providers: Mapping[str, Provider] | Callable[[str], Provider] | None = None,
        plugins: PluginRegistry | None = None,
        on_event: EventCallback | None = None,
        run_timeout: float | None = None,
        event_buffer_size: int = 1000,
        error_text_max_bytes: int = 16_384,
        error_text_max_lines: int = 200,
        pricing: Pricing | None = None,
        policies: Iterable[Policy] = (),
        approval_timeout: float | None = 300.0,
        artifact_store: ArtifactStore | None = None,
        workspace: Mapping[str, Any] | str | None = None,
        continuation: str = "auto",
        continuation_max_tokens: int | None = None,
    ) -> None:
        if event_buffer_size < 1:
            raise AsmError("validation_error", f"event_buffer_size must be >= 1, not {event_buffer_size}")
        self.store = store
        self.provider = provider
        self._providers = providers
        self.plugins = plugins
        self._on_event = on_event
        self.run_timeout = run_timeout
        self.event_buffer_size = event_buffer_size
        #: sessions' transcripts as far as their runs had ended: a run continuing its session
        #: replays what it gained since (asm.continuity.TranscriptCache), not its whole log
        self._transcripts = TranscriptCache()
        self.error_text_max_bytes = error_text_max_bytes
        self.error_text_max_lines = error_text_max_lines
        self.pricing = pricing
        self.policies = list(policies)
        self.approval_timeout = approval_timeout
        #: where runs' artifacts go (a workspace's patch); ``None``: patches are not kept
        self.artifact_store = artifact_store
        #: every run's ``workspace`` option unless it gives its own (see :mod:`asm.workspace`)
        self.workspace = workspace
        if workspace is not None:
            WorkspaceOptions.parse(workspace)  # a bad default fails here, not at the first run
        #: how a run continues its session unless it says (:data:`asm.model.CONTINUATION_MODES`)
        self.continuation = check_continuation(continuation)
        if continuation_max_tokens is not None and continuation_max_tokens < 1:
            raise AsmError("validation_error", f"continuation_max_tokens must be >= 1, not {continuation_max_tokens}")
        #: the transcript's token budget; ``None``: the model's context window (pricing tables)
        self.continuation_max_tokens = continuation_max_tokens
        self._session_policies: dict[str, list[Policy]] = {}
        # Inputs as given, for runs started here: the stored copy may be redacted,
        # but the provider must get what the user wrote.
        self._inputs: dict[str, RunInput] = {}
        self._active: dict[str, _ActiveRun] = {}
        self._listeners: list[Callable[[Event], None]] = []
        self._transforms: list[tuple[str, Callable[..., Any]]] = []
        self._record_transforms: list[tuple[str, Callable[..., Any]]] = []
        self._event_hook: Callable[..., list[Any]] | None = None
        if plugins is not None:
            self._transforms = [
                (impl.plugin_name, impl.function) for impl in reversed(plugins.hook.asm_transform_event.get_hookimpls())
            ]
            self._record_transforms = [
                (impl.plugin_name, impl.function)
                for impl in reversed(plugins.hook.asm_transform_record.get_hookimpls())
            ]
            if plugins.hook.asm_event.get_hookimpls():
                self._event_hook = plugins.hook.asm_event

    # -- sessions ------------------------------------------------------------

    async def start_session(
        self,
        *,
        agent_id: str | None = None,
        provider: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        tags: Iterable[str] = (),
        parent_session_id: str | None = None,
        on_event: EventCallback | None = None,
        policies: Iterable[Policy] = (),
    ) -> Session:
        """Create a session (status ``pending``) and emit ``session_created``.

        ``policies`` apply to every run of the session executed by this manager,
        stacked on the manager's own and each run's."""
        session = self._new_session(agent_id, provider, metadata, tags, parent_session_id)
        if policies:
            self._session_policies[session.id] = list(policies)
        await self._create_session(session, on_event)
        return session

    def _new_session(
        self,
        agent_id: str | None,
        provider: str | None,
        metadata: Mapping[str, Any] | None,
        tags: Iterable[str] = (),
        parent_session_id: str | None = None,
        *,
        one_shot: bool = False,
    ) -> Session:
        provider_name = provider or (self.provider.name if self.provider is not None else None)
        return Session(
            id=new_id("ses"),
            agent_id=agent_id or provider_name or "agent",
            provider=provider_name,
            parent_session_id=parent_session_id,
            metadata=dict(metadata or {}),
            tags=tuple(tags),
            one_shot=one_shot,
        )

    async def _create_session(self, session: Session, on_event: EventCallback | None) -> None:
        await self._save(session)
        await self._publish(session.id, None, [SessionCreated(session.agent_id, session.provider)], on_event)

    async def get_session(self, session_id: str) -> Session:
        """The stored session, or ``session_not_found``."""
        return await self.store.get_session(session_id)

    async def activate_session(self, session_id: str, *, on_event: EventCallback | None = None) -> Session:
        """``pending -> active`` (``session_started``) or ``paused -> active`` (``session_resumed``)."""
        session = await self.store.get_session(session_id)
        data: EventData = SessionResumed() if session.status is SessionStatus.PAUSED else SessionStarted()
        session = await self._move_session(session, SessionStatus.ACTIVE, data, on_event)
        await self._call_hook("asm_session_started", session=session)
        return session

    async def pause_session(
        self, session_id: str, *, reason: str | None = None, on_event: EventCallback | None = None
    ) -> Session:
        """``active -> paused``; runs already executing go on, new runs wait for resume."""
        session = await self.store.get_session(session_id)
        return await self._move_session(session, SessionStatus.PAUSED, SessionPaused(reason), on_event)

    async def resume_session(self, session_id: str, *, on_event: EventCallback | None = None) -> Session:
        """``paused -> active`` (emits ``session_resumed``)."""
        session = await self.store.get_session(session_id)
        if session.status is not SessionStatus.PAUSED:
            raise AsmError(
                "invalid_transition",
                f"session {session_id} is {session.status.value}; only a paused session can resume",
                details={"kind": "session", "from": session.status.value, "to": "active"},
            )
        return await self.activate_session(session_id, on_event=on_event)

    async def complete_session(self, session_id: str, *, on_event: EventCallback | None = None) -> Session:
        """End a session successfully (``session_completed``)."""
        session = await self.store.get_session(session_id)
        session = await self._move_session(session, SessionStatus.COMPLETED, SessionCompleted(), on_event)
        await self._call_hook("asm_session_ended", session=session)
        return session

    async def fail_session(
        self,
        session_id: str,
        error: AsmError | ErrorInfo | str,
        *,
        on_event: EventCallback | None = None,
    ) -> Session:
        """End a session in failure (``session_failed``), recording why."""
        info = _error_info(error, self)
        session = await self.store.get_session(session_id)
        data = SessionFailed(info.code, info.message, info.provider_error)
        session = await self._move_session(session, SessionStatus.FAILED, data, on_event, error=info)
        await self._call_hook("asm_session_ended", session=session)
        return session

    async def cancel_session(
        self, session_id: str, *, reason: str | None = None, on_event: EventCallback | None = None
    ) -> Session:
        """Cancel a session: its pending and executing runs are cancelled first."""
        session = await self.store.get_session(session_id)
        check_session_transition(session.status, SessionStatus.CANCELLED)
        for run in await self.store.list_runs(session_id):
            if not run.status.is_terminal:
                await self.cancel_run(run.id, reason=reason or "session cancelled")
        session = await self.store.get_session(session_id)
        session = await self._move_session(session, SessionStatus.CANCELLED, SessionCancelled(reason), on_event)
        await self._call_hook("asm_session_ended", session=session)
        return session

    async def _move_session(
        self,
        session: Session,
        target: SessionStatus,
        data: EventData,
        on_event: EventCallback | None,
        *,
        error: ErrorInfo | None = None,
    ) -> Session:
        check_session_transition(session.status, target)
        session = attrs.evolve(session, status=target, updated_at=utcnow(), error=error or session.error)
        await self._save(session)
        await self._publish(session.id, None, [data], on_event)
        return session

    # -- runs ----------------------------------------------------------------

    async def start_run(
        self,
        session_id: str,
        input: object,
        *,
        provider: str | None = None,
        options: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        required_capabilities: Iterable[str] = (),
        optional_capabilities: Iterable[str] = (),
        continuation: str | None = None,
    ) -> Run:
        """Create a ``pending`` run in an active session (no event yet).

        ``input`` is a prompt string, a list of messages or a ``RunInput``;
        empty or malformed input is a ``validation_error``. The provider that
        executes the run must have every one of ``required_capabilities``
        (``missing_required_capability`` before it starts, otherwise); the
        ``optional_capabilities`` it lacks are named in ``run_started``.
        ``continuation`` is how the run continues the session's conversation
        (``auto``, ``replay``, ``native``, ``none``; default: the manager's, see
        :mod:`asm.continuity`).
        """
        run_input = _run_input(input, options, required_capabilities, optional_capabilities)
        if continuation is not None:
            run_input = attrs.evolve(run_input, continuation=continuation)
        session = await self.store.get_session(session_id)
        if session.status is not SessionStatus.ACTIVE:
            raise AsmError(
                "session_not_active",
                f"session {session_id} is {session.status.value}; runs start only in an active session "
                "(call activate_session first)",
                details={"session_id": session_id, "status": session.status.value},
            )
        run_id = new_id("run")
        run = Run(
            id=run_id,
            session_id=session_id,
            input=attrs.evolve(run_input, session_id=session_id, run_id=run_id),
            provider=provider or session.provider,
            metadata=dict(metadata or {}),
        )
        await self._save(run)
        self._inputs[run.id] = run.input
        return run

    async def get_run(self, run_id: str) -> Run:
        """The stored run, or ``run_not_found``."""
        return await self.store.get_run(run_id)

    async def execute_run(
        self,
        run_id: str,
        *,
        provider: ProviderLike = None,
        on_event: EventCallback | None = None,
        timeout: float | None = None,
        policies: Iterable[Policy] = (),
        continuation: str | None = None,
    ) -> Run:
        """Execute a pending run to its end and return the final ``Run``.

        The returned run's status is ``completed``, ``failed``, ``cancelled``
        (``cancel_run``) or ``timeout`` (``timeout`` seconds, default the
        manager's ``run_timeout``); ``run.raise_for_status()`` raises on
        anything but completed. If the calling task is cancelled, the run is
        recorded as cancelled and the cancellation propagates. ``policies``
        stack on the manager's and the session's (see :mod:`asm.policy`); a
        violation emits ``policy_violation`` and cancels the run (reason: the
        policy's name) or only warns.

        The provider is sent the session's conversation so far as
        ``continuation`` says (default: the run's, else the manager's; see
        :mod:`asm.continuity`): ``auto`` resumes the provider's own conversation
        when it served the session's last run, else replays the transcript
        (cut to the token budget, ``transcript_truncated``); ``execute_run(...,
        provider="other")`` continues the session on another provider.
        """
        mode = check_continuation(continuation) if continuation is not None else None
        run = await self.store.get_run(run_id)
        original = self._inputs.get(run_id)
        if original is not None:
            run = attrs.evolve(run, input=original)
        session = await self.store.get_session(run.session_id)
        if session.status is not SessionStatus.ACTIVE:
            raise AsmError(
                "session_not_active",
                f"session {session.id} is {session.status.value}; activate it before executing runs",
                details={"session_id": session.id},
            )
        chosen = self._resolve_provider(provider if provider is not None else run.provider)
        if run.status is not RunStatus.PENDING:
            raise claim_refused(run)  # running elsewhere, or ended: as a lost claim race says
        _check_capabilities(chosen, run.input)
        if mode is not None:
            run = attrs.evolve(run, input=attrs.evolve(run.input, continuation=mode))
        run = attrs.evolve(
            run, status=RunStatus.RUNNING, started_at=utcnow(), provider=chosen.name, owner=current_owner()
        )
        # Claimed atomically: of several processes (or tasks) executing this run, one gets it.
        await self.store.claim_run(self._transformed(run))
        self._inputs.pop(run_id, None)
        policy = merge_policies([*self.policies, *self._session_policies.get(session.id, ()), *policies])
        if policy is not None and policy.tool_rules:
            denied, allowed = cli_tool_lists(policy)
            run = attrs.evolve(run, input=attrs.evolve(run.input, denied_tools=denied, allowed_tools=allowed))
        workspace, provider_input = self._workspace(run, chosen)
        active = self._active[run.id] = _ActiveRun(trio.CancelScope())
        token = _current_run.set(run.id)
        try:
            limit = self.run_timeout if timeout is None else timeout
            with single_errors():
                async with trio.open_nursery() as nursery:
                    guard = PolicyGuard(policy) if policy is not None else None
                    queue = WriteQueue(self, run.session_id, run.id, chosen.name, on_event, active.cancel)
                    gate = RunGate(
                        self,
                        run,
                        queue,
                        active,
                        guard,
                        model=_option_model(run.input),
                        judge_tool_starts=not _authorizes(chosen),
                    )
                    nursery.start_soon(queue.run)
                    watchdog = trio.CancelScope()
                    if guard is not None and guard.policy.limits.max_duration_s is not None:
                        nursery.start_soon(gate.watch_duration, watchdog, guard.policy.limits.max_duration_s)
                    try:
                        return await self._drive(session, run, provider_input, chosen, gate, active, limit, workspace)
                    finally:
                        watchdog.cancel()
        finally:
            _current_run.reset(token)
            del self._active[run.id]
            active.done.set()

    def _workspace(self, run: Run, provider: Provider) -> tuple[RunWorkspace | None, RunInput]:
        """The run's workspace (its ``workspace`` option, else the manager's), and the
        input the provider gets: without that option, and with the workspace as the
        ``cwd`` of a provider that works on files (the CLI agents)."""
        value = run.input.options.get("workspace", self.workspace)
        if value is None:
            return None, run.input
        workspace = RunWorkspace(
            WorkspaceOptions.parse(value), session_id=run.session_id, run_id=run.id, artifacts=self.artifact_store
        )
        options = {key: item for key, item in run.input.options.items() if key != "workspace"}
        if "cwd" not in options and _works_on_files(provider):
            options["cwd"] = workspace.options.path
        return workspace, attrs.evolve(run.input, options=options)

    async def _drive(
        self,
        session: Session,
        run: Run,
        provider_input: RunInput,
        provider: Provider,
        gate: RunGate,
        active: _ActiveRun,
        limit: float | None,
        workspace: RunWorkspace | None,
    ) -> Run:
        result: RunResult | None = None
        returned: RunResult | None = None
        error: AsmError | None = None

        async def own_group(pgid: int) -> None:
            # The provider started a process group: recorded, so that recovery can stop it
            # should this process die without stopping it.
            nonlocal run
            assert run.owner is not None
            run = attrs.evolve(run, owner=with_process_group(run.owner, pgid))
            await self._save(run)

        with active.scope:
            with trio.move_on_after(float("inf") if limit is None else limit) as deadline:
                try:
                    await self._call_hook("asm_run_starting", session=session, run=run)
                    gate.model = _planned_model(provider, run.input)
                    lacking = _capabilities(provider).missing(run.input.optional_capabilities)
                    refused: AsmError | None = None
                    try:
                        continued = await self._continue(run, provider, gate.model)
                    except AsmError as exc:  # told after run_started: every run starts the same way
                        continued, refused = Continuation(), exc
                    await gate.queue.put(RunStarted(provider.name, gate.model, lacking, continued.mode))
                    for message in continued.messages or run.input.messages:  # what the provider is sent
                        await gate.queue.put(MessageSent(message.content, message.role))
                    if refused is not None:
                        raise refused
                    if continued.truncated is not None:
                        await gate.queue.put(continued.truncated)
                    if workspace is not None:
                        await workspace.begin(gate.queue.put)  # fails the run before the provider starts
                    with reporting_process_groups(own_group):
                        returned = await self._execute(provider, provider_input, continued, run, gate)
                    await gate.judge_result(returned)
                    # Cancelled (a policy, cancel_run) before the provider returned without
                    # reaching another checkpoint: the cancel stands, whatever it returned.
                    result = None if active.scope.cancel_called else returned
                except AsmError as exc:
                    error = exc
                except Exception as exc:  # noqa: BLE001 - a provider's bug fails its run, not the caller
                    error = AsmError(
                        "provider_error",
                        f"provider {provider.name!r} crashed: {exc!r}",
                        details={"provider_error": ProviderError(provider.name, "crash", repr(exc))},
                    )
                except BaseException:
                    # Cancellation (perhaps inside an exception group) or an interrupt.
                    if not (active.scope.cancel_called or deadline.cancel_called):
                        # Cancelled from outside (the caller's scope): record, then propagate.
                        info = ErrorInfo("cancelled", "run was cancelled (caller cancelled)")
                        cancelled = RunCancelled("caller cancelled")
                        await self._finish(
                            session, run, gate, RunStatus.CANCELLED, cancelled, error=info, workspace=workspace
                        )
                    raise
        with trio.CancelScope(shield=True):
            await gate.settle(returned)
            await gate.queue.close()  # the outcome depends on whether everything emitted was stored and delivered
        if gate.queue.error is not None:
            error = gate.queue.error
        data: EventData
        if error is not None:
            info = _error_info(error, self)
            data = RunFailed(info.code, info.message, info.retryable, info.provider_error)
            return await self._finish(session, run, gate, RunStatus.FAILED, data, error=info, workspace=workspace)
        if deadline.cancelled_caught:
            timeout_s = float(limit or 0.0)
            why = f"run exceeded its timeout of {timeout_s:g}s; raise the timeout"
            info = ErrorInfo("timeout", why, True, details={"timeout_s": timeout_s})
            timed_out = RunTimeout(timeout_s)
            return await self._finish(session, run, gate, RunStatus.TIMEOUT, timed_out, error=info, workspace=workspace)
        if result is None:
            reason = active.reason or "cancelled"
            info = ErrorInfo("cancelled", f"run was cancelled ({reason})")
            cancelled = RunCancelled(reason)
            usage = _final_usage(returned, gate)
            return await self._finish(
                session, run, gate, RunStatus.CANCELLED, cancelled, error=info, usage=usage, workspace=workspace
            )
        usage = _final_usage(result, gate)
        data = RunCompleted(result.stop_reason, usage, gate.model)
        return await self._finish(
            session, run, gate, RunStatus.COMPLETED, data, result=result, usage=usage, workspace=workspace
        )

    async def _continue(self, run: Run, provider: Provider, model: str | None) -> Continuation:
        """How ``run`` continues its session (:func:`asm.continuity.plan`)."""
        mode = run.input.continuation or self.continuation
        if "resume" in run.input.options:  # the caller named the conversation to resume by hand
            return Continuation("native")
        return await plan(
            self.store,
            attrs.evolve(run, provider=provider.name),
            mode=mode,
            native_resume=_capabilities(provider).native_resume,
            budget=self._token_budget(model),
            count=self._token_counter(provider.name, model),
            cache=self._transcripts,
        )

    def _token_budget(self, model: str | None) -> int | None:
        """The transcript's budget: ``continuation_max_tokens``, else a share of the model's
        context window as the pricing tables give it, else none."""
        if self.continuation_max_tokens is not None or self.pricing is None:
            return self.continuation_max_tokens
        price = self.pricing.price(model)
        window = price.context_window if price is not None else None
        return int(window * WINDOW_SHARE) if window is not None else None

    def _token_counter(self, provider: str, model: str | None) -> Callable[[str], int]:
        hook = self.plugins.hook.asm_count_tokens if self.plugins is not None else None
        if hook is None or not hook.get_hookimpls():
            return estimate_tokens

        def count(text: str) -> int:
            counted = hook(text=text, model=model, provider=provider)
            return counted if isinstance(counted, int) else estimate_tokens(text)

        return count

    async def _execute(
        self, provider: Provider, run_input: RunInput, continued: Continuation, run: Run, gate: RunGate
    ) -> RunResult:
        """The provider executes the run, continuing the session as planned; a resume id
        the provider no longer knows (``resume_not_found``) falls back to replay, said
        with an ``error_recovered``."""
        try:
            return await provider.execute(continued.apply(run_input), gate)
        except AsmError as exc:
            if exc.code != "resume_not_found" or continued.resume_id is None:
                raise
        model = gate.model
        replayed = await replay(
            self.store,
            run,
            budget=self._token_budget(model),
            count=self._token_counter(provider.name, model),
            cache=self._transcripts,
        )
        await gate.queue.put(
            ErrorRecovered(
                "resume_not_found",
                f"{provider.name} no longer knows conversation {continued.resume_id!r}; "
                f"the transcript ({len(replayed.history)} entries) is replayed instead",
            )
        )
        if replayed.truncated is not None:
            await gate.queue.put(replayed.truncated)
        return await provider.execute(replayed.apply(run_input), gate)

    async def _finish(
        self,
        session: Session,
        run: Run,
        gate: RunGate,
        status: RunStatus,
        data: EventData,
        *,
        result: RunResult | None = None,
        error: ErrorInfo | None = None,
        usage: TokenUsage | None = None,
        workspace: RunWorkspace | None = None,
    ) -> Run:
        # Everything the provider emitted is stored before the run is final;
        # the terminal event comes after the final state, so whoever sees it
        # can read the finished run. The outcome is decided by now: it is
        # recorded even if the caller is cancelled meanwhile (shielded).
        with trio.CancelScope(shield=True):
            await gate.queue.close()
            check_run_transition(run.status, status)
            # The workspace's after-work (diff, patch, rollback) is done before the run is final.
            ending = [*(await workspace.end(status.value) if workspace is not None else ()), data]
            run = attrs.evolve(
                run,
                status=status,
                ended_at=utcnow(),
                result=result,
                error=error,
                usage=usage if usage is not None else gate.usage,
                cost=result.cost if result is not None and result.cost is not None else gate.cost,
                model=gate.model,
            )
            await self._save(run)
            # After a consumer failed, the run's end is still recorded, just not re-delivered to it.
            quiet = gate.queue.error is not None
            try:
                await self._publish(
                    run.session_id, run.id, ending, gate.queue.on_event, provider=run.provider, quiet=quiet
                )
            except AsmError:
                if not gate.queue.store_failed:
                    raise
                # An append failed before; the log was worth a try (the error may have been transient).
            await self._call_hook("asm_run_finished", session=session, run=run)
        return run

    async def cancel_run(self, run_id: str, *, reason: str | None = None) -> Run:
        """Cancel a run and return it.

        A pending run becomes ``cancelled`` at once. A run executing in this
        manager is cancelled through its cancel scope; the call waits until it
        has ended (unless made from inside that run, e.g. from its
        ``on_event`` callback). A run that has already ended is returned as
        is. A run executing in another process cannot be cancelled from here.
        """
        active = self._active.get(run_id)
        if active is not None:
            active.reason = active.reason or reason or "cancel_run"
            active.cancel()
            if _current_run.get() != run_id:
                await active.done.wait()
            return await self.store.get_run(run_id)
        run = await self.store.get_run(run_id)
        if run.status.is_terminal:
            return run
        if run.status is RunStatus.RUNNING:
            raise AsmError(
                "invalid_operation",
                f"run {run_id} is executing in another process (or one that died); cancel it there, "
                "or recover runs of dead processes with the store's maintenance",
                details={"run_id": run_id},
            )
        reason = reason or "cancel_run"
        run = attrs.evolve(
            run,
            status=check_run_transition(run.status, RunStatus.CANCELLED),
            ended_at=utcnow(),
            error=ErrorInfo("cancelled", f"run was cancelled ({reason})"),
        )
        await self._save(run)
        await self._publish(run.session_id, run.id, [RunCancelled(reason)], None, provider=run.provider)
        return run

    async def run_once(
        self,
        input: object,
        *,
        provider: ProviderLike = None,
        agent_id: str | None = None,
        on_event: EventCallback | None = None,
        timeout: float | None = None,
        options: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        policies: Iterable[Policy] = (),
        required_capabilities: Iterable[str] = (),
        optional_capabilities: Iterable[str] = (),
        continuation: str | None = None,
    ) -> Run:
        """One run in a new session: create, activate, execute, then complete
        the session (or fail / cancel it as the run ended). Returns the run.
        A provider without one of ``required_capabilities`` is refused before
        anything is stored.

        >>> run = await manager.run_once("What is 2 + 2?")  # doctest: +SKIP
        >>> run.raise_for_status().output  # doctest: +SKIP
        """
        run_input = _run_input(input, options, required_capabilities, optional_capabilities)
        if continuation is not None:  # a new session has nothing to continue, but the mode is checked
            run_input = attrs.evolve(run_input, continuation=continuation)
        chosen = self._resolve_provider(provider)
        _check_capabilities(chosen, run_input)
        session = self._new_session(agent_id, chosen.name, metadata, one_shot=True)
        run: Run | None = None
        try:
            await self._create_session(session, on_event)
            await self.activate_session(session.id, on_event=on_event)
            run = await self.start_run(session.id, run_input, provider=chosen.name)
            run = await self.execute_run(run.id, provider=chosen, on_event=on_event, timeout=timeout, policies=policies)
        except BaseException as exc:
            # Cancelled, or the store (or a consumer) broke: whatever stage it was at, the
            # one-shot session ends and its log tells how the run ended, if the log is writable.
            with trio.CancelScope(shield=True):
                await self._abandon(session.id, run.id if run is not None else None, exc, on_event)
            raise
        if run.status is RunStatus.COMPLETED:
            await self.complete_session(session.id, on_event=on_event)
        elif run.status is RunStatus.CANCELLED:
            await self.cancel_session(session.id, reason=run.error.message if run.error else None, on_event=on_event)
        else:
            assert run.error is not None
            await self.fail_session(session.id, run.error, on_event=on_event)
        return run

    async def _abandon(
        self, session_id: str, run_id: str | None, exc: BaseException, on_event: EventCallback | None
    ) -> None:
        """End a one-shot session (and its run, if it has not ended) that ``run_once``
        leaves through ``exc``: cancelled if the caller was, else failed. Best effort:
        the store may be what broke, and ``exc`` is what the caller gets either way."""
        if isinstance(exc, Exception):
            failure = exc if isinstance(exc, AsmError) else AsmError("internal_error", f"run_once failed: {exc!r}")
            info = _error_info(failure, self)
        else:
            info = ErrorInfo("cancelled", "run was cancelled (caller cancelled)")
        with contextlib.suppress(AsmError):
            run = await self.store.get_run(run_id) if run_id is not None else None
            if run is not None and not run.status.is_terminal:
                ended = RunStatus.CANCELLED if info.code == "cancelled" or run.status is RunStatus.PENDING else None
                run = attrs.evolve(run, status=ended or RunStatus.FAILED, ended_at=utcnow(), error=info)
                await self._save(run)
            if run is not None:
                # Its end event may be what failed to append (the run's record was saved first).
                told = await self.store.read_events(session_id, run_id=run.id, types=RUN_END_TYPES, limit=1)
                if not told.events:
                    data = _end_event(run)
                    await self._publish(session_id, run.id, [data], on_event, provider=run.provider, quiet=True)
        with contextlib.suppress(AsmError):
            session = await self.store.get_session(session_id)
            if session.status.is_terminal:
                return
            if info.code == "cancelled":
                await self._move_session(
                    session, SessionStatus.CANCELLED, SessionCancelled("caller cancelled"), on_event
                )
            else:
                data = SessionFailed(info.code, info.message, info.provider_error)
                await self._move_session(session, SessionStatus.FAILED, data, on_event, error=info)
            await self._call_hook("asm_session_ended", session=await self.store.get_session(session_id))

    # -- observers and extra events ------------------------------------------

    def add_event_listener(self, listener: Callable[[Event], None]) -> None:
        """Call ``listener(event)`` for every event this manager stores, after
        the store acknowledged it and in the order it is handed on (what the
        in-process broker and durable subscriptions feed on).

        The listener is synchronous and must not block: it runs inside the
        pipeline of the run that produced the event.
        """
        self._listeners.append(listener)

    def remove_event_listener(self, listener: Callable[[Event], None]) -> None:
        """Stop calling ``listener`` (no error if it was not added)."""
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    async def record_event(
        self,
        session_id: str,
        data: EventData,
        *,
        run_id: str | None = None,
        provider: str | None = None,
        on_event: EventCallback | None = None,
    ) -> Event:
        """Store one event outside a run's provider stream (e.g. ``run_queued``
        from a SessionServer) through the same pipeline: transforms, store,
        then callbacks, listeners and the ``asm_event`` hook. Returns it as stored."""
        stored = await self._publish(session_id, run_id, [data], on_event, provider=provider)
        return stored[0]

    # -- plumbing ------------------------------------------------------------

    def _resolve_provider(self, provider: ProviderLike) -> Provider:
        if provider is None:
            if self.provider is None:
                raise AsmError(
                    "validation_error",
                    "no provider given and the manager has no default; pass provider=... "
                    "or create SessionManager(store, provider=...)",
                )
            return self.provider
        if not isinstance(provider, str):
            return provider
        if self.provider is not None and self.provider.name == provider:
            return self.provider
        if self._providers is None:
            raise AsmError(
                "provider_not_found",
                f"no provider named {provider!r}: this manager resolves no names; pass the provider object",
            )
        if callable(self._providers):
            return self._providers(provider)
        try:
            return self._providers[provider]
        except KeyError:
            known = ", ".join(sorted(self._providers)) or "none"
            raise AsmError("provider_not_found", f"no provider named {provider!r}; known: {known}") from None

    async def _save(self, record: Session | Run) -> None:
        """Save a session or run, through the ``asm_transform_record`` hooks (redaction)."""
        if isinstance(record, Session):
            await self.store.save_session(self._transformed(record))
        else:
            await self.store.save_run(self._transformed(record))

    def _transformed(self, record: RecordT) -> RecordT:
        """``record`` as it is stored: valid Unicode (asm._unicode), then as the
        ``asm_transform_record`` hooks (redaction) leave it."""
        record = scrub(record)
        for plugin_name, transform in self._record_transforms:
            try:
                replaced = transform(record=record)
            except Exception as exc:
                raise AsmError(
                    "internal_error",
                    f"plugin {plugin_name!r}: asm_transform_record raised {exc!r}; fix or uninstall the plugin",
                    details={"plugin": plugin_name},
                ) from exc
            if replaced is not None:
                if type(replaced) is not type(record) or replaced.id != record.id:
                    raise AsmError(
                        "internal_error",
                        f"plugin {plugin_name!r}: asm_transform_record must return None or a "
                        f"{type(record).__name__} with the same id",
                        details={"plugin": plugin_name},
                    )
                record = replaced
        return record

    async def _make_events(
        self, session_id: str, run_id: str | None, data: EventData, provider: str | None
    ) -> list[Event]:
        """The events to store for ``data``: as the ``asm_transform_event`` hooks
        leave it — usually the one event, but a hook may hold it back (streamed
        text, ``[]``) or release events before it (a list)."""
        events = [new_event(session_id, run_id, data, provider)]
        for plugin_name, transform in self._transforms:
            transformed: list[Event] = []
            for event in events:
                out = _transform_event(plugin_name, transform, event)
                transformed.extend(out if isinstance(out, list) else await out)
            events = transformed
        return events

    async def _publish(
        self,
        session_id: str,
        run_id: str | None,
        datas: Sequence[EventData],
        on_event: EventCallback | None,
        *,
        provider: str | None = None,
        quiet: bool = False,
    ) -> list[Event]:
        events = [event for d in datas for event in await self._make_events(session_id, run_id, d, provider)]
        if not events:
            return []
        stored = await self.store.append_events(events)
        await self._deliver(stored, on_event, quiet=quiet)
        return stored

    async def _deliver(self, events: Sequence[Event], on_event: EventCallback | None, *, quiet: bool = False) -> None:
        """Hand stored events to listeners, callbacks and the ``asm_event`` hook, in order.

        A consumer that raises becomes ``AsmError("internal_error")`` naming it
        (it fails the run it watches); with ``quiet``, consumers' errors are
        dropped (used for a failed run's final event).
        """
        callbacks = [c for c in (self._on_event, on_event) if c is not None]
        hook = self._event_hook
        direct = _direct_event_hooks(hook)
        listeners = self._listeners
        for event in events:
            try:
                for listener in listeners:
                    listener(event)
                for callback in callbacks:
                    outcome = callback(event)
                    if outcome is not None:
                        await outcome
                if direct is not None:
                    for function in direct:
                        outcome = function(event)
                        if outcome is not None and inspect.isawaitable(outcome):
                            await outcome
                elif hook is not None:
                    for outcome in hook(event=event):
                        if inspect.isawaitable(outcome):
                            await outcome
            except AsmError:
                if not quiet:
                    raise
            except Exception as exc:
                if not quiet:
                    raise AsmError(
                        "internal_error",
                        f"an event consumer raised {exc!r} on {event.type.value} (seq {event.seq}); "
                        "fix the on_event callback, sink or asm_event hook",
                        details={"event_id": event.id},
                    ) from exc

    async def _call_hook(self, name: str, **kwargs: Any) -> None:
        if self.plugins is None:
            return
        try:
            for outcome in getattr(self.plugins.hook, name)(**kwargs):
                if inspect.isawaitable(outcome):
                    await outcome
        except AsmError:
            raise
        except Exception as exc:
            raise AsmError(
                "internal_error", f"a plugin's {name} hook raised {exc!r}; fix or uninstall the plugin"
            ) from exc


def _direct_event_hooks(hook: Callable[..., list[Any]] | None) -> list[Callable[[Event], Any]] | None:
    """The ``asm_event`` implementations to call directly, in pluggy's order (last
    registered first), or ``None`` to call them through pluggy (a hook wrapper).

    pluggy's call machinery costs about 2 us per call, more than a telemetry plugin's
    own work on an event; like ``asm_transform_event``, ``asm_event`` is called
    directly. Read once per delivered batch, so a plugin registered meanwhile is seen
    from the next batch."""
    impls = getattr(hook, "get_hookimpls", None)
    if impls is None:
        return None
    functions: list[Callable[[Event], Any]] = []
    for impl in reversed(impls()):
        if impl.hookwrapper or impl.wrapper:
            return None
        functions.append(impl.function if impl.argnames else _without_event(impl.function))
    return functions


def _without_event(function: Callable[[], Any]) -> Callable[[Event], Any]:
    """An ``asm_event`` implementation that takes no argument (pluggy allows it)."""
    return lambda _event: function()


def _end_event(run: Run) -> EventData:
    """The terminal event of an ended ``run``, rebuilt from its record."""
    error = run.error or ErrorInfo("internal_error", "run ended without a recorded error")
    if run.status is RunStatus.COMPLETED:
        return RunCompleted(run.result.stop_reason if run.result else None, run.usage, run.model)
    if run.status is RunStatus.CANCELLED:
        return RunCancelled(error.message)
    if run.status is RunStatus.TIMEOUT:
        return RunTimeout(float(error.details.get("timeout_s", 0.0)))
    return RunFailed(error.code, error.message, error.retryable, error.provider_error)


def _final_usage(result: RunResult | None, gate: RunGate) -> TokenUsage:
    """The provider's own final figure if it gave one, else the sum of its updates."""
    return result.usage if result is not None and result.usage != TokenUsage() else gate.usage


def _transform_event(
    plugin_name: str, transform: Callable[..., Any], event: Event
) -> list[Event] | Coroutine[Any, Any, list[Event]]:
    """One ``asm_transform_event`` hook applied to ``event``: what it returns
    (``None``, an event, a list of events), checked and as a list; a coroutine
    giving that list when the hook answered with an awaitable (the caller awaits it)."""
    try:
        replaced = transform(event=event)
    except Exception as exc:
        raise _transform_failed(plugin_name, exc) from exc
    if replaced is None:  # the usual answer first: this runs for every event
        return [event]
    if type(replaced) is Event and (replaced.id, replaced.session_id, replaced.run_id) == (
        event.id,
        event.session_id,
        event.run_id,
    ):
        return [replaced]  # the next most usual: the event, changed
    if type(replaced) is not list and type(replaced) is not Event and inspect.isawaitable(replaced):
        return _awaited_transform(plugin_name, event, replaced)
    return _checked_transform(plugin_name, event, replaced)


async def _awaited_transform(plugin_name: str, event: Event, answer: Awaitable[Any]) -> list[Event]:
    try:
        replaced = await answer
    except Exception as exc:
        raise _transform_failed(plugin_name, exc) from exc
    return [event] if replaced is None else _checked_transform(plugin_name, event, replaced)


def _transform_failed(plugin_name: str, exc: Exception) -> AsmError:
    return AsmError(
        "internal_error",
        f"plugin {plugin_name!r}: asm_transform_event raised {exc!r}; fix or uninstall the plugin",
        details={"plugin": plugin_name},
    )


def _checked_transform(plugin_name: str, event: Event, replaced: object) -> list[Event]:
    answer = replaced if isinstance(replaced, list) else [replaced]
    events = [e for e in answer if isinstance(e, Event)]
    ids = [e.id for e in events]
    if (
        len(events) != len(answer)
        or len(set(ids)) != len(ids)
        or any((e.session_id, e.run_id) != (event.session_id, event.run_id) for e in events)
        or (event.type in LIFECYCLE_TYPES and event.id not in ids)
    ):
        raise AsmError(
            "internal_error",
            f"plugin {plugin_name!r}: asm_transform_event must return None or an Event (the event "
            "replaced: same id, session_id and run_id, use attrs.evolve) or a list of Events of the same "
            f"session and run, each once, lifecycle events kept; not {replaced!r:.200}",
            details={"plugin": plugin_name},
        )
    return events


def _run_input(
    input: object,
    options: Mapping[str, Any] | None,
    required: Iterable[str] = (),
    optional: Iterable[str] = (),
) -> RunInput:
    """``input`` as a ``RunInput``, or ``validation_error`` / ``invalid_input`` before anything is stored."""
    run_input = RunInput.coerce(input, options=options)
    if "workspace" in run_input.options:
        WorkspaceOptions.parse(run_input.options["workspace"])
    wanted: tuple[str, ...] = (*run_input.required_capabilities, *required)
    wished: tuple[str, ...] = (*run_input.optional_capabilities, *optional)
    if (wanted, wished) != (run_input.required_capabilities, run_input.optional_capabilities):
        run_input = attrs.evolve(run_input, required_capabilities=wanted, optional_capabilities=wished)
    return run_input


def _capabilities(provider: Provider) -> Capabilities:
    try:
        return provider.capabilities()
    except Exception:  # noqa: BLE001 - a provider that cannot say is taken to have nothing extra
        return Capabilities()


def _check_capabilities(provider: Provider, run_input: RunInput) -> None:
    """Refuse a provider without a capability the run requires."""
    missing = _capabilities(provider).missing(run_input.required_capabilities)
    if missing:
        raise AsmError(
            "missing_required_capability",
            f"provider {provider.name!r} lacks {', '.join(missing)}, which the run requires; "
            "choose a provider that has it (asm plugins lists them) or drop the requirement",
            details={"provider": provider.name, "missing": list(missing)},
        )


def _works_on_files(provider: Provider) -> bool:
    return _capabilities(provider).file_access  # a provider that cannot say gets no cwd


def _authorizes(provider: Provider) -> bool:
    return _capabilities(provider).authorizes_tools  # one that cannot say is judged as its tools start


def _option_model(run: RunInput) -> str | None:
    model = run.options.get("model")
    return model if isinstance(model, str) and model else None


def _planned_model(provider: Provider, run: RunInput) -> str | None:
    """The model ``run`` will use, as the provider says before it starts
    (:class:`asm.ports.ModelAware`), else the run's ``model`` option."""
    model_for = getattr(provider, "model_for", None)
    if not callable(model_for):
        return _option_model(run)
    model = model_for(run)
    return model if isinstance(model, str) and model else None


def _error_info(error: AsmError | ErrorInfo | str, manager: SessionManager | None = None) -> ErrorInfo:
    if isinstance(error, str):
        info = ErrorInfo("internal_error", error)
    elif isinstance(error, AsmError):
        info = ErrorInfo.from_error(error)
    else:
        info = error
    if manager is not None and info.provider_error is not None:
        cut = info.provider_error.truncated_to(
            max_bytes=manager.error_text_max_bytes, max_lines=manager.error_text_max_lines
        )
        info = attrs.evolve(info, provider_error=cut)
    return info
