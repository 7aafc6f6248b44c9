"""The RPC workers a config names, as detection and `claracore doctor` show them.

Each worker is probed and asked for its devices and their memory (what the pool checks a
model's remote part against). A worker that does not answer, or a build without RPC, is a line
saying so rather than an error: detection must answer whatever the network does.
"""

from __future__ import annotations

from typing import Any

from claracore.config import Config
from claracore.errors import ClaraCoreError

GIB = 1 << 30


def endpoints(config: Config) -> list[str]:
    """Every worker the config names (global `workers` first, then each model's `rpc`), once."""
    named = [*config.workers, *(e for spec in config.models for e in spec.rpc or ())]
    return list(dict.fromkeys(named))


def report(config: Config) -> dict[str, Any]:
    """`{"supported", "workers": [{"endpoint", "reachable", "devices"|"error"}]}`."""
    from claracore.runtime import rpc

    found: list[dict[str, Any]] = []
    supported = rpc.supported()
    for endpoint in endpoints(config):
        try:
            if not supported:
                rpc.probe(endpoint)  # reachable or not, it cannot be used from this build
                raise rpc.RpcUnsupportedError("this llama.cpp was built without RPC")
            devices = [d.to_api() for d in rpc.remote_devices([endpoint])]
            found.append({"endpoint": endpoint, "reachable": True, "devices": devices})
        except ClaraCoreError as exc:
            reachable = not isinstance(exc, rpc.WorkerUnavailableError)
            found.append({"endpoint": endpoint, "reachable": reachable, "error": exc.message})
    return {"supported": supported, "workers": found}


def render(config: Config) -> list[str]:
    """The doctor's lines about RPC: whether the build has it, then one line per device or worker."""
    r = report(config)
    lines = [f"RPC workers: {'supported' if r['supported'] else 'not compiled in'} by this llama.cpp"]
    for w in r["workers"]:
        if "error" in w:
            lines.append(f"  {w['endpoint']}: {w['error']}")
        for d in w.get("devices", []):
            free, total = d["freeBytes"] / GIB, d["totalBytes"] / GIB
            lines.append(f"  {d['name']}: {d['description']}, {free:.1f} of {total:.1f} GiB free")
    if not r["workers"]:
        lines.append("  none configured (`workers:` or a model's `rpc:`)")
    return lines
