"""Entry point: `python -m app`. Listens on HOST:PORT (defaults 127.0.0.1:3000)."""

import os

import uvicorn

from .main import create_app

if __name__ == "__main__":
    host = os.environ.get("HOST", "127.0.0.1")
    port = int(os.environ.get("PORT", "3000"))
    print(f"{{project_name}} listening on http://{host}:{port}", flush=True)
    uvicorn.run(create_app(), host=host, port=port, log_level="info")
