"""A real OTLP/gRPC receiver on loopback that keeps the spans and metrics sent."""

from __future__ import annotations

import threading
import time
from concurrent import futures
from dataclasses import dataclass

import grpc
from opentelemetry.proto.collector.metrics.v1 import (
    metrics_service_pb2,
    metrics_service_pb2_grpc,
)
from opentelemetry.proto.collector.trace.v1 import (
    trace_service_pb2,
    trace_service_pb2_grpc,
)
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.resource.v1 import resource_pb2


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


@dataclass(frozen=True)
class ReceivedMetric:
    """One exported metric as it arrived, with the service that sent it."""

    service: str
    scope: str
    metric: metrics_pb2.Metric


class _MetricsService(metrics_service_pb2_grpc.MetricsServiceServicer):
    def __init__(self, receiver: OtlpReceiver) -> None:
        self._receiver = receiver

    def Export(self, request, context):  # type: ignore[no-untyped-def]
        self._receiver.add_metrics(request)
        return metrics_service_pb2.ExportMetricsServiceResponse()


def _service_name(resource: resource_pb2.Resource) -> str:
    return next(
        (a.value.string_value for a in resource.attributes if a.key == "service.name"),
        "",
    )


class OtlpReceiver:
    """Collects spans and metrics exported to it.

    ``endpoint`` is an http:// loopback URL; metrics are kept per export, in
    the order they arrived.
    """

    def __init__(self) -> None:
        self._spans: list[ReceivedSpan] = []
        self._metric_exports: list[list[ReceivedMetric]] = []
        self._lock = threading.Lock()
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(
            _TraceService(self), self._server
        )
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(
            _MetricsService(self), self._server
        )
        port = self._server.add_insecure_port("127.0.0.1:0")
        self.endpoint = f"http://127.0.0.1:{port}"
        self._server.start()

    def add(self, request: trace_service_pb2.ExportTraceServiceRequest) -> None:
        """Keeps every span of one export request."""
        with self._lock:
            for resource_spans in request.resource_spans:
                service = _service_name(resource_spans.resource)
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

    def add_metrics(
        self, request: metrics_service_pb2.ExportMetricsServiceRequest
    ) -> None:
        """Keeps every metric of one export request, as one export."""
        export = [
            ReceivedMetric(
                service=_service_name(resource_metrics.resource),
                scope=scope.scope.name,
                metric=metric,
            )
            for resource_metrics in request.resource_metrics
            for scope in resource_metrics.scope_metrics
            for metric in scope.metrics
        ]
        with self._lock:
            self._metric_exports.append(export)

    def metric_exports(self) -> list[list[ReceivedMetric]]:
        """Every metrics export received so far, oldest first."""
        with self._lock:
            return list(self._metric_exports)

    def wait_for_metric_exports(
        self, count: int, timeout: float = 15
    ) -> list[list[ReceivedMetric]]:
        """Waits until at least ``count`` metrics exports arrived."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            exports = self.metric_exports()
            if len(exports) >= count:
                return exports
            time.sleep(0.05)
        return self.metric_exports()

    def stop(self) -> None:
        """Stops the receiver."""
        self._server.stop(grace=None)
