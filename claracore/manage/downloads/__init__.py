"""Model downloads: the hub (search, files, fits), robust transfers, and the manager that runs them.

`hub` asks the model hub through `huggingface_hub`; `catalog` groups a repository's files into
models and judges each against this machine; `sources` turns a request into files to fetch;
`transfer` moves one file's bytes (ranges, retries, sha256); `records` is what is remembered in
SQLite; `finish` registers and configures a finished model; `manager` runs it all.
"""

from claracore.manage.downloads.manager import DownloadManager, DownloadOptions
from claracore.manage.downloads.transfer import Retry

__all__ = ["DownloadManager", "DownloadOptions", "Retry"]
