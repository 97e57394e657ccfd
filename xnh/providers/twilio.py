"""Twilio, everything in one place: sending an SMS, what each of its answers means (its error codes, one
table: RapidPro's habit) and what that does to the number and the campaign, its delivery-callback
statuses and how each moves an outbox row, and what a message costs in parts.

    sender = TwilioSender(settings)            # TWILIO_* and XNH_PUBLIC_URL from xnh.settings
    result = sender.send({"id": 7, "recipient": "13800009001", "text": "…"})
    action = classify(result)                  # Action("opt_out", "opted out") for 21610 …
    OUTBOX_STATUS["delivered"], moves_on("delivered", "sent")   # a callback's effect on a row

| answer | what happens |
|---|---|
| HTTP 429 | wait RATE_LIMITED_DELAY and retry; not an attempt |
| 5xx, timeout, connection error | retry after 2 s, 4 s (+ up to 50 % jitter), at most MAX_ATTEMPTS; "may have been sent" |
| 21610 | the number opted out: subscriptions say so; skipped, and its other waiting rows too |
| 21211, 21614, 30005, 30006 | the number is bad (bad_numbers): failed, never retried, left out of later campaigns |
| 30003 | unreachable handset: retried once, RETRY_ONCE_DELAY later |
| 30004, 30007 | failed; BURST of a campaign's last BURST_WINDOW answers pauses the campaign |
| anything else | failed, with the code as the reason |

The same codes in a delivery callback act on the number and the campaign the same way (the message is not
resent from a callback: it may have reached the phone).
"""
import datetime as dt
import socket
import threading

from . import segments
from .base import Action, NotKnown, Result, classify_http

MAX_CHARS = segments.MAX_CHARS  # Twilio refuses a body over 1600 characters
RETRY_ONCE_DELAY = 600.0  # 30003: ten minutes later
BURST, BURST_WINDOW = 5, 20
BURST_CODES = ("30004", "30007")

CODES: dict[int, Action] = {
    21610: Action("opt_out", "opted out"),
    21211: Action("bad_number", "bad number"),  # invalid 'To' number
    21614: Action("bad_number", "bad number"),  # not a mobile number
    30005: Action("bad_number", "bad number"),  # unknown destination handset
    30006: Action("bad_number", "bad number"),  # landline or unreachable carrier
    30003: Action("retry_once", "unreachable handset"),
    30004: Action("burst", "blocked by the carrier"),
    30007: Action("burst", "filtered by the carrier"),
}

# delivery callbacks: how far along each MessageStatus is (a late callback never moves a row back) and the
# outbox status it moves a row to (None: kept as an event only, the row stays submitted)
STATUS_RANK = {"accepted": 0, "scheduled": 0, "queued": 1, "sending": 2, "sent": 3,
               "delivered": 4, "undelivered": 4, "failed": 4, "canceled": 4, "read": 5}
OUTBOX_STATUS = {"accepted": None, "scheduled": None, "queued": None, "sending": None, "sent": "sent",
                 "delivered": "delivered", "undelivered": "undelivered", "failed": "failed",
                 "canceled": "failed", "read": "delivered"}
NOT_DELIVERED = ("undelivered", "failed")


class TwilioSender:
    """Sends one SMS through twilio's Client (one client per thread), with StatusCallback
    XNH_PUBLIC_URL/sms/status?outbox=<id> when a public URL is set."""

    def __init__(self, settings, timeout: float = 10.0):
        self.timeout = timeout
        self.sid, self.token = settings.twilio_account_sid, settings.twilio_auth_token
        self.from_, self.service = settings.twilio_from_number, settings.twilio_messaging_service_sid
        self.base, self.public = settings.twilio_api_base, settings.public_url
        self._local = threading.local()

    @property
    def configured(self) -> bool:
        return bool(self.sid and self.token and (self.from_ or self.service))

    def warm(self) -> None:
        """Build this thread's client and import its Messages API now, not during the first paced send
        (tens of ms): a late first message would arrive bunched with the next one."""
        self._client().messages  # noqa: B018 - twilio imports its API modules on first attribute access

    def _client(self):
        client = getattr(self._local, "client", None)
        if client is None:
            from twilio.http.http_client import TwilioHttpClient
            from twilio.rest import Client

            client = Client(self.sid, self.token, http_client=TwilioHttpClient(timeout=self.timeout))
            if self.base:
                client.api.base_url = self.base.rstrip("/")
            self._local.client = client
        return client

    def send(self, row: dict) -> Result:
        from requests import RequestException
        from twilio.base.exceptions import TwilioRestException

        args = {"to": e164(row["recipient"]), "body": row["text"]}
        args.update({"from_": self.from_} if self.from_ else {"messaging_service_sid": self.service})
        if self.public:
            args["status_callback"] = f"{self.public.rstrip('/')}/sms/status?outbox={row['id']}"
        try:
            message = self._client().messages.create(**args)
        except TwilioRestException as e:
            return Result(http_status=e.status, code=str(e.code) if e.code else None)
        except (RequestException, socket.timeout, TimeoutError, ConnectionError):
            return Result(timeout=True)
        return Result(sid=message.sid)

    def find(self, row: dict, since: float) -> str | None:
        """The sid of a message Twilio holds for this row (to its recipient, with its text, created at or
        after `since`, real time), or None when it holds none; NotKnown when Twilio cannot be asked. The
        list is by recipient without a date filter: a message still queued at Twilio has no DateSent yet."""
        from requests import RequestException
        from twilio.base.exceptions import TwilioException

        try:
            messages = self._client().messages.list(to=e164(row["recipient"]), limit=FIND_LIMIT)
        except (TwilioException, RequestException, socket.timeout, TimeoutError, ConnectionError) as e:
            raise NotKnown(f"Twilio's message list could not be read: {e.__class__.__name__}: {e}") from None
        earliest = dt.datetime.fromtimestamp(since - 2, dt.timezone.utc)  # Twilio's times have whole seconds
        for message in messages:
            if message.body == row["text"] and (message.date_created is None or message.date_created >= earliest):
                return message.sid
        return None


FIND_LIMIT = 50  # the newest messages to one number looked through for a row (Twilio lists newest first)


def classify(result: Result | None = None, *, http_status: int | None = None, code=None,
             timeout: bool = False) -> Action:
    """The action for one failed attempt (a Result), or for an HTTP status, Twilio's error code (from the
    API error or a delivery callback), or a timeout / connection error."""
    if result is not None:
        http_status, code, timeout = result.http_status, result.code, result.timeout
    if code not in (None, "") and not timeout:
        try:
            known = CODES.get(int(code))
        except ValueError:
            known = None
        if known:
            return known
    return classify_http(http_status, code, timeout)


def is_burst(codes: list) -> bool:
    """True when at least BURST of the last BURST_WINDOW answers of a campaign were carrier blocks."""
    return sum(1 for c in codes[:BURST_WINDOW] if str(c) in BURST_CODES) >= BURST


def moves_on(status: str, current: str) -> bool:
    """A callback `status` applies to a row now `current` unless the row is already further along."""
    return STATUS_RANK[status] >= STATUS_RANK.get(current, -1)


def parts(text: str) -> int:
    """The SMS parts `text` costs (UCS-2: 70 characters in one, 67 a part when longer)."""
    return segments.count(text).segments


def e164(phone: str) -> str:
    """13800009001 → +8613800009001; a number already with + stays as it is."""
    return phone if phone.startswith("+") else f"+86{phone}"
