"""Benchmarks of infusion-fhir against its ceilings: mapping, sync throughput, API latency, memory."""
