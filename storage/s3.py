"""S3 connection settings and boto3 plumbing: client creation and translation of botocore errors.

`S3Config` holds endpoint, region and credentials; fields left empty fall back to the standard AWS
environment variables (AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL, AWS_REGION / AWS_DEFAULT_REGION,
AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN) and then to boto3's own chain.
`translate()` maps a botocore exception to the StorageError subclass that says what went wrong;
`BodyStream` streams a GET body; `put_stream()` uploads in one put or an all-or-nothing multipart.
"""

from __future__ import annotations

import io
import os
import threading

from pydantic import BaseModel, Field

from storage.errors import (
    BucketNotFoundError,
    EndpointUnreachableError,
    NotFoundError,
    StorageAuthError,
    StorageError,
)

_AUTH_CODES = {
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "AccessDenied",
    "InvalidToken",
    "ExpiredToken",
    "AuthorizationHeaderMalformed",
    "InvalidSecurity",
    "403",
    "Forbidden",
}
_MISSING_CODES = {"NoSuchKey", "404", "NotFound", "NoSuchUpload"}


class S3Config(BaseModel):
    """How to reach S3. Empty fields come from the AWS environment variables (or boto3's chain)."""

    endpoint_url: str | None = Field(None, description="e.g. http://127.0.0.1:8333 for SeaweedFS")
    region: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    session_token: str | None = None
    connect_timeout: float = 5.0
    read_timeout: float = 60.0
    max_attempts: int = 3
    part_size: int = Field(16 * 1024 * 1024, description="multipart part size for large uploads")

    def resolved_endpoint(self) -> str | None:
        return (
            self.endpoint_url
            or os.environ.get("AWS_ENDPOINT_URL_S3")
            or os.environ.get("AWS_ENDPOINT_URL")
            or None
        )

    def resolved_region(self) -> str:
        return (
            self.region
            or os.environ.get("AWS_REGION")
            or os.environ.get("AWS_DEFAULT_REGION")
            or "us-east-1"
        )


_lock = threading.Lock()


def make_client(cfg: S3Config):
    """A boto3 S3 client for `cfg` (path-style addressing, bounded timeouts and retries)."""
    import boto3
    from botocore.config import Config

    with _lock:  # boto3 session creation is not thread-safe
        session = boto3.session.Session(
            aws_access_key_id=cfg.access_key_id or None,
            aws_secret_access_key=cfg.secret_access_key or None,
            aws_session_token=cfg.session_token or None,
            region_name=cfg.resolved_region(),
        )
        return session.client(
            "s3",
            endpoint_url=cfg.resolved_endpoint(),
            config=Config(
                connect_timeout=cfg.connect_timeout,
                read_timeout=cfg.read_timeout,
                retries={"max_attempts": cfg.max_attempts, "mode": "standard"},
                s3={"addressing_style": "path"},
                signature_version="s3v4",
            ),
        )


def error_code(exc: BaseException) -> str:
    resp = getattr(exc, "response", None) or {}
    code = str(resp.get("Error", {}).get("Code", "") or "")
    if not code:
        status = resp.get("ResponseMetadata", {}).get("HTTPStatusCode")
        code = str(status or "")
    return code


def translate(exc: BaseException, uri: str, endpoint: str | None) -> StorageError:
    """Turn a botocore/boto3 exception into a StorageError naming `uri` and what went wrong."""
    from botocore import exceptions as bx

    if isinstance(exc, StorageError):
        return exc
    where = f" (endpoint {endpoint})" if endpoint else ""
    if isinstance(
        exc, (bx.EndpointConnectionError, bx.ConnectTimeoutError, bx.ConnectionClosedError)
    ):
        return EndpointUnreachableError(uri, f"S3 endpoint unreachable{where}: {exc}")
    if isinstance(exc, (bx.ReadTimeoutError, bx.ProxyConnectionError, bx.HTTPClientError)):
        return EndpointUnreachableError(uri, f"S3 connection failed{where}: {exc}")
    if isinstance(exc, (bx.NoCredentialsError, bx.PartialCredentialsError)):
        return StorageAuthError(uri, f"no S3 credentials configured{where}: {exc}")
    if isinstance(exc, bx.ClientError):
        code = error_code(exc)
        if code == "NoSuchBucket":
            return BucketNotFoundError(uri, f"bucket does not exist{where}")
        if code in _AUTH_CODES:
            return StorageAuthError(
                uri, f"S3 rejected the credentials or denied access ({code}){where}: {exc}"
            )
        if code in _MISSING_CODES:
            return NotFoundError(uri, "no such object")
        return StorageError(uri, f"S3 error {code}{where}: {exc}")
    return StorageError(uri, f"S3 operation failed{where}: {type(exc).__name__}: {exc}")


def is_client_error(exc: BaseException) -> bool:
    from botocore import exceptions as bx

    return isinstance(exc, bx.BotoCoreError | bx.ClientError)


class BodyStream(io.RawIOBase):
    """A raw stream over a botocore StreamingBody, so reads can be buffered and streamed."""

    def __init__(self, body, uri: str, endpoint: str | None):
        self._body, self._uri, self._endpoint = body, uri, endpoint

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        try:
            chunk = self._body.read(len(buf))
        except Exception as err:  # noqa: BLE001 - translated with the URI
            raise translate(err, self._uri, self._endpoint) from err
        buf[: len(chunk)] = chunk
        return len(chunk)

    def close(self) -> None:
        self._body.close()
        super().close()


def put_stream(client, call, fh, size: int, part_size: int) -> None:
    """Upload `size` bytes from `fh`: one put_object, or a multipart upload for big objects.

    Either way the object appears only when complete (put_object, or complete_multipart_upload);
    a failed multipart upload is aborted. `call(fn, **kw)` runs a client method with Bucket/Key
    filled in and errors translated.
    """
    if size <= part_size:
        call(client.put_object, Body=fh.read())
        return
    uid = call(client.create_multipart_upload)["UploadId"]
    parts = []
    try:
        while chunk := fh.read(part_size):
            n = len(parts) + 1
            r = call(client.upload_part, UploadId=uid, PartNumber=n, Body=chunk)
            parts.append({"PartNumber": n, "ETag": r["ETag"]})
        call(client.complete_multipart_upload, UploadId=uid, MultipartUpload={"Parts": parts})
    except BaseException:
        try:
            call(client.abort_multipart_upload, UploadId=uid)
        except Exception:  # noqa: BLE001 - the original error matters more
            pass
        raise
