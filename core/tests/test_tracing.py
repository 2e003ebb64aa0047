"""The tracer: parenting through contextvars, decorators, exceptions, status, limits, sampling, drain."""

from __future__ import annotations

import asyncio
import contextvars
import enum
import math
import os
import random
import re
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from tocsin.errors import ConfigError, InstrumentError
from tocsin.models import Span, SpanLink
from tocsin.signals import context
from tocsin.signals.buffer import BoundedBuffer
from tocsin.signals.sampling import (
    DROP,
    RECORD_AND_SAMPLE,
    RECORD_ONLY,
    AlwaysOff,
    AlwaysOn,
    ParentBased,
    SamplingResult,
    TraceIdRatio,
    make_sampler,
)
from tocsin.signals.tracing import SpanContext, Tracer, use_span

SECOND = 1_000_000_000
REMOTE_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
REMOTE_SPAN = "00f067aa0ba902b7"


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_700_000_000 * SECOND

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def buffer() -> BoundedBuffer:
    return BoundedBuffer("spans", 10_000)


@pytest.fixture
def tracer(buffer, clock) -> Tracer:
    return Tracer(service="checkout", buffer=buffer, clock=clock)


def drained(tracer: Tracer, now: int = 0) -> dict[str, Span]:
    """Finished spans by name."""
    return {span.name: span for span in tracer.drain(now)}


# -- recording and parenting ------------------------------------------------------------------------


def test_a_finished_span_is_drained_as_a_model(tracer, clock):
    with tracer.span("charge", attributes={"amount": 12.5, "currency": "EUR"}, kind="client") as span:
        assert span.is_recording and span.sampled
        assert tracer.current_span() is span
        clock.now += 3 * SECOND
    assert tracer.current_span() is None
    assert not span.is_recording
    [model] = tracer.drain(clock.now)
    assert model.trace_id == span.trace_id and len(model.trace_id) == 32 and int(model.trace_id, 16)
    assert model.span_id == span.span_id and len(model.span_id) == 16 and int(model.span_id, 16)
    assert model.parent_span_id is None
    assert (model.name, model.service, model.kind, model.status) == ("charge", "checkout", "client", "unset")
    assert model.duration_ns == 3 * SECOND
    assert model.attributes == {"amount": 12.5, "currency": "EUR"}
    assert tracer.drain(clock.now) == []


def test_children_parent_on_the_current_span_and_context_is_restored(tracer):
    with tracer.span("request") as request:
        with tracer.span("query") as query:
            assert tracer.current_span() is query
        assert tracer.current_span() is request
        with tracer.span("render"):
            pass
    spans = drained(tracer)
    assert {name: span.trace_id for name, span in spans.items()} == dict.fromkeys(spans, request.trace_id)
    assert spans["query"].parent_span_id == request.span_id
    assert spans["render"].parent_span_id == request.span_id
    assert spans["request"].parent_span_id is None
    assert query.parent_span_id == request.span_id


def test_separate_roots_get_separate_traces(tracer):
    ids = set()
    for _ in range(50):
        with tracer.span("job") as span:
            ids.add(span.trace_id)
    assert len(ids) == 50


@pytest.fixture
def seeded_random():
    """Lets a test seed the global `random` (as apps do) and puts its state back afterwards."""
    state = random.getstate()
    yield random.seed
    random.setstate(state)


def test_ids_do_not_follow_the_global_random_seed(tracer, seeded_random):
    runs = []
    for _ in range(2):
        seeded_random(1)  # what an app (the quickstart) does at start-up: same seed, same "run"
        with tracer.span("request") as request, tracer.span("query") as query:
            runs.append((request, query))
    (request_1, query_1), (request_2, query_2) = runs
    assert request_1.trace_id != request_2.trace_id
    assert len({request_1.span_id, query_1.span_id, request_2.span_id, query_2.span_id}) == 4
    for span in (*drained(tracer).values(), request_1, query_1, request_2, query_2):
        assert re.fullmatch("[0-9a-f]{32}", span.trace_id) and span.trace_id != "0" * 32
        assert re.fullmatch("[0-9a-f]{16}", span.span_id) and span.span_id != "0" * 16


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_does_not_repeat_the_parents_ids(tracer):
    with tracer.span("warm-up"):
        pass
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report the ids of its first span and leave at once
        try:
            with tracer.span("child") as span:
                os.write(writer, f"{span.trace_id} {span.span_id}".encode())
        finally:
            os._exit(0)
    os.close(writer)
    with os.fdopen(reader) as pipe:
        child_ids = pipe.read().split()
    os.waitpid(pid, 0)
    with tracer.span("parent") as span:
        parent_ids = [span.trace_id, span.span_id]
    assert len(child_ids) == 2
    assert child_ids[0] != parent_ids[0] and child_ids[1] != parent_ids[1]


async def test_asyncio_tasks_inherit_the_current_span(tracer):
    async def step(name: str) -> str:
        await asyncio.sleep(0)
        with tracer.span(name) as span:
            await asyncio.sleep(0)
            assert tracer.current_span() is span
            return span.span_id

    async with tracer.span("batch") as batch:
        await asyncio.gather(step("a"), step("b"))
        await asyncio.create_task(step("c"))
        assert tracer.current_span() is batch
    spans = drained(tracer)
    for name in "abc":
        assert spans[name].parent_span_id == batch.span_id
        assert spans[name].trace_id == batch.trace_id


async def test_sibling_tasks_do_not_see_each_others_spans(tracer):
    seen: dict[str, object] = {}
    inside = asyncio.Event()

    async def holder() -> None:
        with tracer.span("holder"):
            inside.set()
            await asyncio.sleep(0.01)

    async def other() -> None:
        await inside.wait()
        seen["other"] = tracer.current_span()

    await asyncio.gather(holder(), other())
    assert seen["other"] is None


def test_threads_carry_the_span_through_wrap_or_copy_context(tracer):
    def child(name: str) -> str | None:
        parent = context.current_span.get()
        with tracer.span(name):
            pass
        return parent.span_id if parent else None

    with tracer.span("fan-out") as root, ThreadPoolExecutor(max_workers=2) as pool:
        wrapped = pool.submit(context.wrap(child), "wrapped").result()
        copied = pool.submit(contextvars.copy_context().run, child, "copied").result()
        bare = pool.submit(child, "bare").result()
    spans = drained(tracer)
    assert wrapped == copied == root.span_id
    assert spans["wrapped"].parent_span_id == spans["copied"].parent_span_id == root.span_id
    assert spans["wrapped"].trace_id == root.trace_id
    # A thread started without the context does not see the span: its span starts a new trace.
    assert bare is None
    assert spans["bare"].parent_span_id is None and spans["bare"].trace_id != root.trace_id


def test_spans_from_many_threads_are_all_buffered(tracer):
    def work(n: int) -> None:
        for i in range(200):
            with tracer.span(f"t{n}-{i}"):
                pass

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    spans = tracer.drain(0)
    assert len(spans) == 800
    assert len({span.span_id for span in spans}) == 800


# -- decorator ---------------------------------------------------------------------------------------


def test_decorator_on_a_function_makes_a_span_per_call(tracer):
    @tracer.span("price", attributes={"unit": "EUR"})
    def price(quantity: int) -> float:
        """Price a quantity."""
        assert tracer.current_span() is not None
        return quantity * 2.5

    with tracer.span("order") as order:
        assert price(2) == 5.0
        assert price(4) == 10.0
    assert price.__name__ == "price" and price.__doc__ == "Price a quantity."
    spans = [span for span in tracer.drain(0) if span.name == "price"]
    assert len(spans) == 2 and spans[0].span_id != spans[1].span_id
    assert all(span.parent_span_id == order.span_id for span in spans)
    assert all(span.attributes == {"unit": "EUR"} for span in spans)


async def test_decorator_on_a_coroutine_function(tracer):
    @tracer.span("fetch", kind="client")
    async def fetch(key: str) -> str:
        await asyncio.sleep(0)
        return tracer.current_span().span_id

    async with tracer.span("page") as page:
        first, second = await asyncio.gather(fetch("a"), fetch("b"))
    assert asyncio.iscoroutinefunction(fetch)
    spans = {span.span_id: span for span in tracer.drain(0)}
    assert first != second
    assert spans[first].parent_span_id == spans[second].parent_span_id == page.span_id
    assert spans[first].kind == "client"


async def test_decorated_coroutine_records_its_exception(tracer):
    @tracer.span("flaky")
    async def flaky() -> None:
        raise TimeoutError("upstream slow")

    with pytest.raises(TimeoutError):
        await flaky()
    [span] = tracer.drain(0)
    assert span.status == "error" and span.status_message == "TimeoutError: upstream slow"


# -- exceptions and status ---------------------------------------------------------------------------


def test_an_escaping_exception_is_recorded_and_reraised(tracer, clock):
    with pytest.raises(KeyError), tracer.span("lookup"):
        raise KeyError("sku-1")
    assert tracer.current_span() is None
    [span] = tracer.drain(0)
    assert span.status == "error"
    assert span.status_message == "KeyError: 'sku-1'"
    [event] = span.events
    assert event.name == "exception" and event.time_ns == clock.now
    assert event.attributes["exception.type"] == "KeyError"
    assert event.attributes["exception.message"] == "'sku-1'"
    assert "KeyError: 'sku-1'" in event.attributes["exception.stacktrace"]
    assert "raise KeyError" in event.attributes["exception.stacktrace"]


def test_exception_type_is_qualified_outside_builtins(tracer):
    class PaymentDeclined(Exception):
        pass

    with pytest.raises(PaymentDeclined), tracer.span("pay"):
        raise PaymentDeclined("card")
    [span] = tracer.drain(0)
    assert span.events[0].attributes["exception.type"] == f"{__name__}.{PaymentDeclined.__qualname__}"


def test_a_base_exception_that_is_not_an_error_ends_the_span_without_marking_it(tracer):
    class Stop(BaseException):
        pass

    with pytest.raises(Stop), tracer.span("loop"):
        raise Stop
    [span] = tracer.drain(0)
    assert span.status == "unset" and span.events == []
    assert tracer.current_span() is None


def test_status_precedence_follows_opentelemetry(tracer):
    with tracer.span("a") as a:
        a.set_status("error", "bad")
        a.set_status("ok", "ignored message")
        a.set_status("error", "too late")
    with tracer.span("b") as b:
        b.set_status("error", "first")
        b.set_status("error", "second")
        b.set_status("unset")
    with tracer.span("c") as c:
        c.set_status("unset")
    spans = drained(tracer)
    assert (spans["a"].status, spans["a"].status_message) == ("ok", "")
    assert (spans["b"].status, spans["b"].status_message) == ("error", "second")
    assert (spans["c"].status, spans["c"].status_message) == ("unset", "")


def test_an_ok_status_survives_an_escaping_exception(tracer):
    def commit_then_fail() -> None:
        with tracer.span("done") as span:
            span.set_status("ok")
            raise RuntimeError("after commit")

    with pytest.raises(RuntimeError):
        commit_then_fail()
    [model] = tracer.drain(0)
    assert model.status == "ok"
    assert model.events[0].name == "exception"


def test_a_bad_status_is_refused_even_on_a_dropped_span(buffer):
    for sampler in (AlwaysOn(), AlwaysOff()):
        span = Tracer(service="s", buffer=buffer, sampler=sampler).start_span("x")
        with pytest.raises(InstrumentError, match="status must be one of"):
            span.set_status("failed")


# -- attributes, events, links, limits ---------------------------------------------------------------


def test_attribute_values_are_normalised(tracer):
    class Color(enum.IntEnum):
        RED = 1

    with tracer.span("values", attributes={"tuple": (1, 2, 3), 7: "int key"}) as span:
        span.set_attribute("mixed", [1, "a"])
        span.set_attribute("mapping", {"k": 1})
        span.set_attribute("none", None)
        span.set_attribute("enum", Color.RED)
        span.set_attribute("flag", True)
        span.set_attribute("floats", [1.5, 2.5])
        span.set_attribute("bools", [True, False])
        span.set_attribute("ints_and_bools", [1, True])
        span.set_attribute("empty", [])
        span.set_attributes({"a": "x", "b": 2})
    attributes = tracer.drain(0)[0].attributes
    assert attributes == {
        "tuple": [1, 2, 3],
        "7": "int key",
        "mixed": "[1, 'a']",
        "mapping": "{'k': 1}",
        "none": "None",
        "enum": 1,
        "flag": True,
        "floats": [1.5, 2.5],
        "bools": [True, False],
        "ints_and_bools": "[1, True]",
        "empty": [],
        "a": "x",
        "b": 2,
    }
    assert type(attributes["enum"]) is int


def test_attributes_passed_in_are_copied(tracer):
    given = {"user": "ada"}
    with tracer.span("copy", attributes=given) as span:
        span.set_attribute("extra", 1)
    assert given == {"user": "ada"}


def test_events_carry_time_and_attributes(tracer, clock):
    with tracer.span("upload") as span:
        span.add_event("chunk", {"bytes": 512})
        span.add_event("retry", time_ns=42)
    [model] = tracer.drain(0)
    assert [(e.name, e.time_ns, e.attributes) for e in model.events] == [
        ("chunk", clock.now, {"bytes": 512}),
        ("retry", 42, {}),
    ]


def test_limits_drop_and_count(buffer):
    tracer = Tracer(service="s", buffer=buffer, max_attributes=2, max_events=1, max_links=1)
    link = SpanLink(trace_id=REMOTE_TRACE, span_id=REMOTE_SPAN)
    other = SpanLink(trace_id=REMOTE_TRACE, span_id="1" * 16)
    with tracer.span("full", attributes={"a": 1, "b": 2, "c": 3}, links=[link, other]) as span:
        span.set_attribute("d", 4)
        span.set_attribute("a", 10)  # an existing key can still be overwritten
        span.add_event("one")
        span.add_event("two")
        span.add_link(other)
        assert span.dropped == (2, 1, 2)
    [model] = tracer.drain(0)
    assert model.attributes == {"a": 10, "b": 2}
    assert [event.name for event in model.events] == ["one"]
    assert model.links == [link]
    assert (tracer.dropped_attributes, tracer.dropped_events, tracer.dropped_links) == (2, 1, 2)


def test_links_added_later_are_kept(tracer):
    link = SpanLink(trace_id=REMOTE_TRACE, span_id=REMOTE_SPAN, attributes={"kind": "enqueued-by"})
    with tracer.span("consume", kind="consumer") as span:
        span.add_link(link)
    assert tracer.drain(0)[0].links == [link]


def test_event_attributes_are_limited_too(buffer):
    tracer = Tracer(service="s", buffer=buffer, max_attributes=1)
    with tracer.span("e") as span:
        span.add_event("many", {"a": 1, "b": 2})
    assert tracer.drain(0)[0].events[0].attributes == {"a": 1}


def test_ended_spans_ignore_mutation_and_second_end(tracer, clock):
    span = tracer.start_span("manual")
    span.update_name("renamed")
    span.end(end_ns=clock.now + 5)
    span.end(end_ns=clock.now + 99)
    span.set_attribute("late", 1)
    span.add_event("late")
    span.update_name("too late")
    [model] = tracer.drain(0)
    assert (model.name, model.end_ns, model.attributes, model.events) == ("renamed", clock.now + 5, {}, [])


def test_a_span_that_was_never_entered_records_nothing(tracer):
    span = tracer.span("never")
    span.set_attribute("a", 1)
    span.add_event("e")
    span.end()
    assert not span.is_recording
    assert repr(span) == "<ActiveSpan 'never' not started>"
    assert tracer.drain(0) == []


def test_bad_names_kinds_and_limits_are_refused(tracer, buffer):
    with pytest.raises(InstrumentError, match="span name must be a str"):
        tracer.span(b"bytes")
    with pytest.raises(InstrumentError, match="span kind must be one of"):
        tracer.span("x", kind="backend")
    with pytest.raises(ConfigError, match="max_events"):
        Tracer(service="s", buffer=buffer, max_events=-1)


# -- start_span, use_span, explicit parents ----------------------------------------------------------


def test_start_span_is_not_current_until_used(tracer):
    span = tracer.start_span("background")
    assert tracer.current_span() is None
    with use_span(span):
        assert tracer.current_span() is span
        with tracer.span("child"):
            pass
    assert tracer.current_span() is None
    assert span.is_recording
    span.end()
    spans = drained(tracer)
    assert spans["child"].parent_span_id == span.span_id


def test_an_explicit_remote_parent_continues_its_trace(tracer):
    remote = SpanContext(REMOTE_TRACE, REMOTE_SPAN, sampled=True, remote=True, tracestate="rojo=1")
    with tracer.span("server", kind="server", parent=remote) as server:
        assert server.tracestate == "rojo=1"
        with tracer.span("inner") as inner:
            assert inner.tracestate == "rojo=1"
    spans = drained(tracer)
    assert spans["server"].trace_id == REMOTE_TRACE and spans["server"].parent_span_id == REMOTE_SPAN
    assert spans["inner"].parent_span_id == server.span_id


def test_span_context_round_trips_and_validates(tracer):
    with tracer.span("x") as span:
        ctx = span.context
    assert ctx == SpanContext(span.trace_id, span.span_id, True, False, "")
    for trace_id, span_id in [("0" * 32, REMOTE_SPAN), (REMOTE_TRACE.upper(), REMOTE_SPAN), (REMOTE_TRACE, "0" * 16),
                              (REMOTE_TRACE, "abc")]:  # fmt: skip
        with pytest.raises(InstrumentError, match="lowercase hex"):
            SpanContext(trace_id, span_id, True)


# -- sampling ----------------------------------------------------------------------------------------


def test_a_dropped_span_propagates_ids_but_records_nothing(buffer):
    tracer = Tracer(service="s", buffer=buffer, sampler=AlwaysOff())
    with tracer.span("dropped", attributes={"a": 1}) as span:
        assert not span.is_recording and not span.sampled
        span.set_attribute("b", 2)
        span.add_event("e")
        span.record_exception(ValueError("x"))
        span.set_status("error")
        assert span.dropped == (0, 0, 0)
        with tracer.span("child") as child:
            assert child.trace_id == span.trace_id
            assert child.parent_span_id == span.span_id
            assert tracer.current_span() is child
    assert len(buffer) == 0 and tracer.drain(0) == []
    assert len(span.trace_id) == 32 and int(span.trace_id, 16)


def test_record_only_spans_record_but_are_not_exported(buffer):
    class RecordOnly:
        description = "RecordOnly"

        def should_sample(self, *args):
            return RECORD_ONLY

    tracer = Tracer(service="s", buffer=buffer, sampler=RecordOnly())
    with tracer.span("r") as span:
        span.set_attribute("kept", 1)
        assert span.is_recording and not span.sampled
        assert span.context.sampled is False
    assert len(buffer) == 0


def test_sampler_result_attributes_and_tracestate_are_applied(tracer, buffer):
    class Tagging:
        description = "Tagging"

        def should_sample(self, parent, trace_id, name, kind, attributes, links):
            assert (name, kind, attributes) == ("tagged", "producer", {"a": 1})
            return SamplingResult(
                decision=RECORD_AND_SAMPLE.decision, attributes={"sampler": "tagging"}, tracestate="t=1"
            )

    tagged = Tracer(service="s", buffer=buffer, sampler=Tagging())
    with tagged.span("tagged", attributes={"a": 1}, kind="producer") as span:
        assert span.tracestate == "t=1"
    assert tagged.drain(0)[0].attributes == {"a": 1, "sampler": "tagging"}


def _id_with_low_bits(low: int) -> int:
    return (random.getrandbits(64) << 64) | low


def test_trace_id_ratio_decides_on_the_lower_64_bits():
    sampler = TraceIdRatio(0.25)
    bound = round(0.25 * 2**64)
    assert sampler.bound == bound
    assert sampler.description == "TraceIdRatioBased{0.25}"
    assert sampler.should_sample(None, _id_with_low_bits(bound - 1), "x", "internal", None, None) is RECORD_AND_SAMPLE
    assert sampler.should_sample(None, _id_with_low_bits(bound), "x", "internal", None, None) is DROP
    assert TraceIdRatio(0).should_sample(None, _id_with_low_bits(0), "x", "internal", None, None) is DROP
    assert TraceIdRatio(1).should_sample(None, _id_with_low_bits(2**64 - 1), "x", "internal", None, None) is (
        RECORD_AND_SAMPLE
    )


def test_trace_id_ratio_samples_the_expected_fraction(buffer):
    rng = random.Random(20240601)
    n, rate = 20_000, 0.25
    sampler = TraceIdRatio(rate)
    sampled = sum(
        sampler.should_sample(None, rng.getrandbits(128), "x", "internal", None, None) is RECORD_AND_SAMPLE
        for _ in range(n)
    )
    bound = 5 * math.sqrt(n * rate * (1 - rate))  # five standard deviations of the binomial
    assert abs(sampled - n * rate) < bound
    # The same through a tracer: the decision is made for roots only, and children follow it.
    tracer = Tracer(service="s", buffer=buffer, sampler=make_sampler("parent_based", rate))
    for _ in range(2000):
        with tracer.span("root"), tracer.span("child"):
            pass
    spans = tracer.drain(0)
    roots = [span for span in spans if span.name == "root"]
    assert abs(len(roots) - 500) < 5 * math.sqrt(2000 * rate * (1 - rate))
    assert len(spans) == 2 * len(roots)


def test_ratio_decisions_agree_across_services(buffer):
    upstream = Tracer(service="a", buffer=BoundedBuffer("a", 100), sampler=TraceIdRatio(0.5))
    downstream = Tracer(service="b", buffer=buffer, sampler=TraceIdRatio(0.5))
    for _ in range(200):
        with upstream.span("call") as call, downstream.span("serve", parent=call.context) as serve:
            assert serve.sampled == call.sampled


@pytest.mark.parametrize(
    ("remote", "sampled", "expected"),
    [(True, True, True), (True, False, False), (False, True, True), (False, False, False)],
)
def test_parent_based_follows_the_parent(buffer, remote, sampled, expected):
    # The root sampler says the opposite of the parent, so the result shows which one was asked.
    tracer = Tracer(service="s", buffer=buffer, sampler=ParentBased(AlwaysOff() if sampled else AlwaysOn()))
    parent = SpanContext(REMOTE_TRACE, REMOTE_SPAN, sampled=sampled, remote=remote)
    with tracer.span("child", parent=parent) as span:
        assert span.sampled is expected


def test_parent_based_delegates_can_be_replaced(buffer):
    sampler = ParentBased(AlwaysOff(), remote_parent_not_sampled=AlwaysOn(), local_parent_sampled=AlwaysOff())
    tracer = Tracer(service="s", buffer=buffer, sampler=sampler)
    unsampled_remote = SpanContext(REMOTE_TRACE, REMOTE_SPAN, sampled=False, remote=True)
    with tracer.span("server", parent=unsampled_remote) as server:
        assert server.sampled
        with tracer.span("local") as local:
            assert not local.sampled
    with tracer.span("root") as root:
        assert not root.sampled
    assert sampler.description == (
        "ParentBased{root:AlwaysOffSampler,remoteParentSampled:AlwaysOnSampler,"
        "remoteParentNotSampled:AlwaysOnSampler,localParentSampled:AlwaysOffSampler,"
        "localParentNotSampled:AlwaysOffSampler}"
    )


def test_default_sampler_is_parent_based_always_on(tracer):
    assert tracer.sampler.description.startswith("ParentBased{root:AlwaysOnSampler,")
    unsampled = SpanContext(REMOTE_TRACE, REMOTE_SPAN, sampled=False, remote=True)
    with tracer.span("follows", parent=unsampled) as span:
        assert not span.sampled


def test_make_sampler_names():
    assert isinstance(make_sampler("always_on"), AlwaysOn)
    assert isinstance(make_sampler("always_off"), AlwaysOff)
    assert make_sampler("ratio", 0.1).description == "TraceIdRatioBased{0.1}"
    parent_based = make_sampler("parent_based", 0.3)
    assert isinstance(parent_based, ParentBased) and parent_based.root.description == "TraceIdRatioBased{0.3}"
    assert make_sampler("parentbased_always_off").root.description == "AlwaysOffSampler"
    with pytest.raises(ConfigError, match="unknown sampler 'sometimes'"):
        make_sampler("sometimes")
    for rate in (-0.1, 1.5, float("nan"), "0.5", True):
        with pytest.raises(ConfigError, match=r"sampling rate must be a number from 0\.0 to 1\.0"):
            make_sampler("ratio", rate)


# -- buffer and drain --------------------------------------------------------------------------------


def test_a_full_buffer_drops_and_counts_without_blocking(clock):
    buffer = BoundedBuffer("spans", 2)
    tracer = Tracer(service="s", buffer=buffer, clock=clock)
    for name in "abc":
        with tracer.span(name):
            pass
    assert buffer.dropped == 1
    assert [span.name for span in tracer.drain(0)] == ["a", "b"]


def test_drain_snapshots_long_running_spans_once(tracer, clock):
    start = clock.now
    with tracer.span("long", attributes={"phase": "one"}) as long:
        with tracer.span("quick"):
            pass
        assert [span.name for span in tracer.drain(start + SECOND // 2)] == ["quick"]  # long is too young
        [snapshot] = tracer.drain(start + 2 * SECOND, live_after_s=1.0)
        assert (snapshot.name, snapshot.span_id, snapshot.end_ns) == ("long", long.span_id, None)
        assert snapshot.attributes == {"phase": "one"}
        long.set_attribute("phase", "two")
        assert snapshot.attributes == {"phase": "one"}  # the snapshot is a copy
        assert tracer.drain(start + 10 * SECOND) == []  # snapshotted once only
        clock.now += 20 * SECOND
    [final] = tracer.drain(clock.now)
    assert (final.span_id, final.end_ns, final.attributes) == (long.span_id, clock.now, {"phase": "two"})


def test_drain_does_not_snapshot_dropped_or_ended_spans(buffer, clock):
    tracer = Tracer(service="s", buffer=buffer, clock=clock, sampler=AlwaysOff())
    with tracer.span("dropped"):
        assert tracer.drain(clock.now + 60 * SECOND, live_after_s=0) == []
