"""The storage layer's error types: every failure names the URI (and member or field) it is about.

All of them derive from StorageError, so callers can catch one type; the more specific classes also
derive from the matching built-in (ValueError, FileNotFoundError, PermissionError, ConnectionError)
so generic handlers keep working.
"""

from __future__ import annotations


class StorageError(Exception):
    """A storage operation failed; `uri` is the object or file it was about."""

    def __init__(self, uri: str, message: str):
        self.uri = uri
        self.reason = message
        super().__init__(f"{uri}: {message}")


class UnknownSchemeError(StorageError, ValueError):
    """The URI has a scheme this layer does not handle (only file:// , plain paths and s3://)."""


class PathTraversalError(StorageError, ValueError):
    """A path uses `..` (or an absolute path) to leave the root it must stay under."""


class NotFoundError(StorageError, FileNotFoundError):
    """The object or file does not exist."""


class BucketNotFoundError(StorageError):
    """The S3 bucket named in the URI does not exist."""


class StorageAuthError(StorageError, PermissionError):
    """The credentials were rejected (unknown key, bad signature) or lack permission."""


class EndpointUnreachableError(StorageError, ConnectionError):
    """The S3 endpoint could not be reached (connection refused, timeout, DNS)."""


class ShardError(StorageError):
    """A WebDataset shard is truncated or one of its members is corrupt; `member` names it."""

    def __init__(self, uri: str, member: str | None, message: str):
        self.member = member
        where = f"member {member!r}: " if member else ""
        super().__init__(uri, where + message)
        self.reason = message


class SchemaVersionError(StorageError):
    """A Parquet table was written with another schema (name or version) than the reader expects."""


class SacoFormatError(StorageError, ValueError):
    """An SA-Co JSON document is malformed or does not match its images."""


class InvalidURIError(StorageError, ValueError):
    """The URI is malformed: empty, control characters, a host in a file:// URI, no bucket."""
