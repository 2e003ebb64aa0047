"""`/api/v1/ws`: the WebSocket that pushes what changes.

The client subscribes to topics (`alerts`, `health`, `workflows`, `notifications`, `system`, `logs` with an
optional log query, `traces`, `metrics:<name>`) and gets `{topic, type, data, cursor}` messages as things
happen; reconnecting with `?since=<cursor>` replays from storage what it missed. docs/api.md (WebSocket)
describes the protocol. The fan-out lives in `tocsin_api.hub`; this module is the connection: a reader task
(the client's messages), a sender task (draining the client's bounded queue), and the close when the client
is too slow (1013).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import msgspec
from litestar import WebSocket, websocket
from litestar.exceptions import ValidationException, WebSocketDisconnect

from tocsin import Monitor, QueryError
from tocsin.ext import parse_log_query
from tocsin_api import params
from tocsin_api.deps import MonitorDep
from tocsin_api.hub import (
    CURSOR_VERSION,
    MAX_TOPICS,
    METRICS,
    REPLAYABLE,
    TOPICS,
    Client,
    Hub,
    check_aggregate,
    parse_cursor,
)

log = logging.getLogger("tocsin.api")

CLOSE_TOO_SLOW = 1013
"""The close code of a client whose queue overflowed ("try again later": reconnect with `since`)."""
CLOSE_BAD_REQUEST = 1008
"""The close code of a connection whose `since` parameter is not a cursor or a time."""
CLOSE_TIMEOUT_S = 10.0
"""How long a closing client has to read what is in flight before the TCP connection is dropped."""
DROPPED_CLIENTS = "tocsin_ws_dropped_clients_total"


class ClientMessage(msgspec.Struct, forbid_unknown_fields=True):
    """What a client sends: any of subscribe (with q, aggregate, since), unsubscribe and ping."""

    subscribe: list[str] | None = None
    q: str = ""
    aggregate: str = "avg"
    since: str | int | None = None
    unsubscribe: list[str] | None = None
    ping: Any = msgspec.UNSET


def parse_since(value: str | int, monitor: Monitor) -> dict[str, int] | int:
    """A `since`: a cursor (positions per topic), or a time for every topic (ns, RFC 3339, or a duration
    before now such as `15m`); ValueError saying why not."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise ValueError("since: expected a cursor or a time")
    if value.startswith(CURSOR_VERSION):
        try:
            return parse_cursor(value)
        except ValueError as error:
            raise ValueError(f"since: {error}") from None
    try:
        found = params.time_ns(value, "since", now_ns=monitor.clock.now_ns())
    except ValidationException as error:
        raise ValueError(str(error.detail)) from None
    if found is None:
        raise ValueError("since: expected a cursor or a time")
    return found


def _known(topic: str) -> bool:
    return topic in TOPICS or (topic.startswith(METRICS) and len(topic) > len(METRICS))


def _problems(request: ClientMessage, monitor: Monitor, client_topics: set[str]
              ) -> tuple[list[str], dict[str, int] | int | None]:
    problems: list[str] = []
    for topic in [*(request.subscribe or []), *(request.unsubscribe or [])]:
        if not _known(topic):
            problems.append(f"unknown topic {topic[:64]!r}; topics are {', '.join(TOPICS)} and metrics:<name>")
    since = None
    if request.subscribe:
        if len(set(request.subscribe) | client_topics) > MAX_TOPICS:
            problems.append(f"too many topics: a connection may hold {MAX_TOPICS}")
        if request.q.strip():
            try:
                parse_log_query(request.q)
            except QueryError as error:
                problems.append(f"q: {error}")
        if any(topic.startswith(METRICS) for topic in request.subscribe):
            try:
                check_aggregate(request.aggregate)
            except QueryError as error:
                problems.append(f"aggregate: {error}")
        if request.since is not None:
            try:
                since = parse_since(request.since, monitor)
            except ValueError as error:
                problems.append(str(error))
    return problems, since


async def _subscribe(hub: Hub, client: Client, request: ClientMessage, since: dict[str, int] | int | None,
                     connection_since: dict[str, int] | int | None) -> None:
    topics = list(dict.fromkeys(request.subscribe or []))
    replay: dict[str, int] = {}
    for topic in topics:
        chosen = since if since is not None else (connection_since if topic not in client.ever else None)
        start = chosen if isinstance(chosen, int) or chosen is None else chosen.get(topic)
        if topic in REPLAYABLE and start is not None:
            replay[topic] = start
    client.hold()
    try:
        for topic in topics:
            hub.subscribe(client, topic, query=request.q.strip(), aggregate=request.aggregate,
                          since_ns=replay.get(topic))
        counts: dict[str, int] = {}
        truncated: list[str] = []
        try:
            counts, truncated = await hub.replay(client, replay, request.q.strip())
        except Exception as error:  # storage unavailable, or a query it refuses
            log.warning("tocsin-api: a WebSocket replay failed: %r", error)
            client.control("error", {"reason": f"the replay failed ({type(error).__name__}); live events follow"})
        client.control("subscribed", {"topics": sorted(client.topics), "q": client.log_query,
                                      "replayed": counts, "truncated": truncated}, cursor=True)
    finally:
        client.release()


async def _read(socket: WebSocket[Any, Any, Any], hub: Hub, client: Client,
                connection_since: dict[str, int] | int | None) -> None:
    """Handle the client's messages until it disconnects."""
    while True:
        text = await socket.receive_text()
        try:
            request = msgspec.json.decode(text, type=ClientMessage)
        except (msgspec.DecodeError, msgspec.ValidationError) as error:
            client.control("error", {"reason": f"bad message: {error}"})
            continue
        if request.subscribe is None and request.unsubscribe is None and request.ping is msgspec.UNSET:
            client.control("error", {"reason": "bad message: send subscribe, unsubscribe or ping"})
            continue
        problems, since = _problems(request, hub.monitor, client.topics)
        if problems:
            client.control("error", {"reason": "; ".join(problems[:5])})
            continue
        if request.ping is not msgspec.UNSET:
            client.reply({"pong": request.ping})
        if request.unsubscribe is not None:
            for topic in request.unsubscribe:
                hub.unsubscribe(client, topic)
            client.control("unsubscribed", {"topics": sorted(client.topics)}, cursor=True)
        if request.subscribe is not None:
            await _subscribe(hub, client, request, since, connection_since)


async def _send(socket: WebSocket[Any, Any, Any], client: Client) -> None:
    """Send the client's queued messages, oldest first, as fast as it reads them."""
    while True:
        data = await client.queue.get()
        await socket.send_text(data)


@websocket("/ws", summary="Live alerts, health, workflows, logs, traces and metric snapshots", tags=["websocket"])
async def stream(socket: WebSocket[Any, Any, Any], monitor: MonitorDep) -> None:
    """Subscribe to topics and get their events as they happen; `?since=<cursor>` replays what was missed."""
    await socket.accept()
    connection_since = None
    text = socket.query_params.get("since")
    if text:
        try:
            connection_since = parse_since(text, monitor)
        except ValueError as error:
            await socket.send_json({"type": "error", "data": {"reason": str(error)}})
            await socket.close(CLOSE_BAD_REQUEST, "bad since")
            return
    hub = Hub.of(monitor)
    client = Client(monitor.config.server.ws_queue)
    hub.join(client)
    tasks = [asyncio.create_task(_send(socket, client), name="tocsin-ws-send"),
             asyncio.create_task(_read(socket, hub, client, connection_since), name="tocsin-ws-read"),
             asyncio.create_task(client.overflowed.wait(), name="tocsin-ws-overflow")]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        hub.leave(client)
        for task in tasks:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
    if client.overflowed.is_set():
        hub.dropped += 1
        monitor.metrics.counter(DROPPED_CLIENTS, "WebSocket clients closed for reading too slowly").inc()
        reason = f"too slow: more than {client.capacity} messages waiting; reconnect with since"
        with contextlib.suppress(Exception):  # the client may be gone, or never read the close frame
            await asyncio.wait_for(socket.close(CLOSE_TOO_SLOW, reason), CLOSE_TIMEOUT_S)
        return
    for result in results:  # the client leaving is WebSocketDisconnect (reading) or OSError (sending)
        if isinstance(result, BaseException) and not isinstance(
                result, (asyncio.CancelledError, WebSocketDisconnect, OSError)):
            log.warning("tocsin-api: a WebSocket connection failed: %r", result)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(socket.close(1011, "internal error"), CLOSE_TIMEOUT_S)
            return


ROUTES = [stream]
