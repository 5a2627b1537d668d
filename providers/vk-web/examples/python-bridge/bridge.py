#!/usr/bin/env python3
"""The vk-web reference bridge: runs each pod's containers as local subprocesses.

Speaks the v1 protocol (the original web provider's routes) and v2 (PROTOCOL.md in the
crate): status push on /v2/watch (NDJSON), logs with every kubelet option and follow,
exec / attach / port-forward over WebSockets, stats, ping. Standard library only.

    python3 bridge.py --port 8000 --default-command "sleep 3600"

Each container runs `command + args` (no shell); a container without `command` runs
the command given for its image with --image IMAGE=COMMAND, else --default-command,
followed by its `args`. Processes get their own process group; deleting the pod sends
SIGTERM, then SIGKILL after the grace period. Stopping the bridge (SIGTERM, SIGINT)
kills every container.

It executes whatever is scheduled to it, as the user it runs as: run it only for nodes
whose pods you trust.
"""
import argparse
import base64
import hashlib
import json
import os
import queue
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

OPTS = None
PODS = {}  # (namespace, name) -> Pod
LOCK = threading.RLock()
WATCHERS = []  # queue.Queue per open /v2/watch
MAX_LOG_LINES = 100000
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
FEATURES = ["watch", "logs", "exec", "attach", "portforward", "stats", "ping"]


def rfc3339(t=None, nano=False):
    t = time.time() if t is None else t
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t))
    if not nano:
        return base + "Z"
    frac = ("%.9f" % (t % 1))[2:].rstrip("0")
    return base + ("." + frac if frac else "") + "Z"


def parse_rfc3339(text):
    text = text.strip().replace("Z", "+00:00")
    main, _, rest = text.partition("+")
    frac = 0.0
    if "." in main:
        main, f = main.split(".", 1)
        frac = float("0." + f)
    import calendar
    return calendar.timegm(time.strptime(main, "%Y-%m-%dT%H:%M:%S")) + frac


def publish(event):
    line = (json.dumps(event) + "\n").encode()
    with LOCK:
        for q in list(WATCHERS):
            q.put(line)


class Container:
    """One container: its process (restarted per the pod's restart policy) and logs."""

    def __init__(self, pod, spec):
        self.pod, self.spec, self.name = pod, spec, spec["name"]
        self.proc = None
        self.restarts = 0
        self.state = {"waiting": {"reason": "ContainerCreating"}}
        self.last_state = {}
        self.logs, self.previous = [], []  # [(time, stream, line bytes)]
        self.cond = threading.Condition()
        self.instance = 0

    def command(self):
        cmd, args = self.spec.get("command") or [], self.spec.get("args") or []
        if not cmd:
            image = self.spec.get("image", "")
            cmd = OPTS.images.get(image, OPTS.default_command)
        return list(cmd) + list(args)

    def env(self):
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": self.pod.dir,
               "HOSTNAME": self.pod.name}
        for e in self.spec.get("env") or []:
            env[e["name"]] = e.get("value", "")
        return env

    def start(self):
        with self.cond:
            self.instance += 1
            if self.logs:
                self.previous = self.logs
            self.logs = []
        try:
            self.proc = subprocess.Popen(
                self.command(), cwd=self.pod.dir, env=self.env(), start_new_session=True,
                stdin=subprocess.PIPE if self.spec.get("stdin") else subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        except OSError as e:
            self.proc = None
            self.state = {"terminated": {"exitCode": 128, "reason": "StartError",
                                         "message": str(e), "startedAt": rfc3339(),
                                         "finishedAt": rfc3339()}}
            self.pod.changed()
            threading.Thread(target=self.after_exit, args=(128,), daemon=True).start()
            return
        self.state = {"running": {"startedAt": rfc3339()}}
        instance = self.instance
        for stream, pipe in (("stdout", self.proc.stdout), ("stderr", self.proc.stderr)):
            threading.Thread(target=self.pump, args=(stream, pipe), daemon=True).start()
        threading.Thread(target=self.wait, args=(self.proc, instance), daemon=True).start()
        self.pod.changed()

    def pump(self, stream, pipe):
        for line in iter(pipe.readline, b""):
            with self.cond:
                self.logs.append((time.time(), stream, line))
                del self.logs[:-MAX_LOG_LINES]
                self.cond.notify_all()

    def wait(self, proc, instance):
        code = proc.wait()
        started = self.state.get("running", {}).get("startedAt", rfc3339())
        reason = "Completed" if code == 0 else "Error"
        exit_code = code if code >= 0 else 128 - code
        self.state = {"terminated": {"exitCode": exit_code, "reason": reason,
                                     "startedAt": started, "finishedAt": rfc3339(),
                                     "containerID": "process://%d" % proc.pid}}
        with self.cond:
            self.cond.notify_all()
        self.pod.changed()
        self.after_exit(exit_code)

    def after_exit(self, code):
        policy = self.pod.spec.get("restartPolicy", "Always")
        if self.pod.deleting or policy == "Never" or (policy == "OnFailure" and code == 0):
            self.pod.maybe_finished()
            return
        self.last_state = {"terminated": self.state.get("terminated", {"exitCode": code})}
        # The kubelet's crash back-off: the first restart at once, then 10 s doubling.
        delay = min(10 * 2 ** (self.restarts - 1), 300) if self.restarts else 0
        if delay:
            self.state = {"waiting": {"reason": "CrashLoopBackOff",
                                      "message": "back-off %ds restarting failed container" % delay}}
            self.pod.changed()
            deadline = time.time() + delay
            while time.time() < deadline and not self.pod.deleting:
                time.sleep(0.2)
            if self.pod.deleting:
                self.pod.maybe_finished()
                return
        self.restarts += 1
        self.start()

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        if self.running():
            try:
                os.killpg(self.proc.pid, sig)
            except OSError:
                pass

    def status(self):
        ready = "running" in self.state
        out = {"name": self.name, "image": self.spec.get("image", ""), "imageID": "",
               "ready": ready, "started": ready, "restartCount": self.restarts,
               "state": self.state}
        if self.proc is not None:
            out["containerID"] = "process://%d" % self.proc.pid
        if self.last_state:
            out["lastState"] = self.last_state
        return out


class Pod:
    def __init__(self, body):
        self.body = body
        meta = body["metadata"]
        self.namespace, self.name = meta.get("namespace", "default"), meta["name"]
        self.uid = meta.get("uid", "")
        self.spec = body.get("spec", {})
        self.dir = tempfile.mkdtemp(prefix="%s_%s_" % (self.namespace, self.name), dir=OPTS.state_dir)
        self.deleting = False
        self.start_time = rfc3339()
        self.containers = [Container(self, c) for c in self.spec.get("containers", [])]

    def by_name(self, name):
        for c in self.containers:
            if c.name == name or not name:
                return c
        return None

    def phase(self):
        states = [c.state for c in self.containers]
        policy = self.spec.get("restartPolicy", "Always")
        if all("terminated" in s for s in states) and (policy != "Always" or self.deleting):
            codes = [s["terminated"]["exitCode"] for s in states]
            if all(code == 0 for code in codes):
                return "Succeeded"
            if policy == "Never" or self.deleting:
                return "Failed"
        if any("running" in s or "terminated" in s for s in states) or any(c.restarts for c in self.containers):
            return "Running"
        return "Pending"

    def status(self):
        statuses = [c.status() for c in self.containers]
        ready = "True" if statuses and all(s["ready"] for s in statuses) else "False"
        conditions = [{"type": "PodScheduled", "status": "True"},
                      {"type": "Initialized", "status": "True"},
                      {"type": "ContainersReady", "status": ready},
                      {"type": "Ready", "status": ready}]
        return {"phase": self.phase(), "podIP": OPTS.internal_ip, "hostIP": OPTS.internal_ip,
                "startTime": self.start_time, "conditions": conditions,
                "containerStatuses": statuses}

    def to_json(self):
        body = dict(self.body)
        body["status"] = self.status()
        return body

    def changed(self):
        publish({"type": "status", "pod": {"metadata": {
            "namespace": self.namespace, "name": self.name, "uid": self.uid},
            "status": self.status()}})

    def maybe_finished(self):
        if self.deleting and not any(c.running() for c in self.containers):
            self.changed()
            with LOCK:
                if PODS.get((self.namespace, self.name)) is self:
                    del PODS[(self.namespace, self.name)]
            publish({"type": "deleted", "namespace": self.namespace, "name": self.name})
            shutil.rmtree(self.dir, ignore_errors=True)

    def start(self):
        for c in self.containers:
            c.start()

    def delete(self, grace):
        self.deleting = True
        for c in self.containers:
            c.signal(signal.SIGTERM if grace > 0 else signal.SIGKILL)

        def reaper():
            deadline = time.time() + grace
            while time.time() < deadline and any(c.running() for c in self.containers):
                time.sleep(0.1)
            for c in self.containers:
                c.signal(signal.SIGKILL)
            while any(c.running() for c in self.containers):
                time.sleep(0.05)
            for c in self.containers:
                if "terminated" not in c.state:
                    c.state = {"terminated": {"exitCode": 137, "reason": "Killed",
                                              "finishedAt": rfc3339()}}
            self.maybe_finished()
        threading.Thread(target=reaper, daemon=True).start()


def grace_of(body):
    meta, spec = body.get("metadata", {}), body.get("spec", {})
    grace = meta.get("deletionGracePeriodSeconds")
    if grace is None:
        grace = spec.get("terminationGracePeriodSeconds", 30)
    return max(0, min(int(grace), 30))


def select_logs(container, q):
    def opt(name, default=None):
        return q.get(name, [default])[0]
    lines = container.previous if opt("previous") == "true" else container.logs
    since = None
    if opt("sinceSeconds"):
        since = time.time() - int(opt("sinceSeconds"))
    elif opt("sinceTime"):
        since = parse_rfc3339(opt("sinceTime"))
    selected = [l for l in lines if since is None or l[0] >= since]
    if opt("tailLines") is not None:
        n = int(opt("tailLines"))
        selected = selected[-n:] if n > 0 else []
    return selected, len(lines)


def render(line, timestamps):
    return (rfc3339(line[0], nano=True).encode() + b" " if timestamps else b"") + line[2]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        if OPTS.verbose:
            sys.stderr.write("bridge: " + (fmt % args) + "\n")

    # ----- plumbing
    def reply(self, code, body=None, content_type="application/json"):
        if body is None:
            data = b""
        elif isinstance(body, bytes):
            data = body
        else:
            data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def error(self, code, message):
        self.reply(code, {"error": message})

    def read_json(self):
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length) or b"null")

    def start_stream(self, content_type):
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def chunk(self, data):
        if data:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()

    def end_stream(self):
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def authorized(self):
        if OPTS.token and self.headers.get("Authorization") != "Bearer " + OPTS.token:
            self.error(401, "bad or missing bearer token")
            return False
        return True

    def route(self, method):
        if not self.authorized():
            return
        url = urlparse(self.path)
        q = parse_qs(url.query)
        name = "%s %s" % (method, url.path)
        handler = ROUTES.get(name)
        if handler is None or (OPTS.v1_only and url.path.startswith("/v2/")):
            return self.error(404, "no route " + name)
        try:
            handler(self, q)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def do_GET(self):
        self.route("GET")

    def do_POST(self):
        self.route("POST")

    def do_PUT(self):
        self.route("PUT")

    def do_DELETE(self):
        self.route("DELETE")

    def pod_of(self, q, name_key="name"):
        with LOCK:
            return PODS.get((q.get("namespace", [""])[0], q.get(name_key, [""])[0]))

    # ----- v1
    def create_pod(self, q):
        body = self.read_json()
        key = (body["metadata"].get("namespace", "default"), body["metadata"]["name"])
        with LOCK:
            if key in PODS:
                return self.error(409, "pod %s/%s exists" % key)
            pod = PODS[key] = Pod(body)
        pod.start()
        self.reply(201, pod.to_json())

    def update_pod(self, q):
        body = self.read_json()
        key = (body["metadata"].get("namespace", "default"), body["metadata"]["name"])
        with LOCK:
            pod = PODS.get(key)
            if pod is None:
                return self.error(404, "pod %s/%s not found" % key)
            pod.body = body
        self.reply(200, pod.to_json())

    def delete_pod(self, q):
        body = self.read_json()
        key = (body["metadata"].get("namespace", "default"), body["metadata"]["name"])
        with LOCK:
            pod = PODS.get(key)
        if pod is None:
            return self.error(404, "pod %s/%s not found" % key)
        pod.delete(grace_of(body))
        self.reply(200)

    def get_pod(self, q):
        pod = self.pod_of(q)
        if pod is None:
            return self.error(404, "pod not found")
        self.reply(200, pod.to_json())

    def get_pod_status(self, q):
        pod = self.pod_of(q)
        if pod is None:
            return self.error(404, "pod not found")
        self.reply(200, pod.status())

    def get_pods(self, q):
        with LOCK:
            pods = list(PODS.values())
        self.reply(200, [p.to_json() for p in pods])

    def container_logs(self, q):
        pod = self.pod_of(q, "podName")
        container = pod and pod.by_name(q.get("containerName", [""])[0])
        if container is None:
            return self.error(404, "container not found")
        with container.cond:
            lines, _ = select_logs(container, {"tailLines": q["tail"]} if "tail" in q else {})
        self.reply(200, b"".join(l[2] for l in lines), "text/plain")

    def capacity(self, q):
        self.reply(200, {"cpu": str(os.cpu_count() or 1), "memory": "%dKi" % mem_total_kib(),
                         "pods": "110"})

    def node_conditions(self, q):
        now = rfc3339()
        self.reply(200, [{"type": "Ready", "status": "True", "reason": "BridgeReady",
                          "message": "the process bridge runs pods", "lastHeartbeatTime": now,
                          "lastTransitionTime": now}])

    def node_addresses(self, q):
        self.reply(200, [{"type": "InternalIP", "address": OPTS.internal_ip}])

    # ----- v2
    def capabilities(self, q):
        self.reply(200, {"version": 2, "features": FEATURES, "podIP": OPTS.internal_ip})

    def ping(self, q):
        self.reply(200, {"ok": True})

    def watch(self, q):
        events = queue.Queue()
        with LOCK:
            WATCHERS.append(events)
            pods = list(PODS.values())
        try:
            self.start_stream("application/x-ndjson")
            for pod in pods:
                self.chunk((json.dumps({"type": "status", "pod": {"metadata": {
                    "namespace": pod.namespace, "name": pod.name, "uid": pod.uid},
                    "status": pod.status()}}) + "\n").encode())
            while True:
                try:
                    line = events.get(timeout=15)
                except queue.Empty:
                    line = b'{"type":"heartbeat"}\n'
                batch = [line]
                while not events.empty() and len(batch) < 256:
                    batch.append(events.get_nowait())
                self.chunk(b"".join(batch))
        finally:
            with LOCK:
                WATCHERS.remove(events)

    def logs(self, q):
        pod = self.pod_of(q, "pod")
        container = pod and pod.by_name(q.get("container", [""])[0])
        if container is None:
            return self.error(404, "container not found")
        follow = q.get("follow", ["false"])[0] == "true"
        timestamps = q.get("timestamps", ["false"])[0] == "true"
        limit = int(q["limitBytes"][0]) if "limitBytes" in q else None
        sent = 0
        with container.cond:
            lines, position = select_logs(container, q)
            instance = container.instance
        self.start_stream("text/plain")

        def send(line):
            nonlocal sent
            data = render(line, timestamps)
            if limit is not None:
                data = data[:max(limit - sent, 0)]
            sent += len(data)
            self.chunk(data)
            return limit is None or sent < limit

        for line in lines:
            if not send(line):
                return self.end_stream()
        while follow and q.get("previous", ["false"])[0] != "true":
            with container.cond:
                if container.instance != instance:
                    break
                fresh = container.logs[position:]
                position = len(container.logs)
                alive = container.running()
                if not fresh and alive:
                    container.cond.wait(timeout=1.0)
                    continue
            for line in fresh:
                if not send(line):
                    return self.end_stream()
            if not fresh and not alive:
                break
        self.end_stream()

    def stats_summary(self, q):
        page = os.sysconf("SC_PAGE_SIZE")
        tick = os.sysconf("SC_CLK_TCK")
        now = rfc3339()
        pods = []
        with LOCK:
            snapshot = list(PODS.values())
        for pod in snapshot:
            containers = []
            for c in pod.containers:
                cpu_ns, rss = proc_usage(c.proc.pid, tick, page) if c.running() else (0, 0)
                containers.append({"name": c.name, "startTime": pod.start_time,
                                   "cpu": {"time": now, "usageCoreNanoSeconds": cpu_ns},
                                   "memory": {"time": now, "workingSetBytes": rss, "rssBytes": rss}})
            pods.append({"podRef": {"name": pod.name, "namespace": pod.namespace, "uid": pod.uid},
                         "startTime": pod.start_time, "containers": containers,
                         "cpu": {"time": now, "usageCoreNanoSeconds": sum(c["cpu"]["usageCoreNanoSeconds"] for c in containers)},
                         "memory": {"time": now, "workingSetBytes": sum(c["memory"]["workingSetBytes"] for c in containers)}})
        self.reply(200, {"node": {"nodeName": ""}, "pods": pods})

    # ----- WebSockets
    def upgrade(self):
        key = self.headers.get("Sec-WebSocket-Key")
        if not key or self.headers.get("Upgrade", "").lower() != "websocket":
            self.error(400, "expected a WebSocket upgrade")
            return None
        accept = base64.b64encode(hashlib.sha1(key.encode() + WS_GUID).digest()).decode()
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True
        return WebSocket(self.connection, self.rfile)

    def exec(self, q):
        pod = self.pod_of(q, "pod")
        container = pod and pod.by_name(q.get("container", [""])[0])
        if container is None:
            return self.error(404, "container not found")
        command = q.get("command", [])
        if not command:
            return self.error(400, "no command")
        ws = self.upgrade()
        if ws is not None:
            run_exec(ws, pod, container, command, q)

    def attach(self, q):
        pod = self.pod_of(q, "pod")
        container = pod and pod.by_name(q.get("container", [""])[0])
        if container is None or not container.running():
            return self.error(404, "no running container to attach to")
        ws = self.upgrade()
        if ws is not None:
            run_attach(ws, container)

    def port_forward(self, q):
        pod = self.pod_of(q, "pod")
        if pod is None:
            return self.error(404, "pod not found")
        port = int(q.get("port", ["0"])[0])
        try:
            target = socket.create_connection(("127.0.0.1", port), timeout=5)
        except OSError as e:
            return self.error(502, "connecting to port %d: %s" % (port, e))
        target.settimeout(None)
        ws = self.upgrade()
        if ws is not None:
            run_port_forward(ws, target)


class WebSocket:
    """The server side of RFC 6455, enough for vk-web: unfragmented messages out,
    fragmented ones in, ping answered, close echoed."""

    def __init__(self, sock, rfile):
        self.sock, self.rfile = sock, rfile
        self.lock = threading.Lock()
        self.closed = False

    def send(self, data, opcode=2):
        header = bytearray([0x80 | opcode])
        n = len(data)
        if n < 126:
            header.append(n)
        elif n < 65536:
            header.append(126)
            header += struct.pack("!H", n)
        else:
            header.append(127)
            header += struct.pack("!Q", n)
        with self.lock:
            if self.closed and opcode != 8:
                return False
            try:
                self.sock.sendall(bytes(header) + data)
            except OSError:
                self.closed = True
                return False
        return True

    def close(self):
        if not self.closed:
            self.send(struct.pack("!H", 1000), opcode=8)
            self.closed = True

    def read_exact(self, n):
        data = self.rfile.read(n)
        if len(data) < n:
            raise EOFError
        return data

    def recv(self):
        """The next binary/text message's bytes; None once closed."""
        message = b""
        while True:
            try:
                b1, b2 = self.read_exact(2)
                n = b2 & 0x7F
                if n == 126:
                    n = struct.unpack("!H", self.read_exact(2))[0]
                elif n == 127:
                    n = struct.unpack("!Q", self.read_exact(8))[0]
                mask = self.read_exact(4) if b2 & 0x80 else b"\0\0\0\0"
                payload = bytearray(self.read_exact(n))
            except (EOFError, OSError, ValueError):
                self.closed = True
                return None
            for i in range(len(payload)):
                payload[i] ^= mask[i % 4]
            opcode = b1 & 0x0F
            if opcode == 8:
                self.close()
                return None
            if opcode == 9:
                self.send(bytes(payload), opcode=10)
                continue
            if opcode == 10:
                continue
            message += bytes(payload)
            if b1 & 0x80:
                return message


def run_exec(ws, pod, container, command, q):
    tty = q.get("tty", ["false"])[0] == "true"
    want_stdin = q.get("stdin", ["false"])[0] == "true"
    env = container.env()
    master = None
    try:
        if tty:
            import pty
            master, slave = pty.openpty()
            proc = subprocess.Popen(command, cwd=pod.dir, env=env, start_new_session=True,
                                    stdin=slave, stdout=slave, stderr=slave)
            os.close(slave)
        else:
            proc = subprocess.Popen(command, cwd=pod.dir, env=env, start_new_session=True,
                                    stdin=subprocess.PIPE if want_stdin else subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except OSError as e:
        ws.send(b"\x03" + json.dumps({"error": "starting %s: %s" % (command[0], e)}).encode())
        ws.close()
        return

    def out(fd_or_pipe, channel):
        while True:
            try:
                data = os.read(fd_or_pipe, 32768)
            except OSError:
                data = b""
            if not data:
                return
            ws.send(bytes([channel]) + data)

    readers = []
    if tty:
        readers.append(threading.Thread(target=out, args=(master, 1), daemon=True))
    else:
        readers.append(threading.Thread(target=out, args=(proc.stdout.fileno(), 1), daemon=True))
        readers.append(threading.Thread(target=out, args=(proc.stderr.fileno(), 2), daemon=True))
    for r in readers:
        r.start()

    def inbound():
        while True:
            message = ws.recv()
            if message is None:
                if proc.poll() is None:  # the client left: stop the command
                    try:
                        os.killpg(proc.pid, signal.SIGKILL)
                    except OSError:
                        pass
                return
            if not message:
                continue
            channel, data = message[0], message[1:]
            try:
                if channel == 0:
                    if tty:
                        os.write(master, data)
                    elif proc.stdin:
                        proc.stdin.write(data)
                        proc.stdin.flush()
                elif channel == 255 and data[:1] == b"\x00":
                    if proc.stdin:
                        proc.stdin.close()
                    elif tty:
                        os.write(master, b"\x04")
                elif channel == 4 and tty:
                    size = json.loads(data)
                    import fcntl, termios
                    fcntl.ioctl(master, termios.TIOCSWINSZ,
                                struct.pack("HHHH", size["Height"], size["Width"], 0, 0))
            except (OSError, ValueError):
                pass

    threading.Thread(target=inbound, daemon=True).start()
    code = proc.wait()
    for r in readers:
        r.join(timeout=5)
    if master is not None:
        os.close(master)
    code = code if code >= 0 else 128 - code
    ws.send(b"\x03" + json.dumps({"exitCode": code}).encode())
    ws.close()


def run_attach(ws, container):
    with container.cond:
        position = len(container.logs)
        instance = container.instance

    def inbound():
        while True:
            message = ws.recv()
            if message is None:
                return
            proc = container.proc
            if message[:1] == b"\x00" and proc is not None and proc.stdin:
                try:
                    proc.stdin.write(message[1:])
                    proc.stdin.flush()
                except OSError:
                    pass

    threading.Thread(target=inbound, daemon=True).start()
    while not ws.closed:
        with container.cond:
            fresh = container.logs[position:]
            position = len(container.logs)
            alive = container.running() and container.instance == instance
            if not fresh and alive:
                container.cond.wait(timeout=1.0)
                continue
        for _, stream, line in fresh:
            ws.send((b"\x01" if stream == "stdout" else b"\x02") + line)
        if not alive and not fresh:
            code = container.state.get("terminated", {}).get("exitCode", 0)
            ws.send(b"\x03" + json.dumps({"exitCode": code}).encode())
            break
    ws.close()


def run_port_forward(ws, target):
    done = threading.Event()

    def outbound():
        while True:
            try:
                data = target.recv(32768)
            except OSError:
                data = b""
            if not ws.send(data):
                break
            if not data:
                break
        done.set()

    threading.Thread(target=outbound, daemon=True).start()
    while True:
        message = ws.recv()
        if message is None:
            break
        if message == b"":
            try:
                target.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            continue
        try:
            target.sendall(message)
        except OSError:
            break
    done.wait(timeout=5)
    target.close()
    ws.close()


def proc_usage(pid, tick, page):
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        with open("/proc/%d/statm" % pid) as f:
            rss_pages = int(f.read().split()[1])
        cpu_ns = (int(fields[11]) + int(fields[12])) * (1_000_000_000 // tick)
        return cpu_ns, rss_pages * page
    except (OSError, IndexError, ValueError):
        return 0, 0


def mem_total_kib():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 1024 * 1024


ROUTES = {
    "POST /createPod": Handler.create_pod,
    "PUT /updatePod": Handler.update_pod,
    "DELETE /deletePod": Handler.delete_pod,
    "GET /getPod": Handler.get_pod,
    "GET /getPodStatus": Handler.get_pod_status,
    "GET /getPods": Handler.get_pods,
    "GET /getContainerLogs": Handler.container_logs,
    "GET /capacity": Handler.capacity,
    "GET /nodeConditions": Handler.node_conditions,
    "GET /nodeAddresses": Handler.node_addresses,
    "GET /v2/capabilities": Handler.capabilities,
    "GET /v2/ping": Handler.ping,
    "GET /v2/watch": Handler.watch,
    "GET /v2/logs": Handler.logs,
    "GET /v2/exec": Handler.exec,
    "GET /v2/attach": Handler.attach,
    "GET /v2/portforward": Handler.port_forward,
    "GET /v2/stats/summary": Handler.stats_summary,
}


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # A node that went away mid-request (connection reset, broken pipe) is no error.
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


def stop_everything(*_):
    with LOCK:
        pods = list(PODS.values())
    for pod in pods:
        pod.deleting = True
        for c in pod.containers:
            c.signal(signal.SIGKILL)
        shutil.rmtree(pod.dir, ignore_errors=True)
    os._exit(0)


def main():
    global OPTS
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="0: any free port")
    parser.add_argument("--internal-ip", default="127.0.0.1", help="reported by /nodeAddresses")
    parser.add_argument("--state-dir", default=None, help="where pods' working directories go")
    parser.add_argument("--default-command", default="sleep infinity",
                        help="for containers without command or --image entry")
    parser.add_argument("--image", action="append", default=[], metavar="IMAGE=COMMAND",
                        help="the command of an image (repeatable)")
    parser.add_argument("--token", default=os.environ.get("BRIDGE_TOKEN"),
                        help="require this bearer token (or BRIDGE_TOKEN)")
    parser.add_argument("--v1-only", action="store_true", help="serve the v1 routes only")
    parser.add_argument("--verbose", action="store_true")
    OPTS = parser.parse_args()
    OPTS.default_command = shlex.split(OPTS.default_command)
    OPTS.images = {}
    for entry in OPTS.image:
        image, _, command = entry.partition("=")
        OPTS.images[image] = shlex.split(command)
    OPTS.state_dir = OPTS.state_dir or tempfile.mkdtemp(prefix="vk-web-bridge-")
    os.makedirs(OPTS.state_dir, exist_ok=True)
    signal.signal(signal.SIGTERM, stop_everything)
    signal.signal(signal.SIGINT, stop_everything)
    server = Server((OPTS.host, OPTS.port), Handler)
    print("listening on http://%s:%d" % server.server_address[:2], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
