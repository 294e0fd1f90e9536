"""A real OTLP/gRPC trace receiver on loopback that keeps what it receives."""

from __future__ import annotations

import threading
import time
from concurrent import futures
from dataclasses import dataclass

import grpc
from opentelemetry.proto.collector.trace.v1 import (
    trace_service_pb2,
    trace_service_pb2_grpc,
)


@dataclass(frozen=True)
class ReceivedSpan:
    """The parts of an exported span the tests look at."""

    service: str
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    attributes: dict[str, str]


class _TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, receiver: OtlpReceiver) -> None:
        self._receiver = receiver

    def Export(self, request, context):  # type: ignore[no-untyped-def]
        self._receiver.add(request)
        return trace_service_pb2.ExportTraceServiceResponse()


class OtlpReceiver:
    """Collects spans exported to it; ``endpoint`` is an http:// loopback URL."""

    def __init__(self) -> None:
        self._spans: list[ReceivedSpan] = []
        self._lock = threading.Lock()
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(
            _TraceService(self), self._server
        )
        port = self._server.add_insecure_port("127.0.0.1:0")
        self.endpoint = f"http://127.0.0.1:{port}"
        self._server.start()

    def add(self, request: trace_service_pb2.ExportTraceServiceRequest) -> None:
        """Keeps every span of one export request."""
        with self._lock:
            for resource_spans in request.resource_spans:
                service = next(
                    (
                        a.value.string_value
                        for a in resource_spans.resource.attributes
                        if a.key == "service.name"
                    ),
                    "",
                )
                for scope in resource_spans.scope_spans:
                    for span in scope.spans:
                        self._spans.append(
                            ReceivedSpan(
                                service=service,
                                name=span.name,
                                trace_id=span.trace_id.hex(),
                                span_id=span.span_id.hex(),
                                parent_span_id=span.parent_span_id.hex(),
                                attributes={
                                    a.key: a.value.string_value for a in span.attributes
                                },
                            )
                        )

    def spans_of_trace(self, trace_id: str) -> list[ReceivedSpan]:
        """Every span received so far for one trace."""
        with self._lock:
            return [s for s in self._spans if s.trace_id == trace_id]

    def wait_for(
        self, trace_id: str, names: set[str], timeout: float = 15
    ) -> list[ReceivedSpan]:
        """Waits until spans of ``trace_id`` with every one of ``names`` arrived."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            spans = self.spans_of_trace(trace_id)
            if names <= {s.name for s in spans}:
                return spans
            time.sleep(0.1)
        return self.spans_of_trace(trace_id)

    def stop(self) -> None:
        """Stops the receiver."""
        self._server.stop(grace=None)
