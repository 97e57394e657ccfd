"""新农合助手 (xnh): SMS/Telegram assistant for a county's rural cooperative medical scheme."""

__all__ = ["respond", "Message", "Reply"]


def __getattr__(name):
    # Lazy re-exports keep `import xnh` cheap for the CLI's cold start.
    if name == "respond":
        from .handlers.router import respond

        return respond
    if name in ("Message", "Reply"):
        from . import message

        return getattr(message, name)
    raise AttributeError(name)
