#!/usr/bin/env python3
"""The smallest vk-web bridge: the v1 protocol, pods kept in memory, "running" at once.

    python3 bridge.py --port 8000      # then: vk-web with endpoint = "http://127.0.0.1:8000"

Standard library only. Prints "listening on http://HOST:PORT" once it accepts requests.
"""
import argparse, json, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

PODS, LOCK = {}, threading.Lock()


def now():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def running(pod):
    t = now()
    ready = [{"type": c, "status": "True", "lastTransitionTime": t}
             for c in ("PodScheduled", "Initialized", "ContainersReady", "Ready")]
    pod["status"] = {
        "phase": "Running", "podIP": "127.0.0.1", "hostIP": "127.0.0.1", "startTime": t,
        "conditions": ready,
        "containerStatuses": [{
            "name": c["name"], "image": c.get("image", ""), "imageID": "", "ready": True,
            "restartCount": 0, "started": True, "containerID": "memory://" + c["name"],
            "state": {"running": {"startedAt": t}}} for c in pod["spec"]["containers"]],
    }
    return pod


class Bridge(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, code, body=None):
        data = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        self.send_response(code)
        self.send_header("Content-Type", "text/plain" if isinstance(body, bytes) else "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        return json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"null")

    def key(self, q=None):
        if q is not None:
            return q.get("namespace", [""])[0], q.get("name", [""])[0]
        pod = self.body()
        return pod["metadata"].get("namespace", ""), pod["metadata"]["name"], pod

    def do_GET(self):
        url = urlparse(self.path)
        q = parse_qs(url.query)
        with LOCK:
            if url.path == "/getPods":
                return self.reply(200, list(PODS.values()))
            if url.path in ("/getPod", "/getPodStatus"):
                pod = PODS.get(self.key(q))
                if pod is None:
                    return self.reply(404, {"error": "pod not found"})
                return self.reply(200, pod if url.path == "/getPod" else pod["status"])
        if url.path == "/getContainerLogs":
            return self.reply(200, b"")  # nothing runs, nothing logs
        if url.path == "/capacity":
            return self.reply(200, {"cpu": "20", "memory": "100Gi", "pods": "1000"})
        if url.path == "/nodeConditions":
            return self.reply(200, [{"type": "Ready", "status": "True", "reason": "BridgeReady",
                                     "message": "the in-memory bridge is ready",
                                     "lastHeartbeatTime": now(), "lastTransitionTime": now()}])
        if url.path == "/nodeAddresses":
            return self.reply(200, [{"type": "InternalIP", "address": "127.0.0.1"}])
        self.reply(404, {"error": "no route " + url.path})

    def do_POST(self):
        if urlparse(self.path).path != "/createPod":
            return self.reply(404, {"error": "no route"})
        ns, name, pod = self.key()
        with LOCK:
            if (ns, name) in PODS:
                return self.reply(409, {"error": "pod exists"})
            PODS[(ns, name)] = running(pod)
        self.reply(200)

    def do_PUT(self):
        if urlparse(self.path).path != "/updatePod":
            return self.reply(404, {"error": "no route"})
        ns, name, pod = self.key()
        with LOCK:
            if (ns, name) not in PODS:
                return self.reply(404, {"error": "pod not found"})
            pod["status"] = PODS[(ns, name)]["status"]
            PODS[(ns, name)] = pod
        self.reply(200)

    def do_DELETE(self):
        if urlparse(self.path).path != "/deletePod":
            return self.reply(404, {"error": "no route"})
        ns, name, _ = self.key()
        with LOCK:
            gone = PODS.pop((ns, name), None)
        self.reply(200 if gone else 404)


if __name__ == "__main__":
    args = argparse.ArgumentParser(description=__doc__)
    args.add_argument("--host", default="127.0.0.1")
    args.add_argument("--port", type=int, default=8000)
    opts = args.parse_args()
    server = ThreadingHTTPServer((opts.host, opts.port), Bridge)
    print("listening on http://%s:%d" % server.server_address[:2], flush=True)
    server.serve_forever()
