"""The `xnh` command: ask, chat, serve, sync (and the clerks' broadcast tools).

Each command's docstring is its --help. Run `xnh --help` for the list.

The settings are read from the environment once, when the group starts (`xnh.settings.Settings`), and
handed to every command as click's context object (`pass_settings`).

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

from . import quiet_hours
from .privacy import normalize_phone
from .settings import Settings, SettingsError

pass_settings = click.make_pass_decorator(Settings)


class _Group(click.Group):
    """Turns operational faults into one line and exit status 1 (click prints "Error: …")."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (sqlite3.Error, OSError) as e:
            from .store import db

            settings = ctx.find_object(Settings)
            raise click.ClickException(db.explain(e, settings.db_path if settings else "xnh.db")) from None


def _answering_db(settings: Settings):
    """The database that answers `ask` and `chat`: the real one once county data is synced into it,
    else the demo county's own database (created from the shipped exports). Says which on stderr."""
    from . import demo
    from .store import db

    real = settings.db_path
    if db.has_county_data(real):
        path = real
        click.echo(f"(database: {os.path.abspath(path)})", err=True)
    else:
        path = demo.ensure(real)
        click.echo(f"(no county data synced into {os.path.abspath(real)} yet: answering from the demo county "
                   f"{demo.county_name()}, {os.path.abspath(path)})", err=True)
    conn = db.open_db(path)
    db.check_writable(conn)  # a locked or read-only database: one line now, not a traceback later
    return conn


def _message(text: str, phone: str, channel: str):
    from .message import Message

    sender = normalize_phone(phone) or "cli"
    return Message(text=text, sender=sender, channel=channel, phone=sender if channel != "telegram" else None)


@click.group(cls=_Group)
@click.version_option(package_name="xnh")
@click.pass_context
def cli(ctx):
    """新农合助手 (xnh): reimbursement estimates, policy answers, 查参合 and 查报销 by SMS and Telegram."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from . import clock

    try:
        ctx.obj = Settings.from_env()
        clock.check(ctx.obj.today)  # a bad XNH_TODAY is a configuration error: say so now, not on every message
    except (clock.BadToday, SettingsError) as e:
        raise click.UsageError(str(e)) from e


@cli.command()
@click.argument("text")
@click.option("--from", "phone", default="13700000000", show_default=True, help="The sender's phone number.")
@click.option("--channel", type=click.Choice(["sms", "telegram"]), default="sms", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print intent, reply and the estimate's numbers as JSON.")
@pass_settings
def ask(settings, text, phone, channel, as_json):
    """Answer one message and print the reply (from the demo county's database until real data is synced)."""
    from .handlers.router import respond
    from .store.db import writing

    db = _answering_db(settings)
    with writing(db):  # respond() leaves committing to its caller (one transaction per message)
        reply = respond(_message(text, phone, channel), db)
    if as_json:
        click.echo(json.dumps(reply.facts(), ensure_ascii=False, indent=2))
    else:
        click.echo(reply.text)


@cli.command()
@click.option("--from", "phone", default="13700000000", show_default=True, help="The sender's phone number.")
@pass_settings
def chat(settings, phone):
    """Talk to the assistant in the terminal (from the demo county's database until real data is synced)."""
    from .handlers.router import respond
    from .store.db import writing

    db = _answering_db(settings)
    click.echo("新农合助手。输入问题,Ctrl-D 退出。例:住院花了3000能报多少 / 查参合 / 查报销")
    while True:
        try:
            text = input("> ")
        except (EOFError, KeyboardInterrupt):
            click.echo()
            return
        with writing(db):
            reply = respond(_message(text, phone, "sms"), db)
        click.echo(reply.text)


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--threads", default=8, show_default=True, type=click.IntRange(1, 256), help="WSGI worker threads.")
@pass_settings
def serve(settings, host, port, threads):
    """Run the whole service (SMS webhook, web simulator, console, Telegram bot) on waitress."""
    from . import server

    try:
        server.serve(settings, host, port, threads)
    except server.ServeError as e:
        raise click.ClickException(str(e)) from None


@cli.command()
@click.argument("kind", type=click.Choice(["enrollment", "claims"]))
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: on a terminal).")
@pass_settings
def sync(settings, kind, file, progress):
    """Import a county export (CSV in UTF-8/GBK, or .xlsx); ends with inserted=N updated=N unchanged=N rejected=N.
    Written to the audit log with the operator's name (XNH_ACTOR, else cli:<login name>)."""
    from pathlib import Path

    from . import sync as sync_mod
    from .store import db

    conn = None
    try:
        sync_mod.check_readable(kind, Path(file))  # before any database is created
        path = settings.db_path
        conn = db.open_db(path)
        click.echo(f"database: {os.path.abspath(path)} (county data: {os.path.abspath(db.county_path(path))})")
        result = sync_mod.run(conn, kind, file, progress=sys.stderr.isatty() if progress is None else progress)
    except sync_mod.SyncError as e:
        _audit_sync(settings, conn, kind, file, error=str(e))
        click.echo(f"error: {e}", err=True)
        sys.exit(2)
    except BaseException as e:
        _audit_sync(settings, conn, kind, file, error=f"{e.__class__.__name__}: {e}")
        raise
    _audit_sync(settings, conn, kind, file, result=result)
    try:  # the dashboard's figures of the new data, computed once now rather than by the first page
        from .store import stats

        stats.refresh(conn)
    except sqlite3.Error as e:
        logging.getLogger(__name__).warning("dashboard figures not refreshed: %s", e)
    for line in result.summary_lines():
        click.echo(line)


def _audit_sync(settings: Settings, conn, kind: str, file: str, result=None, error: str | None = None) -> None:
    """`xnh sync` in the audit log: who ran it, the file, and what it did or why it failed. A database that
    cannot be written now (locked, full) only loses this entry, never the import's own outcome."""
    from .store import db, state

    if conn is None:
        if not os.path.exists(settings.db_path):
            return  # the file could not be read: nothing was created, nothing to record in
        try:
            conn = db.open_db(settings.db_path)
        except sqlite3.Error:
            return
    detail = {"via": "cli", "kind": kind, "file": os.path.abspath(file)}
    if result is not None:
        detail.update(inserted=result.inserted, updated=result.updated, unchanged=result.unchanged,
                      rejected=result.rejected)
    else:
        detail["error"] = error
    try:
        db.finish(conn, failed=True)
        with db.writing(conn):
            state.audit(conn, _actor(settings), "sync_done" if result is not None else "sync_failed", detail)
    except sqlite3.Error as e:
        logging.getLogger(__name__).warning("the sync was not written to the audit log: %s", e)


@cli.group()
def user():
    """Console users: `xnh user add NAME --role clerk|admin`."""


@user.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(["clerk", "admin"]), required=True, help="clerk, or admin (manages users).")
@pass_settings
def user_add(settings, name, role):
    """Add a console user; the password is asked twice on a terminal, else read from standard input's first line."""
    from .store import db, users

    if sys.stdin.isatty():
        password = click.prompt("密码 / password", hide_input=True, confirmation_prompt="再输一次 / again")
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    conn = db.open_db(settings.db_path)
    try:
        with db.writing(conn):
            users.add(conn, name, password, role, actor=f"cli:{getpass.getuser()}")
    except users.UserError as e:
        raise click.ClickException(str(e)) from None
    finally:
        conn.close()
    click.echo(f"user {name} added ({role}): {os.path.abspath(settings.db_path)}")


# -- broadcasts and the worker ---------------------------------------------------------------------------

def _service_db(settings: Settings):
    """The real database (never the demo's: broadcasts are for real households), writable."""
    from .store import db

    conn = db.open_db(settings.db_path)
    db.check_writable(conn)
    return conn


def _actor(settings: Settings) -> str:
    """Who runs the command, for the audit log (XNH_ACTOR, else the login name)."""
    return settings.actor or f"cli:{getpass.getuser()}"


def _campaign_call(fn, *args, **kwargs):
    """Run a campaigns function; its refusals (CampaignError, a bad audience or template) end in one line."""
    try:
        return fn(*args, **kwargs)
    except ValueError as e:
        raise click.ClickException(str(e)) from None


@cli.group()
def policy():
    """A county's policy directory: check one before it goes live, or start one from the demo's."""


@policy.command("check")
@click.argument("directory", type=click.Path(file_okay=False, path_type=str))
@click.option("--examples/--no-examples", default=True, show_default=True, help="Print the worked examples.")
def policy_check(directory, examples):
    """Check DIRECTORY: one line per problem (file: entry: reason), then the estimator on a few standard
    bills per level to compare with the county's own document. Exit status 1 when there are problems."""
    from .policy_kb import check

    problems = check.check(directory)
    for problem in problems:
        click.echo(str(problem))
    if examples and not any(p.reason == "missing" or p.entry == "-" for p in problems):
        rows = check.worked_examples(directory)
        if rows:
            click.echo(f"\nworked examples ({rows[0]['scheme']}):")
            click.echo("级别 | 花费 | 起付线 | 比例 | 可报")
            for r in rows:
                click.echo(f"{r['level']} {r['visit']} | {r['bill']} | {r['deductible']} | {r['rate'] * 100:.0f}% | {r['reimbursed']}")
    click.echo(f"{len(problems)} problem(s) in {os.path.abspath(directory)}", err=True)
    sys.exit(1 if problems else 0)


@policy.command("new")
@click.argument("directory", type=click.Path(file_okay=False, path_type=str))
def policy_new(directory):
    """Start DIRECTORY from the demo county's: fill in the places marked 【填写】 and 【核对】, then run
    `xnh policy check DIRECTORY` until it finds nothing, and set XNH_POLICY_DIR to it."""
    from .policy_kb import check

    try:
        path = check.new_county(directory)
    except FileExistsError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"started {os.path.abspath(path)} from the demo county; now fill in the places marked 【填写】/【核对】")


@cli.group(cls=_Group)
def broadcast():
    """Campaigns: new, preview, send, status, cancel (the worker sends what is queued)."""


@broadcast.command("new")
@click.option("--name", required=True, help="The campaign's name.")
@click.option("--audience", required=True, help='Terms that must all hold, e.g. "unpaid=2027 township=东山镇".')
@click.option("--text", required=True, help="The message, a Jinja template: {{ name }} {{ amount }} {{ year }} "
                                            "{{ deadline }} {{ township }}.")
@click.option("--channel", "channels", multiple=True, type=click.Choice(["sms", "telegram"]), default=("sms",),
              show_default=True, help="Repeat for both; telegram reaches users who bound their phone.")
@click.option("--at", "schedule", default=None, help="Send from this ISO date-time (China time unless a zone is given).")
@click.option("--window", default=quiet_hours.DEFAULT_TEXT, show_default=True,
              help="Quiet hours, China time: no sends from the first time until the second.")
@pass_settings
def broadcast_new(settings, name, audience, text, channels, schedule, window):
    """Create a campaign (not sent yet); prints its id as the last line."""
    from .broadcast import campaigns

    db = _service_db(settings)
    cid = _campaign_call(campaigns.create, db, name=name, audience=audience, text=text, channels=channels,
                         schedule=schedule, window=window, actor=_actor(settings))
    click.echo(f"campaign {cid} created: xnh broadcast preview {cid}")
    click.echo(cid)


@broadcast.command("preview")
@click.argument("campaign_id", type=int)
@pass_settings
def broadcast_preview(settings, campaign_id):
    """Who and what a campaign would send: count, exclusions, 3 previews, segments, cost, time, blockers."""
    from .broadcast import campaigns

    p = _campaign_call(campaigns.preview, _service_db(settings), campaign_id, settings)
    click.echo(f"recipients: {p.count}" + "".join(f"  {c}={n}" for c, n in sorted(p.channels.items())))
    click.echo("excluded: " + (", ".join(f"{r}={n}" for r, n in p.excluded.items()) or "none"))
    for i, sample in enumerate(p.samples, 1):
        click.echo(f"preview {i}: {sample}")
    click.echo(f"segments: {p.segments_per_message} per message (max), {p.total_segments} in all")
    click.echo(f"cost: {p.cost} (at {settings.sms_price} a segment)")
    click.echo(f"time: {p.seconds:.0f} s at {settings.sms_per_second:g} segments/s")
    click.echo(f"same-day: {p.same_day} phone(s) already in another campaign today")
    click.echo("blockers: " + ("; ".join(p.blockers) or "none"))


@broadcast.command("send")
@click.argument("campaign_id", type=int)
@pass_settings
def broadcast_send(settings, campaign_id):
    """Queue a campaign's messages in the outbox (the worker sends them)."""
    from .broadcast import campaigns

    n = _campaign_call(campaigns.send, _service_db(settings), campaign_id, _actor(settings))
    click.echo(f"queued={n}")


@broadcast.command("status")
@click.argument("campaign_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@pass_settings
def broadcast_status(settings, campaign_id, as_json):
    """A campaign's messages by status, failures by reason, rows claimed by a worker that died, and whether
    anything is sending (the sender's heartbeat, the oldest due message, what is wrong)."""
    from .broadcast import campaigns, health

    db = _service_db(settings)
    s = {**_campaign_call(campaigns.status, db, campaign_id), "outbound": health.outbound(db, settings)}
    if as_json:
        click.echo(json.dumps(s, ensure_ascii=False, indent=2, default=str))
        return
    click.echo(f"campaign {s['id']} {s['name']!r}: {s['status']}" + (" (paused)" if s["paused"] else ""))
    if s["paused"]:
        click.echo(f"paused: {s['paused_reason']}")
    click.echo(" ".join(f"{k}={v}" for k, v in s["counts"].items()))
    click.echo("failures: " + (", ".join(f"{r}={n}" for r, n in s["failures"].items()) or "none"))
    stale, unknown = s["stale_claims"], s["unknown"]
    click.echo(f"claimed by a worker that stopped, settled with the provider at the next start: {len(stale)}"
               + (" ids=" + ",".join(str(r["id"]) for r in stale) if stale else ""))
    click.echo(f"unknown (the provider may have them; a clerk may resend): {len(unknown)}"
               + (" ids=" + ",".join(str(r["id"]) for r in unknown) if unknown else ""))
    _echo_outbound(s["outbound"])


def _echo_outbound(report: dict) -> None:
    sender, age = report["sender"], report["oldest_due_age"]
    click.echo("sender: " + (f"{sender.get('id', 'this process')} {sender['state']}, last good round "
                             f"{sender['heartbeat_age']:.0f} s ago" + (f", last fault: {sender['last_error']}"
                                                                      if sender["last_error"] else "")
                             if sender else "none has run on this database"))
    click.echo("oldest due: " + ("nothing due" if age is None else f"{age:.0f} s"))
    click.echo("outbound: " + ("; ".join(report["problems"]) or "ok"))


@broadcast.command("cancel")
@click.argument("campaign_id", type=int)
@pass_settings
def broadcast_cancel(settings, campaign_id):
    """Cancel a campaign: every message still waiting is cancelled now."""
    from .broadcast import campaigns

    n = _campaign_call(campaigns.cancel, _service_db(settings), campaign_id, _actor(settings))
    click.echo(f"cancelled={n}")


@broadcast.command("period")
@click.option("--audience", required=True, help='Audience terms, as for a campaign (e.g. "unpaid=2027").')
@click.option("--channel", "channels", multiple=True, type=click.Choice(["wechat", "cnsms"]),
              default=("wechat", "cnsms"), show_default=True, help="WeChat template messages and/or China SMS.")
@pass_settings
def broadcast_period(settings, audience, channels):
    """Queue the payment-period notice (缴费期通知, an approved template) for the audience: a WeChat follower
    bound to a household's phone by template message, the other phones by China SMS. Once per phone a year."""
    from .broadcast import period

    counts = _campaign_call(period.queue_period_notices, _service_db(settings), audience=audience,
                            channels=channels, actor=_actor(settings))
    click.echo(" ".join(f"{k}={v}" for k, v in counts.items()))


@cli.command()
@click.option("--until-idle", is_flag=True, help="Exit when nothing is due (cron, tests).")
@click.option("--threads", default=4, show_default=True, type=click.IntRange(1, 64), help="Sending threads.")
@pass_settings
def worker(settings, until_idle, threads):
    """Send what the outbox holds (broadcasts, payment notices, clerks' answers) at XNH_SMS_PER_SECOND;
    SIGTERM or Ctrl-C finish the sends in flight and release the rest; a fault ends it with one line."""
    import signal
    import threading

    from .broadcast import worker as worker_mod

    _service_db(settings).close()
    stop = threading.Event()

    def _stop(signum, frame):
        if stop.is_set():  # a second signal: stop now (what was claimed is settled at the next start)
            raise KeyboardInterrupt
        stop.set()

    before = {sig: signal.signal(sig, _stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        sent = worker_mod.run(settings, until_idle=until_idle, threads=threads, stop=stop)
    except KeyboardInterrupt:
        sent = None
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)
    click.echo(f"sent={sent}" if not stop.is_set() and sent is not None else f"stopped sent={sent}")


@cli.group(cls=_Group)
def wechat():
    """The WeChat official account (WECHAT_APP_ID, WECHAT_APP_SECRET)."""


@wechat.command("menu")
@pass_settings
def wechat_menu(settings):
    """Create the official account's menu through WeChat's API: 报销估算, 政策问答, and 查询服务 with 查参合,
    查报销, 人工服务 (their clicks are answered on /wechat)."""
    from .providers import wechat as provider
    from .store import wechat as store

    _service_db(settings).close()
    try:
        answer = provider.create_menu(settings, store.Ledger(settings.db_path))
    except provider.NoticeProblem as e:
        raise click.UsageError(str(e)) from None
    except Exception as e:  # noqa: BLE001 - WeChat's refusal or the network: one line, not a traceback
        raise click.ClickException(f"菜单创建失败 / the menu was not created: {e}") from None
    click.echo(f"menu created: {answer.get('errmsg', 'ok')}")
