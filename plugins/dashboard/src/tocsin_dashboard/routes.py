"""The dashboard's routes on `tocsin serve`: the page shell at `/` and `/ui/<page>`, assets at `/ui/static/`.

All are public (`opt={"scope": None}`): they hold no data. The page fetches data from `/api/v1` in the
browser, sending the key the user typed, so the API's scope guard decides what each caller may see and do.
Every answer carries a strict Content-Security-Policy: scripts, styles and connections only from this origin.
"""

from __future__ import annotations

from litestar import Response, get
from litestar.exceptions import NotFoundException
from litestar.params import FromPath

from tocsin_dashboard.assets import load

PAGES = ("overview", "metrics", "traces", "logs", "alerts", "workflows", "notifications")

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
       "font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
HEADERS = {"Content-Security-Policy": CSP, "Cross-Origin-Opener-Policy": "same-origin"}

ASSETS = load()


def _answer(name: str, cache: str) -> Response[bytes]:
    asset = ASSETS[name]
    return Response(asset.body, media_type=asset.media_type, headers={**HEADERS, "Cache-Control": cache})


@get(["/", "/ui"], opt={"scope": None}, include_in_schema=False)
async def home() -> Response[bytes]:
    """The page shell at the root: the overview."""
    return _answer("index.html", "no-cache")


@get("/ui/{page:str}", opt={"scope": None}, include_in_schema=False)
async def shell(page: FromPath[str]) -> Response[bytes]:
    """The page shell; the browser's router draws the page named in the path from API data."""
    if page not in PAGES:
        raise NotFoundException(f"no dashboard page {page!r}; pages are {', '.join(PAGES)}")
    return _answer("index.html", "no-cache")


@get("/ui/static/{path:path}", opt={"scope": None}, include_in_schema=False)
async def static(path: FromPath[str]) -> Response[bytes]:
    """A shipped script, style or license, by its path under `static/`; anything else is a 404."""
    name = path.lstrip("/")
    if name not in ASSETS or name == "index.html":
        raise NotFoundException(f"no dashboard file {name!r}")
    return _answer(name, "no-cache")


HANDLERS = [home, shell, static]
