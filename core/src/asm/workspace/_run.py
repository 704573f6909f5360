"""A run's workspace: snapshot before the provider starts; after it ends, snapshot,
diff, the patch as an artifact, and rollback on the outcomes the run asked for."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from asm.errors import AsmError
from asm.events import (
    ArtifactStored,
    ErrorOccurred,
    EventData,
    WorkspaceDiffComputed,
    WorkspaceRolledBack,
    WorkspaceSnapshotTaken,
)
from asm.ports import ArtifactStore
from asm.stores import session_artifact_key
from asm.workspace import diff, rollback, snapshot
from asm.workspace._model import Snapshot, WorkspaceOptions

Publish = Callable[[EventData], Awaitable[None]]
PATCH_CONTENT_TYPE = "text/x-diff"


class RunWorkspace:
    """The workspace of one run (the run option ``workspace``)."""

    def __init__(
        self, options: WorkspaceOptions, *, session_id: str, run_id: str, artifacts: ArtifactStore | None
    ) -> None:
        self.options = options
        self._session_id = session_id
        self._run_id = run_id
        self._artifacts = artifacts
        self.before: Snapshot | None = None

    async def _snapshot(self, label: str) -> Snapshot:
        o = self.options
        return await snapshot(
            o.path,
            backend=o.backend,
            label=label,
            ignore=o.ignore,
            max_file_bytes=o.max_file_bytes,
            max_total_bytes=o.max_total_bytes,
        )

    async def begin(self, publish: Publish) -> None:
        """Snapshot before the provider starts; a failure here fails the run before it
        changes anything."""
        self.before = await self._snapshot("before")
        await publish(WorkspaceSnapshotTaken("before", self.before.backend, self.before.ref))
        if self.before.skipped:
            listed = ", ".join(f"{s.path} ({s.size} bytes)" for s in self.before.skipped[:10])
            more = f" and {len(self.before.skipped) - 10} more" if len(self.before.skipped) > 10 else ""
            await publish(
                ErrorOccurred(
                    "workspace_file_skipped",
                    f"the workspace snapshot left out files over max_file_bytes: {listed}{more}; "
                    "raise max_file_bytes to include them",
                )
            )

    async def end(self, outcome: str) -> list[EventData]:
        """After the run ended ``outcome``: snapshot, diff, store the patch, roll back if
        asked. Returns the events to record (the work is done even if recording fails).
        A failure here is reported as ``error_occurred``; the run's outcome stands."""
        before = self.before
        if before is None:
            return []
        events: list[EventData] = []
        try:
            after = await self._snapshot("after")
            events.append(WorkspaceSnapshotTaken("after", after.backend, after.ref))
            changes = await diff(before, after)
            key = None
            if changes.patch and self._artifacts is not None:
                key = session_artifact_key(self._session_id, "runs", self._run_id, "workspace.patch")
                data = changes.patch.encode("utf-8", "replace")
                stored = await self._artifacts.put(key, data, content_type=PATCH_CONTENT_TYPE)
                events.append(ArtifactStored(key, stored.size, PATCH_CONTENT_TYPE))
            events.append(WorkspaceDiffComputed(changes.files_changed, changes.insertions, changes.deletions, key))
            if outcome in self.options.rollback_on and changes.files_changed:
                paths = await rollback(before, expected=after)
                events.append(WorkspaceRolledBack(before.ref, outcome, tuple(paths)))
        except AsmError as exc:
            events.append(ErrorOccurred(exc.code, f"workspace: {exc.message}"))
        return events
