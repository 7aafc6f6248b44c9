"""The model pool: what is resident, what it costs, and what to evict to make room."""
