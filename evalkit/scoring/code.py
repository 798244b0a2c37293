"""Programs to execute for code tasks: the model's code (from a chat reply or a continuation) plus
the task's tests. Written here because it is task-format glue that no kept library exposes."""

from __future__ import annotations

import re

_FENCE = re.compile(r"```[ \t]*(?:python|py|python3)?[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL | re.IGNORECASE)
_TOP_LEVEL = re.compile(r"\n(?=\S)")


def extract_code(completion: str) -> str:
    """The code of a reply: its first fenced block (an unclosed fence runs to the end), else the text."""
    match = _FENCE.search(completion)
    return match.group(1) if match else completion


def truncate_continuation(body: str) -> str:
    """A function-body continuation stops at the next top-level line (a new def, class, if, print...)."""
    match = _TOP_LEVEL.search(body)
    return body[: match.start()] if match else body


def _defines(code: str, name: str) -> bool:
    return re.search(rf"^\s*def\s+{re.escape(name)}\s*\(", code, re.MULTILINE) is not None


def humaneval_solution(doc: dict, completion: str) -> str:
    """HumanEval: the prompt (imports, helpers, signature, docstring) and the model's code.

    A reply that writes the whole function replaces the prompt's stub; otherwise the completion is
    the body that continues the prompt, cut at the next top-level statement."""
    code = extract_code(completion)
    if _defines(code, doc["entry_point"]):
        return doc["prompt"] + "    pass\n\n" + code
    return doc["prompt"] + truncate_continuation(code)


def humaneval_program(doc: dict, completion: str) -> str:
    """HumanEval: the solution (``humaneval_solution``), then the tests."""
    return f"{humaneval_solution(doc, completion)}\n\n{doc['test']}\n\ncheck({doc['entry_point']})\n"


def mbpp_program(doc: dict, completion: str) -> str:
    """MBPP: the model's code, the setup code (it may use the code's classes: task 367), the assertions."""
    setup = doc.get("test_setup_code") or ""
    tests = "\n".join(doc["test_list"])
    return f"{extract_code(completion)}\n\n{setup}\n\n{tests}\n"
