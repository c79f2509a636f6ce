"""docroute-unit on the real RabbitMQ: delivery, retries, receipts, crashes, reconnects, access rights."""

from __future__ import annotations

import json
import signal
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pika
import pika.exceptions
import pytest

from .support import (
    ClientProcess,
    RecordingServer,
    declare_unit_queue,
    drain,
    encode,
    envelope,
    publish,
    queue_depth,
    task_offer,
    unique_unit,
    wait_for,
)

pytestmark = pytest.mark.integration

Client = Callable[..., ClientProcess]
Server = Callable[..., RecordingServer]


def base_args(url: str, code: str) -> list[str]:
    return ["--amqp-url", url, "--unit", code, "--retry-delay", "0.05", "--retry-delay-max", "0.2"]


def task_ids(docs: list[dict]) -> list[str]:
    return [d["payload"]["id"] for d in docs]


def test_tasks_are_written_to_stdout_in_order_and_acked(
    unit_queue: tuple[str, str], run_client: Client
) -> None:
    url, code = unit_queue
    offers = [task_offer(code, n) for n in range(1, 21)]
    publish(url, code, [encode(d) for d in offers])

    client = run_client(*base_args(url, code), "--deliver-to", "stdout", "--idle-exit", "1")
    assert client.wait() == 0, client.log()

    assert client.documents() == offers  # same order, Vietnamese text byte-for-byte after the round trip
    assert queue_depth(url, f"routing.tasks.{code}") == 0
    assert queue_depth(url, f"routing.tasks.{code}.dlq") == 0
    assert any(e["message"] == "consuming" for e in client.log_entries())


def test_malformed_and_misrouted_messages_go_to_the_dead_letter_queue(
    unit_queue: tuple[str, str], run_client: Client
) -> None:
    url, code = unit_queue
    good = [task_offer(code, 1), task_offer(code, 2)]
    misrouted = encode(task_offer("SYT", 3))
    publish(url, code, [encode(good[0]), b"\xff not json", misrouted, encode(good[1])])

    client = run_client(*base_args(url, code), "--idle-exit", "1")
    assert client.wait() == 0, client.log()

    assert client.documents() == good
    dlq = f"routing.tasks.{code}.dlq"
    wait_for(lambda: queue_depth(url, dlq) == 2, timeout=5)
    assert sorted(drain(url, dlq)) == sorted([b"\xff not json", misrouted])


def test_hook_that_fails_twice_still_gets_every_task(
    unit_queue: tuple[str, str], run_client: Client, http_server: Server
) -> None:
    url, code = unit_queue
    hook = http_server(lambda _path, n: 503 if n <= 2 else 200)
    offers = [task_offer(code, n) for n in range(1, 6)]
    publish(url, code, [encode(d) for d in offers])

    client = run_client(*base_args(url, code), "--deliver-to", hook.url + "/hook", "--idle-exit", "1")
    assert client.wait() == 0, client.log()

    received = [json.loads(b) for b in hook.bodies()]
    assert len(received) == 7
    accepted = received[2:]  # the first two answers were 503
    assert sorted(task_ids(accepted)) == sorted(task_ids(offers))
    assert client.documents() == []  # nothing leaks to stdout in hook mode
    assert queue_depth(url, f"routing.tasks.{code}") == 0
    assert queue_depth(url, f"routing.tasks.{code}.dlq") == 0


def test_hook_that_never_answers_2xx_dead_letters_after_max_failures(
    unit_queue: tuple[str, str], run_client: Client, http_server: Server
) -> None:
    url, code = unit_queue
    hook = http_server(lambda _path, _n: 500)
    publish(url, code, [encode(task_offer(code, 1))])

    client = run_client(
        *base_args(url, code), "--deliver-to", hook.url, "--max-failures", "3", "--max-messages", "1"
    )
    assert client.wait() == 0, client.log()

    assert len(hook.requests) == 3
    wait_for(lambda: queue_depth(url, f"routing.tasks.{code}.dlq") == 1, timeout=5)


def test_routing_receives_one_receipt_per_task(
    unit_queue: tuple[str, str], run_client: Client, http_server: Server
) -> None:
    url, code = unit_queue
    routing = http_server(lambda _path, _n: 200)
    offers = [task_offer(code, n) for n in range(1, 6)]
    reminder = envelope(
        "routing.task_reminder", {"task_id": task_ids(offers)[0], "unit": code, "message": "Nhắc"}
    )
    publish(url, code, [encode(d) for d in offers] + [encode(reminder)])

    args = ["--routing-url", routing.url, "--token", "unit-token", "--idle-exit", "1"]
    client = run_client(*base_args(url, code), *args)
    assert client.wait() == 0, client.log()

    assert routing.paths() == [f"/v1/tasks/{t}/ack" for t in task_ids(offers)]
    assert {h["Authorization"] for _p, h, _b in routing.requests} == {"Bearer unit-token"}
    assert [d["type"] for d in client.documents()] == ["routing.task_offered"] * 5 + ["routing.task_reminder"]


def test_client_reconnects_after_the_broker_drops_its_connection(
    amqp_vhost_factory: Callable[[], str], run_client: Client, http_server: Server
) -> None:
    url = amqp_vhost_factory()
    vhost = url.rsplit("/", 1)[1]
    code = unique_unit()
    declare_unit_queue(url, code)

    def slow(_path: str, _n: int) -> int:
        time.sleep(0.03)  # keeps the stream flowing while the connection is cut
        return 200

    hook = http_server(slow)
    offers = [task_offer(code, n) for n in range(1, 31)]
    publish(url, code, [encode(d) for d in offers])
    client = run_client(
        *base_args(url, code), "--deliver-to", hook.url, "--prefetch", "5", "--idle-exit", "2"
    )
    wait_for(lambda: len(hook.requests) >= 8)

    subprocess.run(
        ["rabbitmqctl", "-q", "close_all_connections", "-p", vhost, "test: connection drop"],
        check=True,
        capture_output=True,
        timeout=30,
    )
    assert client.wait(30) == 0, client.log()

    delivered = Counter(task_ids([json.loads(b) for b in hook.bodies()]))
    assert set(delivered) == set(task_ids(offers))
    assert max(delivered.values()) == 1  # the in-flight task is remembered across the reconnect
    messages = [e["message"] for e in client.log_entries()]
    assert "not consuming; reconnecting" in messages
    assert messages.count("consuming") == 2
    assert queue_depth(url, f"routing.tasks.{code}") == 0


@pytest.mark.parametrize("with_state_file", [True, False], ids=["state-file", "memory-only"])
def test_kill_9_between_hand_off_and_receipt_loses_nothing(
    unit_queue: tuple[str, str],
    run_client: Client,
    http_server: Server,
    tmp_path: Path,
    with_state_file: bool,
) -> None:
    url, code = unit_queue
    offers = [task_offer(code, n) for n in range(1, 13)]
    victim = f"/v1/tasks/{task_ids(offers)[4]}/ack"
    routing = http_server()

    def respond(path: str, n: int) -> int:
        if path == victim and n == 1:
            routing.release.wait(30)  # hold the first receipt of task 5 until the client is killed
            return 503
        return 200

    routing.respond = respond
    publish(url, code, [encode(d) for d in offers])
    args = [*base_args(url, code), "--routing-url", routing.url, "--token", "t", "--prefetch", "3"]
    if with_state_file:
        args += ["--state-file", str(tmp_path / "state" / "seen.jsonl")]

    first = run_client(*args)
    wait_for(lambda: victim in routing.paths())  # task 5 is on stdout, its receipt is in flight
    first.proc.send_signal(signal.SIGKILL)
    first.wait()
    assert task_ids(first.documents()) == task_ids(offers)[:5]

    second = run_client(*args, "--idle-exit", "1")
    assert second.wait() == 0, second.log()

    handed_on = Counter(task_ids(first.documents() + second.documents()))
    assert set(handed_on) == set(task_ids(offers))  # at least once, whatever happens
    assert handed_on[task_ids(offers)[4]] == (1 if with_state_file else 2)
    assert all(handed_on[t] == 1 for t in task_ids(offers) if t != task_ids(offers)[4])
    receipts = Counter(routing.paths())
    assert receipts[victim] == 2 and all(receipts[f"/v1/tasks/{t}/ack"] == 1 for t in task_ids(offers)[5:])
    assert queue_depth(url, f"routing.tasks.{code}") == 0


def test_sigterm_during_a_retry_exits_promptly_and_leaves_the_task_queued(
    unit_queue: tuple[str, str], run_client: Client, http_server: Server
) -> None:
    url, code = unit_queue
    hook = http_server(lambda _path, _n: 503)
    publish(url, code, [encode(task_offer(code, 1))])
    args = [*base_args(url, code), "--deliver-to", hook.url, "--retry-delay", "20", "--retry-delay-max", "20"]
    client = run_client(*args)
    wait_for(lambda: len(hook.requests) == 1)

    started = time.monotonic()
    client.proc.send_signal(signal.SIGTERM)
    assert client.wait(10) == 0, client.log()
    assert time.monotonic() - started < 3
    wait_for(lambda: queue_depth(url, f"routing.tasks.{code}") == 1, timeout=5)
    assert queue_depth(url, f"routing.tasks.{code}.dlq") == 0


def test_max_messages_settles_that_many_and_leaves_the_rest(
    unit_queue: tuple[str, str], run_client: Client
) -> None:
    url, code = unit_queue
    offers = [task_offer(code, n) for n in range(1, 6)]
    publish(url, code, [encode(d) for d in offers])
    client = run_client(*base_args(url, code), "--max-messages", "2", "--prefetch", "5")
    assert client.wait() == 0, client.log()
    assert client.documents() == offers[:2]
    wait_for(lambda: queue_depth(url, f"routing.tasks.{code}") == 3, timeout=5)


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=30)


def test_unit_account_reads_only_its_own_queue(
    amqp_vhost_factory: Callable[[], str], run_client: Client
) -> None:
    admin_url = amqp_vhost_factory()
    vhost = admin_url.rsplit("/", 1)[1]
    unit_a, unit_b = unique_unit("UNIT-A"), unique_unit("UNIT-B")
    for code in (unit_a, unit_b):
        declare_unit_queue(admin_url, code)
        publish(admin_url, code, [encode(task_offer(code, 1))])
    user, password = f"unit-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    own_queue = "^" + f"routing.tasks.{unit_a}".replace(".", r"\.") + "$"
    _rabbitmqctl("add_user", user, password)
    try:
        _rabbitmqctl("set_permissions", "-p", vhost, user, "^$", "^$", own_queue)
        unit_url = f"amqp://{user}:{password}@127.0.0.1:5672/{vhost}"

        with pika.BlockingConnection(pika.URLParameters(unit_url)) as conn:
            channel = conn.channel()
            with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
                channel.basic_consume(f"routing.tasks.{unit_b}", lambda *_: None)
            assert refused.value.reply_code == 403

        intruder = run_client("--amqp-url", unit_url, "--unit", unit_b)
        assert intruder.wait() == 3
        assert intruder.documents() == []
        assert "ACCESS_REFUSED" in intruder.log()

        own = run_client("--amqp-url", unit_url, "--unit", unit_a, "--max-messages", "1")
        assert own.wait() == 0, own.log()
        assert [d["payload"]["unit"] for d in own.documents()] == [unit_a]
        assert queue_depth(admin_url, f"routing.tasks.{unit_b}") == 1
    finally:
        subprocess.run(
            ["rabbitmqctl", "-q", "delete_user", user], capture_output=True, timeout=30, check=False
        )


def test_client_waits_for_its_queue_to_be_created(amqp_url: str, run_client: Client) -> None:
    code = unique_unit()
    client = run_client(*base_args(amqp_url, code), "--idle-exit", "2", "--reconnect-delay-max", "0.3")
    wait_for(lambda: "NOT_FOUND" in client.log())  # routing has not declared the unit's queue yet
    offer = task_offer(code, 1)
    declare_unit_queue(amqp_url, code)
    publish(amqp_url, code, [encode(offer)])
    client.wait_lines(1)
    assert client.documents() == [offer]
    assert client.wait() == 0, client.log()


def test_unreachable_broker_is_retried_until_idle_exit_gives_up(run_client: Client) -> None:
    args = ["--amqp-url", "amqp://guest:guest@127.0.0.1:9/", "--unit", "SYT", "--idle-exit", "1"]
    client = run_client(*args, "--reconnect-delay-max", "0.2")
    assert client.wait() == 1
    retries = [e for e in client.log_entries() if e["message"] == "not consuming; reconnecting"]
    assert len(retries) >= 3
    assert [e["attempt"] for e in retries[:3]] == [1, 2, 3]


def test_a_state_file_in_use_by_another_client_stops_the_second(
    unit_queue: tuple[str, str], run_client: Client, tmp_path: Path
) -> None:
    url, code = unit_queue
    state = str(tmp_path / "seen.jsonl")
    first = run_client(*base_args(url, code), "--state-file", state)
    wait_for(lambda: "consuming" in first.log())
    second = run_client(*base_args(url, code), "--state-file", state)
    assert second.wait() == 3
    assert "in use by another docroute-unit process" in second.log()
    first.proc.send_signal(signal.SIGINT)
    assert first.wait() == 0
