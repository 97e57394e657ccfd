"""The WSGI application, where WSGI tools look for it: `waitress-serve app:app`, `flask --app app run`.
Configured from the environment like `xnh serve` (XNH_DB, TWILIO_AUTH_TOKEN, ...); building it applies
the database migrations and nothing else."""
from xnh.app import create_app

app = create_app()
