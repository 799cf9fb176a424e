"""`/ui`: the dashboard's pages. Read-only (GET), except logging in and out.

Every page goes through `_render`, which turns a bad parameter into the page with
a message (400), an unreadable ledger into a message (503), and a missing admin
key into the login form (401); never a 500.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from modelyard.dashboard import explorer, savings, sql, status
from modelyard.dashboard.access import (
    COOKIE,
    SESSION_S,
    LoginNeeded,
    admin_hash,
    is_admin_key,
    require_reader,
    session_cookie,
)
from modelyard.dashboard.format import install_filters
from modelyard.dashboard.params import (
    DIMENSIONS,
    STATUSES,
    BadParameter,
    date_range,
    dimension,
    status_filter,
    text_filter,
)
from modelyard.engine import Engine
from modelyard.ledger.sql import SqlLedger

HERE: Final = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
install_filters(templates.env)
router = APIRouter(prefix="/ui", include_in_schema=False)
BREAKDOWN_ROWS: Final = 50
# No script, style, image or connection from anywhere but the gateway itself: the
# dashboard works offline, and an injected tag could not load anything either.
CSP: Final = "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'"
Build = Callable[[AsyncEngine], Awaitable[dict[str, Any]]]


class NoSqlLedger(Exception):
    """The engine's ledger is not SQLite or PostgreSQL (an in-memory ledger)."""


def install_dashboard(app: FastAPI) -> None:
    """Serve the dashboard at `/ui` and its vendored scripts at `/ui/static`."""
    app.include_router(router)
    app.mount("/ui/static", StaticFiles(directory=HERE / "static"), name="ui-static")


def _engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def _db(request: Request) -> AsyncEngine:
    ledger = _engine(request).ledger
    if not isinstance(ledger, SqlLedger):
        raise NoSqlLedger()
    return ledger.engine


def _html(request: Request, name: str, context: dict[str, Any], status_code: int) -> Response:
    response = templates.TemplateResponse(
        request, name, {"page": name.removesuffix(".html"), **context}, status_code=status_code
    )
    response.headers["content-security-policy"] = CSP
    response.headers["cache-control"] = "no-store"
    return response


async def _render(request: Request, name: str, build: Build, **defaults: Any) -> Response:
    try:
        await require_reader(request)
        db = _db(request)
        return _html(request, name, {**defaults, **await build(db)}, 200)
    except LoginNeeded as needed:
        return _login_page(request, disabled=needed.disabled)
    except BadParameter as exc:
        return _html(request, name, {**defaults, "error": str(exc)}, 400)
    except NoSqlLedger:
        message = (
            "The dashboard reads a SQL ledger (SQLite or PostgreSQL); this gateway keeps "
            "its ledger in memory. Set MODELYARD_DATABASE_URL or the config's ledger_url."
        )
        return _html(request, "message.html", {"error": message}, 503)
    except (SQLAlchemyError, RuntimeError) as exc:
        message = f"The ledger could not be read ({type(exc).__name__}); try again shortly."
        return _html(request, "message.html", {"error": message}, 503)


def _q(request: Request, name: str) -> str | None:
    return request.query_params.get(name)


def _today() -> Any:
    return datetime.now(UTC).date()


@router.get("", response_class=HTMLResponse)
@router.get("/", response_class=HTMLResponse)
async def spend_page(request: Request) -> Response:
    """Spend and calls over time by model, key, team or task."""

    async def build(db: AsyncEngine) -> dict[str, Any]:
        span = date_range(_q(request, "from"), _q(request, "to"), _today())
        dim = dimension(_q(request, "by"))
        found = await sql.spend(db, span, dim, BREAKDOWN_ROWS)
        return {
            "span": span,
            "by": dim,
            "totals": found.totals,
            "series": found.series,
            "groups": found.groups,
        }

    return await _render(request, "spend.html", build, dimensions=DIMENSIONS, by="model")


@router.get("/savings", response_class=HTMLResponse)
async def savings_page(request: Request) -> Response:
    """Actual spend against the counterfactual on a reference model."""
    engine = _engine(request)
    prices = {card_id: card.prices for card_id, card in engine.catalog.cards.items()}

    async def build(db: AsyncEngine) -> dict[str, Any]:
        span = date_range(_q(request, "from"), _q(request, "to"), _today())
        reference = _q(request, "reference") or savings.PER_DECISION
        if reference != savings.PER_DECISION and reference not in prices:
            raise BadParameter(f"'reference' must be a catalog model, got {reference[:80]!r}")
        return {"span": span, "savings": await savings.savings(db, span, reference, prices)}

    return await _render(
        request,
        "savings.html",
        build,
        models=sorted(prices),
        per_decision=savings.PER_DECISION,
    )


@router.get("/decisions", response_class=HTMLResponse)
async def decisions_page(request: Request) -> Response:
    """Recent attempts with their decisions; filter by model, status, key; paged."""

    async def build(db: AsyncEngine) -> dict[str, Any]:
        filters = explorer.Filters(
            model=text_filter(_q(request, "model"), "model"),
            status=status_filter(_q(request, "status")),
            key=text_filter(_q(request, "key"), "key"),
        )
        before = explorer.parse_cursor(_q(request, "before"))
        rows, cursor = await explorer.recent(db, filters, before)
        query = {k: v for k, v in vars_of(filters).items() if v}
        older = f"/ui/decisions?{urlencode({**query, 'before': cursor})}" if cursor else None
        return {"filters": filters, "rows": rows, "older": older}

    return await _render(
        request, "decisions.html", build, statuses=STATUSES, filters=explorer.Filters()
    )


def vars_of(filters: explorer.Filters) -> dict[str, str | None]:
    return {"model": filters.model, "status": filters.status, "key": filters.key}


@router.get("/requests/{request_id}", response_class=HTMLResponse)
async def request_page(request: Request, request_id: str) -> Response:
    """One request's whole story: each decision, its reasons, every attempt."""

    async def build(db: AsyncEngine) -> dict[str, Any]:
        wanted = text_filter(request_id, "request id")
        found = await explorer.story(db, wanted) if wanted else None
        if found is None:
            raise BadParameter(f"no request {request_id[:80]!r} in the ledger")
        return {"story": found}

    return await _render(request, "request.html", build, request_id=request_id)


@router.get("/health", response_class=HTMLResponse)
async def health_page(request: Request) -> Response:
    """Breakers, cool-downs and recent error rates per deployment."""
    engine = _engine(request)
    deployments = {card.deployment.name for card in engine.catalog.cards.values()}

    async def build(db: AsyncEngine) -> dict[str, Any]:
        executor = engine.executor
        rows = await status.deployment_health(
            db, deployments, executor.health, datetime.now(UTC), executor.monotonic()
        )
        return {"deployments": rows, "window_min": int(status.RECENT.total_seconds() // 60)}

    return await _render(request, "health.html", build)


@router.get("/specialists", response_class=HTMLResponse)
async def specialists_page(request: Request) -> Response:
    """Per task: answered vs escalated, and the confidence distribution."""

    async def build(db: AsyncEngine) -> dict[str, Any]:
        span = date_range(_q(request, "from"), _q(request, "to"), _today())
        tasks = await status.specialist_coverage(db, span)
        return {"span": span, "tasks": tasks, "confidence": {t.task: t.bins for t in tasks}}

    return await _render(request, "specialists.html", build)


def _login_page(request: Request, *, disabled: bool = False, error: str | None = None) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    context = {"disabled": disabled, "error": error, "next": _safe_next(target)}
    response = _html(request, "login.html", context, 403 if disabled else 401)
    if not disabled:
        response.headers["www-authenticate"] = "Bearer"
    return response


def _safe_next(target: str | None) -> str:
    """Only a path inside the dashboard: never another site (`//evil`) after login."""
    if not target or not target.startswith("/ui") or target.startswith("/ui/login"):
        return "/ui"
    return target if "\\" not in target and "//" not in target else "/ui"


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request) -> Response:
    if admin_hash(request) is None:
        return _login_page(request, disabled=True)
    return _html(request, "login.html", {"next": _safe_next(_q(request, "next"))}, 200)


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    """Check the admin key from the form; on success set the session cookie."""
    expected = admin_hash(request)
    if expected is None:
        return _login_page(request, disabled=True)
    form = parse_qs((await request.body()).decode("utf-8", "replace"), max_num_fields=4)
    key = (form.get("key") or [""])[0]
    target = _safe_next((form.get("next") or ["/ui"])[0])
    if not key or not is_admin_key(request, key):
        context = {"error": "That is not the admin key.", "next": target}
        return _html(request, "login.html", context, 401)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        COOKIE,
        session_cookie(expected, time.time()),
        max_age=SESSION_S,
        path="/ui",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/logout")
async def logout() -> Response:
    response = RedirectResponse("/ui/login", status_code=303)
    response.delete_cookie(COOKIE, path="/ui")
    return response
