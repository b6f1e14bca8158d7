#!/usr/bin/env python3
"""End-to-end test of face-server through the official Python client.

Starts `face-server` on a free loopback port with a fresh SQLite data directory, then drives all
69 operations of the Face API v1.0 through `azure.cognitiveservices.vision.face.FaceClient`
(azure-cognitiveservices-vision-face 0.6.1, pinned in requirements.txt beside this file) and
checks what they answer: detection, verification, identification, find-similar and grouping on
the face_recognition test photos, the CRUD of every group and list kind, training, snapshots,
Azure error codes, and that everything survives a restart. With --data it also measures
identification and verification accuracy on the shared labelled data.

Prints `ok   NAME` or `FAIL NAME: REASON` per check, then `N passed, M failed` on the last line;
exits 1 if anything failed. Standard library plus the client only; stops itself within 10 minutes.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import csv
import functools
import http.client
import http.server
import io
import logging
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.request
import uuid
import zlib
from pathlib import Path

from azure.cognitiveservices.vision.face import FaceClient
from azure.cognitiveservices.vision.face.models import APIErrorException
from msrest.authentication import CognitiveServicesCredentials

API_KEY = "e2e-key"
TOTAL_TIMEOUT_S = 570  # SIGALRM; leaves time to stop the server and print the summary
READY_TIMEOUT_S = 180
HTTP_TIMEOUT_S = 60  # per request, through the client
TRAIN_TIMEOUT_S = 120
OPERATION_TIMEOUT_S = 120
STOP_GRACE_S = 15
RECOGNITION_MODEL = "recognition_01"
SNAPSHOT_SCOPE = "3c9a6c0e-4f1e-4b6a-9a51-0f7d2b8e5a11"  # any subscription id: the server has one tenant

PHOTOS = (
    "obama.jpg",
    "obama2.jpg",
    "obama3.jpg",
    "biden.jpg",
    "obama_partial_face.jpg",
    "obama_partial_face2.jpg",
    "32bit.png",
)
TWO_FACES = "two-faces.png"  # made here: 32bit.png (Obama) twice, side by side
NO_FACE = "no-face.png"  # made here: a grey gradient
CORRUPT = "corrupt.bin"  # made here: random bytes

# The spec's 69 operationIds (Face.json, stable/v1.0).
ALL_OPERATIONS = frozenset(
    """
    Face_DetectWithStream Face_DetectWithUrl Face_FindSimilar Face_Group Face_Identify
    Face_VerifyFaceToFace Face_VerifyFaceToPerson
    FaceList_AddFaceFromStream FaceList_AddFaceFromUrl FaceList_Create FaceList_Delete
    FaceList_DeleteFace FaceList_Get FaceList_List FaceList_Update
    LargeFaceList_AddFaceFromStream LargeFaceList_AddFaceFromUrl LargeFaceList_Create
    LargeFaceList_Delete LargeFaceList_DeleteFace LargeFaceList_Get LargeFaceList_GetFace
    LargeFaceList_GetTrainingStatus LargeFaceList_List LargeFaceList_ListFaces LargeFaceList_Train
    LargeFaceList_Update LargeFaceList_UpdateFace
    LargePersonGroup_Create LargePersonGroup_Delete LargePersonGroup_Get
    LargePersonGroup_GetTrainingStatus LargePersonGroup_List LargePersonGroup_Train
    LargePersonGroup_Update
    LargePersonGroupPerson_AddFaceFromStream LargePersonGroupPerson_AddFaceFromUrl
    LargePersonGroupPerson_Create LargePersonGroupPerson_Delete LargePersonGroupPerson_DeleteFace
    LargePersonGroupPerson_Get LargePersonGroupPerson_GetFace LargePersonGroupPerson_List
    LargePersonGroupPerson_Update LargePersonGroupPerson_UpdateFace
    PersonGroup_Create PersonGroup_Delete PersonGroup_Get PersonGroup_GetTrainingStatus
    PersonGroup_List PersonGroup_Train PersonGroup_Update
    PersonGroupPerson_AddFaceFromStream PersonGroupPerson_AddFaceFromUrl PersonGroupPerson_Create
    PersonGroupPerson_Delete PersonGroupPerson_DeleteFace PersonGroupPerson_Get
    PersonGroupPerson_GetFace PersonGroupPerson_List PersonGroupPerson_Update
    PersonGroupPerson_UpdateFace
    Snapshot_Apply Snapshot_Delete Snapshot_Get Snapshot_GetOperationStatus Snapshot_List
    Snapshot_Take Snapshot_Update
    """.split()
)

# The 27 Face API landmarks, as the client names them.
LANDMARKS = (
    "pupil_left", "pupil_right", "nose_tip", "mouth_left", "mouth_right",
    "eyebrow_left_outer", "eyebrow_left_inner", "eye_left_outer", "eye_left_top",
    "eye_left_bottom", "eye_left_inner", "eyebrow_right_inner", "eyebrow_right_outer",
    "eye_right_inner", "eye_right_top", "eye_right_bottom", "eye_right_outer",
    "nose_root_left", "nose_root_right", "nose_left_alar_top", "nose_right_alar_top",
    "nose_left_alar_out_tip", "nose_right_alar_out_tip", "upper_lip_top", "upper_lip_bottom",
    "under_lip_top", "under_lip_bottom",
)  # fmt: skip


class ScriptTimeout(BaseException):
    """Raised by SIGALRM; a BaseException so that no area's `except Exception` swallows it."""


class Skip(Exception):
    """Ends an area early after a failed precondition (already reported)."""


# ---------------------------------------------------------------------------------------------
# Results


class Results:
    """Counts checks, prints one line per check, and remembers the operations that succeeded."""

    def __init__(self) -> None:
        self.passed = 0
        self.failed = 0
        self.operations: set[str] = set()

    def check(self, name: str, condition: bool, reason: str = "") -> bool:
        if condition:
            self.passed += 1
            print(f"ok   {name}", flush=True)
        else:
            self.failed += 1
            reason = " ".join(str(reason).split()) or "check failed"  # one line per check
            print(f"FAIL {name}: {reason}", flush=True)
        return bool(condition)

    def fail(self, name: str, reason: str) -> None:
        self.check(name, False, reason)

    def summary(self) -> str:
        return f"{self.passed} passed, {self.failed} failed"


def api_error(exc: APIErrorException) -> tuple[int | None, str | None]:
    """(HTTP status, Azure error code) of a client exception.

    The client raises APIErrorException(HttpOperationError): `.response` is the requests.Response
    and `.error` the deserialized APIError body, so the code is `.error.error.code`.
    """
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    body = getattr(exc, "error", None)
    inner = getattr(body, "error", None)
    return status, getattr(inner, "code", None)


def describe(exc: BaseException) -> str:
    if isinstance(exc, APIErrorException):
        status, code = api_error(exc)
        return f"HTTP {status} {code}: {exc}"
    where = ""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == __file__]
    if frames:
        where = f" (line {frames[-1].lineno})"
    return f"{type(exc).__name__}: {exc}{where}"


def is_uuid(value: object) -> bool:
    try:
        uuid.UUID(str(value))
        return True
    except ValueError:
        return False


# ---------------------------------------------------------------------------------------------
# Images: sizes, and the generated test images (stdlib only)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def image_size(data: bytes) -> tuple[int, int]:
    """(width, height) of a PNG or JPEG."""
    if data.startswith(PNG_SIGNATURE):
        return struct.unpack(">II", data[16:24])
    if data.startswith(b"\xff\xd8"):
        i = 2
        while i + 9 < len(data):
            if data[i] != 0xFF:
                i += 1
                continue
            marker = data[i + 1]
            if marker == 0xFF:
                i += 1
            elif marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:
                i += 2
            elif 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                height, width = struct.unpack(">HH", data[i + 5 : i + 9])
                return width, height
            else:
                i += 2 + struct.unpack(">H", data[i + 2 : i + 4])[0]
    raise ValueError("not a PNG or JPEG")


def png_encode(width: int, height: int, rgb: bytes, level: int = 6) -> bytes:
    """An 8-bit RGB PNG, filter 0 on every row."""
    stride = width * 3
    raw = b"".join(b"\x00" + rgb[y * stride : (y + 1) * stride] for y in range(height))

    def chunk(kind: bytes, payload: bytes) -> bytes:
        body = kind + payload
        return struct.pack(">I", len(payload)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        PNG_SIGNATURE
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, level))
        + chunk(b"IEND", b"")
    )


def png_decode_rgb(data: bytes) -> tuple[int, int, bytearray]:
    """Decodes an 8-bit, non-interlaced RGB or RGBA PNG to (width, height, RGB bytes)."""
    if not data.startswith(PNG_SIGNATURE):
        raise ValueError("not a PNG")
    pos, idat, header = 8, [], None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, payload = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", payload)
        elif kind == b"IDAT":
            idat.append(payload)
        elif kind == b"IEND":
            break
    width, height, depth, color, _, _, interlace = header
    if depth != 8 or color not in (2, 6) or interlace:
        raise ValueError(f"unsupported PNG (depth {depth}, colour type {color}, interlace {interlace})")
    bpp = 3 if color == 2 else 4
    stride = width * bpp
    raw = zlib.decompress(b"".join(idat))
    prev = bytearray(stride)
    rgb = bytearray()
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        if kind == 1:  # Sub
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 0xFF
        elif kind == 2:  # Up
            line = bytearray((a + b) & 0xFF for a, b in zip(line, prev))
        elif kind == 3:  # Average
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 0xFF
        elif kind == 4:  # Paeth
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b = prev[i]
                c = prev[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        prev = line
        if bpp == 4:
            out = bytearray(width * 3)
            out[0::3], out[1::3], out[2::3] = line[0::4], line[1::4], line[2::4]
            rgb += out
        else:
            rgb += line
    return width, height, rgb


def make_two_faces(one_face_png: bytes, gap: int = 48) -> bytes:
    """The same one-face photo twice, side by side on white: an image with two faces."""
    width, height, rgb = png_decode_rgb(one_face_png)
    stride = width * 3
    white = b"\xff" * (gap * 3)
    rows = []
    for y in range(height):
        row = bytes(rgb[y * stride : (y + 1) * stride])
        rows.append(row + white + row)
    return png_encode(2 * width + gap, height, b"".join(rows))


def make_no_face(size: int = 128) -> bytes:
    """A grey gradient, stored uncompressed (about 49 KB: above the 1 KB minimum)."""
    rgb = bytearray()
    for y in range(size):
        for x in range(size):
            v = 96 + (x + y) * 64 // (2 * size)
            rgb += bytes((v, v, v))
    return png_encode(size, size, bytes(rgb), level=0)


def make_corrupt(size: int = 4096) -> bytes:
    return random.Random(20240601).randbytes(size)


# ---------------------------------------------------------------------------------------------
# Processes and helpers: the server under test, and a photo server for the URL overloads


# Everything here talks to 127.0.0.1: never through a proxy from the environment.
NO_PROXY_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def loopback_env() -> dict[str, str]:
    env = dict(os.environ)
    for key in ("NO_PROXY", "no_proxy"):
        env[key] = ",".join(filter(None, [env.get(key), "127.0.0.1", "localhost"]))
    return env


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def poll_ready(endpoint: str, exited) -> tuple[bool, str]:
    """Polls `endpoint`/ready until it answers 200, for READY_TIMEOUT_S at most; `exited()` gives
    a reason to stop early (the server is gone) or None."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    last = "no answer"
    while time.monotonic() < deadline:
        reason = exited()
        if reason is not None:
            return False, reason
        try:
            request = urllib.request.Request(f"{endpoint}/ready", headers={"Ocp-Apim-Subscription-Key": API_KEY})
            with NO_PROXY_OPENER.open(request, timeout=2) as response:
                if response.status == 200:
                    return True, ""
                last = f"HTTP {response.status}"
        except urllib.error.HTTPError as e:
            last = f"HTTP {e.code}"
        except (OSError, ValueError) as e:
            last = str(e)
        time.sleep(0.5)
    return False, f"/ready not 200 after {READY_TIMEOUT_S} s ({last})"


class Server:
    """face-server as a subprocess on a loopback port, output appended to a log file."""

    def __init__(self, args: argparse.Namespace, data_dir: Path, log_path: Path) -> None:
        self.binary = args.server
        self.args = args
        self.data_dir = data_dir
        self.log_path = log_path
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        a = self.args
        return [
            str(self.binary),
            "Eula=accept",
            "Billing=http://127.0.0.1:9/",
            f"ApiKey={API_KEY}",
            f"Server:Address=127.0.0.1:{self.port}",
            *(
                ["Storage:Scenario=Postgres", f"Storage:ConnectionString={a.postgres}"]
                + ([f"Storage:EventsConnectionString={a.events_postgres}"] if a.events_postgres else [])
                if a.postgres
                else ["Storage:Scenario=Sqlite"]
            ),
            f"Storage:DataDirectory={self.data_dir}",
            f"Engine:Guest={a.guest}",
            f"Engine:Models={a.models}",
            f"Engine:Cache={a.cache}",
            "Engine:PoolSize=2",
            "Security:AllowPrivateUrls=true",
        ]

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            log.write(f"\n=== start: {' '.join(self.command())}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                self.command(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=loopback_env(),
            )

    def wait_ready(self) -> tuple[bool, str]:
        def exited() -> str | None:
            code = self.proc.poll()
            return None if code is None else f"exited with {code} before it was ready"

        return poll_ready(self.endpoint, exited)

    def new_ports(self) -> None:
        self.port = free_port()

    def stop(self) -> tuple[bool, int | None]:
        """SIGTERM, then SIGKILL after a grace period. Returns (stopped gracefully, exit code)."""
        if self.proc is None or self.proc.poll() is not None:
            return True, None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return True, self.proc.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return False, self.proc.wait(timeout=10)


# The container engine for --container and --stack-host (cargo xtask image-test sets it).
CONTAINER_ENGINE = os.environ.get("FACE_CONTAINER_ENGINE", "podman")


def container_engine(*argv: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([CONTAINER_ENGINE, *argv], capture_output=True, text=True, timeout=timeout)


def stop_container(name: str, log_path: Path) -> tuple[bool, int | None]:
    """`stop` (SIGTERM, the image's STOPSIGNAL; SIGKILL after the grace period), its log appended
    to `log_path`. Returns (stopped gracefully, exit code)."""
    stop = container_engine("stop", "-t", str(STOP_GRACE_S), name, timeout=STOP_GRACE_S + 60)
    state = container_engine("inspect", "--format", "{{.State.ExitCode}}", name)
    logs = container_engine("logs", name)
    with open(log_path, "a") as log:
        log.write(f"\n=== {name}\n{logs.stdout}{logs.stderr}")
    code = int(state.stdout.strip() or -1)
    # 137 is SIGKILL: the grace period ran out.
    return stop.returncode == 0 and code != 137, code


class Container:
    """face-server as the image runs it, with podman (or docker): `run -p PORT:5000 --memory 6g
    --cpus 2` on a named volume for /data, with only the image's arguments (Eula, Billing, ApiKey)
    and settings.
    A restart is `stop`, `rm` and a new `run` on the same volume."""

    def __init__(self, args: argparse.Namespace, log_path: Path) -> None:
        self.args = args
        self.log_path = log_path
        self.name = f"face-e2e-{os.getpid()}"
        self.volume = f"{self.name}-data"
        self.port = free_port()
        self.running = False

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        a = self.args
        run = container_engine(
            "run", "-d", "--name", self.name, "-p", f"127.0.0.1:{self.port}:5000",
            "--memory", "6g", "--cpus", "2", "-v", f"{self.volume}:/data",
            *(["--add-host", "host.containers.internal:host-gateway"] if CONTAINER_ENGINE == "docker" else []),
            *(arg for env in a.container_env for arg in ("-e", env)),
            a.container,
            "Eula=accept", f"Billing={a.billing}", f"ApiKey={API_KEY}",
            "Engine:PoolSize=2", "Security:AllowPrivateUrls=true",
        )  # fmt: skip
        with open(self.log_path, "a") as log:
            log.write(f"\n=== {CONTAINER_ENGINE} run {self.name}: {run.returncode} {run.stdout}{run.stderr}\n")
        self.running = run.returncode == 0

    def exited(self) -> int | None:
        state = container_engine("inspect", "--format", "{{.State.Running}} {{.State.ExitCode}}", self.name)
        running, _, code = state.stdout.strip().partition(" ")
        return None if state.returncode == 0 and running == "true" else int(code or -1)

    def wait_ready(self) -> tuple[bool, str]:
        if not self.running:
            return False, f"{CONTAINER_ENGINE} run failed (see {self.log_path.name})"

        def exited() -> str | None:
            code = self.exited()
            return None if code is None else f"the container exited with {code} before it was ready"

        return poll_ready(self.endpoint, exited)

    def new_ports(self) -> None:
        self.port = free_port()

    def stop(self) -> tuple[bool, int | None]:
        """`stop_container`, then `rm`; the volume stays."""
        if not self.running:
            return True, None
        stopped = stop_container(self.name, self.log_path)
        container_engine("rm", "-f", self.name)
        self.running = False
        return stopped

    def close(self) -> None:
        container_engine("volume", "rm", "-f", self.volume)


class StackHost:
    """A face-server container another tool started (a compose stack), published on `port`;
    restarted with the engine's `stop` and `start`, its volume kept."""

    def __init__(self, container: str, port: int, log_path: Path) -> None:
        self.container = container
        self.port = port
        self.log_path = log_path

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        container_engine("start", self.container)

    def wait_ready(self) -> tuple[bool, str]:
        ready, reason = poll_ready(self.endpoint, lambda: None)
        return ready, reason and f"{self.container}: {reason}"

    def new_ports(self) -> None:
        pass

    def stop(self) -> tuple[bool, int | None]:
        return stop_container(self.container, self.log_path)


HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}


class Hosts:
    """Several face-servers on one PostgreSQL database behind a loopback proxy that sends each
    request to the next host in turn, so every step of the flow crosses hosts: a faceId detected
    on one is identified on the other, a group trained on one is used by the other."""

    def __init__(self, servers: list) -> None:
        self.servers = servers
        count = len(servers)
        self.lock = threading.Lock()
        self.next = 0
        self.answered = [0] * count
        hosts = self

        class Forward(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format, *args):  # noqa: A002 - the base class's name
                pass

            def body(self) -> bytes | None:
                if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                    # The client streams uploads (a photo from a file object) in chunks.
                    data = bytearray()
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return bytes(data)
                        data += self.rfile.read(size)
                        self.rfile.readline()
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else None

            def forward(self) -> None:
                body = self.body()
                with hosts.lock:
                    i = hosts.next % len(hosts.servers)
                    hosts.next += 1
                upstream = http.client.HTTPConnection("127.0.0.1", hosts.servers[i].port, timeout=300)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                    upstream.request(self.command, self.path, body=body, headers=headers)
                    response = upstream.getresponse()
                    data = response.read()
                    with hosts.lock:
                        hosts.answered[i] += 1
                    self.send_response_only(response.status, response.reason)
                    for k, v in response.getheaders():
                        if k.lower() not in HOP_BY_HOP and k.lower() != "content-length":
                            self.send_header(k, v)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError as e:
                    message = f"host {i + 1} did not answer: {e}".encode()
                    self.send_response_only(502, "Bad Gateway")
                    self.send_header("Content-Length", str(len(message)))
                    self.end_headers()
                    self.wfile.write(message)
                finally:
                    upstream.close()

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = forward

        self.proxy = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Forward)
        self.proxy.daemon_threads = True
        threading.Thread(target=self.proxy.serve_forever, name="hosts-proxy", daemon=True).start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.proxy.server_address[1]}"

    def start(self) -> None:
        for server in self.servers:
            server.start()

    def wait_ready(self) -> tuple[bool, str]:
        for i, server in enumerate(self.servers):
            ready, reason = server.wait_ready()
            if not ready:
                return False, f"host {i + 1}: {reason}"
        return True, ""

    def new_ports(self) -> None:
        for server in self.servers:
            server.new_ports()

    def stop(self) -> tuple[bool, int | None]:
        results = [server.stop() for server in self.servers]
        graceful = all(g for g, _ in results)
        codes = [c for _, c in results if c not in (None, 0)]
        return graceful, codes[0] if codes else 0

    def close(self) -> None:
        self.proxy.shutdown()
        self.proxy.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass


@contextlib.contextmanager
def photo_server(directory: Path, host: str | None = None):
    """Serves `directory` from a background thread; yields the base URL. On 127.0.0.1, or, where
    the server runs in a container, on every address with `host` (the name by which the container
    reaches this machine) in the URL."""
    handler = functools.partial(QuietHandler, directory=str(directory))
    httpd = http.server.ThreadingHTTPServer(("0.0.0.0" if host else "127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, name="photo-server", daemon=True)
    thread.start()
    try:
        yield f"http://{host or '127.0.0.1'}:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def make_client(endpoint: str, key: str, validate: bool = True) -> FaceClient:
    """A FaceClient with a timeout and no retries; `validate=False` turns off the client's own
    checks (ids must match ^[a-z0-9-_]+$, name/userData lengths) so that the server sees bad input."""
    client = FaceClient(endpoint, CognitiveServicesCredentials(key))
    client._serialize.client_side_validation = validate  # shared by all operation groups
    client.config.connection.timeout = HTTP_TIMEOUT_S
    client.config.proxies.use_env_settings = False
    # No retries: msrest retries 5xx by default, which would hide server errors (and a stream
    # body cannot be sent twice). Set before the first request: the session reads it once.
    client.config.retry_policy.retries = 0
    client.config.retry_policy.policy.status_forcelist = []
    return client


# ---------------------------------------------------------------------------------------------
# The test context


class E2E:
    def __init__(self, results: Results, photos: dict[str, bytes], photo_url: str) -> None:
        self.results = results
        self.photos = photos
        self.photo_url = photo_url
        self.endpoint = ""
        self.client: FaceClient | None = None
        self.unchecked: FaceClient | None = None  # no client-side validation, for bad input
        self.faces: dict[str, object] = {}  # photo name -> its largest DetectedFace
        self.two_face_rects: list[list[int]] = []
        self.groups: dict[str, dict] = {}  # "PersonGroup"/"LargePersonGroup" -> ids
        self.face_lists: dict[str, dict] = {}  # "FaceList"/"LargeFaceList" -> ids

    def connect(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.client = make_client(endpoint, API_KEY)
        self.unchecked = make_client(endpoint, API_KEY, validate=False)

    # -- checks
    def check(self, name: str, condition: bool, reason: str = "") -> bool:
        return self.results.check(name, condition, reason)

    def require(self, name: str, condition: bool, reason: str = "") -> None:
        if not self.check(name, condition, reason):
            raise Skip(name)

    def call(self, operation: str, fn, /, *args, **kwargs):
        """Calls one API operation; on success records its operationId as exercised."""
        result = fn(*args, **kwargs)
        self.results.operations.add(operation)
        return result

    def expect_error(
        self, name: str, fn, /, *args, code: str | None = None, status: int | None = None, **kwargs
    ):
        """Checks that a call fails with the given HTTP status and Azure error code."""
        try:
            fn(*args, **kwargs)
        except APIErrorException as e:
            got_status, got_code = api_error(e)
            ok = (status is None or got_status == status) and (code is None or got_code == code)
            want = " ".join(str(x) for x in (status, code) if x is not None)
            return self.check(name, ok, f"expected {want}, got HTTP {got_status} {got_code}: {e}")
        except Exception as e:  # noqa: BLE001 - reported as a failure
            return self.check(name, False, f"expected an API error, got {describe(e)}")
        return self.check(name, False, "expected an error, the call succeeded")

    # -- inputs
    def stream(self, name: str) -> io.BytesIO:
        return io.BytesIO(self.photos[name])

    def url(self, name: str) -> str:
        return f"{self.photo_url}/{name}"

    def face_id(self, name: str) -> str:
        return self.faces[name].face_id

    def detect(self, name: str, **kwargs):
        return self.call(
            "Face_DetectWithStream", self.client.face.detect_with_stream, self.stream(name), **kwargs
        )

    # -- long-running work
    def wait_training(self, operation: str, get_status):
        deadline = time.monotonic() + TRAIN_TIMEOUT_S
        while True:
            status = self.call(operation, get_status)
            if status.status in ("succeeded", "failed") or time.monotonic() > deadline:
                return status
            time.sleep(0.5)

    def wait_operation(self, operation_id: str):
        deadline = time.monotonic() + OPERATION_TIMEOUT_S
        while True:
            status = self.call(
                "Snapshot_GetOperationStatus", self.client.snapshot.get_operation_status, operation_id
            )
            if status.status in ("succeeded", "failed") or time.monotonic() > deadline:
                return status
            time.sleep(0.5)


def run_area(t: E2E, name: str, area, *args) -> None:
    """Runs one area; an unexpected exception fails the area and the run goes on."""
    print(f"-- {name}", flush=True)
    try:
        area(t, *args)
    except Skip:
        pass
    except Exception as e:  # noqa: BLE001 - reported as a failure
        t.results.fail(f"{name}: unexpected exception", describe(e))


def sorted_desc(values) -> bool:
    values = list(values)
    return all(a >= b for a, b in zip(values, values[1:]))


def last_segment(location: str | None) -> str:
    return (location or "").rstrip("/").rsplit("/", 1)[-1]


# ---------------------------------------------------------------------------------------------
# Areas


def area_auth(t: E2E) -> None:
    wrong = make_client(t.endpoint, "wrong")
    t.expect_error("auth: wrong key on list person groups -> 401", wrong.person_group.list, status=401)
    t.expect_error(
        "auth: wrong key on detect -> 401", wrong.face.detect_with_stream, t.stream("obama.jpg"), status=401
    )


def check_face_geometry(t: E2E, label: str, face, width: int, height: int) -> None:
    r = face.face_rectangle
    inside = r is not None and r.left >= 0 and r.top >= 0 and r.width > 0 and r.height > 0
    inside = inside and r.left + r.width <= width and r.top + r.height <= height
    t.check(f"{label}: faceRectangle inside the {width}x{height} image", inside, f"got {r and r.as_dict()}")
    lm = face.face_landmarks
    points = [getattr(lm, n, None) for n in LANDMARKS] if lm is not None else []
    present = [p for p in points if p is not None]
    t.check(f"{label}: 27 landmarks", len(present) == 27, f"got {len(present)}")
    if present and r is not None:
        inside_image = all(0 <= p.x <= width and 0 <= p.y <= height for p in present)
        t.check(f"{label}: landmarks inside the image", inside_image)
        pupils = [lm.pupil_left, lm.pupil_right]
        in_rect = all(
            p is not None and r.left <= p.x <= r.left + r.width and r.top <= p.y <= r.top + r.height
            for p in pupils
        )
        t.check(f"{label}: pupils inside the faceRectangle", in_rect)


def area_detect(t: E2E) -> None:
    face = t.client.face
    width, height = image_size(t.photos["obama.jpg"])
    faces = t.detect(
        "obama.jpg",
        return_face_id=True,
        return_face_landmarks=True,
        recognition_model=RECOGNITION_MODEL,
        return_recognition_model=True,
        detection_model="detection_01",
    )
    t.require("detect stream obama.jpg: one face", len(faces) == 1, f"got {len(faces)}")
    obama = faces[0]
    t.faces["obama.jpg"] = obama
    t.check("detect stream obama.jpg: faceId is a uuid", is_uuid(obama.face_id), f"got {obama.face_id!r}")
    t.check(
        "detect stream obama.jpg: recognitionModel returned",
        obama.recognition_model == RECOGNITION_MODEL,
        f"got {obama.recognition_model!r}",
    )
    check_face_geometry(t, "detect stream obama.jpg", obama, width, height)

    faces = t.call(
        "Face_DetectWithUrl", face.detect_with_url, t.url("obama2.jpg"), return_face_landmarks=True
    )
    t.require("detect url obama2.jpg: one face", len(faces) == 1, f"got {len(faces)}")
    t.faces["obama2.jpg"] = faces[0]
    check_face_geometry(t, "detect url obama2.jpg", faces[0], *image_size(t.photos["obama2.jpg"]))

    for name in ("obama3.jpg", "biden.jpg"):
        faces = t.detect(name)
        t.require(f"detect {name}: one face", len(faces) == 1, f"got {len(faces)}")
        t.faces[name] = faces[0]
    faces = t.detect("32bit.png")
    t.require("detect 32bit.png (RGBA PNG): a face", len(faces) >= 1, "got none")
    t.faces["32bit.png"] = faces[0]

    faces = t.detect("obama.jpg", return_face_id=False)
    t.check(
        "detect returnFaceId=false: no faceId",
        len(faces) == 1 and faces[0].face_id is None,
        f"got {[f.face_id for f in faces]}",
    )
    t.expect_error(
        "detect unknown recognitionModel -> BadArgument",
        face.detect_with_stream,
        t.stream("obama.jpg"),
        recognition_model="recognition_99",
        code="BadArgument",
        status=400,
    )


def area_detect_inputs(t: E2E) -> None:
    face = t.client.face
    faces = t.detect(TWO_FACES)
    t.check("detect two-face image: at least two faces", len(faces) >= 2, f"got {len(faces)}")
    areas = [f.face_rectangle.width * f.face_rectangle.height for f in faces]
    t.check("detect two-face image: ranked by size, large to small", sorted_desc(areas), f"got {areas}")
    t.two_face_rects = [
        [f.face_rectangle.left, f.face_rectangle.top, f.face_rectangle.width, f.face_rectangle.height]
        for f in faces
    ]
    for name in ("obama_partial_face.jpg", "obama_partial_face2.jpg"):
        print(f"-- detect {name}: {len(t.detect(name))} face(s) (informational)")
    faces = t.detect(NO_FACE)
    t.check("detect no-face image: 200 with an empty list", faces == [], f"got {len(faces)} faces")
    t.expect_error(
        "detect corrupt image -> InvalidImage",
        face.detect_with_stream,
        t.stream(CORRUPT),
        code="InvalidImage",
        status=400,
    )
    t.expect_error(
        "detect url that answers 404 -> InvalidURL",
        face.detect_with_url,
        t.url("missing.jpg"),
        code="InvalidURL",
        status=400,
    )


def area_detect_attributes(t: E2E) -> None:
    wanted = ["age", "gender", "headPose", "smile", "blur", "exposure", "noise"]
    faces = t.detect("obama.jpg", return_face_attributes=wanted)
    attrs = faces[0].face_attributes if faces else None
    age = getattr(attrs, "age", None)
    t.check(
        "detect attributes: age of obama.jpg in 20..90", age is not None and 20 <= age <= 90, f"got {age}"
    )
    gender = getattr(attrs, "gender", None)
    t.check("detect attributes: gender of obama.jpg is male", gender == "male", f"got {gender!r}")
    pose = getattr(attrs, "head_pose", None)
    angles = [getattr(pose, a, None) for a in ("roll", "yaw", "pitch")]
    t.check(
        "detect attributes: obama.jpg faces the camera (|roll|, |yaw|, |pitch| < 25)",
        all(v is not None and abs(v) < 25 for v in angles),
        f"got {angles}",
    )
    smile = getattr(attrs, "smile", None)
    t.check("detect attributes: smile in 0..1", smile is not None and 0 <= smile <= 1, f"got {smile}")
    levels = [
        getattr(getattr(attrs, "blur", None), "blur_level", None),
        getattr(getattr(attrs, "exposure", None), "exposure_level", None),
        getattr(getattr(attrs, "noise", None), "noise_level", None),
    ]
    t.check("detect attributes: blur, exposure and noise levels", all(levels), f"got {levels}")
    # All fourteen groups come back, in the shapes the client's models declare.
    every = [
        "age", "gender", "headPose", "smile", "facialHair", "glasses", "emotion",
        "hair", "makeup", "occlusion", "accessories", "blur", "exposure", "noise",
    ]
    faces = t.detect("obama.jpg", return_face_attributes=every)
    attrs = faces[0].face_attributes if faces else None
    emotion = getattr(attrs, "emotion", None)
    names = ("anger", "contempt", "disgust", "fear", "happiness", "neutral", "sadness", "surprise")
    values = [getattr(emotion, n, None) for n in names]
    t.check(
        "detect all attributes: the eight emotions sum to 1",
        all(v is not None for v in values) and abs(sum(values) - 1) < 0.01,
        f"got {values}",
    )
    t.check(
        "detect all attributes: obama.jpg wears no glasses",
        getattr(getattr(attrs, "glasses", None), "value", None) == "noGlasses",
        f"got {getattr(attrs, 'glasses', None)!r}",
    )
    hair = getattr(attrs, "hair", None)
    colours = getattr(hair, "hair_color", None) or []
    t.check(
        "detect all attributes: hair colours most likely first, confidences in 0..1",
        len(colours) == 7 and all(0 <= c.confidence <= 1 for c in colours)
        and all(a.confidence >= b.confidence for a, b in zip(colours, colours[1:])),
        f"got {[(c.color, c.confidence) for c in colours]}",
    )
    groups = [
        getattr(attrs, "facial_hair", None),
        getattr(attrs, "makeup", None),
        getattr(attrs, "occlusion", None),
        getattr(attrs, "accessories", None),
    ]
    t.check(
        "detect all attributes: facialHair, makeup, occlusion, accessories present",
        all(g is not None for g in groups),
        f"got {groups}",
    )


def area_detect_detection_02(t: E2E) -> None:
    faces = t.detect("obama.jpg", detection_model="detection_02")
    t.check("detect detection_02 obama.jpg: one face", len(faces) == 1, f"got {len(faces)}")
    t.expect_error(
        "detect detection_02 with landmarks -> BadArgument",
        t.client.face.detect_with_stream,
        t.stream("obama.jpg"),
        return_face_landmarks=True,
        detection_model="detection_02",
        code="BadArgument",
        status=400,
    )


def area_verify_similar_group(t: E2E) -> None:
    face = t.client.face
    o1, o2, o3, b = (t.face_id(n) for n in ("obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg"))

    v = t.call("Face_VerifyFaceToFace", face.verify_face_to_face, o1, o2)
    t.check(
        "verify obama vs obama2: identical, confidence >= 0.5",
        v.is_identical is True and v.confidence >= 0.5,
        f"got {v.is_identical} {v.confidence}",
    )
    v = face.verify_face_to_face(o1, b)
    t.check(
        "verify obama vs biden: not identical, confidence < 0.5",
        v.is_identical is False and v.confidence < 0.5,
        f"got {v.is_identical} {v.confidence}",
    )
    v = face.verify_face_to_face(t.face_id("32bit.png"), o2)
    t.check("verify 32bit.png vs obama2.jpg: identical", v.is_identical is True, f"got {v.confidence}")

    similar = t.call("Face_FindSimilar", face.find_similar, o3, face_ids=[o1, o2, b])
    ids = [s.face_id for s in similar]
    t.check(
        "find_similar faceIds matchPerson: obama faces, not biden",
        {o1, o2} <= set(ids) and b not in ids,
        f"got {ids}",
    )
    t.check("find_similar faceIds: ranked by confidence", sorted_desc(s.confidence for s in similar))
    similar = face.find_similar(o3, face_ids=[o1, o2, b], mode="matchFace")
    ids = [s.face_id for s in similar]
    ranked = ids[:2] == [o1, o2] or ids[:2] == [o2, o1]
    t.check("find_similar faceIds matchFace: obama faces ranked first", ranked, f"got {ids}")
    t.check("find_similar matchFace: ranked by confidence", sorted_desc(s.confidence for s in similar))
    similar = face.find_similar(o3, face_ids=[o1, o2, b], max_num_of_candidates_returned=1, mode="matchFace")
    t.check("find_similar maxNumOfCandidatesReturned=1", len(similar) == 1, f"got {len(similar)}")

    result = t.call("Face_Group", face.group, [o1, o2, o3, b])
    groups = [set(g) for g in result.groups or []]
    t.check("group: the three obama faces form one group", {o1, o2, o3} in groups, f"got {result.groups}")
    t.check(
        "group: biden in messyGroup", b in (result.messy_group or []), f"got messy_group {result.messy_group}"
    )
    t.expect_error("group of one face -> BadArgument", face.group, [o1], code="BadArgument", status=400)
    t.expect_error(
        "verify unknown faceId -> FaceNotFound",
        face.verify_face_to_face,
        o1,
        str(uuid.uuid4()),
        code="FaceNotFound",
    )


def area_person_group(t: E2E, large: bool) -> None:
    """PersonGroup or LargePersonGroup with its persons: the two share one shape in the client."""
    kind = "LargePersonGroup" if large else "PersonGroup"
    person_kind = kind + "Person"
    groups = t.client.large_person_group if large else t.client.person_group
    unchecked = t.unchecked.large_person_group if large else t.unchecked.person_group
    persons = t.client.large_person_group_person if large else t.client.person_group_person
    id_attr = "large_person_group_id" if large else "person_group_id"
    gid = "e2e-lpg" if large else "e2e-pg"
    tmp = gid + "-tmp"
    face = t.client.face
    p = kind  # check-name prefix

    # the group itself
    t.call(f"{kind}_Create", groups.create, gid, "E2E group", "group-data", RECOGNITION_MODEL)
    t.expect_error(
        f"{p}: create again -> {kind}Exists", groups.create, gid, "again", code=f"{kind}Exists", status=409
    )
    t.expect_error(
        f"{p}: create BadID -> BadArgument", unchecked.create, "BadID", "bad", code="BadArgument", status=400
    )
    g = t.call(f"{kind}_Get", groups.get, gid, return_recognition_model=True)
    t.check(
        f"{p}: get after create",
        (getattr(g, id_attr), g.name, g.user_data, g.recognition_model)
        == (gid, "E2E group", "group-data", RECOGNITION_MODEL),
        f"got {g.as_dict()}",
    )
    t.call(f"{kind}_Update", groups.update, gid, name="E2E group renamed", user_data="group-data-2")
    g = groups.get(gid)
    t.check(
        f"{p}: update then get",
        (g.name, g.user_data) == ("E2E group renamed", "group-data-2"),
        f"got {g.as_dict()}",
    )
    groups.create(tmp, "temporary")
    listed = [getattr(x, id_attr) for x in t.call(f"{kind}_List", groups.list)]
    t.check(
        f"{p}: list holds both groups, sorted by id",
        {gid, tmp} <= set(listed) and listed == sorted(listed),
        f"got {listed}",
    )
    page = [getattr(x, id_attr) for x in groups.list(top=1)]
    t.check(f"{p}: list top=1", page == listed[:1], f"got {page}")
    page = [getattr(x, id_attr) for x in groups.list(start=listed[0], top=1)]
    t.check(f"{p}: list start=first top=1 gives the second", page == listed[1:2], f"got {page}")
    t.expect_error(
        f"{p}: training status before any training -> {kind}NotTrained",
        groups.get_training_status,
        gid,
        code=f"{kind}NotTrained",
        status=404,
    )

    # persons
    obama = t.call(
        f"{person_kind}_Create", persons.create, gid, name="obama", user_data="person-obama"
    ).person_id
    biden = persons.create(gid, name="biden", user_data="person-biden").person_id
    temp = persons.create(gid, name="temp", user_data="person-temp").person_id
    t.check(f"{p}: person ids are uuids", all(map(is_uuid, (obama, biden, temp))))

    f1 = t.call(
        f"{person_kind}_AddFaceFromUrl",
        persons.add_face_from_url,
        gid,
        obama,
        t.url("obama.jpg"),
        user_data="obama-1",
    ).persisted_face_id
    f2 = t.call(
        f"{person_kind}_AddFaceFromStream",
        persons.add_face_from_stream,
        gid,
        obama,
        t.stream("obama2.jpg"),
        user_data="obama-2",
    ).persisted_face_id
    persons.add_face_from_stream(gid, biden, t.stream("biden.jpg"), user_data="biden-1")
    pf = t.call(f"{person_kind}_GetFace", persons.get_face, gid, obama, f1)
    t.check(
        f"{p}: get_face after add",
        (pf.persisted_face_id, pf.user_data) == (f1, "obama-1"),
        f"got {pf.as_dict()}",
    )
    t.call(f"{person_kind}_UpdateFace", persons.update_face, gid, obama, f1, user_data="obama-1-updated")
    pf = persons.get_face(gid, obama, f1)
    t.check(f"{p}: update_face then get_face", pf.user_data == "obama-1-updated", f"got {pf.user_data!r}")
    person = t.call(f"{person_kind}_Get", persons.get, gid, obama)
    t.check(
        f"{p}: get person",
        (person.person_id, person.name, person.user_data, set(person.persisted_face_ids or []))
        == (obama, "obama", "person-obama", {f1, f2}),
        f"got {person.as_dict()}",
    )
    t.call(f"{person_kind}_Update", persons.update, gid, temp, name="temp renamed", user_data="person-temp-2")
    person = persons.get(gid, temp)
    t.check(
        f"{p}: update person then get",
        (person.name, person.user_data) == ("temp renamed", "person-temp-2"),
        f"got {person.as_dict()}",
    )
    listed = [x.person_id for x in t.call(f"{person_kind}_List", persons.list, gid)]
    t.check(
        f"{p}: list persons, sorted by personId",
        set(listed) == {obama, biden, temp} and listed == sorted(listed),
        f"got {listed}",
    )
    page = [x.person_id for x in persons.list(gid, start=listed[0], top=1)]
    t.check(f"{p}: list persons start=first top=1 gives the second", page == listed[1:2], f"got {page}")

    # faces the service refuses, a face picked with targetFace, deletes
    for image, what in ((NO_FACE, "no-face"), (TWO_FACES, "two-face"), (CORRUPT, "corrupt")):
        t.expect_error(
            f"{p}: add_face of the {what} image -> InvalidImage",
            persons.add_face_from_stream,
            gid,
            temp,
            t.stream(image),
            code="InvalidImage",
            status=400,
        )
    if t.two_face_rects:
        picked = persons.add_face_from_stream(gid, temp, t.stream(TWO_FACES), target_face=t.two_face_rects[0])
        t.check(f"{p}: add_face with targetFace on the two-face image", is_uuid(picked.persisted_face_id))
        t.call(f"{person_kind}_DeleteFace", persons.delete_face, gid, temp, picked.persisted_face_id)
        t.expect_error(
            f"{p}: get_face after delete_face -> PersistedFaceNotFound",
            persons.get_face,
            gid,
            temp,
            picked.persisted_face_id,
            code="PersistedFaceNotFound",
            status=404,
        )
    t.call(f"{person_kind}_Delete", persons.delete, gid, temp)
    t.expect_error(
        f"{p}: get person after delete -> PersonNotFound",
        persons.get,
        gid,
        temp,
        code="PersonNotFound",
        status=404,
    )

    # training and identification
    o3 = t.face_id("obama3.jpg")
    t.expect_error(
        f"{p}: identify before training -> {kind}NotTrained",
        face.identify,
        [o3],
        code=f"{kind}NotTrained",
        status=400,
        **{id_attr: gid},
    )
    t.call(f"{kind}_Train", groups.train, gid)
    status = t.wait_training(f"{kind}_GetTrainingStatus", lambda: groups.get_training_status(gid))
    t.require(
        f"{p}: training succeeded", status.status == "succeeded", f"got {status.status} {status.message}"
    )

    results = t.call(
        "Face_Identify",
        face.identify,
        [o3, t.face_id("biden.jpg")],
        max_num_of_candidates_returned=2,
        **{id_attr: gid},
    )
    by_face = {r.face_id: [c.person_id for c in r.candidates] for r in results}
    t.check(
        f"{p}: identify obama3.jpg -> obama first",
        (by_face.get(o3) or [None])[0] == obama,
        f"got {by_face.get(o3)}",
    )
    t.check(
        f"{p}: identify biden.jpg -> biden first",
        (by_face.get(t.face_id("biden.jpg")) or [None])[0] == biden,
        f"got {by_face}",
    )
    t.check(
        f"{p}: identify candidates ranked by confidence",
        all(sorted_desc(c.confidence for c in r.candidates) for r in results),
    )
    v = t.call("Face_VerifyFaceToPerson", face.verify_face_to_person, o3, obama, **{id_attr: gid})
    t.check(
        f"{p}: verify obama3.jpg to person obama: identical", v.is_identical is True, f"got {v.confidence}"
    )
    v = face.verify_face_to_person(o3, biden, **{id_attr: gid})
    t.check(
        f"{p}: verify obama3.jpg to person biden: not identical",
        v.is_identical is False,
        f"got {v.confidence}",
    )

    # delete
    t.call(f"{kind}_Delete", groups.delete, tmp)
    t.expect_error(
        f"{p}: get after delete -> {kind}NotFound", groups.get, tmp, code=f"{kind}NotFound", status=404
    )
    t.expect_error(
        f"{p}: create person in a missing group -> {kind}NotFound",
        persons.create,
        tmp,
        name="x",
        code=f"{kind}NotFound",
        status=404,
    )
    t.groups[kind] = {"id": gid, "obama": obama, "biden": biden}


def area_identify_errors(t: E2E) -> None:
    if not {"PersonGroup", "LargePersonGroup"} <= t.groups.keys():
        raise Skip()
    t.expect_error(
        "identify with both personGroupId and largePersonGroupId -> 400",
        t.client.face.identify,
        [t.face_id("obama3.jpg")],
        person_group_id=t.groups["PersonGroup"]["id"],
        large_person_group_id=t.groups["LargePersonGroup"]["id"],
        status=400,
    )
    t.expect_error(
        "identify in a missing group -> PersonGroupNotFound",
        t.client.face.identify,
        [t.face_id("obama3.jpg")],
        person_group_id="e2e-missing",
        code="PersonGroupNotFound",
    )


def check_similar_persisted(t: E2E, label: str, similar, obama_faces: set, biden_face: str) -> None:
    ids = [s.persisted_face_id for s in similar]
    t.check(
        f"{label}: obama faces, not biden", obama_faces <= set(ids) and biden_face not in ids, f"got {ids}"
    )


def check_match_face(t: E2E, label: str, similar, obama_faces: set) -> None:
    ids = [s.persisted_face_id for s in similar]
    t.check(f"{label}: obama faces ranked first", set(ids[: len(obama_faces)]) == obama_faces, f"got {ids}")
    t.check(f"{label}: ranked by confidence", sorted_desc(s.confidence for s in similar))


def area_face_list(t: E2E) -> None:
    lists, face = t.client.face_list, t.client.face
    lid, tmp = "e2e-fl", "e2e-fl-tmp"
    p = "FaceList"
    t.call("FaceList_Create", lists.create, lid, "E2E face list", "fl-data", RECOGNITION_MODEL)
    t.expect_error(
        f"{p}: create again -> FaceListExists", lists.create, lid, "again", code="FaceListExists", status=409
    )
    t.expect_error(
        f"{p}: create BadID -> BadArgument",
        t.unchecked.face_list.create,
        "BadID",
        "bad",
        code="BadArgument",
        status=400,
    )
    a = t.call(
        "FaceList_AddFaceFromUrl", lists.add_face_from_url, lid, t.url("obama.jpg"), user_data="fl-obama"
    )
    b = t.call(
        "FaceList_AddFaceFromStream",
        lists.add_face_from_stream,
        lid,
        t.stream("obama2.jpg"),
        user_data="fl-obama2",
    )
    c = lists.add_face_from_stream(lid, t.stream("biden.jpg"), user_data="fl-biden")
    expected = {
        a.persisted_face_id: "fl-obama",
        b.persisted_face_id: "fl-obama2",
        c.persisted_face_id: "fl-biden",
    }
    t.expect_error(
        f"{p}: add the two-face image without targetFace -> InvalidImage",
        lists.add_face_from_stream,
        lid,
        t.stream(TWO_FACES),
        code="InvalidImage",
        status=400,
    )
    t.expect_error(
        f"{p}: add the no-face image -> InvalidImage",
        lists.add_face_from_stream,
        lid,
        t.stream(NO_FACE),
        code="InvalidImage",
        status=400,
    )
    d = None
    if t.two_face_rects:
        d = lists.add_face_from_stream(
            lid,
            t.stream(TWO_FACES),
            user_data="fl-two",
            target_face=t.two_face_rects[1 % len(t.two_face_rects)],
        ).persisted_face_id
        expected[d] = "fl-two"

    got = t.call("FaceList_Get", lists.get, lid, return_recognition_model=True)
    faces = {f.persisted_face_id: f.user_data for f in got.persisted_faces or []}
    t.check(
        f"{p}: get after adds",
        (got.face_list_id, got.name, got.user_data, got.recognition_model, faces)
        == (lid, "E2E face list", "fl-data", RECOGNITION_MODEL, expected),
        f"got {got.as_dict()}",
    )

    o3 = t.face_id("obama3.jpg")
    obama_faces = {a.persisted_face_id, b.persisted_face_id}
    similar = face.find_similar(o3, face_list_id=lid)
    check_similar_persisted(t, f"{p}: find_similar matchPerson", similar, obama_faces, c.persisted_face_id)
    similar = face.find_similar(o3, face_list_id=lid, mode="matchFace")
    check_match_face(t, f"{p}: find_similar matchFace", similar, obama_faces | ({d} if d else set()))

    t.call("FaceList_Update", lists.update, lid, name="E2E face list renamed", user_data="fl-data-2")
    got = lists.get(lid)
    t.check(
        f"{p}: update then get",
        (got.name, got.user_data) == ("E2E face list renamed", "fl-data-2"),
        f"got {got.name!r} {got.user_data!r}",
    )
    lists.create(tmp, "temporary")
    listed = {x.face_list_id: x.name for x in t.call("FaceList_List", lists.list)}
    t.check(
        f"{p}: list holds both lists",
        listed.get(lid) == "E2E face list renamed" and tmp in listed,
        f"got {listed}",
    )
    if d:
        t.call("FaceList_DeleteFace", lists.delete_face, lid, d)
        del expected[d]
        faces = {f.persisted_face_id: f.user_data for f in lists.get(lid).persisted_faces or []}
        t.check(f"{p}: delete_face then get", faces == expected, f"got {faces}")
    t.call("FaceList_Delete", lists.delete, tmp)
    t.expect_error(
        f"{p}: get after delete -> FaceListNotFound", lists.get, tmp, code="FaceListNotFound", status=404
    )
    t.expect_error(
        f"{p}: add face to a missing list -> FaceListNotFound",
        lists.add_face_from_stream,
        tmp,
        t.stream("obama.jpg"),
        code="FaceListNotFound",
        status=404,
    )
    t.expect_error(
        f"{p}: find_similar in a missing list -> FaceListNotFound",
        face.find_similar,
        o3,
        face_list_id=tmp,
        code="FaceListNotFound",
    )
    t.face_lists["FaceList"] = {"id": lid, "obama": obama_faces, "biden": c.persisted_face_id}


def area_large_face_list(t: E2E) -> None:
    lists, face = t.client.large_face_list, t.client.face
    lid, tmp = "e2e-lfl", "e2e-lfl-tmp"
    p = "LargeFaceList"
    t.call("LargeFaceList_Create", lists.create, lid, "E2E large face list", "lfl-data", RECOGNITION_MODEL)
    t.expect_error(
        f"{p}: create again -> LargeFaceListExists",
        lists.create,
        lid,
        "again",
        code="LargeFaceListExists",
        status=409,
    )
    t.expect_error(
        f"{p}: create BadID -> BadArgument",
        t.unchecked.large_face_list.create,
        "BadID",
        "bad",
        code="BadArgument",
        status=400,
    )
    a = t.call(
        "LargeFaceList_AddFaceFromUrl",
        lists.add_face_from_url,
        lid,
        t.url("obama.jpg"),
        user_data="lfl-obama",
    ).persisted_face_id
    b = t.call(
        "LargeFaceList_AddFaceFromStream",
        lists.add_face_from_stream,
        lid,
        t.stream("obama2.jpg"),
        user_data="lfl-obama2",
    ).persisted_face_id
    c = lists.add_face_from_stream(lid, t.stream("biden.jpg"), user_data="lfl-biden").persisted_face_id
    extra = lists.add_face_from_stream(lid, t.stream("32bit.png"), user_data="lfl-extra").persisted_face_id
    t.expect_error(
        f"{p}: add the no-face image -> InvalidImage",
        lists.add_face_from_stream,
        lid,
        t.stream(NO_FACE),
        code="InvalidImage",
        status=400,
    )

    got = t.call("LargeFaceList_Get", lists.get, lid, return_recognition_model=True)
    t.check(
        f"{p}: get after create",
        (got.large_face_list_id, got.name, got.user_data, got.recognition_model)
        == (lid, "E2E large face list", "lfl-data", RECOGNITION_MODEL),
        f"got {got.as_dict()}",
    )
    t.call(
        "LargeFaceList_Update", lists.update, lid, name="E2E large face list renamed", user_data="lfl-data-2"
    )
    got = lists.get(lid)
    t.check(
        f"{p}: update then get",
        (got.name, got.user_data) == ("E2E large face list renamed", "lfl-data-2"),
        f"got {got.name!r} {got.user_data!r}",
    )
    lists.create(tmp, "temporary")
    listed = {x.large_face_list_id: x.name for x in t.call("LargeFaceList_List", lists.list)}
    t.check(
        f"{p}: list holds both lists",
        listed.get(lid) == "E2E large face list renamed" and tmp in listed,
        f"got {listed}",
    )

    pf = t.call("LargeFaceList_GetFace", lists.get_face, lid, a)
    t.check(f"{p}: get_face", (pf.persisted_face_id, pf.user_data) == (a, "lfl-obama"), f"got {pf.as_dict()}")
    t.call("LargeFaceList_UpdateFace", lists.update_face, lid, a, user_data="lfl-obama-updated")
    pf = lists.get_face(lid, a)
    t.check(f"{p}: update_face then get_face", pf.user_data == "lfl-obama-updated", f"got {pf.user_data!r}")

    faces = t.call("LargeFaceList_ListFaces", lists.list_faces, lid)
    ids = [f.persisted_face_id for f in faces]
    t.check(
        f"{p}: list_faces, sorted by id", set(ids) == {a, b, c, extra} and ids == sorted(ids), f"got {ids}"
    )
    page = [f.persisted_face_id for f in lists.list_faces(lid, start=ids[0], top=2)]
    t.check(f"{p}: list_faces start=first top=2", page == ids[1:3], f"got {page}")
    t.call("LargeFaceList_DeleteFace", lists.delete_face, lid, extra)
    t.expect_error(
        f"{p}: get_face after delete_face -> PersistedFaceNotFound",
        lists.get_face,
        lid,
        extra,
        code="PersistedFaceNotFound",
        status=404,
    )

    o3 = t.face_id("obama3.jpg")
    t.expect_error(
        f"{p}: training status before any training -> LargeFaceListNotTrained",
        lists.get_training_status,
        lid,
        code="LargeFaceListNotTrained",
        status=404,
    )
    t.expect_error(
        f"{p}: find_similar before training -> LargeFaceListNotTrained",
        face.find_similar,
        o3,
        large_face_list_id=lid,
        code="LargeFaceListNotTrained",
        status=400,
    )
    t.call("LargeFaceList_Train", lists.train, lid)
    status = t.wait_training("LargeFaceList_GetTrainingStatus", lambda: lists.get_training_status(lid))
    t.require(
        f"{p}: training succeeded", status.status == "succeeded", f"got {status.status} {status.message}"
    )
    similar = face.find_similar(o3, large_face_list_id=lid)
    check_similar_persisted(t, f"{p}: find_similar matchPerson", similar, {a, b}, c)
    similar = face.find_similar(o3, large_face_list_id=lid, mode="matchFace")
    check_match_face(t, f"{p}: find_similar matchFace", similar, {a, b})

    t.call("LargeFaceList_Delete", lists.delete, tmp)
    t.expect_error(
        f"{p}: get after delete -> LargeFaceListNotFound",
        lists.get,
        tmp,
        code="LargeFaceListNotFound",
        status=404,
    )
    t.face_lists["LargeFaceList"] = {"id": lid, "obama": {a, b}, "biden": c}


def area_snapshot(t: E2E) -> None:
    if "PersonGroup" not in t.groups:
        raise Skip()
    snapshots, groups, persons = t.client.snapshot, t.client.person_group, t.client.person_group_person
    source = t.groups["PersonGroup"]["id"]
    target = source + "-restored"
    p = "Snapshot"

    raw = t.call(
        "Snapshot_Take",
        snapshots.take,
        "PersonGroup",
        source,
        [SNAPSHOT_SCOPE],
        user_data="snap-data",
        raw=True,
    )
    location = raw.headers.get("Operation-Location")
    t.require(
        f"{p}: take answers 202 with Operation-Location",
        bool(location),
        f"headers {dict(raw.response.headers)}",
    )
    # As the spec's examples and the service: a relative path; the SDK's own tests read the id
    # as split("/")[2].
    t.check(
        f"{p}: take Operation-Location is /operations/<id>",
        location.startswith("/operations/") and is_uuid(location.split("/")[2]),
        f"got {location!r}",
    )
    status = t.wait_operation(last_segment(location))
    t.require(
        f"{p}: take operation succeeded",
        status.status == "succeeded",
        f"got {status.status} {status.message}",
    )
    snapshot_id = last_segment(status.resource_location)
    t.check(
        f"{p}: take resourceLocation names the snapshot",
        (status.resource_location or "").startswith("/snapshots/") and is_uuid(snapshot_id),
        f"got {status.resource_location!r}",
    )

    s = t.call("Snapshot_Get", snapshots.get, snapshot_id)
    t.check(
        f"{p}: get",
        (s.id, s.type, [x.lower() for x in s.apply_scope or []], s.user_data)
        == (snapshot_id, "PersonGroup", [SNAPSHOT_SCOPE], "snap-data"),
        f"got {s.as_dict()}",
    )
    ids = [x.id for x in t.call("Snapshot_List", snapshots.list)]
    t.check(f"{p}: list holds it", snapshot_id in ids, f"got {ids}")
    ids = [x.id for x in snapshots.list(type="PersonGroup")]
    t.check(f"{p}: list type=PersonGroup holds it", snapshot_id in ids, f"got {ids}")
    ids = [x.id for x in snapshots.list(type="FaceList")]
    t.check(f"{p}: list type=FaceList does not", snapshot_id not in ids, f"got {ids}")
    t.call(
        "Snapshot_Update",
        snapshots.update,
        snapshot_id,
        apply_scope=[SNAPSHOT_SCOPE],
        user_data="snap-data-2",
    )
    s = snapshots.get(snapshot_id)
    t.check(f"{p}: update then get", s.user_data == "snap-data-2", f"got {s.user_data!r}")

    raw = t.call("Snapshot_Apply", snapshots.apply, snapshot_id, target, raw=True)
    location = raw.headers.get("Operation-Location")
    t.require(
        f"{p}: apply answers 202 with Operation-Location",
        bool(location),
        f"headers {dict(raw.response.headers)}",
    )
    # As the spec's examples and the service: a relative path; the SDK's own tests read the id
    # as split("/")[2].
    t.check(
        f"{p}: apply Operation-Location is /operations/<id>",
        location.startswith("/operations/") and is_uuid(location.split("/")[2]),
        f"got {location!r}",
    )
    status = t.wait_operation(last_segment(location))
    t.require(
        f"{p}: apply operation succeeded",
        status.status == "succeeded",
        f"got {status.status} {status.message}",
    )
    t.check(
        f"{p}: apply resourceLocation names the new group",
        (status.resource_location or "").rstrip("/").endswith(f"/persongroups/{target}"),
        f"got {status.resource_location!r}",
    )
    original, restored = groups.get(source), groups.get(target)
    t.check(
        f"{p}: the applied group has the source's name and userData",
        (restored.name, restored.user_data) == (original.name, original.user_data),
        f"got {restored.as_dict()}",
    )

    def roster(gid):
        return sorted((x.name, x.user_data, len(x.persisted_face_ids or [])) for x in persons.list(gid))

    t.check(
        f"{p}: the applied group has the same persons and faces",
        roster(target) == roster(source),
        f"got {roster(target)}",
    )
    groups.train(target)
    status = t.wait_training("PersonGroup_GetTrainingStatus", lambda: groups.get_training_status(target))
    t.require(f"{p}: the applied group trains", status.status == "succeeded", f"got {status.status}")
    names = {x.person_id: x.name for x in persons.list(target)}
    results = t.client.face.identify([t.face_id("obama3.jpg")], person_group_id=target)
    top = [names.get(c.person_id) for c in results[0].candidates] if results else []
    t.check(f"{p}: identify in the applied group -> obama", top[:1] == ["obama"], f"got {top}")
    t.groups["PersonGroup"]["restored"] = target

    t.call("Snapshot_Delete", snapshots.delete, snapshot_id)
    t.expect_error(f"{p}: get after delete -> 404", snapshots.get, snapshot_id, status=404)


def area_errors(t: E2E) -> None:
    t.expect_error(
        "errors: get face list BadID -> BadArgument",
        t.unchecked.face_list.get,
        "BadID",
        code="BadArgument",
        status=400,
    )
    t.expect_error(
        "errors: list persons of BadID -> BadArgument",
        t.unchecked.person_group_person.list,
        "BadID",
        code="BadArgument",
        status=400,
    )
    t.expect_error(
        "errors: create a person group with a 129-character name -> BadArgument",
        t.unchecked.person_group.create,
        "e2e-long-name",
        "n" * 129,
        code="BadArgument",
        status=400,
    )
    t.expect_error(
        "errors: add a face with 1025 characters of userData -> BadArgument",
        t.unchecked.face_list.add_face_from_stream,
        "e2e-fl",
        t.stream("obama.jpg"),
        user_data="u" * 1025,
        code="BadArgument",
        status=400,
    )
    t.expect_error(
        "errors: get missing person group -> PersonGroupNotFound",
        t.client.person_group.get,
        "e2e-missing",
        code="PersonGroupNotFound",
        status=404,
    )
    t.expect_error(
        "errors: verify unknown person -> PersonNotFound",
        t.client.face.verify_face_to_person,
        t.face_id("obama3.jpg"),
        str(uuid.uuid4()),
        person_group_id=t.groups.get("PersonGroup", {}).get("id", "e2e-pg"),
        code="PersonNotFound",
    )


def area_operations_covered(t: E2E) -> None:
    done = t.results.operations
    missing = sorted(ALL_OPERATIONS - done)
    extra = sorted(done - ALL_OPERATIONS)
    t.check(
        f"coverage: all 69 operations exercised ({len(done)})",
        len(done) == 69 and not missing and not extra,
        f"missing {missing} unknown {extra}",
    )


# ---------------------------------------------------------------------------------------------
# Persistence across a restart


def dump_state(t: E2E) -> dict:
    """Everything the store holds for the groups and lists, as plain values."""
    c = t.client
    state: dict = {}

    def training(get_status, object_id):
        try:
            return get_status(object_id).status
        except APIErrorException as e:
            return api_error(e)[1]

    for large in (False, True):
        groups = c.large_person_group if large else c.person_group
        persons = c.large_person_group_person if large else c.person_group_person
        id_attr = "large_person_group_id" if large else "person_group_id"
        for g in groups.list(return_recognition_model=True):
            gid = getattr(g, id_attr)
            members = {}
            for person in persons.list(gid):
                faces = {
                    f: persons.get_face(gid, person.person_id, f).user_data
                    for f in person.persisted_face_ids or []
                }
                members[person.person_id] = (person.name, person.user_data, faces)
            state[("group", large, gid)] = {
                "meta": (g.name, g.user_data, g.recognition_model),
                "training": training(groups.get_training_status, gid),
                "persons": members,
            }
    for fl in c.face_list.list():
        got = c.face_list.get(fl.face_list_id, return_recognition_model=True)
        faces = {f.persisted_face_id: f.user_data for f in got.persisted_faces or []}
        state[("facelist", fl.face_list_id)] = {
            "meta": (got.name, got.user_data, got.recognition_model),
            "faces": faces,
        }
    for lfl in c.large_face_list.list(return_recognition_model=True):
        lid = lfl.large_face_list_id
        faces = {f.persisted_face_id: f.user_data for f in c.large_face_list.list_faces(lid)}
        state[("largefacelist", lid)] = {
            "meta": (lfl.name, lfl.user_data, lfl.recognition_model),
            "training": training(c.large_face_list.get_training_status, lid),
            "faces": faces,
        }
    return state


def describe_difference(before: dict, after: dict) -> str:
    lost = [k for k in before if k not in after]
    new = [k for k in after if k not in before]
    changed = [k for k in before if k in after and before[k] != after[k]]
    parts = []
    if lost:
        parts.append(f"lost {lost}")
    if new:
        parts.append(f"appeared {new}")
    for k in changed[:3]:
        parts.append(f"{k}: {before[k]} -> {after[k]}")
    return "; ".join(parts)


def area_after_restart(t: E2E, before: dict | None) -> None:
    after = dump_state(t)
    if before is not None:
        t.check(
            "restart: every group, person, face, list and training status kept",
            after == before,
            describe_difference(before, after),
        )
    expected = [
        ("group", False, "e2e-pg"),
        ("group", True, "e2e-lpg"),
        ("facelist", "e2e-fl"),
        ("largefacelist", "e2e-lfl"),
    ]
    if t.groups.get("PersonGroup", {}).get("restored"):
        expected.append(("group", False, t.groups["PersonGroup"]["restored"]))
    t.check(
        "restart: the test's groups and lists are there",
        all(k in after for k in expected),
        f"have {sorted(map(str, after))}",
    )
    for key in expected:
        if "training" in after.get(key, {}):
            t.check(
                f"restart: {key[-1]} training status succeeded",
                after[key]["training"] == "succeeded",
                f"got {after[key]['training']}",
            )
    for key in (
        ("group", False, "e2e-pg-tmp"),
        ("group", True, "e2e-lpg-tmp"),
        ("facelist", "e2e-fl-tmp"),
        ("largefacelist", "e2e-lfl-tmp"),
    ):
        t.check(f"restart: deleted {key[-1]} stays deleted", key not in after)

    # identification works from the stored training, without retraining
    faces = t.detect("obama3.jpg")
    t.require("restart: detect obama3.jpg", len(faces) == 1, f"got {len(faces)}")
    o3 = faces[0].face_id
    for kind, id_kw in (("PersonGroup", "person_group_id"), ("LargePersonGroup", "large_person_group_id")):
        ids = t.groups.get(kind)
        if not ids:
            continue
        results = t.client.face.identify([o3], **{id_kw: ids["id"]})
        top = [c.person_id for c in results[0].candidates] if results else []
        t.check(
            f"restart: identify in {ids['id']} -> obama without retraining",
            top[:1] == [ids["obama"]],
            f"got {top}",
        )
    lfl = t.face_lists.get("LargeFaceList")
    if lfl:
        similar = t.client.face.find_similar(o3, large_face_list_id=lfl["id"])
        check_similar_persisted(t, "restart: find_similar in e2e-lfl", similar, lfl["obama"], lfl["biden"])


# ---------------------------------------------------------------------------------------------
# Accuracy on the shared labelled data (--data)


# Codes a bad image may answer with; anything else (a 5xx above all) is a failure.
BAD_INPUT_CODES = {"InvalidImage", "InvalidImageSize", "BadArgument"}


def area_badinput(t: E2E, data_dir: Path) -> None:
    """Every file of DIR/badinput to detect and to AddFace: a result or a documented error, and
    the server keeps serving."""
    files = sorted(p for p in (data_dir / "badinput").rglob("*") if p.is_file() and p.suffix != ".md" and p.name != "LABELS.csv")
    group = "e2e-badinput"
    t.call("PersonGroup_Create", t.client.person_group.create, group, name="bad input")
    person = t.call("PersonGroupPerson_Create", t.client.person_group_person.create, group, name="anyone")
    counts = {"results": 0, "errors": 0}
    for path in files:
        data = path.read_bytes()
        for op, fn in (
            ("detect", lambda b: t.client.face.detect_with_stream(io.BytesIO(b), return_face_landmarks=True)),
            (
                "add face",
                lambda b: t.client.person_group_person.add_face_from_stream(group, person.person_id, io.BytesIO(b)),
            ),
        ):
            name = f"badinput: {op} {path.relative_to(data_dir / 'badinput')}"
            try:
                fn(data)
                counts["results"] += 1
                t.check(name, True)
            except APIErrorException as e:
                status, code = api_error(e)
                counts["errors"] += 1
                t.check(name, status == 400 and code in BAD_INPUT_CODES, f"HTTP {status} {code}: {e}")
            except Exception as e:  # noqa: BLE001 - reported as a failure
                t.check(name, False, describe(e))
    ready = requests_get(f"{t.endpoint}/ready")
    t.check("badinput: the server is still ready", ready == 200, f"/ready answered {ready}")
    print(f"badinput: {len(files)} files, {counts['results']} results, {counts['errors']} documented errors")
    t.call("PersonGroup_Delete", t.client.person_group.delete, group)


def requests_get(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status
    except Exception:  # noqa: BLE001 - any failure is "not ready"
        return None


class ThreadClients:
    """One FaceClient per worker thread."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.local = threading.local()

    def get(self) -> FaceClient:
        if not hasattr(self.local, "client"):
            self.local.client = make_client(self.endpoint, API_KEY)
        return self.local.client


def area_dataset(t: E2E, data_dir: Path, deadline: float) -> None:
    root = data_dir / "verification"
    with open(root / "identify_split.csv", newline="") as f:
        split = list(csv.DictReader(f))
    with open(root / "pairs.csv", newline="") as f:
        pairs = list(csv.DictReader(f))
    clients = ThreadClients(t.endpoint)
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=4)
    face_ids: dict[str, str | None] = {}

    def read(path: str) -> bytes:
        return (root / path).read_bytes()

    def detect(path: str) -> tuple[str, str | None]:
        try:
            faces = clients.get().face.detect_with_stream(io.BytesIO(read(path)))
            return path, faces[0].face_id if faces else None
        except APIErrorException:
            return path, None

    def detect_all(paths) -> None:
        todo = sorted(set(paths) - face_ids.keys())
        for path, face_id in pool.map(detect, todo):
            face_ids[path] = face_id

    def out_of_time(what: str) -> bool:
        if time.monotonic() > deadline:
            t.results.fail(f"data: {what}", "out of time")
            return True
        return False

    try:
        # enrol the gallery, one person per identity; adds for one person go one at a time
        lpg = "e2e-data-lpg"
        groups, persons = t.client.large_person_group, t.client.large_person_group_person
        groups.create(lpg, "shared data gallery", recognition_model=RECOGNITION_MODEL)
        gallery: dict[str, list[str]] = {}
        for row in split:
            if row["role"] == "gallery":
                gallery.setdefault(row["identity"], []).append(row["path"])
        person_of = {name: persons.create(lpg, name=name[:128]).person_id for name in gallery}

        def enrol(name: str) -> int:
            refused = 0
            for path in gallery[name]:
                try:
                    clients.get().large_person_group_person.add_face_from_stream(
                        lpg, person_of[name], io.BytesIO(read(path))
                    )
                except APIErrorException:
                    refused += 1
            return refused

        refused = sum(pool.map(enrol, gallery))
        enrolled = sum(map(len, gallery.values())) - refused
        print(f"-- data: enrolled {enrolled} gallery images of {len(gallery)} identities, {refused} refused")
        groups.train(lpg)
        status = t.wait_training(
            "LargePersonGroup_GetTrainingStatus", lambda: groups.get_training_status(lpg)
        )
        t.require("data: gallery training succeeded", status.status == "succeeded", f"got {status.status}")
        if out_of_time("identify"):
            return

        probes = [row for row in split if row["role"] == "probe"]
        detect_all(row["path"] for row in probes)
        top1: dict[str, str | None] = {}
        detected = [row for row in probes if face_ids[row["path"]]]
        for i in range(0, len(detected), 10):
            batch = [face_ids[row["path"]] for row in detected[i : i + 10]]
            for result in t.client.face.identify(batch, large_person_group_id=lpg):
                top1[result.face_id] = result.candidates[0].person_id if result.candidates else None
        correct = sum(
            1 for row in detected if top1.get(face_ids[row["path"]]) == person_of.get(row["identity"])
        )
        rate = correct / len(probes) if probes else 0.0
        print(f"identify top-1: {correct}/{len(probes)} = {rate:.3f}")
        t.check("data: identify top-1 >= 0.95", rate >= 0.95, f"got {rate:.3f}")
        if out_of_time("verify pairs"):
            return

        detect_all([row["path_a"] for row in pairs] + [row["path_b"] for row in pairs])

        def verify(row) -> bool:
            a, b = face_ids.get(row["path_a"]), face_ids.get(row["path_b"])
            if not a or not b:
                return False
            result = clients.get().face.verify_face_to_face(a, b)
            return result.is_identical == (row["same"] == "1")

        right = sum(pool.map(verify, pairs))
        missing = sum(1 for v in face_ids.values() if v is None)
        accuracy = right / len(pairs) if pairs else 0.0
        print(f"verify accuracy: {right}/{len(pairs)} = {accuracy:.4f} ({missing} images without a face)")
        t.check("data: verify accuracy >= 0.99", accuracy >= 0.99, f"got {accuracy:.4f}")
        if out_of_time("find similar and group"):
            return

        # find similar: each probe among the gallery's faces (a LargeFaceList); the best match
        # should be of the probe's identity.
        lfl = "e2e-data-lfl"
        t.client.large_face_list.create(lfl, "shared data gallery faces", recognition_model=RECOGNITION_MODEL)
        identity_of_face: dict[str, str] = {}

        def add_to_list(row) -> None:
            try:
                added = clients.get().large_face_list.add_face_from_stream(lfl, io.BytesIO(read(row["path"])))
                identity_of_face[added.persisted_face_id] = row["identity"]
            except APIErrorException:
                pass

        list(pool.map(add_to_list, [row for row in split if row["role"] == "gallery"]))
        t.client.large_face_list.train(lfl)
        status = t.wait_training(
            "LargeFaceList_GetTrainingStatus", lambda: t.client.large_face_list.get_training_status(lfl)
        )
        t.require("data: gallery face list training succeeded", status.status == "succeeded", f"got {status.status}")
        hits = 0
        for row in detected:
            similar = t.client.face.find_similar(
                face_ids[row["path"]], large_face_list_id=lfl, max_num_of_candidates_returned=1, mode="matchFace"
            )
            hits += bool(similar) and identity_of_face.get(similar[0].persisted_face_id) == row["identity"]
        rate = hits / len(probes) if probes else 0.0
        print(f"find similar top-1: {hits}/{len(probes)} = {rate:.3f}")
        t.check("data: find similar top-1 >= 0.95", rate >= 0.95, f"got {rate:.3f}")

        # group: every probe face and one gallery face per identity; a group should hold one identity.
        sample = detected + [next(r for r in split if r["role"] == "gallery" and r["identity"] == name) for name in gallery]
        detect_all(row["path"] for row in sample)
        ids = {face_ids[row["path"]]: row["identity"] for row in sample if face_ids[row["path"]]}
        result = t.client.face.group(list(ids))
        pure = sum(1 for g in result.groups if len({ids[f] for f in g}) == 1)
        together = sum(1 for name in gallery if any({ids[f] for f in g} == {name} and len(g) >= 2 for g in result.groups))
        print(
            f"group: {len(ids)} faces of {len(gallery)} identities -> {len(result.groups)} groups, {pure} pure, "
            f"{together} identities with their faces in one pure group, {len(result.messy_group or [])} in the messy group"
        )
        paths = {face_ids[row["path"]]: row["path"] for row in sample if face_ids[row["path"]]}
        for g in result.groups:
            if len({ids[f] for f in g}) > 1:
                print("group: mixed: " + ", ".join(f"{ids[f]} ({paths[f]})" for f in g))
        purity = pure / len(result.groups) if result.groups else 0.0
        t.check("data: at least 95% of groups hold one identity", purity >= 0.95, f"{pure}/{len(result.groups)} pure")
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


# ---------------------------------------------------------------------------------------------
# Main


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="End-to-end test of face-server through the official Python Face client "
        "(azure-cognitiveservices-vision-face 0.6.1): all 69 operations, errors, persistence."
    )
    parser.add_argument("--server", type=Path, help="path to the face-server binary")
    parser.add_argument("--guest", type=Path, help="the guest component (Engine:Guest)")
    parser.add_argument("--models", type=Path, help="the models directory (Engine:Models)")
    parser.add_argument("--cache", type=Path, help="the compiled-guest cache (Engine:Cache)")
    parser.add_argument(
        "--container", help="instead of --server and the rest: run this image (podman or docker), as an operator would"
    )
    parser.add_argument("--billing", default="http://127.0.0.1:9/", help="the container's Billing endpoint")
    parser.add_argument(
        "--container-env", action="append", default=[], help="NAME=value for the container's environment"
    )
    parser.add_argument(
        "--stack-host",
        action="append",
        default=[],
        help="CONTAINER=PORT: a face-server container already running (a compose stack's); "
        "given twice or more, requests alternate between them",
    )
    parser.add_argument(
        "--host-name",
        default="host.containers.internal",
        help="the name by which the container reaches this machine (for the photo URLs)",
    )
    parser.add_argument("--photos", required=True, type=Path, help="the face_recognition 1.3.0 test photos")
    parser.add_argument("--data", type=Path, help="the shared data folder: also measure accuracy on it")
    parser.add_argument("--keep-logs", type=Path, help="copy the server's log into this directory")
    parser.add_argument(
        "--postgres", help="run the servers on this PostgreSQL database (Storage:Scenario=Postgres) instead of SQLite"
    )
    parser.add_argument(
        "--events-postgres",
        help="with --postgres through a pooler: the same database reached directly, for the event listener "
        "(Storage:EventsConnectionString)",
    )
    parser.add_argument(
        "--hosts", type=int, default=1, help="face-servers on the one database, requests alternating (needs --postgres)"
    )
    args = parser.parse_args(argv)
    if not (args.container or args.stack_host) and None in (args.server, args.guest, args.models, args.cache):
        parser.error("--server, --guest, --models and --cache are needed unless --container or --stack-host is given")
    if args.container and args.hosts > 1:
        parser.error("--container runs one host")
    return args


def load_photos(photo_dir: Path) -> dict[str, bytes]:
    photos = {name: (photo_dir / name).read_bytes() for name in PHOTOS}
    photos[TWO_FACES] = make_two_faces(photos["32bit.png"])
    photos[NO_FACE] = make_no_face()
    photos[CORRUPT] = make_corrupt()
    for name in (TWO_FACES, NO_FACE, CORRUPT):
        size = len(photos[name])
        if not 1024 < size < 6 * 1024 * 1024:
            raise ValueError(f"generated {name} is {size} bytes, outside 1 KB..6 MB")
    return photos


def print_log(path: Path, lines: int = 200) -> None:
    if not path.exists():
        return
    text = path.read_text(errors="replace").splitlines()
    print(f"-- last {min(lines, len(text))} lines of the server log ({path.name}):")
    for line in text[-lines:]:
        print(f"   | {line}")


def start_server(t: E2E, server: Server, label: str) -> bool:
    server.start()
    ready, reason = server.wait_ready()
    if not t.check(f"{label}: server ready", ready, reason):
        return False
    t.connect(server.endpoint)
    return True


def run(args: argparse.Namespace, results: Results, workdir: Path) -> None:
    data_dir = workdir / "data"
    data_dir.mkdir()
    log_path = workdir / "server.log"
    photos = load_photos(args.photos)
    if args.hosts > 1 and not args.postgres:
        raise ValueError("--hosts above 1 needs --postgres: the hosts share one database")
    if args.container:
        server = Container(args, log_path)
    elif args.stack_host:
        hosts = [StackHost(name, int(port), log_path) for name, port in (h.split("=", 1) for h in args.stack_host)]
        server = Hosts(hosts) if len(hosts) > 1 else hosts[0]
    elif args.hosts > 1:
        servers = []
        for i in range(args.hosts):
            (data_dir / f"host-{i + 1}").mkdir()
            servers.append(Server(args, data_dir / f"host-{i + 1}", log_path))
        server = Hosts(servers)
    else:
        server = Server(args, data_dir, log_path)
    completed = False
    try:
        in_container = args.container or args.stack_host
        with photo_server(args.photos, args.host_name if in_container else None) as photo_url:
            t = E2E(results, photos, photo_url)
            if not start_server(t, server, "start"):
                return
            run_area(t, "auth", area_auth)
            run_area(t, "detect", area_detect)
            run_area(t, "detect inputs", area_detect_inputs)
            run_area(t, "detect attributes", area_detect_attributes)
            run_area(t, "detect detection_02", area_detect_detection_02)
            if not {"obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg", "32bit.png"} <= t.faces.keys():
                t.results.fail("detect", "the reference faces were not detected; stopping")
                return
            run_area(t, "verify, find_similar, group", area_verify_similar_group)
            run_area(t, "PersonGroup", area_person_group, False)
            run_area(t, "LargePersonGroup", area_person_group, True)
            run_area(t, "identify errors", area_identify_errors)
            run_area(t, "FaceList", area_face_list)
            run_area(t, "LargeFaceList", area_large_face_list)
            run_area(t, "Snapshot", area_snapshot)
            run_area(t, "errors", area_errors)
            area_operations_covered(t)

            print("-- restart", flush=True)
            try:
                before = dump_state(t)
            except Exception as e:  # noqa: BLE001 - reported as a failure
                t.results.fail("restart: read the state before stopping", describe(e))
                before = None
            graceful, code = server.stop()
            t.check(
                "restart: server stops on SIGTERM", graceful and code == 0, f"graceful={graceful} exit={code}"
            )
            server.new_ports()
            if not start_server(t, server, "restart"):
                return
            run_area(t, "after restart", area_after_restart, before)

            if args.data:
                deadline = START + TOTAL_TIMEOUT_S - 60
                run_area(t, "shared data", area_dataset, args.data, deadline)
                run_area(t, "bad input", area_badinput, args.data)
            if isinstance(server, Hosts):
                t.check(
                    "every host answered a share of the requests",
                    all(n > 100 for n in server.answered),
                    f"answered per host: {server.answered}",
                )
                print(f"-- requests answered per host: {server.answered}", flush=True)
        completed = True
    finally:
        signal.alarm(0)  # cleanup is bounded: stop() waits at most STOP_GRACE_S, then kills
        server.stop()
        if isinstance(server, (Hosts, Container)):
            server.close()
        if results.failed or not completed:
            print_log(log_path)
        if args.keep_logs:
            args.keep_logs.mkdir(parents=True, exist_ok=True)
            if log_path.exists():
                shutil.copy(log_path, args.keep_logs / "face-server.log")


START = time.monotonic()


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.getLogger("msrest").setLevel(logging.ERROR)
    results = Results()

    def on_alarm(signum, frame):
        raise ScriptTimeout()

    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(TOTAL_TIMEOUT_S)
    workdir = Path(tempfile.mkdtemp(prefix="face-e2e-"))
    try:
        run(args, results, workdir)
    except ScriptTimeout:
        results.fail("run", f"stopped after {TOTAL_TIMEOUT_S} s")
    except Exception as e:  # noqa: BLE001 - reported as a failure
        results.fail("run: unexpected exception", describe(e))
    finally:
        signal.alarm(0)
        shutil.rmtree(workdir, ignore_errors=True)
    print(results.summary(), flush=True)
    return 1 if results.failed else 0


if __name__ == "__main__":
    sys.exit(main())
