"""The model pool: what is resident, leases, loads and eviction (what a file costs is `modelfile`)."""
