"""The simulated runner itself: it must refuse what it does not simulate, and read traces as GitHub does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.action.runner import HarnessError, SimulatedRunner, evaluate, parse_commands, parse_output_file


def write_action(directory: Path, steps: list[dict[str, Any]], **extra: Any) -> Path:
    spec = {
        "name": "probe",
        "description": "a probe action",
        "inputs": {"word": {"description": "a word", "default": "${{ github.event_name }}"}},
        "outputs": {"said": {"description": "what it said", "value": "${{ steps.say.outputs.said }}"}},
        "runs": {"using": "composite", "steps": steps},
        **extra,
    }
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "action.yml").write_text(yaml.safe_dump(spec))
    return directory


SAY: dict[str, Any] = {
    "id": "say",
    "shell": "bash",
    "env": {"WORD": "${{ inputs.word }}"},
    "run": 'echo "said=$WORD" >> "$GITHUB_OUTPUT"',
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${{ inputs.word }}", "hello"),
        ("pre-${{inputs.word}}-post", "pre-hello-post"),
        ("${{ github.event.pull_request.number }}", "42"),
        ("${{ github.event.missing.deep }}", ""),
        ("${{ github.flag }}", "true"),
        ("no expression", "no expression"),
    ],
    ids=["whole", "embedded", "nested", "missing-is-empty", "boolean", "literal"],
)
def test_expressions_it_evaluates(text: str, expected: str) -> None:
    contexts = {
        "inputs": {"word": "hello"},
        "github": {"event": {"pull_request": {"number": 42}}, "flag": True},
    }
    assert evaluate(text, contexts) == expected


@pytest.mark.parametrize(
    "text",
    ["${{ inputs.word || 'x' }}", "${{ format('{0}', inputs.word) }}", "${{ secrets.TOKEN }}"],
    ids=["operator", "function", "unavailable-context"],
)
def test_expressions_it_refuses(text: str) -> None:
    with pytest.raises(HarnessError):
        evaluate(text, {"inputs": {"word": "hello"}})


def test_output_file_forms() -> None:
    text = "a=1\nb<<EOF\nline one\nline two\nEOF\nc=x=y\n"
    assert parse_output_file(text) == {"a": "1", "b": "line one\nline two", "c": "x=y"}
    with pytest.raises(HarnessError, match="no closing delimiter"):
        parse_output_file("b<<EOF\nnever closed\n")


def test_workflow_commands_are_decoded() -> None:
    (command,) = parse_commands("log line\n::error title=a%3A b%2C c::one%0Atwo %25\n")
    assert (command.name, command.title, command.message) == ("error", "a: b, c", "one\ntwo %")


def test_a_run_resolves_defaults_writes_outputs_and_masks_the_log(tmp_path: Path) -> None:
    step = {**SAY, "run": SAY["run"] + '\necho "::add-mask::$WORD"\necho "the word is $WORD"'}
    action = write_action(tmp_path / "action", [step])
    runner = SimulatedRunner(tmp_path / "job", github={"event_name": "push"})
    run = runner.run({}, action_dir=action)
    assert run.exit_code == 0
    assert run.outputs == {"said": "push"}, "the default's ${{ github.* }} was evaluated"
    assert run.log == "the word is ***"


@pytest.mark.parametrize(
    ("steps", "inputs", "problem"),
    [
        ([{**SAY, "run": "echo ${{ inputs.word }}"}], {}, "script injection"),
        ([{**SAY, "if": "always()"}], {}, "does not simulate"),
        ([{**SAY, "shell": "pwsh"}], {}, "only shell: bash"),
        ([SAY], {"wrod": "typo"}, "not declared"),
    ],
    ids=["expression-in-run", "if", "other-shell", "undeclared-input"],
)
def test_what_it_does_not_simulate_fails_the_test(
    tmp_path: Path, steps: list[dict[str, Any]], inputs: dict[str, str], problem: str
) -> None:
    action = write_action(tmp_path / "action", steps)
    with pytest.raises(HarnessError, match=problem):
        SimulatedRunner(tmp_path / "job").run(inputs, action_dir=action)


def test_a_failing_step_stops_the_run(tmp_path: Path) -> None:
    action = write_action(tmp_path / "action", [{**SAY, "run": "false\necho never"}, {**SAY, "id": "after"}])
    run = SimulatedRunner(tmp_path / "job").run({}, action_dir=action)
    assert run.exit_code == 1 and "after" not in run.step_outputs and "never" not in run.stdout
