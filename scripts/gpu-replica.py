#!/usr/bin/env python3
"""A model-server stand-in that does real GPU work, for bench/gpu-check.sh.

    python3 scripts/gpu-replica.py --port 9000 [--size 8192] [--hold-gib 4] [--stub]

Serves on 127.0.0.1:PORT (stdlib ThreadingHTTPServer):
  GET  /health          200 {"status": "ok", ...} once the GPU is set up
  POST /v1/completions  runs bf16 matrix products on cuda:0 (the first device of its
                        CUDA_VISIBLE_DEVICES) for `busy_ms` of the JSON body (default
                        --busy-ms), then answers in the OpenAI completions shape with `usage`
                        and a `replica` object: pid, CUDA_VISIBLE_DEVICES, device name and
                        count, and what it ran.

At start it takes --hold-gib of GPU memory (so that memory readings have something to show),
multiplies once to warm up, and only then listens. --stub replaces the GPU work by a wait (no
torch needed): for trying the script where there is no GPU; it says so in every answer.
"""

import argparse
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY = 1 << 20
MAX_BUSY_MS = 60_000


class Gpu:
    """bf16 matrix products on cuda:0, one request's work at a time per thread."""

    def __init__(self, size, hold_gib):
        try:
            import torch  # only here: --stub runs without it
        except ImportError as e:
            raise SystemExit(f"gpu-replica: no PyTorch here ({e}); --stub runs without a GPU")

        if not torch.cuda.is_available():
            raise SystemExit("gpu-replica: torch sees no CUDA device "
                             f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r})")
        self.torch = torch
        self.device = torch.device("cuda:0")
        self.name = torch.cuda.get_device_name(0)
        self.count = torch.cuda.device_count()
        gen = torch.Generator(device=self.device).manual_seed(os.getpid())
        self.a = torch.randn(size, size, device=self.device, dtype=torch.bfloat16, generator=gen)
        self.b = torch.randn(size, size, device=self.device, dtype=torch.bfloat16, generator=gen)
        self.held = None
        if hold_gib > 0:
            self.held = torch.empty(int(hold_gib * (1 << 30)), dtype=torch.uint8,
                                    device=self.device)
            self.held.fill_(1)
        torch.matmul(self.a, self.b)
        torch.cuda.synchronize()

    def busy(self, ms):
        """Multiplies until `ms` milliseconds have passed; returns the number of products."""
        torch = self.torch
        n = 0
        end = time.monotonic() + ms / 1000.0
        # On the default stream: the caching allocator reuses the products' memory (a stream per
        # request would keep blocks per stream and grow).
        while time.monotonic() < end:
            for _ in range(4):
                torch.matmul(self.a, self.b)
            n += 4
            torch.cuda.synchronize(self.device)
        return n

    def describe(self):
        return {"device_name": self.name, "device_count": self.count, "stub": False}


class Stub:
    """No GPU: it only waits, so that the script can be tried anywhere."""

    def busy(self, ms):
        time.sleep(ms / 1000.0)
        return 0

    def describe(self):
        return {"device_name": "stub (no GPU)", "device_count": 0, "stub": True}


def make_handler(engine, default_busy_ms, started):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):  # quiet: tide prefixes and keeps replica output
            pass

        def answer(self, status, body):
            data = (json.dumps(body) + "\n").encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def error(self, status, kind, message):
            self.answer(status, {"error": {"type": kind, "message": message}})

        def do_GET(self):
            if self.path != "/health":
                return self.error(404, "not_found", f"no route {self.path}")
            self.answer(200, {"status": "ok", "pid": os.getpid(),
                              "uptime_s": round(time.monotonic() - started, 3)})

        def read_json(self):
            length = self.headers.get("Content-Length")
            if length is None or not length.isdigit() or int(length) > MAX_BODY:
                raise ValueError(f"Content-Length: required, at most {MAX_BODY} bytes")
            raw = self.rfile.read(int(length))
            try:
                body = json.loads(raw) if raw else {}
            except ValueError as e:
                raise ValueError(f"body: not valid JSON ({e})") from e
            if not isinstance(body, dict):
                raise ValueError("body: must be a JSON object")
            return body

        def do_POST(self):
            if self.path != "/v1/completions":
                return self.error(404, "not_found", f"no route {self.path}")
            try:
                body = self.read_json()
                ms = body.get("busy_ms", default_busy_ms)
                if isinstance(ms, bool) or not isinstance(ms, (int, float)) \
                        or not 0 <= ms <= MAX_BUSY_MS:
                    raise ValueError(f"busy_ms: must be a number from 0 to {MAX_BUSY_MS}, "
                                     f"got {json.dumps(ms)}")
            except ValueError as e:
                return self.error(400, "bad_request", str(e))
            t0 = time.monotonic()
            products = engine.busy(float(ms))
            replica = {"pid": os.getpid(),
                       "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
                       "replica_id": os.environ.get("TIDE_REPLICA_ID"),
                       "busy_ms": ms, "products": products,
                       "elapsed_ms": round((time.monotonic() - t0) * 1000, 3)}
            replica.update(engine.describe())
            self.answer(200, {"object": "text_completion", "model": "gpu-replica",
                              "choices": [{"index": 0, "text": "ok", "finish_reason": "stop"}],
                              "usage": {"prompt_tokens": 1, "completion_tokens": 1,
                                        "total_tokens": 2},
                              "replica": replica})

    return Handler


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--size", type=int, default=8192, help="matrix side (default 8192)")
    p.add_argument("--busy-ms", type=float, default=200, help="GPU time per request (default 200)")
    p.add_argument("--hold-gib", type=float, default=4, help="GPU memory held (default 4 GiB)")
    p.add_argument("--stub", action="store_true", help="no GPU: waits instead of working")
    a = p.parse_args()
    if not 0 < a.port < 65536:
        p.error(f"--port: must be from 1 to 65535, got {a.port}")
    if not 16 <= a.size <= 32768:
        p.error(f"--size: must be from 16 to 32768, got {a.size}")
    if not 0 <= a.busy_ms <= MAX_BUSY_MS:
        p.error(f"--busy-ms: must be from 0 to {MAX_BUSY_MS}, got {a.busy_ms}")
    if not 0 <= a.hold_gib <= 64:
        p.error(f"--hold-gib: must be from 0 to 64, got {a.hold_gib}")
    started = time.monotonic()
    engine = Stub() if a.stub else Gpu(a.size, a.hold_gib)
    server = ThreadingHTTPServer((a.host, a.port), make_handler(engine, a.busy_ms, started))
    server.daemon_threads = True
    info = engine.describe()
    print(f"gpu-replica: pid {os.getpid()} on {a.host}:{a.port}, {info['device_name']} "
          f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')}), ready after "
          f"{time.monotonic() - started:.1f} s", file=sys.stderr, flush=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
