"""A real Label Studio server for tests: started once per session on 127.0.0.1, stopped by pid.

Label Studio 1.23 lives in its own venv (`make labelstudio` -> `.venv-labelstudio`; override the
executable with `$LABEL_STUDIO_BIN`). The server gets a free port and a temp data dir, an admin user,
legacy tokens enabled for its organisation (so the fixture can bootstrap with a known token), and
local addresses allowed for ML backends and webhooks (both run on 127.0.0.1 in the tests).
The backend under test authenticates with a personal access token (JWT refresh token) created
through the API, as a team would.

Fixtures: `label_studio` (a `LabelStudioServer`), `ls_client` (an SDK client with the PAT).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 240.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def label_studio_bin() -> str:
    exe = os.environ.get("LABEL_STUDIO_BIN") or str(REPO / ".venv-labelstudio" / "bin" / "label-studio")
    if not os.access(exe, os.X_OK):
        raise RuntimeError(f"Label Studio executable {exe} not found: run `make labelstudio` (or set LABEL_STUDIO_BIN)")
    return exe


@dataclass
class LabelStudioServer:
    """A running Label Studio: its URL, admin login, legacy token, PAT (JWT refresh token) and pid."""

    url: str
    port: int
    username: str
    password: str
    legacy_token: str
    data_dir: str
    log_path: str
    proc: subprocess.Popen | None = None
    pat: str = ""
    env: dict = field(default_factory=dict)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self, timeout: float = START_TIMEOUT_S) -> None:
        """Start (or restart, on the same port and data) the server and wait for /health."""
        cmd = [label_studio_bin(), "start", "--no-browser", "--host", "127.0.0.1", "--port", str(self.port),
               "--username", self.username, "--password", self.password,
               "--user-token", self.legacy_token, "--enable-legacy-api-token"]
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=self.env,
                                     cwd=self.data_dir, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"Label Studio exited with {self.proc.returncode}; log: {self.tail()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(1.0)
        self.stop()
        raise RuntimeError(f"Label Studio did not answer {self.url}/health in {timeout:.0f} s; log: {self.tail()}")

    def stop(self) -> None:
        """Stop the server by its pid (process group: its workers too)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def tail(self, n: int = 3000) -> str:
        try:
            return Path(self.log_path).read_text(errors="replace")[-n:]
        except OSError:
            return "(no log)"

    def create_pat(self) -> str:
        """A personal access token (JWT refresh token) of the admin, made through the API."""
        r = httpx.post(f"{self.url}/api/token/", headers={"Authorization": f"Token {self.legacy_token}"}, timeout=30)
        r.raise_for_status()
        return r.json()["token"]


def start_label_studio() -> LabelStudioServer:
    data_dir = tempfile.mkdtemp(prefix="ls-test-")
    port = free_port()
    env = dict(os.environ)
    env.update({
        "LABEL_STUDIO_BASE_DATA_DIR": data_dir,
        "HOME": data_dir,  # keep its caches off the user's home
        "ML_BLOCK_LOCAL_IP": "false",  # the SAM 3 ML backend runs on 127.0.0.1
        "USE_DEFAULT_BANNED_SUBNETS": "false",  # webhooks to 127.0.0.1
        "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",
        "SENTRY_DSN": "", "FRONTEND_SENTRY_DSN": "",
        "COLLECT_ANALYTICS": "false",
    })
    server = LabelStudioServer(url=f"http://127.0.0.1:{port}", port=port, username="admin@example.com",
                               password=secrets.token_urlsafe(12), legacy_token=secrets.token_hex(20),
                               data_dir=data_dir, log_path=os.path.join(data_dir, "server.log"), env=env)
    server.start()
    server.pat = server.create_pat()
    return server


@pytest.fixture(scope="session")
def label_studio():
    server = start_label_studio()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.data_dir, ignore_errors=True)
