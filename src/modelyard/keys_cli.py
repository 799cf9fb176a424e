"""`modelyard keys …`, `modelyard budgets …` and usage grouped by key, team or user.

These work on the ledger database directly (`--database`, else
`MODELYARD_DATABASE_URL`, else the default SQLite file): whoever can write that
database administers the gateway. Running replicas see changes within their
refresh interval (a few seconds). The HTTP equivalent is `/admin/*` with
`MODELYARD_ADMIN_KEY`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, TypeVar

import anyio
import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select

from modelyard.admin import KeySpec, create_key, describe, describe_budget, set_budget
from modelyard.keys import KeyStore
from modelyard.ledger import ledger_url_from_env, open_ledger
from modelyard.ledger.migrations import call_records, nanousd_to_usd
from modelyard.ledger.records import OPEN_STATUS, LedgerStore

keys_app = typer.Typer(help="API keys: create, list, show, revoke, rotate.")
budgets_app = typer.Typer(help="Budgets per key, team, user, tag or global.")
console = Console()
DatabaseOpt = Annotated[str | None, typer.Option(help="Ledger URL (default: env/SQLite).")]
_T = TypeVar("_T")
USAGE_GROUPS = {"key": "key_id", "team": "team", "user": "caller", "model": "model_id"}


def _with_store(database: str | None, work: Callable[[KeyStore], Awaitable[_T]]) -> _T:
    async def run() -> _T:
        ledger = open_ledger(database or ledger_url_from_env())
        await ledger.open()
        store = await KeyStore.for_ledger(ledger)
        try:
            return await work(store)
        finally:
            await store.close()
            await ledger.close()

    try:
        return anyio.run(run)
    except ValueError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="A unique name for the key.")],
    team: Annotated[str | None, typer.Option(help="The team it spends for.")] = None,
    budget: Annotated[str | None, typer.Option(help="Its own budget, e.g. 50/month.")] = None,
    on_exhaust: Annotated[str, typer.Option(help="downgrade or refuse")] = "downgrade",
    rpm: Annotated[int | None, typer.Option(help="Requests per minute.")] = None,
    tpm: Annotated[int | None, typer.Option(help="Tokens per minute.")] = None,
    models: Annotated[str, typer.Option(help="Allowed model globs, comma-separated.")] = "",
    policies: Annotated[str, typer.Option(help="Allowed policy globs.")] = "",
    max_data_class: Annotated[str | None, typer.Option(help="public/internal/...")] = None,
    expires_days: Annotated[float | None, typer.Option(help="Expire after N days.")] = None,
    cap_max_tokens: Annotated[
        bool, typer.Option(help="May max_tokens be capped to fit a budget?")
    ] = True,
    database: DatabaseOpt = None,
) -> None:
    """Create a key and print it once (only its hash is stored)."""
    spec = KeySpec(
        name=name,
        team=team,
        budget=budget,
        on_exhaust="refuse" if on_exhaust == "refuse" else "downgrade",
        rpm=rpm,
        tpm=tpm,
        models=[models] if models else [],
        policies=[policies] if policies else [],
        max_data_class=max_data_class,
        expires_days=expires_days,
        cap_max_tokens=cap_max_tokens,
    )
    if on_exhaust not in ("downgrade", "refuse"):
        console.print("[red]error:[/red] --on-exhaust takes downgrade or refuse")
        raise typer.Exit(2)
    secret, key = _with_store(database, lambda s: create_key(s, spec))
    console.print(f"created key '{key.name}' (id {key.id}); it is shown only once:")
    typer.echo(secret)


@keys_app.command("list")
def keys_list(database: DatabaseOpt = None) -> None:
    """Every key: name, id, team, limits, state."""
    keys = _with_store(database, lambda s: s.all())
    table = Table(title="keys")
    for col in ("name", "id", "prefix", "team", "rpm", "tpm", "models", "state"):
        table.add_column(col)
    now = datetime.now(UTC)
    for k in keys:
        state = k.problem(now) or "active"
        table.add_row(
            k.name,
            k.id,
            k.prefix + "…",
            k.team or "-",
            str(k.rpm or "-"),
            str(k.tpm or "-"),
            ",".join(k.models) or "*",
            state,
        )
    console.print(table)


@keys_app.command("show")
def keys_show(name: str, database: DatabaseOpt = None) -> None:
    """One key as JSON (never the key itself)."""
    key = _with_store(database, lambda s: s.by_name(name))
    if key is None:
        console.print(f"[red]error:[/red] no key named '{name}'")
        raise typer.Exit(1)
    console.print_json(data=describe(key))


@keys_app.command("revoke")
def keys_revoke(name: str, database: DatabaseOpt = None) -> None:
    """Revoke a key: 401 from then on (replicas notice within seconds)."""
    key = _with_store(database, lambda s: s.revoke(name, datetime.now(UTC)))
    console.print(f"revoked '{key.name}'")


@keys_app.command("rotate")
def keys_rotate(name: str, database: DatabaseOpt = None) -> None:
    """A new secret for the same key (same id, budgets and usage); the old one stops."""
    secret, key = _with_store(database, lambda s: s.rotate(name))
    console.print(f"rotated '{key.name}'; the new key is shown only once:")
    typer.echo(secret)


@budgets_app.command("set")
def budgets_set(
    budget: Annotated[str, typer.Argument(help="AMOUNT/PERIOD, e.g. 500/month or 5/24h")],
    team: Annotated[str | None, typer.Option(help="A team's budget.")] = None,
    key: Annotated[str | None, typer.Option(help="A key's budget (by name).")] = None,
    user: Annotated[str | None, typer.Option(help="An end user's budget.")] = None,
    tag: Annotated[str | None, typer.Option(help="A tag's budget.")] = None,
    on_exhaust: Annotated[str, typer.Option(help="downgrade or refuse")] = "downgrade",
    database: DatabaseOpt = None,
) -> None:
    """Set (or replace) a budget; with no scope option, the global one."""
    scopes = [(k, v) for k, v in (("team", team), ("key", key), ("user", user), ("tag", tag)) if v]
    if len(scopes) > 1:
        console.print("[red]error:[/red] give at most one of --team, --key, --user, --tag")
        raise typer.Exit(2)
    kind, subject = scopes[0] if scopes else ("global", None)
    result = _with_store(database, lambda s: set_budget(s, kind, subject, budget, on_exhaust))
    console.print_json(data=describe_budget(result))


@budgets_app.command("list")
def budgets_list(database: DatabaseOpt = None) -> None:
    """Every budget."""
    rows = _with_store(database, lambda s: s.budgets())
    table = Table(title="budgets")
    for col in ("scope", "subject", "limit $", "period", "on exhaust"):
        table.add_column(col)
    for b in rows:
        d = describe_budget(b)
        table.add_row(d["scope"], d["subject"], d["limit_usd"], d["period"], d["on_exhaust"])
    console.print(table)


def usage_by(url: str, days: int, groups: tuple[str, ...]) -> list[dict[str, Any]]:
    """Calls and spend grouped by key, team, user and/or model (SQL ledgers)."""

    async def run() -> list[dict[str, Any]]:
        ledger: LedgerStore = open_ledger(url)
        await ledger.open()
        try:
            engine = getattr(ledger, "engine", None)
            if engine is None:
                return []
            cols = [call_records.c[USAGE_GROUPS[g]].label(g) for g in groups]
            since = datetime.now(UTC) - timedelta(days=days)
            stmt = (
                select(
                    *cols,
                    func.count().label("calls"),
                    func.coalesce(func.sum(call_records.c.cost_nanousd), 0).label("nanos"),
                )
                .where(call_records.c.started_at >= since, call_records.c.status != OPEN_STATUS)
                .group_by(*cols)
                .order_by(*cols)
            )
            async with engine.connect() as conn:
                rows = (await conn.execute(stmt)).mappings().all()
            return [
                {
                    **{g: r[g] for g in groups},
                    "calls": int(r["calls"]),
                    "cost_usd": nanousd_to_usd(int(r["nanos"])),
                }
                for r in rows
            ]
        finally:
            await ledger.close()

    return anyio.run(run)


def print_usage_by(url: str, days: int, groups: tuple[str, ...]) -> None:
    rows = usage_by(url, days, groups)
    table = Table(title=f"usage by {','.join(groups)}, last {days} days")
    for col in (*groups, "calls", "cost $"):
        table.add_column(col)
    for r in rows:
        table.add_row(*(str(r[g] or "-") for g in groups), str(r["calls"]), str(r["cost_usd"]))
    console.print(table)
    total = sum((r["cost_usd"] for r in rows), start=nanousd_to_usd(0))
    console.print(f"total: ${total:f}")
