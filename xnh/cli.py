"""The `xnh` command: ask, chat, serve, sync (and the clerks' broadcast tools).

Each command's docstring is its --help. Run `xnh --help` for the list.
"""
import json
import logging
import sys

import click

from .privacy import normalize_phone


def _db():
    from .store import db

    return db.open_db()


def _message(text: str, phone: str, channel: str):
    from .message import Message

    sender = normalize_phone(phone) or "cli"
    return Message(text=text, sender=sender, channel=channel, phone=sender if channel != "telegram" else None)


@click.group()
@click.version_option(package_name="xnh")
def cli():
    """新农合助手 (xnh): reimbursement estimates, policy answers, 查参合 and 查报销 by SMS and Telegram."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from . import clock

    try:
        clock.now()  # a bad XNH_TODAY is a configuration error: say so now, not on every message
    except clock.BadToday as e:
        raise click.UsageError(str(e)) from e


@cli.command()
@click.argument("text")
@click.option("--from", "phone", default="13700000000", show_default=True, help="The sender's phone number.")
@click.option("--channel", type=click.Choice(["sms", "telegram"]), default="sms", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print intent, reply and the estimate's numbers as JSON.")
def ask(text, phone, channel, as_json):
    """Answer one message and print the reply (the demo county is loaded into an empty database)."""
    from .handlers.router import respond

    db = _db()
    _ensure_demo(db)
    reply = respond(_message(text, phone, channel), db)
    db.conn.commit()  # respond() leaves committing to its caller (one transaction per message)
    if as_json:
        click.echo(json.dumps(reply.facts(), ensure_ascii=False, indent=2))
    else:
        click.echo(reply.text)


@cli.command()
@click.option("--from", "phone", default="13700000000", show_default=True, help="The sender's phone number.")
def chat(phone):
    """Talk to the assistant in the terminal (the demo county is loaded into an empty database)."""
    from .handlers.router import respond

    db = _db()
    _ensure_demo(db)
    click.echo("新农合助手。输入问题,Ctrl-D 退出。例:住院花了3000能报多少 / 查参合 / 查报销")
    while True:
        try:
            text = input("> ")
        except (EOFError, KeyboardInterrupt):
            click.echo()
            return
        reply = respond(_message(text, phone, "sms"), db)
        db.conn.commit()
        click.echo(reply.text)


def _ensure_demo(db):
    from . import demo

    loaded = demo.load_if_empty(db)
    if loaded:
        click.echo(f"(empty database: loaded the demo county, {loaded})", err=True)


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--threads", default=8, show_default=True, type=int, help="WSGI worker threads.")
def serve(host, port, threads):
    """Run the whole service (SMS webhook, web simulator, console, Telegram bot) on waitress."""
    from . import server

    _ensure_demo(_db())
    server.serve(host, port, threads)


@cli.command()
@click.argument("kind", type=click.Choice(["enrollment", "claims"]))
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: on a terminal).")
def sync(kind, file, progress):
    """Import a county export (CSV in UTF-8/GBK, or .xlsx); ends with inserted=N updated=N unchanged=N rejected=N."""
    from . import sync as sync_mod

    try:
        result = sync_mod.run(_db(), kind, file, progress=sys.stderr.isatty() if progress is None else progress)
    except sync_mod.SyncError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(2)
    for line in result.summary_lines():
        click.echo(line)
