"""The management side: what the `/api` routes and the setup commands do, apart from HTTP.

`store` (SQLite: tracked folders, scanned files, settings), `scanner` (find models in folders)
and `folders` (track, untrack, scan), `config_edit` (pure edits of a Config) and `config_file`
(`ConfigFile`: the file they are saved to, its lock, atomic writes and backups), `planner/`
(which settings fit this machine), `setup` (the one detect -> scan -> plan -> save workflow),
`settings` (stored preferences and the HF token), `defaults` (where the config comes from when
the user says nothing) and `convert` (BERT safetensors to GGUF).
"""
