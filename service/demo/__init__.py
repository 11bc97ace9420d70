"""Synthetic ketamine-infusion clinic records (all five kinds) for demos and load tests."""

from service.demo.stream import generate_records, write_ndjson

__all__ = ["generate_records", "write_ndjson"]
