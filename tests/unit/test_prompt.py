from __future__ import annotations

from services.chat.prompt import MESSAGE_OVERHEAD_TOKENS, build_prompt, message_tokens


def test_everything_fits() -> None:
    history = [("user", "hi"), ("assistant", "hello"), ("user", "how are you")]
    prompt = build_prompt("Be nice.", history, "fine?", context_tokens=1000, max_tokens=100)
    assert [m["role"] for m in prompt] == ["system", "user", "assistant", "user", "user"]
    assert prompt[-1]["content"] == "fine?"


def test_oldest_turns_are_dropped_first_and_the_new_message_always_stays() -> None:
    history = [("user", f"message number {i} " + "word " * 20) for i in range(20)]
    budget = message_tokens(history[0][1]) * 3 + message_tokens("new") + message_tokens("sys") + 50
    prompt = build_prompt("sys", history, "new", context_tokens=budget, max_tokens=50)
    kept = [m["content"] for m in prompt[1:-1]]
    assert kept == [content for _, content in history[-3:]]
    assert prompt[0] == {"role": "system", "content": "sys"} and prompt[-1]["content"] == "new"


def test_no_system_prompt_and_no_room_for_history() -> None:
    prompt = build_prompt("", [("user", "old " * 100)], "new", context_tokens=60, max_tokens=50)
    assert prompt == [{"role": "user", "content": "new"}]


def test_a_stored_token_estimate_is_used_instead_of_estimating_the_text() -> None:
    # The same text twice: stored as costing more than the budget, the older message is dropped.
    history = [("user", "short", 10_000), ("assistant", "short", None), ("user", "short", 1)]
    prompt = build_prompt("", history, "new", context_tokens=500, max_tokens=50)
    assert [m["role"] for m in prompt] == ["assistant", "user", "user"]
    assert message_tokens("short", 7) == 7 + MESSAGE_OVERHEAD_TOKENS
