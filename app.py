"""The WSGI application, where WSGI tools look for it: `waitress-serve app:app`, `flask --app app run`.
Configured from the environment like `xnh serve` (XNH_DB, TWILIO_AUTH_TOKEN, ...), and like it answers
from the demo county's own database until county data is synced into XNH_DB. Building it applies the
database migrations and nothing else."""
from xnh.app import create_app

app = create_app({"DEMO": True})
