"""The baseline: one `async def` route answering 202 without doing anything, served exactly as `aftermath serve`
serves the real app (same uvicorn options from app.cli, same logging set-up, same process count).

    python bench/bare_app.py --port 8001 --workers 2
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from fastapi import FastAPI, Response

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.cli import uvicorn_options
from app.logs import configure

if not logging.getLogger().handlers:  # each worker process imports this module twice (as __mp_main__, then by name)
    configure(["bench-pagerduty-secret"])  # the same log set-up and secret filter as the real app
app = FastAPI()


@app.post("/webhooks/pagerduty", status_code=202)
async def pagerduty() -> Response:
    return Response(status_code=202)


@app.get("/bare")
async def bare() -> dict[str, list[object]]:
    """The ceiling for GET routes (bench/search.py): a JSON answer computed from nothing."""
    return {"items": []}


@app.get("/bare-page")
async def bare_page() -> Response:
    """The ceiling for the pages (bench/pages.py): a GET answering a small HTML page."""
    return Response("<!doctype html><title>bare</title><p>bare</p>", media_type="text/html")


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description="bare FastAPI baseline")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    options = uvicorn_options(args.host, args.port)
    if args.workers > 1:
        uvicorn.run("bare_app:app", workers=args.workers, app_dir=str(Path(__file__).parent), **options)
    else:
        uvicorn.run(app, **options)


if __name__ == "__main__":
    main()
