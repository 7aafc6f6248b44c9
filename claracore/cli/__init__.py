"""The `claracore` command (also `python -m claracore`): serve, models, chat, doctor, convert-embedding.

Each command resolves one config (see `claracore.manage.defaults`), then uses the same Engine the
server and Python callers use. Known problems (a bad config, a missing model package, a port in
use) end with one line on stderr and exit status 2, never a traceback: the person reading it
needs the fix, not the stack.

`main` lives here so that `claracore.cli:main`, the console script's entry point, stays put.
"""

from claracore.cli.parser import main

__all__ = ["main"]
