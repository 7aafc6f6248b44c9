"""Byte units, defined once: budgets, estimates and probes all count in binary gigabytes."""

MIB = 1 << 20
GIB = 1 << 30
