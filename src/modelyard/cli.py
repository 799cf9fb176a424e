"""`modelyard` command line: serve | models | route explain | usage | review.

Every command builds the same Engine the server uses (`modelyard.app_factory`).
Async work runs under `anyio.run`.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Literal

import anyio
import typer
from rich.console import Console
from rich.table import Table

from modelyard.app_factory import Stack, load_stack
from modelyard.council.cli import app as review_app
from modelyard.errors import ModelyardError
from modelyard.evaluation.cli import eval_command
from modelyard.keys_cli import USAGE_GROUPS, budgets_app, keys_app, print_usage_by
from modelyard.learned.cli import app as router_app
from modelyard.ledger import ledger_url_from_env, open_ledger
from modelyard.specialists.cli import app as specialist_app
from modelyard.types import ChatRequest, Message, money_text
from modelyard.verifiers.cli import app as verifier_app

app = typer.Typer(help="modelyard: route each request to the cheapest model that is good enough.")
route_app = typer.Typer(help="Inspect routing decisions without calling a model.")
app.add_typer(route_app, name="route")
app.command("eval")(eval_command)
app.add_typer(specialist_app, name="specialist")
app.add_typer(router_app, name="router")
app.add_typer(keys_app, name="keys")
app.add_typer(budgets_app, name="budgets")
app.add_typer(verifier_app, name="verifier")
app.add_typer(review_app, name="review")
console = Console()

ConfigOpt = Annotated[
    str | None, typer.Option("--config", "-c", help="YAML config; default: the built-in stack.")
]
LocalOpt = Annotated[
    list[str] | None,
    typer.Option("--local", help="Local OpenAI-compatible endpoint, URL=MODEL[,MODEL...]."),
]


def _stack(config: str | None, local: list[str] | None) -> Stack:
    try:
        return load_stack(config, local or (), dict(os.environ))
    except ModelyardError as exc:
        console.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(2) from None


def _print_providers(stack: Stack) -> None:
    catalog = stack.catalog
    deployments = sorted({c.deployment.name for c in catalog.cards.values()})
    for name in deployments:
        if name in catalog.unavailable:
            console.print(f"  [yellow]disabled[/yellow] {name}: {catalog.unavailable[name]}")
        else:
            console.print(f"  [green]enabled[/green]  {name}")


@app.command()
def serve(
    config: ConfigOpt = None,
    local: LocalOpt = None,
    host: Annotated[str | None, typer.Option(help="Bind address (default from config).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 4000).")] = None,
    workers: Annotated[
        int, typer.Option(min=1, help="Processes sharing the port (one ledger writer each).")
    ] = 1,
    max_in_flight: Annotated[
        int | None,
        typer.Option(
            min=0, help="Chat requests in flight per process before 503s (0: never shed)."
        ),
    ] = None,
    access_log: Annotated[
        bool, typer.Option("--access-log", help="Log a line per request (off: it costs CPU).")
    ] = False,
) -> None:
    """Run the OpenAI-compatible gateway."""
    from modelyard.server.serving import ServeSettings, run

    stack = _stack(config, local)
    console.print(f"modelyard: {stack.source}; ledger {stack.ledger_url_display}")
    _print_providers(stack)
    chat_cards = [c for c in stack.catalog.cards.values() if c.embedding is None]
    # The local embeddings model is always there; it answers no chat.
    if not any(stack.catalog.is_available(c) for c in chat_cards):
        console.print("  no provider enabled: chat calls will get 503 until a key is set")
    bind_host = host or stack.config.server.host
    bind_port = port or stack.config.server.port
    shown_host = f"[{bind_host}]" if ":" in bind_host else bind_host
    dashboard = f"http://{shown_host}:{bind_port}/ui"
    console.print(f"  dashboard: {dashboard} (needs MODELYARD_ADMIN_KEY once keys exist)")
    settings = ServeSettings(
        config=config,
        local=tuple(local or ()),
        host=host,
        port=port,
        workers=workers,
        max_in_flight=max_in_flight,
        access_log=access_log,
    )
    run(stack, settings)


@app.command()
def models(config: ConfigOpt = None, local: LocalOpt = None) -> None:
    """List the catalog: prices (and where they come from), capabilities, availability."""
    stack = _stack(config, local)
    table = Table(title=f"catalog ({stack.source})")
    for col in (
        "model",
        "deployment",
        "enabled",
        "$/Mtok in",
        "out",
        "cached",
        "price source",
        "context",
        "capabilities",
    ):
        table.add_column(col)
    for card in stack.catalog.cards.values():
        table.add_row(
            card.id,
            card.deployment.name,
            "yes" if stack.catalog.is_available(card) else "no",
            str(card.prices.input),
            str(card.prices.output),
            str(card.prices.cached_input),
            card.prices.source,
            f"{card.context_window:,}",
            ",".join(sorted(c.value for c in card.capabilities)),
        )
    console.print(table)


@route_app.command("explain")
def route_explain(
    prompt: Annotated[str, typer.Argument(help="The user message to route.")],
    model: Annotated[str, typer.Option(help="auto, a policy, an alias or a model id.")] = "auto",
    task: Annotated[str | None, typer.Option(help="Task hint, e.g. code.")] = None,
    config: ConfigOpt = None,
    local: LocalOpt = None,
) -> None:
    """Show the decision for a prompt: ranked candidates, rejections and reasons."""
    stack = _stack(config, local)
    engine = stack.build_engine(open_ledger(None))
    hints = {"task": task} if task else {}
    request = ChatRequest(
        model=model, messages=[Message(role="user", content=prompt)], modelyard=hints
    )
    try:
        decision = engine.route(request)
    except ModelyardError as exc:
        console.print(f"[red]{type(exc).__name__}[/red] ({exc.http_status}): {exc.message}")
        raise typer.Exit(1) from None
    console.print_json(json.dumps(decision.explain()))


@app.command()
def usage(
    days: Annotated[int, typer.Option(help="Look back this many days.")] = 30,
    by: Annotated[
        str, typer.Option(help="model, day, or model,day; or any of key,team,user,model")
    ] = "model,day",
    database: Annotated[str | None, typer.Option(help="Ledger URL (default: env/SQLite).")] = None,
    config: Annotated[
        str | None, typer.Option("--config", "-c", help="Read the ledger this config names.")
    ] = None,
) -> None:
    """Spend and calls from the ledger, by model and by day (or by key, team, user)."""
    groups = tuple(g.strip() for g in by.split(",") if g.strip())
    url = database or (_stack(config, None).ledger_url if config else ledger_url_from_env())
    from modelyard.app_factory import display_url

    console.print(f"ledger: {display_url(url)}")
    if groups and set(groups) - {"model", "day"} and set(groups) <= set(USAGE_GROUPS):
        print_usage_by(url, days, groups)
        return
    if not groups or any(g not in ("model", "day") for g in groups):
        console.print("[red]error:[/red] --by takes model, day, or model,day")
        raise typer.Exit(2)
    rows = anyio.run(_usage_rows, url, days, groups)
    table = Table(title=f"usage, last {days} days")
    # Only the grouping columns asked for: `--by model` has no day column.
    keys = tuple(g for g in ("day", "model") if g in groups)
    # `interrupted`: calls whose process died mid-flight, billed at their estimate;
    # `cached`: answers served from the response cache (free).
    columns = (*keys, "calls", "errors", "interrupted", "cached", "tokens in", "tokens out")
    for col in (*columns, "cost $"):
        table.add_column(col)
    total = sum((r.cost_usd for r in rows), start=Decimal(0))
    for r in rows:
        key_cells = {"day": str(r.day or "-"), "model": r.model_id or "-"}
        table.add_row(
            *(key_cells[k] for k in keys),
            str(r.calls),
            str(r.errors),
            str(r.interrupted),
            str(r.cached),
            f"{r.input_tokens:,}",
            f"{r.output_tokens:,}",
            money_text(r.cost_usd),
        )
    console.print(table)
    console.print(f"total: ${money_text(total)}")


async def _usage_rows(url: str, days: int, groups: tuple[str, ...]) -> list:  # type: ignore[type-arg]
    ledger = open_ledger(url)
    await ledger.open()
    try:
        since = datetime.now(UTC) - timedelta(days=days)
        by: tuple[Literal["model", "day"], ...] = tuple(g for g in groups if g in ("model", "day"))  # type: ignore[misc]
        return list(await ledger.usage(since=since, by=by))
    finally:
        await ledger.close()
