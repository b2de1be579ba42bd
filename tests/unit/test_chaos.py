"""The chaos run's verdicts: what counts as completed, failed or lost, and which faults a run injects."""

from __future__ import annotations

from collections import Counter

from bench.chaos import Row, expected_reply, reply_outcome, selected_faults
from tests.fixtures.fake_llm import reply_words


def test_the_expected_reply_is_the_fake_models_answer_without_directives() -> None:
    assert expected_reply("c1x7 tell me [[delay_ms:20]]") == "".join(reply_words("c1x7 tell me", 50))
    assert expected_reply("tg3 hello").startswith("Echo: tg3 hello lorem")


def test_a_completed_reply_with_another_text_is_lost_and_a_failed_one_keeps_its_reason() -> None:
    key = "c0x1 tell me"
    assert reply_outcome(key, "completed", expected_reply(key), None) == ("completed", "")
    assert reply_outcome(key, "completed", "Echo: c0x1", None)[0] == "lost"
    assert reply_outcome(key, "failed", "", "llm_unavailable") == ("failed", "llm_unavailable")
    assert reply_outcome(key, "generating", "Echo:", None) == ("pending", "generating")


def test_short_runs_one_fault_of_each_kind_and_rabbitmq_faults_only_on_rabbitmq() -> None:
    short = [f.name for f in selected_faults(short=True, amqp=False)]
    assert not any("RabbitMQ" in name for name in short)
    assert any("RabbitMQ" in f.name for f in selected_faults(short=True, amqp=True))
    kinds = ("SIGKILL llm", "SIGKILL api", "Redis", "Postgres", "model", "Bot API", "flooded")
    assert all(sum(kind in name for name in short) == 1 for kind in kinds), short
    full = [f.name for f in selected_faults(short=False, amqp=False)]
    assert set(short) - set(full) == {"Redis SIGKILL + restart"}  # the full run kills it five times
    assert len(full) > len(short)


def test_a_row_fails_on_anything_lost_doubled_or_not_recovered() -> None:
    assert Row("f", accepted=3, completed=2, failed=Counter({"chat:llm_unavailable": 1}), recovered=1.0).ok
    assert not Row("f", lost=["x"], recovered=1.0).ok
    assert not Row("f", doubled=["x"], recovered=1.0).ok
    assert not Row("f", recovered=None).ok
    assert not Row("f", problems=["chat replies waited 9 s behind the flood"], recovered=1.0).ok
