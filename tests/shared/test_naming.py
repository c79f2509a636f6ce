"""Pins every wire name: changing one breaks deployed consumers, so it must break this test first."""

from shared import naming


def test_events_exchange_is_service_dot_events():
    assert naming.events_exchange("intake") == "intake.events"
    assert naming.events_exchange("routing") == "routing.events"
    assert naming.events_exchange("archive") == "archive.events"


def test_routing_keys_of_every_event_in_the_design():
    assert naming.routing_key("intake", "directive_registered", 1) == "intake.directive_registered.v1"
    assert naming.routing_key("routing", "task_assigned", 1) == "routing.task_assigned.v1"
    assert naming.routing_key("routing", "task_status_changed", 1) == "routing.task_status_changed.v1"
    assert naming.routing_key("routing", "task_overdue", 1) == "routing.task_overdue.v1"
    assert naming.routing_key("archive", "record_archived", 1) == "archive.record_archived.v1"
    assert naming.routing_key("archive", "signature_invalid", 2) == "archive.signature_invalid.v2"


def test_consumer_queue_names_of_the_design():
    assert (
        naming.queue_name("routing", "intake", "directive_registered")
        == "routing.intake.directive_registered"
    )
    assert (
        naming.queue_name("archive", "intake", "directive_registered")
        == "archive.intake.directive_registered"
    )
    assert naming.queue_name("archive", "routing", "task_assigned") == "archive.routing.task_assigned"
    assert naming.queue_name("archive", "routing", "task_overdue") == "archive.routing.task_overdue"


def test_dead_letter_names():
    assert naming.DEAD_LETTER_EXCHANGE == "docroute.dlx"
    assert naming.dlq_name("archive.routing.task_assigned") == "archive.routing.task_assigned.dlq"
    assert naming.dlq_name(naming.unit_queue("PHONG_VHTT")) == "routing.tasks.PHONG_VHTT.dlq"


def test_unit_task_queues():
    assert naming.TASKS_EXCHANGE == "routing.tasks"
    assert naming.unit_queue("STTTT") == "routing.tasks.STTTT"


def test_the_system_subscriptions_are_pinned():
    from shared.naming import SUBSCRIPTIONS, queue_name, unrouted_name

    assert [queue_name(c, s, e) for c, s, e, _ in SUBSCRIPTIONS] == [
        "routing.intake.directive_registered",
        "routing.intake.directive_revoked",
        "routing.intake.directive_rejected",
        "routing.intake.directive_updated",
        "routing.intake.directive_replaced",
        "archive.intake.directive_registered",
        "archive.intake.directive_revoked",
        "archive.intake.directive_updated",
        "archive.intake.directive_replaced",
        "archive.routing.task_assigned",
        "archive.routing.tasks_assigned",
        "archive.routing.task_status_changed",
        "archive.routing.tasks_acknowledged",
        "archive.routing.task_overdue",
        "intake.routing.tasks_assigned",
        "intake.routing.task_assigned",
        "intake.routing.tasks_acknowledged",
        "intake.routing.task_status_changed",
    ]
    assert unrouted_name("archive.events") == "archive.events.unrouted"
