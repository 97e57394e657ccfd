"""What the local fake APIs share (fake_twilio.py, fake_wechat.py, fake_cnsms.py): a quiet HTTP/1.1 handler
that answers JSON in one write, and a server on 127.0.0.1 on a free port, served from a daemon thread while
the fake is entered.

    class FakeX(LocalServer):
        def __init__(self):
            class Handler(JsonHandler):
                def do_POST(self): self.send_json(200, {...})
            self.serve(Handler)                      # self.base → the API base URL

    with FakeX() as fake: ...
"""
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class JsonHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send_json(self, status: int, payload) -> None:
        """Headers and body leave in one write (no wait for Nagle's ACK between them)."""
        data = json.dumps(payload, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self._headers_buffer.append(b"\r\n" + data)
        self.flush_headers()


class LocalServer:
    def serve(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
