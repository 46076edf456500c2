"""The pages' ES modules are served so a browser will run them under the CSP, and every
module a page imports exists (the pages have no build step that would catch a bad path)."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from chat import app as app_module
from chat.config import Settings

STATIC = Path(app_module.__file__).resolve().parent / "static"
MODULES = sorted(STATIC.rglob("*.js"))
IMPORT = re.compile(r"""^import\s[^'"]*['"]([^'"]+)['"];?$""", re.M)
PAGE_SCRIPT = re.compile(r'<script type="module" src="/static/([^"]+)"></script>')


async def _get(path: str) -> httpx.Response:
    # Straight to the ASGI app, without its lifespan: serving a file needs no database.
    app = app_module.create_app(Settings(database_url="-", redis_url="-", jwt_secret="-"))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://pages.test") as http:
        return await http.get(path)


def test_there_are_modules_in_folders() -> None:
    assert len(MODULES) >= 20
    assert {p.parent.name for p in MODULES} >= {"client", "ui", "member", "specialist", "supervisor"}


@pytest.mark.parametrize("module", MODULES, ids=lambda p: str(p.relative_to(STATIC)))
async def test_every_module_is_served_as_javascript_under_the_csp(module: Path) -> None:
    expected = module.read_bytes()  # noqa: ASYNC240 (a few KB from the source tree)
    response = await _get(f"/static/{module.relative_to(STATIC).as_posix()}")
    assert response.status_code == 200
    assert response.content == expected
    # A module script with any other type is refused by the browser (strict MIME checking).
    assert response.headers["content-type"].split(";")[0] in {"text/javascript", "application/javascript"}
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert response.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize("module", MODULES, ids=lambda p: str(p.relative_to(STATIC)))
def test_every_import_is_relative_and_resolves(module: Path) -> None:
    specifiers = IMPORT.findall(module.read_text())
    for spec in specifiers:
        assert spec.startswith(("./", "../")), f"{module.name}: {spec} (imports are relative files)"
        target = (module.parent / spec).resolve()
        assert target.is_file() and STATIC in target.parents, f"{module.name}: {spec} does not exist"


def test_every_page_loads_one_existing_module() -> None:
    pages = sorted(STATIC.glob("*.html"))
    assert {p.stem for p in pages} == {"login", "member", "specialist", "supervisor"}
    for page in pages:
        scripts = PAGE_SCRIPT.findall(page.read_text())
        assert scripts == [f"{page.stem}.js"], page.name
        assert (STATIC / scripts[0]).is_file()
