"""What the engine knows about itself: request records, per-model figures, Prometheus metrics,
logs on the event bus, system usage. `Monitor` (in `monitor.py`) ties them to one engine's bus.
"""

from claracore.monitor.monitor import Monitor
from claracore.monitor.records import RequestRecord

__all__ = ["Monitor", "RequestRecord"]
