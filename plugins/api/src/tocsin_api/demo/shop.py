"""The simulated shop: which requests arrive, how long they take, how they fail, and the spans and logs of each.

Three services take part: `web` (the storefront every request enters), `inventory` and `payments`. The story
repeats every `INCIDENT_PERIOD` demo seconds: for a while payments slow down and time out (checkout P99 over
a second, 504s, timeout logs, the `payments-api` component unhealthy), then things recover. All randomness
comes from one `random.Random`, so a seed replays the same traffic.
"""

from __future__ import annotations

import math
import random
from typing import Any

import msgspec

from tocsin.ext import LogRecord, Span, SpanEvent

INCIDENT_PERIOD = 150.0
"""Demo seconds between the starts of two payments incidents."""
INCIDENT = (20.0, 70.0)
"""When, within each period, payments are slow and time out."""
PAYMENTS_DOWN = (30.0, 60.0)
"""When, within each period, the payments-api health check fails."""
FRAUD_PERIOD, FRAUD_DOWN = 25.0, 7.0
"""The fraud-check dependency flaps: down for FRAUD_DOWN demo seconds out of every FRAUD_PERIOD."""
TIMEOUT_S = 2.5
REQUESTS, LATENCY, USERS = "http_requests_total", "http_request_seconds", "shop_active_users"
"""The shop's metrics: a counter by method/route/status, a latency histogram by method/route, a gauge."""

# route -> (method, share of traffic, median latency in seconds)
ROUTES: dict[str, tuple[str, float, float]] = {
    "/": ("GET", 0.25, 0.025),
    "/products": ("GET", 0.25, 0.06),
    "/products/{id}": ("GET", 0.22, 0.04),
    "/cart": ("POST", 0.13, 0.05),
    "/checkout": ("POST", 0.15, 0.22),
}


class Timeline(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Wall time to demo time: the demo starts at `start_ns` and runs `speed` times faster than the clock."""

    start_ns: int
    speed: float

    def demo_s(self, time_ns: int) -> float:
        """The demo time (seconds since the start, negative before it) at wall time `time_ns`."""
        return (time_ns - self.start_ns) / 1e9 * self.speed

    def wall_s(self, demo_seconds: float) -> float:
        """How many wall seconds `demo_seconds` take."""
        return demo_seconds / self.speed


def in_incident(demo_s: float) -> bool:
    """Whether payments are slow at this demo time."""
    return INCIDENT[0] <= demo_s % INCIDENT_PERIOD < INCIDENT[1]


def payments_down(demo_s: float) -> bool:
    """Whether the payments-api health check fails at this demo time."""
    return PAYMENTS_DOWN[0] <= demo_s % INCIDENT_PERIOD < PAYMENTS_DOWN[1]


def fraud_check_down(demo_s: float) -> bool:
    """Whether the flapping fraud-check dependency is down at this demo time."""
    return demo_s % FRAUD_PERIOD >= FRAUD_PERIOD - FRAUD_DOWN


def active_users(demo_s: float) -> float:
    """A slow wave of signed-in users, for a gauge that moves (traffic follows it)."""
    return round(120 + 40 * math.sin(demo_s / 90) + 15 * math.sin(demo_s / 13))


def arrivals(rng: random.Random, demo_s: float, seconds: float, rps: float) -> int:
    """How many requests arrive in `seconds` of wall time at demo time `demo_s` (about Poisson)."""
    mean = rps * seconds * active_users(demo_s) / 120
    return max(0, round(rng.gauss(mean, math.sqrt(mean))))


class Call(msgspec.Struct, forbid_unknown_fields=True):
    """One span to make: who serves it, when it starts (seconds after its parent), how long it takes."""

    service: str
    name: str
    kind: str
    offset: float
    duration: float
    status: str = "unset"
    message: str = ""
    attributes: dict[str, Any] = {}
    children: list[Call] = []


class Request(msgspec.Struct, forbid_unknown_fields=True):
    """One simulated HTTP request: what the metrics record, and its call tree for the trace."""

    method: str
    route: str
    status: int
    seconds: float
    root: Call
    log: tuple[str, str]  # (level, message) the storefront logs at the end

    @property
    def labels(self) -> dict[str, str]:
        """The latency histogram's labels (the counter adds `status`)."""
        return {"method": self.method, "route": self.route}

    @property
    def traced_anyway(self) -> bool:
        """Whether the request went wrong, so a sampled history keeps its trace."""
        return self.root.status == "error" or self.status >= 500


class Shop:
    """Draws requests from one random generator; `requests(demo_s, n)` makes the next n of them."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.routes = list(ROUTES)
        self.weights = [ROUTES[route][1] for route in self.routes]

    def latency(self, median: float, spread: float = 0.45) -> float:
        """A log-normal latency around `median` seconds."""
        return median * math.exp(self.rng.gauss(0, spread))

    def requests(self, demo_s: float, count: int) -> list[Request]:
        """The next `count` requests, as they go at demo time `demo_s`."""
        routes = self.rng.choices(self.routes, self.weights, k=count)
        return [self.request(route, in_incident(demo_s)) for route in routes]

    def request(self, route: str, incident: bool) -> Request:
        """One request to `route`, in an incident or not."""
        method, _, median = ROUTES[route]
        if route == "/checkout":
            return self.checkout(incident)
        rng = self.rng
        seconds = self.latency(median)
        status = 404 if route == "/products/{id}" and rng.random() < 0.05 else 200
        status = 500 if rng.random() < 0.004 else status
        children = []
        if route.startswith("/products"):
            lookup = Call("inventory", "GET /stock", "server", seconds * 0.1, seconds * 0.7, children=[
                Call("inventory", "SELECT products", "client", seconds * 0.1, seconds * 0.5,
                     attributes={"db.system": "postgresql"})])
            children.append(lookup)
        elif route == "/cart":
            children.append(Call("web", "redis SET cart", "client", seconds * 0.2, seconds * 0.3,
                                 attributes={"db.system": "redis"}))
        root = self.root(method, route, status, seconds, children)
        if status == 500:
            root.status, root.message = "error", "KeyError: 'price'"
            return Request(method, route, status, seconds, root, ("error", f"{method} {route} failed: {root.message}"))
        return Request(method, route, status, seconds, root, ("info", f"{method} {route} {status}"))

    def checkout(self, incident: bool) -> Request:
        """A checkout: reserve stock in inventory, charge the card in payments; payments decline or time out."""
        rng = self.rng
        reserve = self.latency(0.04)
        charge = self.latency(1.1 if incident else 0.12, 0.5)
        timed_out = charge >= TIMEOUT_S or (incident and rng.random() < 0.3)
        declined = not timed_out and rng.random() < 0.05
        charge = TIMEOUT_S if timed_out else charge
        seconds = reserve + charge + self.latency(0.02)
        payment = Call("payments", "POST /charge", "server", 0.005, charge - 0.01,
                       attributes={"payment.provider": "acme-pay"}, children=[
                           Call("payments", "fraud-check score", "client", 0.01, charge * 0.3)])
        client = Call("web", "POST payments/charge", "client", reserve + 0.005, charge, children=[payment])
        stock = Call("inventory", "reserve stock", "server", 0.005, reserve - 0.005, children=[
            Call("inventory", "UPDATE stock", "client", 0.002, reserve * 0.6, attributes={"db.system": "postgresql"})])
        root = self.root("POST", "/checkout", 200, seconds, [stock, client])
        if timed_out:
            client.status, client.message = "error", f"timeout after {TIMEOUT_S}s"
            payment.status, payment.message = "error", "upstream acme-pay did not answer"
            root.status, root.message, root.attributes["http.status_code"] = "error", "payments timeout", 504
            return Request("POST", "/checkout", 504, seconds, root,
                           ("warning", f"payments timeout after {TIMEOUT_S}s on checkout"))
        if declined:
            payment.status, payment.message = "error", "card declined"
            root.attributes["http.status_code"] = 402
            return Request("POST", "/checkout", 402, seconds, root, ("info", "checkout refused: card declined"))
        items = rng.randint(1, 5)
        root.attributes["order.items"] = items
        return Request("POST", "/checkout", 200, seconds, root, ("info", f"order placed with {items} item(s)"))

    @staticmethod
    def root(method: str, route: str, status: int, seconds: float, children: list[Call]) -> Call:
        """The storefront's server span of a request."""
        return Call("web", f"{method} {route}", "server", 0.0, seconds, children=children, attributes={
            "http.method": method, "http.route": route, "http.status_code": status})

    def ids(self, bits: int) -> str:
        """A random hex id of `bits` bits (never zero)."""
        return f"{self.rng.getrandbits(bits) | 1:0{bits // 4}x}"

    def records(self, request: Request, start_ns: int) -> tuple[list[Span], list[LogRecord]]:
        """The spans of `request` started at `start_ns`, and its logs, each carrying its trace and span."""
        trace_id = self.ids(128)
        spans: list[Span] = []
        logs: list[LogRecord] = []

        def walk(call: Call, parent: str | None, parent_start: int) -> None:
            span_id = self.ids(64)
            start = parent_start + int(call.offset * 1e9)
            end = start + int(max(call.duration, 0.0005) * 1e9)
            events = [SpanEvent(name="exception", time_ns=end, attributes={"exception.message": call.message})
                      ] if call.status == "error" else []
            spans.append(Span(trace_id=trace_id, span_id=span_id, parent_span_id=parent, name=call.name,
                              service=call.service, kind=call.kind, start_ns=start, end_ns=end, status=call.status,
                              status_message=call.message, attributes=call.attributes, events=events))
            if call.status == "error" and call is not request.root:
                logs.append(LogRecord(time_ns=end, level="error", message=f"{call.name}: {call.message}",
                                      service=call.service, logger=call.service, trace_id=trace_id,
                                      span_id=span_id))
            for child in call.children:
                walk(child, span_id, start)

        walk(request.root, None, start_ns)
        level, message = request.log
        root = spans[0]
        logs.append(LogRecord(time_ns=root.end_ns or start_ns, level=level, message=message, service="web",
                              logger="web.access", trace_id=trace_id, span_id=root.span_id,
                              attributes={"status": request.status, "duration_ms": round(request.seconds * 1000, 1)}))
        return spans, logs
