"""tocsin OTLP/HTTP receiver: OpenTelemetry traces, logs and metrics in, protobuf or JSON."""
