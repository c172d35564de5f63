"""A webhook receiver for the alerts scenario: records every POST as one JSON line.

    python3 webhook_receiver.py PORT FILE

Listens on 127.0.0.1 only. Each line of FILE is {"path": ..., "received_at": ..., "body": <the
POSTed JSON, or its text when it is not JSON>}; every request is answered 200.
"""

import json
import sys
import time
from http.server import BaseHTTPRequestHandler, HTTPServer


class Recorder(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (http.server's name)
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode("utf-8", "replace")
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw
        with open(self.server.record, "a") as record:
            record.write(json.dumps({"path": self.path, "received_at": time.time(), "body": body}) + "\n")
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


def main():
    server = HTTPServer(("127.0.0.1", int(sys.argv[1])), Recorder)
    server.record = sys.argv[2]
    server.serve_forever()


if __name__ == "__main__":
    main()
