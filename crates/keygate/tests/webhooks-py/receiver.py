"""A webhook receiver for crates/keygate/tests/webhooks.rs that checks every delivery with the
Standard Webhooks reference library (`standardwebhooks`, pinned in requirements.txt).

POST /hook/NAME is a delivery for the endpoint the test calls NAME. The test drives the receiver
through PUT /_control ({"secrets": {NAME: "whsec_..."}, "modes": {NAME: MODE}}) and reads what
arrived from GET /_log. Modes: "ok" (200), "status:N" (always N), "fail_first:N" (500 to the
first N deliveries, then 200), "hang" (holds the request until the mode changes), "slow:MS"
(200 after MS milliseconds). Prints "listening PORT" once it accepts connections.
"""

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook

lock = threading.Condition()
secrets = {}
modes = {}
log = []
seen_per_name = {}
in_flight = {}
max_in_flight = {}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, body=b""):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def body(self):
        return self.rfile.read(int(self.headers.get("Content-Length", "0")))

    def do_GET(self):
        if self.path == "/_log":
            with lock:
                out = {"deliveries": log, "maxInFlight": max_in_flight,
                       "inFlight": in_flight}
                data = json.dumps(out).encode()
            self.answer(200, data)
        else:
            self.answer(404)

    def do_PUT(self):
        if self.path != "/_control":
            return self.answer(404)
        ctl = json.loads(self.body())
        with lock:
            secrets.update(ctl.get("secrets", {}))
            modes.update(ctl.get("modes", {}))
            lock.notify_all()
        self.answer(204)

    def do_POST(self):
        if not self.path.startswith("/hook/"):
            return self.answer(404)
        name = self.path[len("/hook/"):]
        payload = self.body()
        headers = {k.lower(): v for k, v in self.headers.items()}
        with lock:
            in_flight[name] = in_flight.get(name, 0) + 1
            max_in_flight[name] = max(max_in_flight.get(name, 0), in_flight[name])
            n = seen_per_name.get(name, 0)
            seen_per_name[name] = n + 1
            secret = secrets.get(name)
            mode = modes.get(name, "ok")
        try:
            verified, error, parsed = False, None, None
            try:
                parsed = Webhook(secret).verify(payload, headers)
                verified = True
            except Exception as e:  # what the test reports when a signature is wrong
                error = f"{type(e).__name__}: {e}"
            status = 200
            if mode.startswith("status:"):
                status = int(mode.split(":")[1])
            elif mode.startswith("fail_first:"):
                status = 500 if n < int(mode.split(":")[1]) else 200
            elif mode.startswith("slow:"):
                time.sleep(int(mode.split(":")[1]) / 1000)
            elif mode == "hang":
                with lock:
                    while modes.get(name) == "hang":
                        lock.wait(1)
            with lock:
                log.append({
                    "name": name,
                    "id": headers.get("webhook-id"),
                    "timestamp": headers.get("webhook-timestamp"),
                    "signature": headers.get("webhook-signature"),
                    "verified": verified,
                    "error": error,
                    "answered": status,
                    "body": payload.decode(),
                    "event": parsed,
                })
            self.answer(status)
        finally:
            with lock:
                in_flight[name] -= 1


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(f"listening {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
