"""`modelyard review list | show ID | resolve ID --accept|--reject|--edit FILE`: the
council's review queue, read from and written to the ledger database."""

from __future__ import annotations

import getpass
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import anyio
import typer
from rich.console import Console
from rich.table import Table

from modelyard.council.reviews import STATUSES, ReviewError, ReviewStatus, ReviewStore, reviews_for
from modelyard.ledger import ledger_url_from_env, open_ledger

app = typer.Typer(help="The council's review queue: disputed answers waiting for a person.")
console = Console()
_T = TypeVar("_T")

DatabaseOpt = Annotated[
    str | None, typer.Option(help="Ledger URL (default: MODELYARD_DATABASE_URL or SQLite).")
]


def _with_store(database: str | None, work: Callable[[ReviewStore], Awaitable[_T]]) -> _T:
    async def run() -> _T:
        ledger = open_ledger(database or ledger_url_from_env())
        await ledger.open()
        try:
            return await work(reviews_for(ledger))
        finally:
            await ledger.close()

    try:
        return anyio.run(run)
    except ReviewError as exc:
        console.print(f"[red]error:[/red] {exc.args[0]}")
        raise typer.Exit(1) from None


@app.command("list")
def list_reviews(
    status: Annotated[str, typer.Option(help="pending, accepted, rejected, edited or all")] = (
        "pending"
    ),
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
    database: DatabaseOpt = None,
) -> None:
    """Reviews, oldest first (pending ones by default)."""
    if status != "all" and status not in STATUSES:
        console.print(f"[red]error:[/red] --status takes {', '.join(STATUSES)} or all")
        raise typer.Exit(2)
    wanted: ReviewStatus | None = next((s for s in STATUSES if s == status), None)
    items = _with_store(database, lambda store: store.list(status=wanted, limit=limit))
    table = Table(title=f"reviews ({status})")
    for col in ("id", "created", "status", "agreement", "cost $", "reason"):
        table.add_column(col)
    for r in items:
        table.add_row(
            r.id,
            r.created_at.isoformat(timespec="seconds"),
            r.status,
            f"{r.agreement:.2f}",
            str(r.cost_usd),
            r.reason,
        )
    console.print(table)


@app.command("show")
def show(review_id: str, database: DatabaseOpt = None) -> None:
    """One review in full, as JSON: request, members' answers, claim map, answer."""
    review = _with_store(database, lambda store: store.get(review_id))
    console.print_json(json.dumps(review.to_json()))


@app.command("resolve")
def resolve(
    review_id: str,
    accept: Annotated[bool, typer.Option("--accept", help="The answer stands.")] = False,
    reject: Annotated[bool, typer.Option("--reject", help="The answer is wrong.")] = False,
    edit: Annotated[
        Path | None, typer.Option("--edit", help="A file with the corrected answer.")
    ] = None,
    by: Annotated[str | None, typer.Option(help="Who resolves it (default: $USER).")] = None,
    database: DatabaseOpt = None,
) -> None:
    """Resolve a pending review; who and when are recorded with it."""
    if accept + reject + (edit is not None) != 1:
        console.print("[red]error:[/red] give exactly one of --accept, --reject, --edit FILE")
        raise typer.Exit(2)
    answer: str | None = None
    if edit is not None:
        try:
            answer = edit.read_text(encoding="utf-8")
        except OSError as exc:
            console.print(f"[red]error:[/red] cannot read {edit}: {exc.strerror}")
            raise typer.Exit(2) from None
    status: ReviewStatus = "accepted" if accept else "rejected" if reject else "edited"
    who = by or _user()
    done = _with_store(
        database,
        lambda store: store.resolve(review_id, status, who, datetime.now(UTC), answer),
    )
    console.print(f"{done.id}: {done.status} by {done.resolved_by} at {_when(done.resolved_at)}")


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name in a bare container
        return "cli"


def _when(at: Any) -> str:
    return at.isoformat(timespec="seconds") if at is not None else "-"
