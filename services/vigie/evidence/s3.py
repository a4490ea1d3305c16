"""The evidence store in S3-compatible object storage (AWS S3, MinIO, Ceph RGW, a cloud's), through boto3.

Location: ``s3://BUCKET[/PREFIX][?endpoint=URL&region=NAME]``, e.g.
``s3://vigie-evidence/lyon?endpoint=https://minio.city.local:9000``. Credentials are never in the
location: boto3's own chain provides them (``AWS_ACCESS_KEY_ID`` and ``AWS_SECRET_ACCESS_KEY``, or a
credentials file named by ``AWS_SHARED_CREDENTIALS_FILE``, e.g. a mounted Kubernetes Secret, or the
machine's role). An object is written by one PUT carrying its MD5 (``Content-MD5``): the store keeps
it whole or refuses it, never part of it. Every call is blocking (run it in a thread); an unreachable
store, a refused request or a missing object raises :class:`~vigie.evidence.store.StoreError` naming
the item and the store (bucket and endpoint, never a credential).
"""

from __future__ import annotations

import base64
import hashlib
from urllib.parse import parse_qs, urlsplit

from vigie.evidence.store import StoreError

__all__ = ["S3Store"]


class S3Store:
    """Evidence items as objects ``PREFIX/<key>`` of one bucket.

    Args:
        location: ``s3://BUCKET[/PREFIX][?endpoint=URL&region=NAME]``.
        timeout_s: connect and read timeout of each request, seconds.

    Raises:
        StoreError: a location that is not such a URL (no bucket, an unknown parameter).
    """

    def __init__(self, location: str, timeout_s: float = 10.0) -> None:
        import boto3
        from botocore.config import Config

        parts = urlsplit(location)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        unknown = sorted(set(query) - {"endpoint", "region"})
        if parts.scheme != "s3" or not parts.netloc or unknown:
            raise StoreError(f"evidence store {location.split('?')[0]!r}: expected s3://BUCKET[/PREFIX]"
                             f"[?endpoint=URL&region=NAME]" + (f" (unknown: {', '.join(unknown)})" if unknown else ""))
        self.bucket = parts.netloc
        self.prefix = parts.path.strip("/")
        self.endpoint = query.get("endpoint")
        self.client = boto3.client(
            "s3", endpoint_url=self.endpoint, region_name=query.get("region", "us-east-1"),
            config=Config(connect_timeout=timeout_s, read_timeout=timeout_s, retries={"max_attempts": 2},
                          s3={"addressing_style": "path"}))

    def describe(self) -> str:
        """The store as named in messages: bucket, prefix and endpoint (no credential)."""
        where = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        return f"{where} at {self.endpoint}" if self.endpoint else where

    def _key(self, key: str) -> str:
        if key.startswith("/") or ".." in key.split("/"):
            raise StoreError(f"evidence key {key!r} is outside the store")
        return f"{self.prefix}/{key}" if self.prefix else key

    def _error(self, key: str, verb: str, exc: Exception) -> StoreError:
        reason = getattr(exc, "response", {}).get("Error", {}).get("Code") or type(exc).__name__
        detail = str(exc).split("\n")[0][:200]
        return StoreError(f"evidence {key}: {verb} {self.describe()}: {reason}: {detail}")

    def put(self, key: str, data: bytes) -> str:
        """Write ``data`` at ``key`` in one PUT checked by its MD5; returns its hex SHA-256. Raises StoreError."""
        from botocore.exceptions import BotoCoreError, ClientError

        md5 = base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()
        try:
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, ContentMD5=md5)
        except (BotoCoreError, ClientError) as exc:
            raise self._error(key, "not written to", exc) from None
        return hashlib.sha256(data).hexdigest()

    def read(self, key: str) -> bytes:
        """The bytes of ``key``. Raises StoreError when missing or the store does not answer."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()
        except (BotoCoreError, ClientError) as exc:
            raise self._error(key, "cannot be read from", exc) from None

    def delete(self, key: str) -> bool:
        """Remove ``key`` (S3 answers the same whether it was there or not: True). Raises StoreError."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))
        except (BotoCoreError, ClientError) as exc:
            raise self._error(key, "cannot be destroyed in", exc) from None
        return True
