"""The management side: what the `/api` routes and the setup commands do, apart from HTTP.

`store` (SQLite: tracked folders, scanned files, settings), `scanner` (find models in folders),
`config_edit` (pure edits of a Config), `planner/` (which settings fit this machine), `defaults`
(where the config comes from when the user says nothing) and `convert` (BERT safetensors to GGUF).
"""
