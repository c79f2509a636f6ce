"""The scale-out run's publish audit: which copies of a relayed message are re-sends the outbox's
at-least-once contract allows, and which would be a double publish by two relays holding one row."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

from chaos.scaleout import ClusterRun, PublishAudit

A, B, C = "vm/101/routing", "vm/202/routing", "vm/303/routing"


def _audit(copies: dict[str, list[str]]) -> PublishAudit:
    audit = PublishAudit()
    for message_id, publishers in copies.items():
        audit.publishers[message_id].extend(publishers)
        audit._touched.add(message_id)
    return audit


def test_one_copy_each_is_clean() -> None:
    doubles, resent = _audit({"m1": [A], "m2": [B]}).judge(set(), {})
    assert (doubles, dict(resent)) == ([], {})


def test_a_relay_sending_again_after_a_lost_confirm_is_a_resend() -> None:
    doubles, resent = _audit({"m1": [A, A]}).judge(set(), {})
    assert doubles == []
    assert sum(resent.values()) == 1


def test_two_relays_are_accounted_for_when_the_first_sent_it_without_a_confirm_or_died() -> None:
    audit = _audit({"m1": [B, A], "m2": [C, B]})
    doubles, resent = audit.judge(killed={303}, in_doubt={A: {"m1"}})
    assert doubles == []
    assert sum(resent.values()) == 2


def test_two_relays_that_both_published_cleanly_are_a_double_publish() -> None:
    audit = _audit({"m1": [A, B]})
    doubles, _ = audit.judge(set(), {})
    assert doubles == [f"message m1 published by two relays that both held it: {A}, {B}"]
    # A relay killed only afterwards does not excuse a copy judged before: the verdict stays.
    doubles, _ = audit.judge(killed={101}, in_doubt={})
    assert len(doubles) == 1


def test_the_relays_in_doubt_log_lines_are_read_from_each_replicas_log(tmp_path: Path) -> None:
    """The line shared.outbox logs for rows sent without a confirm, among a replica's other output."""
    logs = []
    for index, lines in enumerate(
        [
            [
                "[2026-12-05 03:00:00 +0000] [1] [INFO] Booting worker with pid: 2",
                json.dumps(
                    {
                        "level": "WARNING",
                        "logger": "shared.outbox",
                        "message": "outbox rows sent without a confirm; they will be sent again",
                        "publisher": A,
                        "in_doubt": ["m1", "m2"],
                    }
                ),
                '{"message": "in_doubt", "broken": ',
            ],
            [json.dumps({"publisher": B, "in_doubt": ["m3"]})],
        ]
    ):
        path = tmp_path / f"up{index}.log"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        logs.append(SimpleNamespace(log=path))
    run = SimpleNamespace(stacks=logs)
    assert ClusterRun.in_doubt(run) == {A: {"m1", "m2"}, B: {"m3"}}  # type: ignore[arg-type]
