"""A fork server for API processes: it imports the app once, then forks a uvicorn process per
request in a few hundred milliseconds (a fresh interpreter takes seconds to import the app on a
loaded machine, too slow for a suite that kills a process per scenario).

Protocol on stdin/stdout, one JSON object per line: {"port": int, "env": {...}} → {"pid": int}.
Children are reaped automatically (SIGCHLD ignored): a killed child's pid disappears.
"""

from __future__ import annotations

import json
import os
import signal
import sys


def _serve_child(port: int, env: dict[str, str]) -> None:
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.environ.clear()
    os.environ.update(env)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)

    import uvicorn

    from marketplace_api.config import get_settings
    from marketplace_api.main import create_app

    get_settings.cache_clear()
    config = uvicorn.Config(
        create_app(),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="on",
    )
    uvicorn.Server(config).run()


def main() -> None:
    # Import everything a request touches before forking: the children start warm.
    import stripe
    import uvicorn  # noqa: F401

    from marketplace_api.config import Settings
    from marketplace_api.main import create_app

    stripe.StripeClient("sk_test_warmup").v1.refunds  # noqa: B018 - loads the lazy modules
    # The first app built in a process pays for lazy imports (about a second); later ones not.
    create_app(Settings(_env_file=None, environment="test", database_url="postgresql://warm/up"))
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        command = json.loads(line)
        pid = os.fork()
        if pid == 0:
            try:
                _serve_child(command["port"], command["env"])
            finally:
                os._exit(0)
        print(json.dumps({"pid": pid}), flush=True)


if __name__ == "__main__":
    main()
