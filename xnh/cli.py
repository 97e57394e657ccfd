"""The `xnh` command: ask, chat, serve, sync (and the clerks' broadcast tools).

Each command's docstring is its --help. Run `xnh --help` for the list.

An operational fault (a locked, read-only or unreachable database, a full disk, a port in use, a bad
--host) ends the command with one line on stderr, in Chinese and English, and exit status 1; never a
traceback (`_Group.invoke`).
"""
import getpass
import json
import logging
import os
import sqlite3
import sys

import click

from .privacy import normalize_phone


class _Group(click.Group):
    """Turns operational faults into one line and exit status 1 (click prints "Error: …")."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (sqlite3.Error, OSError) as e:
            from .store import db

            raise click.ClickException(db.explain(e)) from None


def _answering_db():
    """The database that answers `ask` and `chat`: the real one once county data is synced into it,
    else the demo county's own database (created from the shipped exports). Says which on stderr."""
    from . import demo
    from .store import db

    real = db.db_path()
    if db.has_county_data(real):
        path = real
        click.echo(f"(database: {os.path.abspath(path)})", err=True)
    else:
        path = demo.ensure(real)
        click.echo(f"(no county data synced into {os.path.abspath(real)} yet: answering from the demo county 示范县, "
                   f"{os.path.abspath(path)})", err=True)
    conn = db.open_db(path)
    db.check_writable(conn)  # a locked or read-only database: one line now, not a traceback later
    return conn


def _message(text: str, phone: str, channel: str):
    from .message import Message

    sender = normalize_phone(phone) or "cli"
    return Message(text=text, sender=sender, channel=channel, phone=sender if channel != "telegram" else None)


@click.group(cls=_Group)
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
    """Answer one message and print the reply (from the demo county's database until real data is synced)."""
    from .handlers.router import respond

    db = _answering_db()
    reply = respond(_message(text, phone, channel), db)
    db.conn.commit()  # respond() leaves committing to its caller (one transaction per message)
    if as_json:
        click.echo(json.dumps(reply.facts(), ensure_ascii=False, indent=2))
    else:
        click.echo(reply.text)


@cli.command()
@click.option("--from", "phone", default="13700000000", show_default=True, help="The sender's phone number.")
def chat(phone):
    """Talk to the assistant in the terminal (from the demo county's database until real data is synced)."""
    from .handlers.router import respond

    db = _answering_db()
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


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--threads", default=8, show_default=True, type=click.IntRange(1, 256), help="WSGI worker threads.")
def serve(host, port, threads):
    """Run the whole service (SMS webhook, web simulator, console, Telegram bot) on waitress."""
    from . import server

    try:
        server.serve(host, port, threads)
    except server.ServeError as e:
        raise click.ClickException(str(e)) from None


@cli.command()
@click.argument("kind", type=click.Choice(["enrollment", "claims"]))
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: on a terminal).")
def sync(kind, file, progress):
    """Import a county export (CSV in UTF-8/GBK, or .xlsx); ends with inserted=N updated=N unchanged=N rejected=N."""
    from pathlib import Path

    from . import sync as sync_mod
    from .store import db

    try:
        sync_mod.check_readable(kind, Path(file))  # before any database is created
        path = db.db_path()
        conn = db.open_db(path)
        click.echo(f"database: {os.path.abspath(path)} (county data: {os.path.abspath(db.county_path(path))})")
        result = sync_mod.run(conn, kind, file, progress=sys.stderr.isatty() if progress is None else progress)
    except sync_mod.SyncError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(2)
    for line in result.summary_lines():
        click.echo(line)


@cli.group()
def user():
    """Console users: `xnh user add NAME --role clerk|admin`."""


@user.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(["clerk", "admin"]), required=True, help="clerk, or admin (manages users).")
def user_add(name, role):
    """Add a console user; the password is asked twice on a terminal, else read from standard input's first line."""
    from .store import db, users

    if sys.stdin.isatty():
        password = click.prompt("密码 / password", hide_input=True, confirmation_prompt="再输一次 / again")
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    conn = db.open_db()
    try:
        users.add(conn, name, password, role, actor=f"cli:{getpass.getuser()}")
        conn.conn.commit()
    except users.UserError as e:
        raise click.ClickException(str(e)) from None
    finally:
        conn.close()
    click.echo(f"user {name} added ({role}): {os.path.abspath(db.db_path())}")
