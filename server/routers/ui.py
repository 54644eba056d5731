"""The web page: plain HTML/JS/CSS from server/ui/, served without a key (the page holds no
data; every API call it makes carries the key the user pasted)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, RedirectResponse

from ..errors import ResourceNotFound

UI_DIR = Path(__file__).resolve().parent.parent / "ui"
TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml", ".png": "image/png"}
# Only our own files, no inline script: a pasted key cannot be read by injected markup.
HEADERS = {"Content-Security-Policy": "default-src 'self'; img-src 'self' data:; object-src 'none'; "
                                      "base-uri 'none'; frame-ancestors 'none'",
           "X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"}

router = APIRouter(include_in_schema=False)


@router.get("/")
async def root():
    return RedirectResponse("/ui/")


@router.get("/ui")
async def ui_redirect():
    return RedirectResponse("/ui/")


@router.get("/ui/")
async def index():
    return FileResponse(UI_DIR / "index.html", media_type=TYPES[".html"], headers=HEADERS)


@router.get("/ui/{name}")
async def asset(name: str):
    path = UI_DIR / name
    # One flat folder: a name with a separator or an unknown suffix is not one of our files.
    if "/" in name or "\\" in name or name.startswith(".") or path.suffix not in TYPES or not path.is_file():
        raise ResourceNotFound(f"no page file {name!r}")
    return FileResponse(path, media_type=TYPES[path.suffix], headers=HEADERS)
