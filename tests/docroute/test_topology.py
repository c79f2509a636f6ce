"""Every queue a service consumes is in the system's one subscription table, so it is declared up front."""

from __future__ import annotations

from shared.naming import SUBSCRIPTIONS, queue_name


def _declared(consumer: str) -> set[str]:
    return {queue_name(c, s, e) for c, s, e, _ in SUBSCRIPTIONS if c == consumer}


def test_archive_consumes_exactly_its_subscriptions() -> None:
    from archive import messages

    assert {messages.consumer_queue(source, event) for source, event in messages.CONSUMED} == _declared(
        "archive"
    )


def test_routing_consumes_exactly_its_subscriptions() -> None:
    from routing.messages import (
        DIRECTIVE_REGISTERED_QUEUE,
        DIRECTIVE_REJECTED_QUEUE,
        DIRECTIVE_REPLACED_QUEUE,
        DIRECTIVE_REVOKED_QUEUE,
        DIRECTIVE_UPDATED_QUEUE,
    )

    assert {
        DIRECTIVE_REGISTERED_QUEUE,
        DIRECTIVE_REVOKED_QUEUE,
        DIRECTIVE_REJECTED_QUEUE,
        DIRECTIVE_UPDATED_QUEUE,
        DIRECTIVE_REPLACED_QUEUE,
    } == _declared("routing")


def test_intake_consumes_exactly_its_subscriptions() -> None:
    from intake.worker import consumed_queue_names

    assert set(consumed_queue_names()) == _declared("intake")
