"""Running reward programs: a resource-limited worker for the gate, an in-process callable for training.

`run_reward` checks the program, then runs it once in a fresh worker process (multiprocessing "spawn"):
the worker limits its own CPU time (RLIMIT_CPU) and address space (RLIMIT_AS) and uses one thread before
it receives the program, executes it with a restricted `__builtins__` and a namespace holding only
`torch` and `math`, and is killed when the wall-clock limit passes. Tensors cross the pipe as
`(dtype, shape, bytes)` triples, and the parent unpickles the reply with a loader that refuses every
global, so nothing the program returns can run code in the parent. Metrics go to the worker on the
CPU; the worker never touches a GPU.

`dry_run` (check with the environment's keys, run in the worker, per-component statistics) is the gate
the trainer passes a program through before training. `compile_reward` then loads the same checked
program in-process for the hot path, one call per step with no worker: the static check keeps it pure
(no I/O, no randomness, no in-place writes) and the dry run has shown it ends, fits in memory and
returns finite `(N,)` tensors. Never call it on a program that has not passed `dry_run`.
"""

from __future__ import annotations

import builtins
import io
import math
import multiprocessing as mp
import os
import pickle
import resource
import signal
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

import torch
from pydantic import BaseModel, ConfigDict, Field

from dexforge.policies.rewards.check import (
    ALLOWED_BUILTINS,
    ENTRY,
    FILENAME,
    CheckedProgram,
    RewardError,
    check_program,
)

Metrics = Mapping[str, torch.Tensor]
RewardOutput = tuple[torch.Tensor, dict[str, torch.Tensor]]
MAX_COMPONENTS = 64
STARTUP_TIMEOUT_S = 120.0  # importing torch in a fresh interpreter on a busy machine
_WIRE_DTYPES = {"bool", "uint8", "int8", "int16", "int32", "int64", "float16", "float32", "float64"}
_NOT_FINITE_HINT = (
    "this usually means a division by a distance that reached zero (add an epsilon, e.g. `d.clamp(min=1e-6)`) "
    "or the sqrt/log of a value <= 0"
)


class RewardTimeout(RewardError):
    """The program ran past its wall-clock or CPU-time limit and was stopped."""


class RewardMemoryError(RewardError):
    """The program tried to use more memory than its limit."""


class RewardRuntimeError(RewardError):
    """The program raised; `exc_type`, `exc_message` and `line` (in the program) say where and why."""

    def __init__(self, exc_type: str, exc_message: str, line: int | None):
        self.exc_type, self.exc_message = exc_type, exc_message
        hint = "; that metric key does not exist, see the metrics table" if exc_type == "KeyError" else ""
        super().__init__(f"{exc_type}: {exc_message}{hint}", line)


class RewardShapeError(RewardError):
    """The program returned something other than `(reward (N,), {name: (N,) tensor})`."""


class RewardNotFinite(RewardError):
    """The reward or a component holds NaN or inf; `counts[name] = (nan_envs, inf_envs)`."""

    def __init__(self, message: str, counts: dict[str, tuple[int, int]]):
        self.counts = counts
        super().__init__(message)


class RewardWorkerError(RewardError):
    """The worker process failed to start or died for a reason other than the limits."""


@dataclass(frozen=True)
class RewardResult:
    reward: torch.Tensor
    """(N,) float."""
    components: dict[str, torch.Tensor]
    """name -> (N,) tensor."""


class ComponentStats(BaseModel):
    model_config = ConfigDict(frozen=True)
    mean: float = Field(description="Mean over envs.")
    std: float = Field(description="Standard deviation over envs (population).")
    min: float = Field(description="Smallest value over envs.")
    max: float = Field(description="Largest value over envs.")
    nonzero: float = Field(
        description="Fraction of envs where the value is not zero (a term that is always 0 says nothing)."
    )

    @classmethod
    def of(cls, t: torch.Tensor) -> ComponentStats:
        t = t.detach().double()
        return cls(
            mean=float(t.mean()),
            std=float(t.std(unbiased=False)),
            min=float(t.min()),
            max=float(t.max()),
            nonzero=float((t != 0).double().mean()),
        )


class DryRunReport(BaseModel):
    model_config = ConfigDict(frozen=True)
    num_envs: int = Field(description="Envs in the batch the program ran on.")
    reward: ComponentStats = Field(description="Statistics of the total reward.")
    components: dict[str, ComponentStats] = Field(description="Statistics of each returned component.")
    keys_used: list[str] = Field(description='Metric keys the program reads as `m["literal"]`.')
    seconds: float = Field(description="Wall-clock time of the worker run, start-up included.")

    def summary(self) -> str:
        """One line per term, for a person or a reward-writing model."""
        rows = [("reward", self.reward), *self.components.items()]
        return "\n".join(
            f"{name}: mean {s.mean:.4g} std {s.std:.4g} min {s.min:.4g} max {s.max:.4g} nonzero {s.nonzero:.0%}"
            for name, s in rows
        )


# -- the program ----------------------------------------------------------------------------------------
def _torch_import(name: str, globals: Any = None, locals: Any = None, fromlist: Any = (), level: int = 0) -> Any:
    """`__import__` for torch's own lazy imports (C code imports through the calling frame's builtins, which
    is the program's). Programs cannot name it (dunder names fail the check), and it only loads torch."""
    if level != 0 or not (name == "torch" or name.startswith("torch.")):
        raise ImportError(f"import of `{name}` is not allowed in a reward program")
    return builtins.__import__(name, globals, locals, fromlist, level)


def restricted_namespace() -> dict[str, Any]:
    """Globals a program runs in: the allowlisted builtins, `torch` and `math`, nothing else."""
    allowed = {name: getattr(builtins, name) for name in ALLOWED_BUILTINS}
    return {"__builtins__": {**allowed, "__import__": _torch_import}, "torch": torch, "math": math}


def load_program(checked: CheckedProgram) -> Callable[[dict[str, torch.Tensor]], Any]:
    """Execute the checked program's top level in a restricted namespace; return its `compute_reward`."""
    namespace = restricted_namespace()
    exec(checked.compile(), namespace)  # the static check has allowlisted every node of this tree
    return namespace[ENTRY]


def _describe(result: Any) -> str:
    if isinstance(result, torch.Tensor):
        return f"a tensor of shape {tuple(result.shape)}"
    if isinstance(result, tuple | list):
        return f"a {type(result).__name__} of {len(result)} items"
    return f"a {type(result).__name__}"


def result_problem(result: Any, n: int) -> str | None:
    """What is wrong with a program's return value for `n` envs, or None."""
    if not (isinstance(result, tuple) and len(result) == 2):
        return f"compute_reward must return (reward, components); it returned {_describe(result)}"
    reward, components = result
    if not isinstance(reward, torch.Tensor) or tuple(reward.shape) != (n,):
        return f"reward must be a tensor of shape ({n},), one value per env; it is {_describe(reward)}"
    if not reward.is_floating_point():
        return f"reward has dtype {reward.dtype}; return a float tensor (e.g. `x.float()`)"
    if not isinstance(components, dict):
        return f"components must be a dict of name -> tensor of shape ({n},); it is {_describe(components)}"
    if len(components) > MAX_COMPONENTS:
        return f"there are {len(components)} components; return at most {MAX_COMPONENTS}"
    for name, value in components.items():
        if not (isinstance(name, str) and 0 < len(name) <= 64):
            return f"component names must be strings of 1 to 64 characters; got {_describe(name)}"
        if not isinstance(value, torch.Tensor) or tuple(value.shape) != (n,):
            return f"component `{name}` must be a tensor of shape ({n},); it is {_describe(value)}"
    return None


def _count_text(nan: int, inf: int, n: int) -> str:
    parts = ([f"NaN in {nan}"] if nan else []) + ([f"inf in {inf}"] if inf else [])
    return f"{' and '.join(parts)} of {n} envs"


def check_finite(reward: torch.Tensor, components: Mapping[str, torch.Tensor]) -> None:
    """Raise `RewardNotFinite` naming every term with NaN or inf values and how many envs they hit."""
    counts: dict[str, tuple[int, int]] = {}
    for name, t in [("reward", reward), *components.items()]:
        t = t.detach().float()
        nan, inf = int(torch.isnan(t).sum()), int(torch.isinf(t).sum())
        if nan or inf:
            counts[name] = (nan, inf)
    if counts:
        n = reward.shape[0]
        terms = [f"reward is {_count_text(*counts['reward'], n)}"] if "reward" in counts else []
        terms += [f"component `{k}` is {_count_text(*c, n)}" for k, c in counts.items() if k != "reward"]
        raise RewardNotFinite(f"{'; '.join(terms)}; {_NOT_FINITE_HINT}", counts)


def _error_from(exc: BaseException) -> tuple[str, str, str, int | None]:
    """(kind, exception type, one-line message, program line) of an exception raised by a program."""
    line = None
    for frame, lineno in traceback.walk_tb(exc.__traceback__):
        if frame.f_code.co_filename == FILENAME:
            line = lineno
    message = (str(exc).strip().splitlines() or [""])[0][:300]
    oom = isinstance(exc, MemoryError) or "can't allocate memory" in str(exc) or "out of memory" in str(exc)
    return ("memory" if oom else "runtime", type(exc).__name__, message, line)


def _raise_error(kind: str, exc_type: str, message: str, line: int | None, memory_mb: int | None) -> NoReturn:
    if kind == "memory":
        limit = f" (limit {memory_mb} MB)" if memory_mb else ""
        raise RewardMemoryError(
            f"the program ran out of memory{limit}: {exc_type}: {message}; use smaller tensors", line
        )
    raise RewardRuntimeError(exc_type, message, line)


# -- the wire -------------------------------------------------------------------------------------------
Wire = tuple[str, tuple[int, ...], bytes]


def _encode(t: torch.Tensor) -> Wire:
    t = t.detach().cpu().contiguous()
    if str(t.dtype).removeprefix("torch.") not in _WIRE_DTYPES:
        t = t.float()
    return str(t.dtype).removeprefix("torch."), tuple(t.shape), t.numpy().tobytes()


def _decode(wire: Wire) -> torch.Tensor:
    dtype, shape, data = wire
    if dtype not in _WIRE_DTYPES:
        raise RewardWorkerError(f"the reward worker sent a tensor of unexpected dtype {dtype!r}")
    dt = getattr(torch, dtype)
    if not data:
        return torch.empty(shape, dtype=dt)
    return torch.frombuffer(bytearray(data), dtype=dt).reshape(shape)


class _PlainUnpickler(pickle.Unpickler):
    """Loads tuples, dicts, strings, bytes and numbers; refuses every class or function."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"the reward worker's reply may not reference {module}.{name}")


def _loads(data: bytes) -> Any:
    return _PlainUnpickler(io.BytesIO(data)).load()


# -- the worker -----------------------------------------------------------------------------------------
def _address_space() -> int:
    with open("/proc/self/statm") as f:  # Linux; the first field is the virtual size in pages
        return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def _limit_self(cpu_s: int, memory_mb: int) -> None:
    """Cap this process's CPU seconds from now and its address space beyond what it already maps."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    soft_cpu = math.ceil(usage.ru_utime + usage.ru_stime) + cpu_s
    _lower(resource.RLIMIT_CPU, soft_cpu, soft_cpu + 1)  # SIGXCPU at the soft limit, SIGKILL at the hard one
    limit = _address_space() + memory_mb * 2**20
    _lower(resource.RLIMIT_AS, limit, limit)


def _lower(which: int, soft: int, hard: int) -> None:
    """Set a limit, never above an existing hard limit (which a process cannot raise)."""
    _, current = resource.getrlimit(which)
    if current != resource.RLIM_INFINITY:
        soft, hard = min(soft, current), min(hard, current)
    resource.setrlimit(which, (soft, hard))


def _execute(source: str, n: int, metrics: dict[str, Wire]) -> tuple:
    """Run the program on the metrics; a reply of plain data (the worker's only exception boundary)."""
    try:
        fn = load_program(check_program(source))
        result = fn({k: _decode(v) for k, v in metrics.items()})
        problem = result_problem(result, n)
        if problem is not None:
            return ("shape", problem)
        reward, components = result
        return ("ok", _encode(reward), {k: _encode(v) for k, v in components.items()})
    except RewardError as exc:
        return ("check", str(exc))
    except Exception as exc:  # the program's own failure, reported to the parent with its line
        return ("error", *_error_from(exc))


def _worker_main(conn: Any, cpu_s: int, memory_mb: int) -> None:
    torch.set_num_threads(1)
    _limit_self(cpu_s, memory_mb)
    conn.send_bytes(b"ready")
    source, n, metrics = pickle.loads(conn.recv_bytes())
    conn.send_bytes(pickle.dumps(_execute(source, n, metrics)))


def _worker_died(proc: Any, cpu_s: int, memory_mb: int) -> RewardError:
    proc.join(timeout=5.0)
    code = proc.exitcode
    if code == -signal.SIGXCPU:
        return RewardTimeout(f"the program used more than {cpu_s} s of CPU time; use tensor operations, not long loops")
    if code == -signal.SIGKILL:
        return RewardMemoryError(f"the reward worker was killed (out of memory? limit {memory_mb} MB)")
    return RewardWorkerError(f"the reward worker exited with code {code} before answering")


def _num_envs(metrics: Metrics) -> int:
    if not metrics:
        raise RewardShapeError("no metrics were given to run the reward program on")
    return int(next(iter(metrics.values())).shape[0])


def run_reward(
    source: str,
    metrics: Metrics,
    *,
    timeout_s: float = 5.0,
    cpu_s: int = 5,
    memory_mb: int = 1024,
    check_keys: bool = False,
) -> RewardResult:
    """Check `source` and run it once on `metrics` in a fresh limited worker; raise a `RewardError` or return.

    `timeout_s` counts from when the worker has the program (not its start-up); `cpu_s` and `memory_mb` are
    the worker's RLIMIT_CPU and address-space headroom; `check_keys` checks `m["..."]` against `metrics`.
    """
    check_program(source, metrics.keys() if check_keys else None)
    n = _num_envs(metrics)
    payload = pickle.dumps((source, n, {k: _encode(v) for k, v in metrics.items()}))
    ctx = mp.get_context("spawn")
    conn, child_conn = ctx.Pipe(duplex=True)
    proc = ctx.Process(target=_worker_main, args=(child_conn, cpu_s, memory_mb), name="dexforge-reward", daemon=True)
    proc.start()
    child_conn.close()
    try:
        if not conn.poll(STARTUP_TIMEOUT_S):
            raise RewardWorkerError(f"the reward worker did not start within {STARTUP_TIMEOUT_S:.0f} s")
        try:
            conn.recv_bytes()
            conn.send_bytes(payload)
            if not conn.poll(timeout_s):
                raise RewardTimeout(
                    f"the program did not finish within {timeout_s:g} s on {n} envs; "
                    "use tensor operations instead of long Python loops"
                )
            reply = _loads(conn.recv_bytes())
        except (EOFError, BrokenPipeError, ConnectionResetError):
            raise _worker_died(proc, cpu_s, memory_mb) from None
    finally:
        conn.close()
        if proc.is_alive():
            proc.kill()
        proc.join()
    if reply[0] == "ok":
        reward, components = _decode(reply[1]), {k: _decode(v) for k, v in reply[2].items()}
        check_finite(reward, components)
        return RewardResult(reward, components)
    if reply[0] == "shape":
        raise RewardShapeError(reply[1])
    if reply[0] == "check":
        raise RewardWorkerError(f"the worker rejected a program the parent accepted: {reply[1]}")
    _raise_error(*reply[1:], memory_mb=memory_mb)


def dry_run(
    source: str,
    metrics: Metrics,
    *,
    check_keys: bool = True,
    timeout_s: float = 5.0,
    cpu_s: int = 5,
    memory_mb: int = 1024,
) -> DryRunReport:
    """The gate before training: check (against the metrics' keys), run in the worker, summarise each term."""
    checked = check_program(source, metrics.keys() if check_keys else None)
    start = time.perf_counter()
    result = run_reward(source, metrics, timeout_s=timeout_s, cpu_s=cpu_s, memory_mb=memory_mb)
    return DryRunReport(
        num_envs=int(result.reward.shape[0]),
        reward=ComponentStats.of(result.reward),
        components={k: ComponentStats.of(v) for k, v in result.components.items()},
        keys_used=sorted(checked.keys_used),
        seconds=time.perf_counter() - start,
    )


class CompiledReward:
    """A checked program loaded in-process, for the hot path: `reward, components = fn(metrics)`.

    Deterministic and side-effect free by the static check; it sees a shallow copy of the metrics dict.
    The first call also checks the shapes and that the outputs are on the metrics' device (a program that
    makes tensors without `device=` fails here, on the GPU, though its CPU dry run passed).
    """

    def __init__(self, checked: CheckedProgram):
        self.source = checked.source
        self.keys_used = checked.keys_used
        self._fn = load_program(checked)
        self._validated = False

    def __call__(self, metrics: Metrics) -> RewardOutput:
        try:
            result = self._fn(dict(metrics))
        except Exception as exc:  # becomes a typed error with the program's line for the reward-writer
            _raise_error(*_error_from(exc), memory_mb=None)
        if not self._validated:
            problem = result_problem(result, _num_envs(metrics))
            device = next(iter(metrics.values())).device
            if problem is None and any(t.device != device for t in [result[0], *result[1].values()]):
                problem = f"the outputs must be on {device}; create tensors with `device=x.device`"
            if problem is not None:
                raise RewardShapeError(problem)
            self._validated = True
        return result


def compile_reward(source: str) -> CompiledReward:
    """Check `source` and load it in-process for training; call only after `dry_run` has passed."""
    return CompiledReward(check_program(source))
