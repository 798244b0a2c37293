"""Mutation testing of the scoring core: metrics, answer scoring, the `check` gate, the losses.

A small driver of its own (no extra dependency): each module is parsed, every mutation point
found by its AST (a comparison, an arithmetic or boolean operator, a number, True/False, `not`,
unary minus, `break`/`continue`) becomes one mutant, and each mutant runs the module's own
test selection (MODULES below) in a forked child that imports the mutated code instead of the
file on disk. A mutant is killed when the tests fail or run past the per-mutant timeout; it
survives when they pass. The heavy libraries (torch, numpy, sympy, math-verify) are imported
once in the parent, so a mutant costs only pytest's collection and the tests themselves.

Not run by CI (minutes to an hour on two cores). Run from the repository root:

    python benchmarks/mutation.py                          # every module, results in mutation.json
    python benchmarks/mutation.py --module evalkit/gate.py # one module
    python benchmarks/mutation.py --survivors mutation.json   # rerun only the previous survivors
    python benchmarks/mutation.py --list --module evalkit/scoring/refusal.py   # the mutants only

The score and every survivor, with why it is equivalent or harmless, are in docs/testing.md.
"""

from __future__ import annotations

import argparse
import ast
import copy
import functools
import importlib.abc
import importlib.util
import json
import os
import signal
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# Each module with the tests that exercise it, fastest useful selection first. ``-k`` leaves out
# tests that load a model or run the whole benchmark set; they are not what kills these mutants.
MODULES: dict[str, list[str]] = {
    "evalkit/metrics/aggregation.py": ["tests/test_task_metrics.py", "tests/test_compare_check.py"],
    "evalkit/metrics/bootstrap.py": [
        "tests/test_bootstrap.py",
        "tests/test_compare_check.py",
        "tests/test_compare_trust.py",
        "-k",
        "not two_seeds",
    ],
    "evalkit/metrics/bradley_terry.py": ["tests/test_bradley_terry.py"],
    "evalkit/metrics/directions.py": ["tests/test_metric_declarations.py", "tests/test_compare_check.py"],
    "evalkit/metrics/diversity.py": [
        "tests/test_diversity.py",
        "tests/test_data_metrics_cache.py",
        "-k",
        "diversity or distinct or self_bleu or gem",
    ],
    "evalkit/metrics/multiple.py": ["tests/test_compare_trust.py", "-k", "not two_seeds"],
    "evalkit/metrics/novelty.py": ["tests/test_noveltybench.py", "-k", "not deberta and not judge and not run"],
    "evalkit/metrics/sampling.py": ["tests/test_math_sampling.py", "-k", "not gold_solutions"],
    "evalkit/metrics/self_bleu.py": ["tests/test_self_bleu.py"],
    "evalkit/metrics/spec.py": ["tests/test_metric_declarations.py", "tests/test_task_metrics.py"],
    "evalkit/metrics/task_metrics.py": ["tests/test_task_metrics.py", "tests/test_metric_declarations.py"],
    "evalkit/scoring/code.py": ["tests/test_code.py", "-k", "not end_to_end"],
    "evalkit/scoring/code_hacks.py": ["tests/test_code_hacks.py"],
    "evalkit/scoring/ifeval.py": ["tests/test_ifeval.py", "-k", "not end_to_end"],
    "evalkit/scoring/judgment.py": ["tests/test_judgment_parsing.py"],
    "evalkit/scoring/math.py": ["tests/test_math_sampling.py", "tests/test_task_metrics.py", "-k", "math or extract"],
    "evalkit/scoring/numeric.py": ["tests/test_data_metrics_cache.py", "tests/test_task_metrics.py"],
    "evalkit/scoring/refusal.py": ["tests/test_judgment_parsing.py", "tests/test_task_metrics.py"],
    "evalkit/gate.py": [
        "tests/test_gate_inputs.py",
        "tests/test_compare_check.py",
        "tests/test_compare_trust.py",
        "-k",
        "not real_run",
    ],
    "evalkit/train/losses.py": ["tests/test_losses.py"],
}

# Imported once in the parent so that forked children start with them loaded.
HEAVY = ("numpy", "torch", "sympy", "math_verify", "sacrebleu", "yaml", "pytest", "scipy")

_COMPARE = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
}
_BINARY = {
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.Mult: ast.Div,
    ast.Div: ast.Mult,
    ast.FloorDiv: ast.Div,
    ast.Mod: ast.FloorDiv,
    ast.Pow: ast.Mult,
    ast.LShift: ast.RShift,
    ast.RShift: ast.LShift,
    ast.BitOr: ast.BitAnd,
    ast.BitAnd: ast.BitOr,
}
_SYMBOL = {
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.In: "in",
    ast.NotIn: "not in",
    ast.Is: "is",
    ast.IsNot: "is not",
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
    ast.FloorDiv: "//",
    ast.Mod: "%",
    ast.Pow: "**",
    ast.LShift: "<<",
    ast.RShift: ">>",
    ast.BitOr: "|",
    ast.BitAnd: "&",
    ast.And: "and",
    ast.Or: "or",
}


@dataclass
class Mutant:
    module: str
    index: int  # the index-th mutation point of the module, in AST walk order
    line: int
    col: int
    change: str
    source: str  # the original line
    status: str = ""  # killed | timeout | survived | error
    seconds: float = 0.0


def _skipped_nodes(tree: ast.Module) -> set[int]:
    """Nodes never mutated: annotations, and the `from __future__` line."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        annotations = []
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            annotations = [a.annotation for a in node.args.args + node.args.kwonlyargs + node.args.posonlyargs]
            annotations += [node.returns, node.args.vararg and node.args.vararg.annotation]
            annotations += [node.args.kwarg and node.args.kwarg.annotation]
        elif isinstance(node, ast.AnnAssign):
            annotations = [node.annotation]
        for annotation in annotations:
            if annotation is not None:
                skip.update(id(n) for n in ast.walk(annotation))
    return skip


def _points(tree: ast.Module) -> list[tuple[ast.AST, str, object]]:
    """Every mutation point: (node, description, what to change), in a fixed walk order."""
    skip = _skipped_nodes(tree)
    points: list[tuple[ast.AST, str, object]] = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Compare):
            for i, op in enumerate(node.ops):
                if type(op) in _COMPARE:
                    new = _COMPARE[type(op)]
                    points.append((node, f"`{_SYMBOL[type(op)]}` -> `{_SYMBOL[new]}`", ("compare", i, new)))
        elif isinstance(node, (ast.BinOp, ast.AugAssign)) and type(node.op) in _BINARY:
            new = _BINARY[type(node.op)]
            eq = "=" if isinstance(node, ast.AugAssign) else ""
            points.append((node, f"`{_SYMBOL[type(node.op)]}{eq}` -> `{_SYMBOL[new]}{eq}`", ("op", new)))
        elif isinstance(node, ast.BoolOp):
            new = ast.Or if isinstance(node.op, ast.And) else ast.And
            points.append((node, f"`{_SYMBOL[type(node.op)]}` -> `{_SYMBOL[new]}`", ("op", new)))
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Not, ast.USub)):
            symbol = "not " if isinstance(node.op, ast.Not) else "-"
            points.append((node, f"`{symbol}x` -> `x`", ("unwrap",)))
        elif isinstance(node, ast.Constant) and type(node.value) is bool:
            points.append((node, f"`{node.value}` -> `{not node.value}`", ("value", not node.value)))
        elif isinstance(node, ast.Constant) and type(node.value) in (int, float):
            new = node.value + 1
            points.append((node, f"`{node.value!r}` -> `{new!r}`", ("value", new)))
        elif isinstance(node, (ast.Break, ast.Continue)):
            new = ast.Continue if isinstance(node, ast.Break) else ast.Break
            points.append((node, f"`{type(node).__name__.lower()}` -> `{new.__name__.lower()}`", ("swap", new)))
    return points


@functools.cache
def _source(module: str) -> str:
    """The module's text, read once when the run starts: an edit during the run (the children are
    forked later and inherit this cache) does not mix versions into the mutants."""
    return (REPO / module).read_text()


def mutants(module: str) -> list[Mutant]:
    text = _source(module)
    lines = text.splitlines()
    return [
        Mutant(module, i, node.lineno, node.col_offset, change, lines[node.lineno - 1].strip())
        for i, (node, change, _) in enumerate(_points(ast.parse(text)))
    ]


class _Swap(ast.NodeTransformer):
    def __init__(self, target: ast.AST, replacement: ast.AST):
        self.target, self.replacement = target, replacement

    def visit(self, node):
        if node is self.target:
            return self.replacement
        return super().visit(node)


def mutated_code(module: str, index: int):
    """The module's code object with mutation point ``index`` applied."""
    path = REPO / module
    tree = ast.parse(_source(module))
    node, _, (kind, *args) = _points(tree)[index]
    if kind == "compare":
        node.ops[args[0]] = args[1]()
    elif kind == "op":
        node.op = args[0]()
    elif kind == "value":
        node.value = args[0]
    elif kind == "unwrap":
        tree = _Swap(node, node.operand).visit(tree)
    elif kind == "swap":
        tree = _Swap(node, ast.copy_location(args[0](), node)).visit(tree)
    return compile(ast.fix_missing_locations(tree), str(path), "exec")


class _MutantLoader(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves the mutated code for one module name; every other import is the ordinary one."""

    def __init__(self, name: str, path: Path, code):
        self.name, self.path, self.code = name, path, code

    def find_spec(self, fullname, path=None, target=None):
        if fullname != self.name:
            return None
        return importlib.util.spec_from_file_location(fullname, self.path, loader=self)

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        exec(self.code, module.__dict__)


def _warm_up() -> None:
    """Load what the tests load slowly on first use, once, before any fork: the heavy libraries,
    math-verify's parser, lm-eval's IFEval checkers (none of them a mutated module)."""
    for name in HEAVY:
        try:
            __import__(name)
        except ImportError:
            pass
    try:
        from math_verify import parse, verify

        verify(parse("\\boxed{1/2}"), parse("\\boxed{0.5}"))
        from evalkit.nltk_data import ensure_punkt

        ensure_punkt()
        import langdetect  # noqa: F401
        from lm_eval.tasks.ifeval import utils  # noqa: F401
    except ImportError:
        pass


def _module_name(module: str) -> str:
    return module.removesuffix(".py").replace("/", ".").removesuffix(".__init__")


def _run_tests(module: str, index: int | None, tests: list[str], log: Path | None) -> int:
    """In a forked child: import the mutant in place of the module, run the tests; pytest's code."""
    import pytest

    if index is not None:
        code = copy.copy(mutated_code(module, index))
        sys.meta_path.insert(0, _MutantLoader(_module_name(module), REPO / module, code))
    out = os.open(log or os.devnull, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(out, 1)
    os.dup2(out, 2)
    args = [*tests, "-x", "-q", "-p", "no:cacheprovider", "--no-header", "-o", "addopts=", "-W", "ignore"]
    return int(pytest.main(args))


def run_one(
    module: str, index: int | None, tests: list[str], timeout: float, log: Path | None = None
) -> tuple[str, float]:
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:  # the child
        code = 3
        try:
            os.setpgid(0, 0)
            code = _run_tests(module, index, tests, log)
        finally:
            os._exit(min(code, 100))
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        elapsed = time.monotonic() - start
        if done:
            code = os.waitstatus_to_exitcode(status)
            if code == 0:
                return "survived", elapsed
            if code in (1, 2) or code < 0:
                return "killed", elapsed  # tests failed, or collection broke on the mutant
            return "error", elapsed  # 3: internal error, 4: usage, 5: no tests collected
        if elapsed > timeout:
            for target in (-pid, pid):  # the child's process group: the tests' subprocesses too
                try:
                    os.kill(target, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            os.waitpid(pid, 0)
            return "timeout", elapsed
        time.sleep(0.02)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--module", action="append", help="a module path (repeatable); default: all of MODULES")
    parser.add_argument("--results", default="mutation.json", help="where results are written (JSON)")
    parser.add_argument("--survivors", help="a previous results file: rerun only its survivors")
    parser.add_argument("--timeout", type=float, default=0, help="seconds per mutant (default: 4x the clean run + 10)")
    parser.add_argument("--list", action="store_true", help="list the mutants, run nothing")
    args = parser.parse_args()
    os.chdir(REPO)
    sys.path.insert(0, str(REPO))
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    # The tests' `evalkit ...` commands run in the forked child (tests/conftest.py), not in a new
    # interpreter that would import the module from disk and never see the mutant.
    os.environ["EVALKIT_TEST_CLI_IN_PROCESS"] = "1"
    modules = args.module or list(MODULES)
    previous: dict[tuple[str, int], dict] = {}
    if args.survivors:
        for row in json.loads(Path(args.survivors).read_text())["mutants"]:
            previous[(row["module"], row["index"])] = row
    todo = {m: mutants(m) for m in modules}
    if args.list:
        for m, rows in todo.items():
            for row in rows:
                print(f"{m}:{row.line}:{row.col} #{row.index} {row.change}    {row.source}")
        print(sum(map(len, todo.values())), "mutants")
        return 0
    _warm_up()
    results: list[Mutant] = []
    for module, rows in todo.items():
        tests = MODULES[module]
        status, clean = run_one(module, None, tests, timeout=1800, log=Path(f"/tmp/mutation-clean-{os.getpid()}.log"))
        if status != "survived":
            print(f"{module}: the tests fail without a mutant ({status}); skipped", flush=True)
            continue
        timeout = args.timeout or 4 * clean + 10
        print(f"{module}: {len(rows)} mutants, clean run {clean:.1f}s, timeout {timeout:.0f}s", flush=True)
        for row in rows:
            before = previous.get((module, row.index))
            if args.survivors and before is not None and before["status"] != "survived":
                row.status, row.seconds = before["status"], before["seconds"]
            elif args.survivors and before is not None and before["change"] != row.change:
                raise SystemExit(f"{module} changed since {args.survivors}: run it in full")
            else:
                row.status, row.seconds = run_one(module, row.index, tests, timeout)
                if row.status != "killed":
                    print(f"  {row.status}: {module}:{row.line}:{row.col} {row.change}    {row.source}", flush=True)
            results.append(row)
            _write(args.results, results)  # after every mutant: a stopped run keeps what it did
    _write(args.results, results)
    _summary(results)
    return 0


def _write(path: str, results: list[Mutant]) -> None:
    Path(path).write_text(json.dumps({"mutants": [asdict(r) for r in results]}, indent=1) + "\n")


def _summary(results: list[Mutant]) -> None:
    by_module: dict[str, list[Mutant]] = {}
    for row in results:
        by_module.setdefault(row.module, []).append(row)
    print("\n| module | mutants | killed | timeout | survived | error | score |\n|---|---|---|---|---|---|---|")
    for module, rows in [*by_module.items(), ("all", results)]:
        count = {s: sum(r.status == s for r in rows) for s in ("killed", "timeout", "survived", "error")}
        score = (count["killed"] + count["timeout"]) / max(1, len(rows))
        print(
            f"| {module} | {len(rows)} | {count['killed']} | {count['timeout']} | {count['survived']} | "
            f"{count['error']} | {score:.1%} |"
        )


if __name__ == "__main__":
    sys.exit(main())
