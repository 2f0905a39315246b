"""Reward programs: templates, the static check, the sandboxed worker and the in-process hot path.

No Genesis: the metrics are synthetic, with exactly the keys and shapes `sim/metrics.py` documents, for a
free `cube`, a free `bowl` and an articulated `drawer` (for `pull_open`), N = 8 envs.
"""

from __future__ import annotations

import os
import pickle
import resource

import pytest
import torch

from dexforge.home import DexforgeError
from dexforge.policies.rewards import (
    TEMPLATES,
    RewardError,
    RewardForbiddenError,
    RewardMemoryError,
    RewardNotFinite,
    RewardRuntimeError,
    RewardShapeError,
    RewardSignatureError,
    RewardSyntaxError,
    RewardTemplateError,
    RewardTimeout,
    RewardUnknownKeyError,
    check_program,
    compile_reward,
    describe_templates,
    dry_run,
    render,
    run_reward,
)
from dexforge.policies.rewards.check import ALLOWED_BUILTINS
from dexforge.policies.rewards.sandbox import _loads, restricted_namespace
from dexforge.sim.metrics import ARTICULATED_ONLY, GLOBAL_METRICS, OBJECT_METRICS

N = 8
DIMS = {"N": N, "D": 22, "A": 16, "J": 1, "P": 2}


def _tensor(shape: str, unit: str, g: torch.Generator) -> torch.Tensor:
    size = tuple(int(d) if d.isdigit() else DIMS[d] for d in shape.strip("()").replace(" ", "").split(",") if d)
    if unit == "bool":
        return torch.rand(size, generator=g) > 0.5
    if unit in ("count", "steps"):
        return torch.randint(0, 6, size, generator=g)
    t = torch.rand(size, generator=g) * 0.2
    return t / t.norm(dim=-1, keepdim=True) if unit.startswith("quaternion") else t


def make_metrics() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    m = {key: _tensor(doc.shape, doc.unit, g) for key, doc in GLOBAL_METRICS.items()}
    for name, articulated in (("cube", False), ("bowl", False), ("drawer", True)):
        for field, doc in OBJECT_METRICS.items():
            if articulated or field not in ARTICULATED_ONLY:
                m[f"{name}.{field}"] = _tensor(doc.shape, doc.unit, g)
    return m


@pytest.fixture(scope="module")
def metrics() -> dict[str, torch.Tensor]:
    return make_metrics()


def program(body: str) -> str:
    """A program whose `compute_reward` body is `body` (indented), returning a valid reward at the end."""
    lines = "".join(f"    {line}\n" for line in body.splitlines())
    return f'def compute_reward(m):\n{lines}    return m["cube.lift"], {{}}\n'


def _template_params(template_id: str) -> dict[str, str]:
    names = {p.name for p in TEMPLATES[template_id].params}
    obj = "drawer" if template_id == "pull_open" else "cube"
    return {"obj": obj, **({"container": "bowl"} if "container" in names else {})}


# -- templates ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("template_id", sorted(TEMPLATES))
def test_every_template_renders_checks_and_dry_runs(template_id, metrics):
    source = render(template_id, **_template_params(template_id))
    checked = check_program(source, metrics.keys())
    assert checked.keys_used <= metrics.keys()
    report = dry_run(source, metrics)
    assert report.num_envs == N and list(report.components) == list(TEMPLATES[template_id].weights)
    stats = [report.reward, *report.components.values()]
    assert all(torch.isfinite(torch.tensor([s.mean, s.std, s.min, s.max])).all() for s in stats)
    assert "reward: mean" in report.summary()
    reward, components = compile_reward(source)(metrics)
    assert reward.shape == (N,) and all(c.shape == (N,) for c in components.values())
    assert torch.allclose(reward, sum(components.values()))
    assert report.reward.mean == pytest.approx(float(reward.double().mean()), rel=1e-5, abs=1e-6)


def test_render_weights_params_and_errors():
    source = render("lift", obj="cube", height=0.2, weights={"grasp": 2.5})
    assert "W_GRASP = 2.5" in source and "HEIGHT = 0.2" in source and 'm["cube.lift"]' in source
    assert "axis" in render("rotate", obj="cube", axis="x", angle=-45) and "AXIS = (1.0, 0.0, 0.0)" in render(
        "rotate", obj="cube", axis="x"
    )
    for call, fragment in [
        (lambda: render("fly", obj="cube"), "unknown reward template"),
        (lambda: render("lift"), "`obj` is required"),
        (lambda: render("lift", obj="cube", weights={"contacts": 1.0}), "unknown weight"),
        (lambda: render("lift", obj="cube", colour="red"), "unknown parameter"),
        (lambda: render("lift", obj='cube"]; import os; m["x'), "must be an object name"),
        (lambda: render("lift", obj="cube", height="high"), "must be a number"),
        (lambda: render("rotate", obj="cube", axis="w"), "one of x, y, z"),
    ]:
        with pytest.raises(RewardTemplateError, match=fragment):
            call()
    assert all(t in describe_templates() for t in TEMPLATES)


# -- static check ---------------------------------------------------------------------------------------
HOSTILE = [
    ("import os", "imports are not allowed"),
    ("from os import system", "imports are not allowed"),
    ('x = __import__("os")', "name `__import__` is not allowed"),
    ('f = open("/tmp/x", "w")', "name `open` is not allowed"),
    ("x = ().__class__.__bases__[0].__subclasses__()", "may not start with `_`"),
    ('x = getattr(m, "__class__")', "name `getattr` is not allowed"),
    ('x = eval("1")', "name `eval` is not allowed"),
    ('exec("x = 1")', "name `exec` is not allowed"),
    ("x = globals()", "name `globals` is not allowed"),
    ('x = compile("1", "f", "eval")', "name `compile` is not allowed"),
    ("x = type(m)", "name `type` is not allowed"),
    ("x = os.system", "name `os` is not allowed"),
    ("while True:\n    pass", "`while` loops are not allowed"),
    ("global y", "`global` is not allowed"),
    ("try:\n    x = 1\nexcept Exception:\n    x = 2", "`try` is not allowed"),
    ('with open("f") as f:\n    pass', "`with` is not allowed"),
    ("class A:\n    pass", "classes are not allowed"),
    ("x = (yield 1)", "`yield` is not allowed"),
    ("x = 1\ndel x", "`del` is not allowed"),
    ('x = f"{m}"', "f-strings are not allowed"),
    ('x = "{}".format(1)', "string formatting is not allowed"),
    ('x = "%s" % 1', "string formatting with `%` is not allowed"),
    ('torch.save(m, "/tmp/m.pt")', "`torch.save` is not allowed"),
    ("t = torch", "`torch` can only be used as"),
    ('x = m["cube.lift"].add_(1)', "`.add_` is not allowed"),
    ('x = torch.exp(m["cube.lift"], out=m["cube.lift"])', "`out=` is not allowed"),
    ('m["cube.lift"] = 0', "item assignment is only allowed"),
    ('x = m["cube.lift"]\nx[0] = 1.0', "item assignment is only allowed"),
    ('x = m["cube.lift"].to("cuda")', "only takes a dtype"),
    ('x = m["cube.lift"].gi_frame', "`.gi_frame` is not allowed"),
    ("x = b'raw'", "constants of type bytes"),
    ("def torch(x):\n    return x", "`torch` cannot be reassigned"),
    ("x = [i for i in range(3)]\nx = x.append(1)", "`.append` is not allowed"),
]


@pytest.mark.parametrize(("body", "fragment"), HOSTILE, ids=[h[0].split("\n")[0] for h in HOSTILE])
def test_hostile_programs_are_rejected_statically(body, fragment):
    with pytest.raises(RewardError) as info:
        check_program(program(body))
    message = str(info.value)
    assert isinstance(info.value, DexforgeError) and fragment in message
    assert message.startswith(f"line {info.value.line}:") and 2 <= info.value.line <= 1 + len(body.splitlines())
    assert "\n" not in message


def test_file_write_is_rejected_and_nothing_is_written(tmp_path, metrics):
    target = tmp_path / "x"
    source = program(f'f = open("{target}", "w")\nx = f.write("pwned")')
    with pytest.raises(RewardForbiddenError, match="line 2: name `open` is not allowed"):
        run_reward(source, metrics)
    with pytest.raises(RewardForbiddenError):
        dry_run(source, metrics)
    assert not target.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("source", "error", "fragment"),
    [
        ("def reward(m):\n    return m, {}\n", RewardSignatureError, "no `def compute_reward(m):`"),
        ("def compute_reward(m, n):\n    return m, {}\n", RewardSignatureError, "line 1: `compute_reward` must take"),
        ("def compute_reward(m):\n    retrun m\n", RewardSyntaxError, "line 2: syntax error"),
        ("print(1)\n" + program(""), RewardForbiddenError, "line 1: only function definitions"),
        ("@torch.jit.script\n" + program(""), RewardForbiddenError, "line 2: decorators are not allowed"),
    ],
)
def test_signature_and_syntax_errors(source, error, fragment):
    with pytest.raises(error) as info:
        check_program(source)
    assert fragment in str(info.value)


def test_unknown_key_lists_close_matches(metrics):
    source = program('x = m["cube.lfit"]')
    with pytest.raises(
        RewardUnknownKeyError, match=r"line 2: unknown metric key `cube.lfit`; did you mean `cube.lift`"
    ):
        check_program(source, metrics.keys())
    assert check_program(source).keys_used == {"cube.lfit", "cube.lift"}  # key checking off


def test_allowed_constructs_pass(metrics):
    source = (
        "SCALE = math.pi / 4\n\n"
        "def helper(d, k=2.0):\n    return torch.exp(-k * d)\n\n"
        "def compute_reward(m):\n"
        '    d = m["cube.fingertip_dist"]\n'
        "    terms = [helper(d[:, i]) for i in range(5)]\n"
        "    r = torch.stack(terms, -1).sum(-1)\n"
        "    r += SCALE if len(terms) > 1 else 0.0\n"
        "    sq = lambda x: x * x\n"
        '    c = {"tips": r, "sq": sq(m["cube.lift"]).to(torch.float32)}\n'
        '    c["grasp"] = m["cube.grasped"].float()\n'
        "    for k in range(2):\n"
        "        r = r + k\n"
        "    return r, c\n"
    )
    check_program(source, metrics.keys())
    assert run_reward(source, metrics).reward.shape == (N,)


# -- the worker ------------------------------------------------------------------------------------------
def test_busy_loop_times_out(metrics):
    with pytest.raises(RewardTimeout, match="did not finish within 1 s"):
        run_reward(program("x = 0\nfor i in range(10**12):\n    x = x + 1"), metrics, timeout_s=1.0)


def test_cpu_limit_stops_the_worker(metrics):
    with pytest.raises(RewardTimeout, match="more than 1 s of CPU time"):
        run_reward(program("x = 0\nfor i in range(10**12):\n    x = x + 1"), metrics, timeout_s=60.0, cpu_s=1)


def test_huge_allocation_is_a_memory_error_and_the_parent_is_untouched(metrics):
    limits = {r: resource.getrlimit(r) for r in (resource.RLIMIT_AS, resource.RLIMIT_CPU)}
    threads = torch.get_num_threads()
    with pytest.raises(RewardMemoryError, match=r"line 2: the program ran out of memory \(limit 512 MB\)"):
        run_reward(program("x = torch.zeros(10**10)"), metrics, memory_mb=512)
    assert {r: resource.getrlimit(r) for r in limits} == limits and torch.get_num_threads() == threads
    assert torch.zeros(10**6).sum() == 0  # the parent still allocates freely


def test_nan_output_names_the_component(metrics):
    source = 'def compute_reward(m):\n    x = m["cube.lift"] / 0 * 0\n    return x, {"bad": x, "ok": m["cube.lift"]}\n'
    with pytest.raises(RewardNotFinite) as info:
        run_reward(source, metrics)
    assert str(info.value).startswith(f"reward is NaN in {N} of {N} envs; component `bad` is NaN in {N} of {N} envs")
    assert "division by a distance that reached zero" in str(info.value)
    assert info.value.counts == {"reward": (N, 0), "bad": (N, 0)}


@pytest.mark.parametrize(
    ("ret", "fragment"),
    [
        (
            "torch.zeros(3), {}",
            "reward must be a tensor of shape (8,), one value per env; it is a tensor of shape (3,)",
        ),
        ('m["cube.lift"], {"c": torch.zeros(8, 2)}', "component `c` must be a tensor of shape (8,)"),
        ('m["cube.lift"]', "must return (reward, components); it returned a tensor"),
        ('m["cube.grasped"], {}', "return a float tensor"),
    ],
)
def test_wrong_shapes(ret, fragment, metrics):
    with pytest.raises(RewardShapeError) as info:
        run_reward(f"def compute_reward(m):\n    return {ret}\n", metrics)
    assert fragment in str(info.value)


def test_exception_names_line_and_type(metrics):
    source = 'def compute_reward(m):\n    x = 1.0\n    y = m["nope"]\n    return y, {}\n'
    with pytest.raises(RewardRuntimeError) as info:
        run_reward(source, metrics)
    assert info.value.line == 3 and info.value.exc_type == "KeyError" and "'nope'" in info.value.exc_message
    assert str(info.value).startswith("line 3: KeyError: 'nope'")


# -- the hot path and defence in depth -------------------------------------------------------------------
def test_compiled_reward_matches_the_worker_and_leaves_metrics_alone(metrics):
    source = 'def compute_reward(m):\n    r = m["cube.lift"]\n    r += 1.0\n    r *= 2.0\n    return r, {"r": r}\n'
    before = {k: v.clone() for k, v in metrics.items()}
    fn = compile_reward(source)
    reward, _ = fn(metrics)
    assert torch.equal(reward, run_reward(source, metrics).reward)
    assert all(torch.equal(before[k], v) for k, v in metrics.items()) and metrics.keys() == before.keys()
    failing = compile_reward('def compute_reward(m):\n    return m["nope"], {}\n')
    with pytest.raises(RewardRuntimeError, match="line 2: KeyError"):
        failing(metrics)


def test_restricted_namespace_and_plain_replies():
    namespace = restricted_namespace()
    assert set(namespace) == {"__builtins__", "torch", "math"}
    assert set(namespace["__builtins__"]) == ALLOWED_BUILTINS | {"__import__"}  # torch's lazy imports only
    with pytest.raises(ImportError, match="import of `os` is not allowed"):
        namespace["__builtins__"]["__import__"]("os")
    with pytest.raises(pickle.UnpicklingError, match="may not reference"):
        _loads(pickle.dumps(os.getcwd))
    assert _loads(pickle.dumps(("ok", ("float32", (2,), b"\0" * 8), {}))) == ("ok", ("float32", (2,), b"\0" * 8), {})
