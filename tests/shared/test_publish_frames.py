"""The publisher's batch frames are byte for byte what py-amqp's frame writer sends for basic.publish, and
a large batch arrives whole, in order, with every property, on RabbitMQ."""

import uuid

import amqp
import pytest
from amqp.method_framing import frame_writer
from amqp.serialization import dumps
from hypothesis import given, settings
from hypothesis import strategies as st
from kombu import Connection
from shared.messaging import OutgoingMessage, Publisher, declare_unit_queue
from shared.messaging.publishing import PublishFrames
from shared.naming import TASKS_EXCHANGE, unit_queue


class _Recorder:
    def __init__(self) -> None:
        self.written = bytearray()

    def write(self, data: object) -> None:
        self.written += bytes(data)  # type: ignore[call-overload]


class _Conn:
    def __init__(self, frame_max: int) -> None:
        self.frame_max = frame_max
        self.bytes_sent = 0


def _py_amqp_bytes(channel_id: int, frame_max: int, exchange: str, key: str, message: amqp.Message) -> bytes:
    recorder = _Recorder()
    write = frame_writer(_Conn(frame_max), recorder)
    # What channel.send_method(Basic.Publish, "Bssbb", args, message) hands the frame writer.
    args = dumps("Bssbb", (0, exchange, key, True, False))
    write(1, channel_id, amqp.spec.Basic.Publish, args, message)
    return bytes(recorder.written)


def _message(
    body: bytes | str, headers: dict[str, object], correlation_id: str | None, message_id: str
) -> amqp.Message:
    properties: dict[str, object] = {"message_id": message_id, "delivery_mode": 2}
    if correlation_id:
        properties["correlation_id"] = correlation_id
    return amqp.Message(
        body,
        content_type="application/json",
        content_encoding="utf-8",
        application_headers=dict(headers),
        **properties,
    )


header_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3),
    max_leaves=6,
)


@settings(max_examples=150, deadline=None)
@given(
    body=st.binary(max_size=9000) | st.text(max_size=3000),
    headers=st.dictionaries(st.text(min_size=1, max_size=20), header_values, max_size=4),
    correlation_id=st.none() | st.text(min_size=1, max_size=40),
    exchange=st.text(max_size=30),
    key=st.text(max_size=30),
    frame_max=st.sampled_from([4096, 8192, 131072]),
    channel_id=st.integers(1, 65535),
)
def test_frames_are_those_py_amqp_writes(body, headers, correlation_id, exchange, key, frame_max, channel_id):
    # Bodies up to twice frame_max: one body frame, several, and the boundary where py-amqp splits.
    message_id = str(uuid.uuid4())
    expected = _py_amqp_bytes(
        channel_id, frame_max, exchange, key, _message(body, headers, correlation_id, message_id)
    )
    frames = PublishFrames(channel_id, frame_max)
    assert frames.publish(exchange, key, _message(body, headers, correlation_id, message_id)) == expected
    # The second time the method frame comes from the cache.
    assert frames.publish(exchange, key, _message(body, headers, correlation_id, message_id)) == expected


@pytest.mark.parametrize("size", [0, 1, 4096 - 8 - 200, 4096 - 8, 4096, 3 * 4096 + 5])
def test_frames_equal_py_amqps_byte_for_byte_around_frame_boundaries(size):
    message_args = ("routing.tasks", "UNIT_Đ", b"\xe1" * size)
    headers = {
        "correlation_id": "c-1",
        "x-docroute-publisher": "host/1/routing",
        "n": [1, "hai", {"ba": None}],
    }

    def message() -> amqp.Message:
        return amqp.Message(
            message_args[2],
            content_type="application/json",
            content_encoding="utf-8",
            application_headers=dict(headers),
            message_id="m-1",
            delivery_mode=2,
            correlation_id="c-1",
        )

    expected = _py_amqp_bytes(7, 4096, message_args[0], message_args[1], message())
    frames = PublishFrames(7, 4096)
    assert frames.publish(message_args[0], message_args[1], message()) == expected
    assert frames.publish(message_args[0], message_args[1], message()) == expected  # from the cache


@pytest.mark.integration
def test_a_batch_larger_than_one_write_arrives_whole_in_order_with_its_properties(vhost_url: str):
    unit = f"UNIT_{uuid.uuid4().hex[:8].upper()}"
    with Connection(vhost_url) as conn:
        declare_unit_queue(conn, unit)
    body = ('{"tiêu_đề":"' + "Công văn số " * 150 + '"}').encode()  # ~2.5 KB: 600 of them are 6 writes
    messages = [
        OutgoingMessage(
            TASKS_EXCHANGE, unit, body + str(i).encode(), f"m-{i}", {"correlation_id": f"c-{i}", "n": i}
        )
        for i in range(600)
    ]
    with Publisher(vhost_url, confirm_timeout=5.0, retries=1) as publisher:
        result = publisher.publish_batch(messages)
    assert result.confirmed == 600 and result.error is None
    got = []
    with Connection(vhost_url) as conn:
        channel = conn.default_channel
        while len(got) < 600:
            message = channel.basic_get(unit_queue(unit), no_ack=True)
            assert message is not None, f"only {len(got)} of 600 arrived"
            got.append(message)
    for i, message in enumerate(got):
        received = message.body.encode() if isinstance(message.body, str) else bytes(message.body)
        assert received == body + str(i).encode()
        assert message.properties["message_id"] == f"m-{i}"
        assert message.properties["correlation_id"] == f"c-{i}"
        assert message.properties["delivery_mode"] == 2
        assert message.properties["content_type"] == "application/json"
        assert message.properties["content_encoding"] == "utf-8"
        assert {k: v for k, v in message.headers.items() if k != "x-delivery-count"} == {
            "correlation_id": f"c-{i}",
            "n": i,
        }
