"""Eval suites: suite files, scoring, pass rates, a wrong expectation failing with its reason, and the core
suite passing offline (real graph, real Genesis workers, scripted models on a local HTTP server)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dexforge.cli import main
from dexforge.evals.run import CaseResult, pass_rates, run_suite
from dexforge.evals.score import node_path_matches, score, tool_calls_match
from dexforge.evals.suite import Expect, SuiteError, core_suite, load_suite


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "suite.yaml"
    path.write_text(text)
    return path


def test_suite_files_are_validated_with_clear_errors(tmp_path):
    with pytest.raises(SuiteError, match="no eval suite"):
        load_suite(tmp_path / "missing.yaml")
    with pytest.raises(SuiteError, match="not valid YAML"):
        load_suite(write(tmp_path, "name: [unclosed"))
    with pytest.raises(SuiteError, match="kind"):
        load_suite(write(tmp_path, "name: s\ncases:\n  - {name: a, request: x, faults: [{kind: meteor}]}\n"))
    with pytest.raises(SuiteError, match="replies are for the scripted backend"):
        load_suite(write(tmp_path, "name: s\ncases:\n  - {name: a, request: x, replies: {critic: [{}]}}\n"))
    with pytest.raises(SuiteError, match="unique"):
        load_suite(write(tmp_path, "name: s\ncases:\n  - {name: a, request: x}\n  - {name: a, request: y}\n"))
    suite = load_suite(
        write(
            tmp_path,
            "name: s\ndefaults: {timeout_s: 60, settings: {n_envs: 8}}\n"
            "cases:\n  - {name: a, request: x, settings: {rl_budget: 5}}\n  - {name: b, request: y, timeout_s: 9}\n",
        )
    )
    assert suite.cases[0].settings == {"n_envs": 8, "rl_budget": 5} and suite.cases[0].timeout_s == 60
    assert suite.cases[1].timeout_s == 9


def test_the_core_suite_covers_every_role_retry_path_and_fault():
    suite = load_suite(core_suite())
    assert len(suite.cases) >= 20
    kinds = {f.kind for c in suite.cases for f in c.faults}
    assert kinds == {"critic_verdict", "malformed_reply", "reward_raises", "train_fails", "worker_crash"}
    roles = {f.role for c in suite.cases for f in c.faults if f.kind == "malformed_reply"}
    assert roles == {"proposer", "critic", "decomposer", "reward_writer"}
    assert {c.backend for c in suite.cases} == {"offline", "scripted"}
    expected_paths = [c.expect.node_path or [] for c in suite.cases]
    flat = [" ".join(p) for p in expected_paths] + [
        " ".join(r) for c in suite.cases for r in c.expect.node_path_includes
    ]
    assert any("check propose check" in p for p in flat)  # the critic loop
    assert any("judge write_reward" in p for p in flat)  # a retry
    assert any("judge decompose" in p for p in flat) or any(c.expect.node_counts.get("decompose") for c in suite.cases)
    assert any(c.memory for c in suite.cases)


def test_scoring_says_what_was_expected_and_what_was_seen():
    seen = {
        "node_path": ["recall", "propose", "check", "propose", "check", "report"],
        "tool_calls": [{"name": "check_scene", "args": {"render": False, "backend": "cpu"}}],
        "status": "failed",
        "reason": "grasp failed",
        "model_calls": {"proposer": {"answers": 2, "invalid": 1}},
        "memories": ["task 'lift the red cube'"],
        "subtask_success": {"grasp": 0.3},
    }
    expect = Expect(
        node_path=["recall", "propose", "check", "report"],
        node_path_includes=[["check", "propose", "check"]],
        node_counts={"check": 2},
        tool_calls=[{"name": "check_scene", "args": {"render": False}}],
        status="succeeded",
        model_calls={"proposer": 2},
        invalid_answers={"proposer": {"min": 2}},
        memory_includes=["red cube"],
        subtask_success={"grasp": {"min": 0.5}},
    )
    checks = {c.name: c for c in score(expect, seen)}
    failed = sorted(n for n, c in checks.items() if not c.ok)
    assert failed == ["'grasp' success", "node_path", "proposer invalid answers", "status"]
    assert checks["status"].expected == "succeeded" and checks["status"].seen == "failed"
    assert checks["'grasp' success"].expected == "[0.5, inf]" and checks["'grasp' success"].seen == "0.3"
    assert node_path_matches(["a", "b"], ["a", "b"]) and not node_path_matches(["a", "b"], ["a"])
    calls = [{"name": "train_subtask", "args": {"index": 1, "n_envs": 8}}, {"name": "check_scene", "args": {}}]
    assert tool_calls_match(calls, [{"name": "train_subtask", "args": {"index": 1}}])
    assert not tool_calls_match(calls, [{"name": "train_subtask", "args": {"index": 2}}])
    assert not tool_calls_match(calls, [{"name": "check_scene"}, {"name": "check_scene"}])  # once, not twice


def test_pass_at_1_and_pass_hat_k():
    results = [
        CaseResult("a", 0, True),
        CaseResult("a", 1, True),
        CaseResult("a", 2, True),
        CaseResult("b", 0, True),
        CaseResult("b", 1, False),
        CaseResult("b", 2, True),
    ]
    rates = pass_rates(results, 3)
    assert rates["cases"]["a"]["pass^3"] == 1.0 and rates["cases"]["b"]["pass^3"] == 0.0
    assert rates["cases"]["b"]["pass@1"] == pytest.approx(2 / 3)
    assert rates["pass@1"] == pytest.approx((1 + 2 / 3) / 2) and rates["pass^3"] == 0.5
    assert rates["failed"] == ["b"]


WRONG = """
name: wrong
embedder: hashing
cases:
  - name: expects-success
    request: juggle the piano
    expect: {status: succeeded, reason_includes: [juggle]}
"""


def test_a_wrong_expectation_fails_and_says_why(tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["eval", str(write(tmp_path, WRONG)), "--out", str(out)])
    assert code == 1
    printed = capsys.readouterr().out
    assert "FAIL expects-success" in printed and "status: expected succeeded, saw failed" in printed
    (result,) = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert not result["passed"] and result["seen"]["status"] == "failed"
    assert [c["ok"] for c in result["checks"]] == [False, True]  # the reason does mention "juggle"
    page = (out / "summary.html").read_text()
    assert "1 case(s) failed" in page and "expected <code>succeeded</code>" in page
    assert json.loads((out / "pass_rates.json").read_text())["failed"] == ["expects-success"]


def test_a_case_that_outlives_its_timeout_is_stopped(tmp_path):
    suite = load_suite(
        write(tmp_path, "name: slow\ncases:\n  - {name: slow, request: lift the cube, timeout_s: 2, expect: {}}\n")
    )
    (result,) = run_suite(suite, tmp_path / "out")
    assert not result.passed and "timed out after 2 s" in result.error


@pytest.mark.genesis
def test_the_core_suite_passes_offline(tmp_path):
    out = tmp_path / "core"
    code = main(["eval", "--out", str(out), "--json", "--jobs", "2"])  # two cases at a time on two cores
    rates = json.loads((out / "pass_rates.json").read_text())
    assert code == 0, rates["failed"]
    assert rates["pass@1"] == 1.0 and len(rates["cases"]) >= 20


def test_the_tools_suite_scores_trajectories_and_checks_its_own_arguments(tmp_path):
    """The tools suite loads (expected arguments valid for each tool's model), covers every role, and its cases
    that need no simulator pass: scripted tool-calling models and the offline reasoner's own trajectories."""
    from dexforge.evals.suite import installed_suite

    suite = load_suite(installed_suite("tools"))
    assert len(suite.cases) >= 12
    roles = {t.role for c in suite.cases for t in c.expect.trajectories}
    assert roles == {"proposer", "critic", "decomposer", "reward_writer"}
    assert {t.match for c in suite.cases for t in c.expect.trajectories} >= {"strict", "unordered", "superset"}
    with pytest.raises(SuiteError, match="no argument"):
        load_suite(
            write(
                tmp_path,
                "name: s\ncases:\n  - name: a\n    request: x\n    expect:\n      trajectories:\n"
                "        - {role: critic, calls: [{name: measure, args: {object: cube}}]}\n",
            )
        )
    out = tmp_path / "tools"
    code = main(["eval", "tools", "--tag", "fast", "--out", str(out), "--json"])
    rates = json.loads((out / "pass_rates.json").read_text())
    assert code == 0, rates["failed"]
    assert len(rates["cases"]) == len([c for c in suite.cases if "fast" in c.tags]) >= 6


def test_a_suite_runs_against_a_live_endpoint(tmp_path, monkeypatch):
    """`--backend live`: the scripted roles ask the endpoint in DEXFORGE_BASE_URL instead (here a scripted
    server standing in for someone's model), and the trajectory is scored the same way."""
    from dexforge.evals.scripted import ScriptedOpenAI
    from dexforge.evals.suite import installed_suite

    case = next(c for c in load_suite(installed_suite("tools")).cases if c.name == "proposer-grounds-unknown-word")
    with ScriptedOpenAI(case.replies) as server:
        monkeypatch.setenv("DEXFORGE_BASE_URL", server.base_url)
        monkeypatch.setenv("DEXFORGE_MODEL", "someones-model")
        monkeypatch.setenv("OPENAI_API_KEY", "live-key")
        monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
        out = tmp_path / "live"
        code = main(["eval", "tools", "--backend", "live", "--case", case.name, "--out", str(out), "--json"])
        asked = server.for_role("proposer")
    assert code == 0
    assert len(asked) == 3 and asked[0].body["model"] == "someones-model"
    assert asked[0].headers["authorization"] == "Bearer live-key"
    (result,) = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert result["passed"] and any(c["name"].startswith("proposer trajectory") for c in result["checks"])
