"""The machine and software versions a benchmark run is measured on."""

from __future__ import annotations

import importlib.metadata
import os
import platform
from pathlib import Path
from typing import Any

from bench.hapi import hapi_version, local_hapi_pid

PACKAGES = ("fhir.resources", "fhir-core", "pydantic", "pydantic-core", "orjson", "httpx", "fastapi", "uvicorn")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def _jvm_flags(pid: int | None) -> str | None:
    """The -X flags of the local HAPI's JVM."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    return " ".join(arg.decode() for arg in cmdline if arg.startswith(b"-X"))


def describe(base_url: str | None) -> dict[str, Any]:
    """CPU model, cores, memory, OS, Python and package versions, FHIR server version, load."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "packages": versions,
        "fhir_server": hapi_version(base_url) if base_url else "not used",
        "fhir_server_url": base_url,
        "hapi_jvm_flags": _jvm_flags(local_hapi_pid(base_url)) if base_url else None,
        "load_average_at_start": os.getloadavg(),
    }
