"""Synthetic ketamine-infusion clinic records (every record kind, rating scales included) for demos and load tests."""

from service.demo.stream import generate_records, write_ndjson

__all__ = ["generate_records", "write_ndjson"]
