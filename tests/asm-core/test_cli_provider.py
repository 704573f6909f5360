"""asm.process.CLIAgentProvider / CLIProvider: the CLI-agent provider base, tried on
``parrot``, a tiny provider for an imaginary agent CLI written on it (its argv
builder, its line translator and a few declarations), run against a fake
``parrot`` executable (examples/fakes) replaying a recorded stream."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Final

import attrs
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples" / "fakes"))

from fake_cli_contract import CliMisbehaviourContract
from fake_cli_fixtures import Install, fake_bin, install_fake, no_process_left

import asm
from asm import AsmError, InMemorySessionStore, Message, RunInput, RunStatus, SessionManager, TokenUsage
from asm.events import EventData, MessageReceived, MessageStreamed, TokenUsageUpdated, TurnCompleted
from asm.ports import Provider
from asm.process import CLIAgentProvider, CLICommand, CLIOptions, CLIProcess, LineTranslator, classify_failure
from asm.testing import ProviderContract

__all__ = ["fake_bin", "install_fake", "no_process_left"]

#: ``parrot run --json`` as the imaginary CLI prints it: a hello, words, a turn, the answer.
STREAM: Final = Path(__file__).resolve().parent / "parrot_stream.jsonl"
STREAM_LINES: Final[list[dict[str, Any]]] = [json.loads(line) for line in STREAM.read_text().splitlines()]


# -- the provider an author would write on the base -------------------------------------


@attrs.frozen
class ParrotOptions(CLIOptions):
    """``[providers.parrot]``: the common CLI options plus parrot's own."""

    voice: str | None = None
    loud: bool = False
    allow: list[str] = attrs.field(factory=list)
    deny: list[str] = attrs.field(factory=list)


class ParrotLines(LineTranslator):
    """parrot's lines -> asm payloads."""

    def __init__(self, provider: str, *, max_turns: int | None) -> None:
        super().__init__(provider, max_turns=max_turns)
        self.finished = False  # until the ``bye`` line
        self.session: str | None = None
        self.usage = TokenUsage()
        self.failure: str | None = None

    def translate(self, lines: Sequence[dict[str, Any]]) -> list[EventData]:
        out: list[EventData] = []
        for line in lines:
            kind = line.get("kind")
            if kind == "hello":
                self.session = line.get("session")
            elif kind == "say":
                out.append(MessageStreamed(str(line.get("text", ""))))
            elif kind == "turn":
                self.turns += 1
                tokens = line.get("tokens") or {}
                usage = TokenUsage(tokens.get("in", 0), tokens.get("out", 0))
                self.usage = self.usage + usage
                out += [TokenUsageUpdated(usage), TurnCompleted(self.turns)]
            elif kind == "bye":
                self.finished = True
                self.output = str(line.get("answer", ""))
                out.append(MessageReceived(self.output))
            elif kind == "oops":
                self.failure = str(line.get("message", "parrot failed"))
        return out

    def failed(self, proc: CLIProcess) -> AsmError | None:
        if self.failure is None:
            return None
        return proc.error("parrot_error", self.failure, code=classify_failure(self.failure))

    def result(self) -> asm.RunResult:
        return asm.RunResult(output=self.output, usage=self.usage, metadata={"cli_session_id": self.session})


class ParrotProvider(CLIAgentProvider[ParrotOptions]):
    """``parrot run --json``: the prompt on stdin, one JSON object a line on stdout."""

    name = "parrot"
    options_type = ParrotOptions
    program = "parrot"
    install_hint = "pip install parrot-cli"
    inherited_env = ("PARROT_KEY",)
    flags: ClassVar = {
        "voice": "--voice",
        "loud": "--loud",
        "permission_mode": {"tame": [], "wild": ["--no-cage"]},
        "allow": "--allow",
        "deny": "--deny",
    }
    resume_id: ClassVar[str | None] = "a parrot session id"
    tool_lists: ClassVar[tuple[str, str] | None] = ("allow", "deny")

    def command(self, options: ParrotOptions, prompt: str, resume: str | None) -> CLICommand:
        tail = ["--continue", resume, "-"] if resume else ["-"]
        return CLICommand(["run", "--json", *self.option_args(options)], tail, stdin=prompt, env={"PARROT_MODE": "asm"})

    def translator(self, options: ParrotOptions) -> LineTranslator:
        return ParrotLines(self.name, max_turns=options.max_turns)

    def check(self, options: ParrotOptions, *, invalid: str) -> None:
        if options.voice == "":
            raise AsmError(invalid, "parrot voice must not be empty; drop it for the default")


class MuteParrot(ParrotProvider):
    """A parrot that cannot resume and has no tool lists."""

    resume_id = None
    tool_lists = None


def write_stream(path: Path, lines: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


async def run(provider: Provider, prompt: str = "say something", **options: object) -> tuple[asm.Run, list[asm.Event]]:
    manager = SessionManager(InMemorySessionStore(), provider=provider)
    done = await manager.run_once(prompt, options=options)
    return done, list((await manager.store.read_events(done.session_id, run_id=done.id)).events)


# -- the contracts every provider and every CLI provider passes ----------------------------


class TestParrotContract(ProviderContract):
    prompt = "say something"

    @pytest.fixture
    def provider(self, install_fake: Install) -> Provider:
        install_fake("parrot", stream=str(STREAM))
        return ParrotProvider()

    @pytest.fixture
    def slow_provider(self, install_fake: Install) -> Provider:
        exe = install_fake("parrot-stalls", stream=str(STREAM), mode="stall")
        return ParrotProvider(ParrotOptions(path=str(exe), terminate_grace=1.0))


class TestParrotMisbehaves(CliMisbehaviourContract):
    cli = "parrot"
    stream = str(STREAM)
    output = "Polly wants a cracker."

    def provider(self, **options: Any) -> Provider:
        return ParrotProvider(ParrotOptions(**options))


# -- what the base does for it -------------------------------------------------------------


async def test_argv_stdin_and_environment_from_the_declarations(
    install_fake: Install, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = tmp_path / "record.json"
    install_fake("parrot", stream=str(STREAM), record=record)
    monkeypatch.setenv("PARROT_KEY", "k-1")
    monkeypatch.setenv("UNRELATED_SECRET", "nope")
    provider = ParrotProvider.from_config(
        {
            "voice": "soft",
            "loud": True,
            "permission_mode": "wild",
            "allow": ["Read", "Grep"],
            "env": {"PARROT_MODE": "config"},
            "sdk_opts": {"args": ["--feathers"], "env": {"PARROT_EXTRA": "1"}},
        }
    )
    done, events = await run(provider, "hello there", resume="p-41")
    assert done.status is RunStatus.COMPLETED, done.error
    assert done.output == "Polly wants a cracker."
    assert done.result is not None and done.result.metadata["cli_session_id"] == "p-42"
    assert done.result.usage == TokenUsage(5, 4)
    seen = json.loads(record.read_text())
    # the command's args, the options' flags in declared order, sdk_opts.args, then the tail
    assert seen["argv"][1:] == [
        "run",
        "--json",
        "--voice",
        "soft",
        "--loud",
        "--no-cage",
        "--allow",
        "Read,Grep",
        "--feathers",
        "--continue",
        "p-41",
        "-",
    ]
    assert seen["stdin"] == "hello there"
    # the provider's variables < the config's env < sdk_opts.env; only the allow-listed inherited
    assert seen["env"]["PARROT_MODE"] == "config" and seen["env"]["PARROT_EXTRA"] == "1"
    assert seen["env"]["PARROT_KEY"] == "k-1"
    assert "UNRELATED_SECRET" not in seen["env"]
    streamed = [e.data.delta for e in events if isinstance(e.data, MessageStreamed)]
    assert "".join(streamed) == "Polly wants a cracker."
    assert [e.data for e in events if isinstance(e.data, TurnCompleted)] == [TurnCompleted(1)]


async def test_a_run_option_replaces_the_config(install_fake: Install, tmp_path: Path) -> None:
    record = tmp_path / "record.json"
    install_fake("parrot", stream=str(STREAM), record=record)
    done, _ = await run(ParrotProvider(ParrotOptions(voice="soft")), voice="shrill")
    assert done.status is RunStatus.COMPLETED, done.error
    argv = json.loads(record.read_text())["argv"]
    assert argv[argv.index("--voice") + 1] == "shrill"


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"permission_mode": "feral"}, "parrot permission_mode 'feral' is not one of tame, wild"),
        ({"max_turns": 0}, "parrot max_turns must be >= 1, not 0"),
        ({"voice": ""}, "parrot voice must not be empty"),
        ({"sdk_opts": {"argv": []}}, "unknown sdk_opts key 'argv'"),
    ],
)
def test_bad_config_is_refused_when_the_provider_is_built(options: dict[str, Any], named: str) -> None:
    with pytest.raises(AsmError) as caught:
        ParrotProvider.from_config(options)
    assert caught.value.code == "invalid_config" and named in caught.value.message


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"permission_mode": "feral"}, "not one of tame, wild"),
        ({"max_turns": 0}, "max_turns must be >= 1"),
        ({"resume": 7}, "run option 'resume' must be a parrot session id, not 7"),
        ({"colour": "green"}, "does not understand run option 'colour'"),
    ],
)
async def test_bad_run_options_fail_the_run_before_the_cli_starts(
    install_fake: Install, tmp_path: Path, options: dict[str, Any], named: str
) -> None:
    record = tmp_path / "record.json"
    install_fake("parrot", stream=str(STREAM), record=record)
    done, _ = await run(ParrotProvider(), **options)
    assert done.error is not None and done.error.code == "invalid_input" and named in done.error.message
    assert not record.exists()


async def test_resume_is_a_run_option_only_where_the_cli_can_resume(install_fake: Install) -> None:
    install_fake("parrot", stream=str(STREAM))
    done, _ = await run(MuteParrot(), resume="p-41")
    assert done.error is not None and done.error.code == "invalid_input"
    assert "'resume'" in done.error.message


async def test_the_runs_tool_policies_become_the_clis_tool_lists(install_fake: Install, tmp_path: Path) -> None:
    from asm.policy import Policy, ToolRule

    record = tmp_path / "record.json"
    install_fake("parrot", stream=str(STREAM), record=record)
    policy = Policy("no-writes", tool_rules=(ToolRule("Read", "allow"), ToolRule("Write", "deny")))
    for provider, expected in [
        (ParrotProvider(ParrotOptions(deny=["Bash"])), ["--allow", "Read", "--deny", "Bash,Write"]),
        (MuteParrot(ParrotOptions(deny=["Bash"])), ["--deny", "Bash"]),  # no tool lists: the config's alone
    ]:
        manager = SessionManager(InMemorySessionStore(), provider=provider, policies=[policy])
        done = await manager.run_once("look around")
        assert done.status is RunStatus.COMPLETED, done.error
        argv = json.loads(record.read_text())["argv"]
        assert argv[argv.index("--json") + 1 : argv.index("-")] == expected


async def test_a_missing_executable_says_how_to_install_it(fake_bin: Path) -> None:
    del fake_bin
    done, _ = await run(ParrotProvider(ParrotOptions(path="parrot-nowhere")))
    assert done.error is not None and done.error.code == "provider_not_found"
    assert "pip install parrot-cli" in done.error.message and "[providers.parrot]" in done.error.message


def test_model_for_and_capabilities() -> None:
    provider = ParrotProvider(ParrotOptions(model="macaw-1"))
    ask = (Message("user", "x"),)
    assert provider.model_for(RunInput(ask)) == "macaw-1"
    assert provider.model_for(RunInput(ask, options={"model": "kea-2"})) == "kea-2"
    assert ParrotProvider().model_for(RunInput(ask)) is None
    assert provider.capabilities().native_resume and provider.capabilities().tools


async def test_going_past_max_turns_stops_the_cli(install_fake: Install, tmp_path: Path) -> None:
    turn = {"kind": "turn", "tokens": {"in": 1, "out": 1}}
    stream = write_stream(tmp_path / "turns.jsonl", [STREAM_LINES[0], turn, turn, turn, STREAM_LINES[-1]])
    install_fake("parrot", stream=str(stream), mode="slow=0.05")
    done, _ = await run(ParrotProvider(ParrotOptions(max_turns=2)))
    assert done.error is not None and done.error.provider_error is not None
    assert done.error.provider_error.kind == "max_turns"
    assert done.error.message == "parrot went past max_turns=2; asm stopped it"


async def test_a_failure_the_stream_reports_is_classified(install_fake: Install, tmp_path: Path) -> None:
    stream = write_stream(
        tmp_path / "oops.jsonl", [STREAM_LINES[0], {"kind": "oops", "message": "rate limit reached (429)"}]
    )
    install_fake("parrot", stream=str(stream), mode="exit=1")
    done, _ = await run(ParrotProvider())
    assert done.error is not None and done.error.code == "provider_rate_limited" and done.error.retryable
    assert done.error.provider_error is not None and done.error.provider_error.kind == "parrot_error"


async def test_a_stream_cut_before_its_last_line_fails_the_run(install_fake: Install, tmp_path: Path) -> None:
    install_fake("parrot", stream=str(write_stream(tmp_path / "cut.jsonl", STREAM_LINES[:3])))
    done, _ = await run(ParrotProvider())
    assert done.error is not None and done.error.provider_error is not None
    assert done.error.provider_error.kind == "incomplete"
    assert "its stream was cut short" in done.error.message
