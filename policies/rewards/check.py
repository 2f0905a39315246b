"""Static check of a reward program: parse with `ast`, walk every node against an allowlist.

A reward program is source text defining `def compute_reward(m):` that returns `(reward, components)`.
What it may contain: function definitions (helpers, nested defs, lambdas), module-level constants,
assignments, `if`/`for` statements, expressions of arithmetic, comparisons and boolean logic, literals,
comprehensions, `m["key"]` lookups, tensor indexing, calls of allowlisted `torch.*` and `math.*`
functions, of allowlisted tensor methods, of a few builtins and of the program's own functions.

What it may not: imports, `while` (it may never end; `for` loops are allowed and bounded at run time
by the sandbox's time limit), `global`/`nonlocal`, `try`, `with`, `raise`, `assert`, classes,
`yield`/`await`, `del`, f-strings and other string formatting, `:=`, decorators, names that are
neither defined in the program nor allowlisted, any attribute starting with `_`, `torch`/`math` used
other than as `torch.<function>`, and every in-place write: item assignment into anything but a dict
(`components["x"] = ...`), attribute assignment, `out=` arguments, methods ending in `_`. `x += y` is
rewritten to `x = x + y`, so no program changes the metrics it reads. Annotations are dropped unchecked
and never evaluated. The top level holds only function definitions, assignments and docstrings.

Every error is one line a model can act on, starting with `line N:` when it points at code.
"""

from __future__ import annotations

import ast
import copy
import difflib
from collections.abc import Iterable
from dataclasses import dataclass

from dexforge.home import DexforgeError

ENTRY = "compute_reward"
ARG = "m"
FILENAME = "<reward>"
MAX_SOURCE_CHARS = 50_000

ALLOWED_BUILTINS = frozenset(
    {"abs", "bool", "dict", "enumerate", "float", "int", "len", "list", "max", "min", "range", "round", "sum"}
    | {"tuple", "zip"}
)
_TORCH_FUNCS = (
    "abs acos all amax amin any arange as_tensor asin atan atan2 cat ceil clamp clamp_max clamp_min clip cos "
    "cosh cross cumsum dot exp exp2 expm1 floor fmod full full_like isfinite isinf isnan linspace log log1p "
    "log2 logical_and logical_not logical_or logical_xor max maximum mean min minimum nan_to_num norm ones "
    "ones_like pow prod relu remainder round rsqrt sigmoid sign sin sinh sqrt square stack std sum tan tanh "
    "tensor where zeros zeros_like"
)
TORCH_DTYPES = frozenset({"float16", "float32", "float64", "float", "double", "bool", "int32", "int64", "long"})
TORCH_ALLOWED = frozenset(
    {f"torch.{n}" for n in _TORCH_FUNCS.split()}
    | {f"torch.{n}" for n in TORCH_DTYPES}
    | {"torch.pi", "torch.e", "torch.inf"}
    | {f"torch.linalg.{n}" for n in ("norm", "vector_norm", "cross")}
)
_MATH_NAMES = (
    "acos asin atan atan2 ceil cos cosh degrees e exp fabs floor hypot inf isfinite log log1p pi pow radians "
    "sin sinh sqrt tan tanh tau"
)
MATH_ALLOWED = frozenset(f"math.{n}" for n in _MATH_NAMES.split())
_TENSOR_ATTRS = (
    "abs all amax amin any argmax argmin bool clamp clamp_max clamp_min clip cos cumsum device dim double "
    "dtype exp expand expand_as flatten float indices int isfinite isnan log logical_and logical_not "
    "logical_or long max maximum mean min minimum nan_to_num ndim neg norm numel pow prod reshape shape "
    "sigmoid sign sin size sqrt square squeeze std sum tanh to unsqueeze values view where"
)
TENSOR_ATTRS = frozenset(_TENSOR_ATTRS.split())
MODULES = frozenset({"torch", "math"})

_FORBIDDEN_STMTS: dict[type, str] = {
    ast.Import: "imports are not allowed; `torch` and `math` are already available",
    ast.ImportFrom: "imports are not allowed; `torch` and `math` are already available",
    ast.While: "`while` loops are not allowed (they may never end); use tensor operations or `for i in range(n)`",
    ast.Global: "`global` is not allowed; pass values as arguments and return results",
    ast.Nonlocal: "`nonlocal` is not allowed; pass values as arguments and return results",
    ast.Try: "`try` is not allowed; make the code correct for every env instead (e.g. clamp before dividing)",
    ast.TryStar: "`try` is not allowed; make the code correct for every env instead (e.g. clamp before dividing)",
    ast.With: "`with` is not allowed; the program may only compute tensors from `m`",
    ast.AsyncWith: "`with` is not allowed; the program may only compute tensors from `m`",
    ast.ClassDef: "classes are not allowed; use functions and dicts",
    ast.AsyncFunctionDef: "`async def` is not allowed; use a plain `def`",
    ast.AsyncFor: "`async for` is not allowed; use a plain `for`",
    ast.Delete: "`del` is not allowed; simply stop using the name",
    ast.Raise: "`raise` is not allowed; return a reward for every env",
    ast.Assert: "`assert` is not allowed; return a reward for every env",
    ast.Match: "`match` is not allowed; use `if`/`else` or `torch.where`",
}
_FORBIDDEN_EXPRS: dict[type, str] = {
    ast.Yield: "`yield` is not allowed; return `(reward, components)`",
    ast.YieldFrom: "`yield` is not allowed; return `(reward, components)`",
    ast.Await: "`await` is not allowed",
    ast.JoinedStr: 'f-strings are not allowed; write metric keys out in full, e.g. m["cube.pos"]',
    ast.NamedExpr: "`:=` is not allowed; use a separate assignment",
}
_ALLOWED_NODES = tuple(
    {ast.Module, ast.FunctionDef, ast.Return, ast.Assign, ast.AugAssign, ast.AnnAssign, ast.For, ast.If}
    | {ast.Expr, ast.Pass, ast.Break, ast.Continue, ast.BoolOp, ast.BinOp, ast.UnaryOp, ast.Lambda, ast.IfExp}
    | {ast.Dict, ast.Set, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp, ast.Compare, ast.Call}
    | {ast.Constant, ast.Attribute, ast.Subscript, ast.Starred, ast.Name, ast.List, ast.Tuple, ast.Slice}
    | {ast.Load, ast.Store, ast.comprehension, ast.arguments, ast.arg, ast.keyword}
    | {ast.boolop, ast.operator, ast.unaryop, ast.cmpop}
)
_TOP_LEVEL = (ast.FunctionDef, ast.Assign, ast.AnnAssign)
_CONSTANT_TYPES = (str, int, float, bool, type(None), type(Ellipsis))


class RewardError(DexforgeError):
    """A reward program was rejected or failed; `line` is its line number when the error points at code."""

    def __init__(self, message: str, line: int | None = None):
        self.line = line
        super().__init__(f"line {line}: {message}" if line is not None else message)


class RewardCheckError(RewardError):
    """The static check rejected the program; it never ran."""


class RewardSyntaxError(RewardCheckError):
    """The program is not valid Python."""


class RewardForbiddenError(RewardCheckError):
    """The program uses a construct, name, attribute or call outside the allowlist."""


class RewardSignatureError(RewardCheckError):
    """`def compute_reward(m):` is missing, defined twice or has the wrong parameters."""


class RewardUnknownKeyError(RewardCheckError):
    """`m["..."]` names a metric key the environment does not publish."""


@dataclass(frozen=True)
class CheckedProgram:
    """A program that passed the check: its source, the sanitised tree that is compiled, the keys it reads."""

    source: str
    tree: ast.Module
    keys_used: frozenset[str]

    def compile(self):
        """Code object of the sanitised tree (file name `<reward>`, so tracebacks give the program's lines)."""
        return compile(self.tree, FILENAME, "exec")


def _dotted(node: ast.expr) -> str | None:
    """`torch.linalg.norm` for an attribute chain rooted at a module name, else None."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name) and node.id in MODULES:
        return ".".join([node.id, *reversed(parts)])
    return None


def _defined_names(tree: ast.Module) -> set[str]:
    """Every name the program binds anywhere (flow- and scope-insensitive; a NameError is a run-time error)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.FunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
    return names


class _Checker(ast.NodeVisitor):
    def __init__(self, tree: ast.Module, available_keys: frozenset[str] | None):
        self.known = _defined_names(tree) | ALLOWED_BUILTINS
        self.available = available_keys
        self.keys_used: set[str] = set()

    def fail(self, node: ast.AST, message: str) -> None:
        raise RewardForbiddenError(message, getattr(node, "lineno", None))

    def generic_visit(self, node: ast.AST) -> None:
        kind = type(node)
        if kind in _FORBIDDEN_STMTS:
            self.fail(node, _FORBIDDEN_STMTS[kind])
        if kind in _FORBIDDEN_EXPRS:
            self.fail(node, _FORBIDDEN_EXPRS[kind])
        if not isinstance(node, _ALLOWED_NODES):
            self.fail(node, f"`{kind.__name__}` is not allowed in a reward program")
        super().generic_visit(node)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        if node.decorator_list:
            self.fail(node, f"decorators are not allowed (on `{node.name}`)")
        self._check_binding(node, node.name)
        for child in [node.args, *node.body]:
            self.visit(child)

    def visit_arg(self, node: ast.arg) -> None:
        self._check_binding(node, node.arg)  # annotations are not visited: they are dropped before compiling

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        for child in (node.target, node.value):
            if child is not None:
                self.visit(child)

    def visit_Constant(self, node: ast.Constant) -> None:
        if not isinstance(node.value, _CONSTANT_TYPES):
            self.fail(node, f"constants of type {type(node.value).__name__} are not allowed")

    def visit_comprehension(self, node: ast.comprehension) -> None:
        if node.is_async:
            self.fail(node.target, "`async for` is not allowed")
        self.generic_visit(node)

    def _check_binding(self, node: ast.AST, name: str) -> None:
        if name in MODULES:
            self.fail(node, f"`{name}` cannot be reassigned; pick another name")
        if name.startswith("__"):
            self.fail(node, f"name `{name}` is not allowed; names may not start with `__`")

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Store):
            self._check_binding(node, node.id)
        elif node.id in MODULES:
            self.fail(node, f"`{node.id}` can only be used as `{node.id}.<function>(...)`, e.g. `torch.exp(x)`")
        elif node.id.startswith("__") or node.id not in self.known:
            self.fail(node, f"name `{node.id}` is not allowed; use only `m[...]`, `torch`, `math` and names you define")

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if node.attr.startswith("_"):
            self.fail(node, f"attribute `{node.attr}` is not allowed; attributes may not start with `_`")
        if isinstance(node.ctx, ast.Store):
            self.fail(node, "assigning to attributes is not allowed; assign to a new name")
        dotted = _dotted(node)
        if dotted is not None:
            if dotted not in TORCH_ALLOWED | MATH_ALLOWED:
                self.fail(
                    node, f"`{dotted}` is not allowed; use tensor math such as torch.exp, torch.clamp, torch.norm"
                )
            return
        self.visit(node.value)  # first, so that `os.system` reports `os`
        if node.attr not in TENSOR_ATTRS:
            hint = "string formatting is not allowed" if node.attr in ("format", "format_map") else "not allowed"
            self.fail(node, f"method or attribute `.{node.attr}` is {hint}; allowed: {', '.join(sorted(TENSOR_ATTRS))}")

    def visit_Subscript(self, node: ast.Subscript) -> None:
        key = node.slice.value if isinstance(node.slice, ast.Constant) else None
        if isinstance(node.ctx, ast.Store):
            if not (isinstance(node.value, ast.Name) and node.value.id != ARG and isinstance(key, str)):
                self.fail(
                    node,
                    'item assignment is only allowed into your own dicts (d["name"] = ...); '
                    "for tensors use torch.where(mask, new, old)",
                )
        elif isinstance(node.value, ast.Name) and node.value.id == ARG and isinstance(key, str):
            self._check_key(node, key)
        self.visit(node.value)
        self.visit(node.slice)

    def _check_key(self, node: ast.Subscript, key: str) -> None:
        self.keys_used.add(key)
        if self.available is None or key in self.available:
            return
        close = difflib.get_close_matches(key, sorted(self.available), n=3, cutoff=0.6)
        hint = f"did you mean {', '.join(f'`{k}`' for k in close)}?" if close else "see the metrics table for the keys"
        raise RewardUnknownKeyError(f"unknown metric key `{key}`; {hint}", node.lineno)

    def visit_BinOp(self, node: ast.BinOp) -> None:
        if isinstance(node.op, ast.Mod) and isinstance(node.left, ast.Constant) and isinstance(node.left.value, str):
            self.fail(node, "string formatting with `%` is not allowed")
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        for kw in node.keywords:
            if kw.arg == "out":
                self.fail(node, "`out=` is not allowed (it writes in place); use the returned value")
        if isinstance(node.func, ast.Attribute) and node.func.attr == "to" and _dotted(node.func) is None:
            dtypes = [*node.args, *(kw.value for kw in node.keywords if kw.arg == "dtype")]
            ok = len(dtypes) == 1 and len(node.args) + len(node.keywords) == 1
            if not ok or _dotted(dtypes[0]) not in {f"torch.{d}" for d in TORCH_DTYPES}:
                self.fail(node, "`.to(...)` only takes a dtype, e.g. `.to(torch.float32)`; or use `.float()`")
        self.generic_visit(node)


class _Sanitizer(ast.NodeTransformer):
    """Drop annotations; rewrite `x op= y` to `x = x op y` so no program mutates a tensor it was given."""

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.FunctionDef:
        node.returns = None
        for arg in [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs, node.args.vararg, node.args.kwarg]:
            if arg is not None:
                arg.annotation = None
        self.generic_visit(node)
        return node

    def visit_AnnAssign(self, node: ast.AnnAssign) -> ast.stmt:
        new = ast.Assign(targets=[node.target], value=node.value) if node.value is not None else ast.Pass()
        return ast.copy_location(new, node)

    def visit_AugAssign(self, node: ast.AugAssign) -> ast.Assign:
        load = copy.deepcopy(node.target)
        for child in ast.walk(load):
            if hasattr(child, "ctx"):
                child.ctx = ast.Load()
        new = ast.Assign(targets=[node.target], value=ast.BinOp(left=load, op=node.op, right=node.value))
        return ast.copy_location(new, node)


def _check_signature(tree: ast.Module) -> None:
    defs = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == ENTRY]
    if not defs:
        raise RewardSignatureError(
            f"no `def {ENTRY}({ARG}):` at the top level; define it and return (reward, components)"
        )
    if len(defs) > 1:
        raise RewardSignatureError(f"`{ENTRY}` is defined {len(defs)} times; keep one definition", defs[1].lineno)
    a = defs[0].args
    if a.posonlyargs or a.kwonlyargs or a.vararg or a.kwarg or a.defaults or [x.arg for x in a.args] != [ARG]:
        raise RewardSignatureError(f"`{ENTRY}` must take exactly one argument: `def {ENTRY}({ARG}):`", defs[0].lineno)


def check_program(source: str, available_keys: Iterable[str] | None = None) -> CheckedProgram:
    """Check `source`; raise a `RewardCheckError` subclass or return the program ready to compile.

    `available_keys`: the metric keys the environment publishes; when given, every `m["literal"]` must be one.
    """
    if len(source) > MAX_SOURCE_CHARS:
        raise RewardForbiddenError(f"the program has {len(source)} characters; keep it under {MAX_SOURCE_CHARS}")
    try:
        tree = ast.parse(source, filename=FILENAME)
    except SyntaxError as exc:
        text = (exc.text or "").strip()
        where = f" (`{text}`)" if text else ""
        raise RewardSyntaxError(f"syntax error: {exc.msg}{where}", exc.lineno) from None
    except (RecursionError, MemoryError, ValueError) as exc:
        raise RewardSyntaxError(f"the program cannot be parsed ({type(exc).__name__}); simplify it") from None
    _check_signature(tree)
    for node in tree.body:
        docstring = isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
        if not (isinstance(node, _TOP_LEVEL) or docstring):
            raise RewardForbiddenError(
                "only function definitions, constants and docstrings are allowed at the top level", node.lineno
            )
    checker = _Checker(tree, frozenset(available_keys) if available_keys is not None else None)
    try:
        checker.visit(tree)
    except RecursionError:
        raise RewardForbiddenError("the program is nested too deeply; split it into helper functions") from None
    sanitized = ast.fix_missing_locations(_Sanitizer().visit(tree))
    return CheckedProgram(source=source, tree=sanitized, keys_used=frozenset(checker.keys_used))
