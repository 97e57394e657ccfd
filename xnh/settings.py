"""Every setting of the service, read from the environment once, into one typed, frozen object.

    from xnh.settings import Settings
    settings = Settings.from_env()            # the entry points do this once: cli, server, app.py
    app = create_app(settings=settings)       # and pass it on: the app, the worker, the CLI's commands
    Settings(db_path="t.db", sms_per_second=50)   # tests build their own

This is the only module that reads `os.environ`. Each field names its variable (`metadata["env"]`); the
README's configuration table lists the same variables with the same defaults (tests/test_settings.py).

One variable is also read live: XNH_TODAY, the policy clock's override (`live_today`), which
xnh/clock.py reads on each call. It replaces the calendar, which is itself live; tests and demos move it
within one process (pytest's monkeypatch.setenv), and the handlers that ask the clock take no settings.
`Settings.today` holds the value the process started with, checked at start (a bad date stops the CLI
with one line); the clock never disagrees with it unless something changed the environment since.
"""
import dataclasses
import os
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation


class SettingsError(ValueError):
    """An environment variable whose value cannot be used (the message names it)."""


def _env(name: str, doc: str, **kw):
    return field(metadata={"env": name, "doc": doc}, **kw)


@dataclass(frozen=True)
class Settings:
    """The service's configuration (see README "Configuration" for what each one does)."""

    db_path: str = _env("XNH_DB", "the service's SQLite file", default="xnh.db")
    today: str | None = _env("XNH_TODAY", "the policy date (tests, demos)", default=None)
    twilio_account_sid: str | None = _env("TWILIO_ACCOUNT_SID", "Twilio account", default=None)
    twilio_auth_token: str | None = _env("TWILIO_AUTH_TOKEN", "Twilio token", default=None)
    twilio_from_number: str | None = _env("TWILIO_FROM_NUMBER", "SMS sender", default=None)
    twilio_messaging_service_sid: str | None = _env("TWILIO_MESSAGING_SERVICE_SID", "SMS sender", default=None)
    twilio_api_base: str | None = _env("TWILIO_API_BASE", "replaces https://api.twilio.com", default=None)
    public_url: str | None = _env("XNH_PUBLIC_URL", "the public base URL", default=None)
    sms_per_second: float = _env("XNH_SMS_PER_SECOND", "outbound SMS segments a second", default=10.0)
    sms_price: Decimal = _env("XNH_SMS_PRICE", "price of one SMS segment", default=Decimal("0.05"))
    worker_lease: float = _env("XNH_WORKER_LEASE", "seconds a claimed row is held", default=30.0)
    backlog_limit: float = _env("XNH_BACKLOG_LIMIT", "seconds the oldest due row may wait", default=600.0)
    sender_stale: float = _env("XNH_SENDER_STALE", "seconds without a heartbeat: dead", default=60.0)
    actor: str | None = _env("XNH_ACTOR", "the CLI's name in the audit log", default=None)
    telegram_bot_token: str | None = _env("TELEGRAM_BOT_TOKEN", "enables the bot", default=None)
    telegram_api_url: str = _env("TELEGRAM_API_URL", "the Bot API", default="https://api.telegram.org/bot")
    telegram_webhook_url: str | None = _env("TELEGRAM_WEBHOOK_URL", "webhook mode", default=None)
    telegram_webhook_secret: str | None = _env("TELEGRAM_WEBHOOK_SECRET", "webhook mode", default=None)
    simulator: str = _env("XNH_SIMULATOR", "auto | on | off", default="auto")
    secret_key: str | None = _env("XNH_SECRET_KEY", "the console's session key", default=None)
    cookie_secure: bool = _env("XNH_COOKIE_SECURE", "Secure session cookie", default=True)
    session_minutes: int = _env("XNH_SESSION_MINUTES", "the console's idle timeout", default=30)
    policy_dir: str | None = _env("XNH_POLICY_DIR", "the county's policy directory", default=None)
    wechat_token: str | None = _env("WECHAT_TOKEN", "enables /wechat; the signature key", default=None)
    wechat_app_id: str | None = _env("WECHAT_APP_ID", "the official account's AppID", default=None)
    wechat_app_secret: str | None = _env("WECHAT_APP_SECRET", "the official account's AppSecret", default=None)
    wechat_aes_key: str | None = _env("WECHAT_AES_KEY", "EncodingAESKey: safe mode", default=None)
    wechat_api_base: str = _env("WECHAT_API_BASE", "the WeChat API", default="https://api.weixin.qq.com")
    cnsms_provider: str | None = _env("XNH_CNSMS_PROVIDER", "aliyun | tencent: SMS inside China", default=None)
    cnsms_sign_name: str | None = _env("CNSMS_SIGN_NAME", "the approved SMS signature", default=None)
    cnsms_daily_limit: int = _env("XNH_CNSMS_DAILY_LIMIT", "China SMS to one number a day", default=10)
    cnsms_per_second: float = _env("XNH_CNSMS_PER_SECOND", "China SMS a second", default=20.0)
    cnsms_callback_secret: str | None = _env("CNSMS_CALLBACK_SECRET", "the callbacks' secret path", default=None)
    cnsms_callback_allow: str | None = _env("CNSMS_CALLBACK_ALLOW", "addresses allowed to call back", default=None)
    aliyun_access_key_id: str | None = _env("ALIYUN_ACCESS_KEY_ID", "Aliyun AccessKey", default=None)
    aliyun_access_key_secret: str | None = _env("ALIYUN_ACCESS_KEY_SECRET", "Aliyun AccessKey", default=None)
    aliyun_sms_api_base: str = _env("ALIYUN_SMS_API_BASE", "Aliyun SMS API", default="https://dysmsapi.aliyuncs.com")
    tencent_secret_id: str | None = _env("TENCENT_SECRET_ID", "Tencent Cloud API key", default=None)
    tencent_secret_key: str | None = _env("TENCENT_SECRET_KEY", "Tencent Cloud API key", default=None)
    tencent_sms_app_id: str | None = _env("TENCENT_SMS_APP_ID", "Tencent SmsSdkAppId", default=None)
    tencent_sms_api_base: str = _env("TENCENT_SMS_API_BASE", "Tencent SMS API", default="https://sms.tencentcloudapi.com")
    upload_mb: int = _env("XNH_UPLOAD_MB", "the console's upload limit in MB", default=500)
    proxy_hops: int = _env("XNH_PROXY_HOPS", "trusted reverse proxies in front", default=0)

    @classmethod
    def from_env(cls, environ=None, **overrides) -> "Settings":
        """The settings the environment (or `environ`) gives, then `overrides` (field names)."""
        environ = os.environ if environ is None else environ
        values = {}
        for f in dataclasses.fields(cls):
            raw = (environ.get(f.metadata["env"]) or "").strip()
            if raw:
                values[f.name] = _parse(f, raw)
        return cls(**{**values, **overrides})

    def replace(self, **changes) -> "Settings":
        """A copy with `changes` (field names)."""
        return dataclasses.replace(self, **changes)

    @property
    def simulator_mode(self) -> bool | str:
        """True (on), False (off) or "auto": on while the database holds only the demo county."""
        raw = self.simulator.strip().lower()
        if raw in _OFF:
            return False
        return True if raw in _ON else "auto"

    @property
    def twilio_configured(self) -> bool:
        """Credentials and a sender: outbound SMS can go."""
        return bool(self.twilio_account_sid and self.twilio_auth_token
                    and (self.twilio_from_number or self.twilio_messaging_service_sid))

    @property
    def wechat_configured(self) -> bool:
        """AppID and AppSecret: customer-service and template messages can go."""
        return bool(self.wechat_app_id and self.wechat_app_secret)

    @property
    def cnsms_configured(self) -> bool:
        """A China SMS provider with its keys and an approved signature: templated SMS can go."""
        provider = (self.cnsms_provider or "").strip().lower()
        if provider == "aliyun":
            keys = self.aliyun_access_key_id and self.aliyun_access_key_secret
        elif provider == "tencent":
            keys = self.tencent_secret_id and self.tencent_secret_key and self.tencent_sms_app_id
        else:
            return False
        return bool(keys and self.cnsms_sign_name)


_ON, _OFF = ("on", "1", "true", "yes"), ("off", "0", "false", "no")


def _parse(f: dataclasses.Field, raw: str):
    name, kind = f.metadata["env"], f.type
    try:
        if kind is float:
            value = float(raw)
            if not value > 0:
                raise ValueError
            return value
        if kind is int:
            return int(raw)
        if kind is Decimal:
            return Decimal(raw)
        if kind is bool:
            return flag(raw, f.default)
    except (ValueError, InvalidOperation):
        raise SettingsError(f"{name}={raw!r} is not a {'positive number' if kind is float else kind.__name__}") from None
    return raw


def flag(raw: str, default: bool) -> bool:
    """An on/off value: off, 0, false, no (any case) are off; empty is `default`; anything else is on."""
    raw = (raw or "").strip().lower()
    return default if not raw else raw not in _OFF


def display(value) -> str:
    """A default as the README's configuration table writes it."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def variables() -> dict[str, str]:
    """Every variable's name → its default, as the README writes it."""
    return {f.metadata["env"]: display(f.default) for f in dataclasses.fields(Settings)}


def live_policy_dir() -> str:
    """XNH_POLICY_DIR as the environment holds it (read where the policy is first loaded; tests switch
    counties with policy_kb.loader.use_county, not the environment)."""
    return os.environ.get("XNH_POLICY_DIR", "").strip()


def live_today() -> str:
    """XNH_TODAY as the environment holds it now (see the module docstring: the clock reads it per call)."""
    return os.environ.get("XNH_TODAY", "").strip()
