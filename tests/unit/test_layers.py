"""What import-linter cannot see: tasks are sent only by core's one sending function."""

from __future__ import annotations

import ast

from tests.fixtures.processes import ROOT

SENDING_CALLS = {"delay", "apply_async", "send_task"}
PACKAGES = ("api", "cli", "scheduler", "services", "tasks", "workers", "models")


def test_tasks_are_sent_only_through_core() -> None:
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                call = node.func if isinstance(node, ast.Call) else None
                if isinstance(call, ast.Attribute) and call.attr in SENDING_CALLS:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} .{call.attr}()")
    hint = "send tasks with core.outbox.enqueue (or core.unit_of_work.send_now):\n"
    assert not found, hint + "\n".join(found)
