"""An S3 endpoint for tests: moto's S3 server on a loopback port, in this process (so its buckets
survive a stop and start on the same port, like a MinIO restart), read back with the MinIO SDK."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import uuid
from urllib.parse import parse_qsl, quote, urlsplit

from minio import Minio
from moto.server import ThreadedMotoServer

from tests.conftest import answers, free_port, wait_until

ACCESS_KEY = "jmbooru-test-key"
SECRET_KEY = "s3-secret-value-never-logged"
REGION = "us-east-1"


class S3Server:
    def __init__(self) -> None:
        self.port = free_port()
        self._server: ThreadedMotoServer | None = None
        self.start()
        self.client = Minio(f"127.0.0.1:{self.port}", access_key=ACCESS_KEY, secret_key=SECRET_KEY,
                            secure=False, region=REGION)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()
        wait_until(lambda: answers(self.endpoint, any_status=True), timeout=10,
                   message=f"moto's S3 server did not answer on {self.endpoint}")

    def stop(self) -> None:
        """Down as a stopped container is: the port refuses connections (the buckets are kept)."""
        if self._server is not None:
            self._server.stop()
            inner = self._server._server  # werkzeug leaves the listening socket open after shutdown
            if inner is not None:
                inner.server_close()
            self._server = None

    def new_bucket(self, *, versioned: bool = True) -> str:
        name = f"jmbooru-{uuid.uuid4().hex[:12]}"
        self.client.make_bucket(name)
        if versioned:  # every PUT of a key becomes a version: uploads can be counted
            from minio.commonconfig import ENABLED
            from minio.versioningconfig import VersioningConfig

            self.client.set_bucket_versioning(name, VersioningConfig(ENABLED))
        return name

    def versions(self, bucket: str, key: str) -> int:
        return sum(1 for obj in self.client.list_objects(bucket, prefix=key, include_version=True)
                   if obj.object_name == key and not obj.is_delete_marker)

    def read(self, bucket: str, key: str) -> bytes:
        response = self.client.get_object(bucket, key)
        try:
            return response.read()
        finally:
            response.close()
            response.release_conn()

    def exists(self, bucket: str, key: str) -> bool:
        from minio.error import S3Error

        try:
            self.client.stat_object(bucket, key)
            return True
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchObject", "ResourceNotFound"):
                return False
            raise


def sigv4_query_signature(url: str, secret: str, region: str = REGION) -> str:
    """Recompute the AWS Signature Version 4 of a presigned GET URL (query-string auth, UNSIGNED-PAYLOAD),
    from AWS's published algorithm, independently of the code that signed it."""
    parts = urlsplit(url)
    params = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "X-Amz-Signature"]
    query = "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(params))
    amz_date = dict(params)["X-Amz-Date"]
    scope = f"{amz_date[:8]}/{region}/s3/aws4_request"
    canonical = "\n".join(["GET", parts.path, query, f"host:{parts.netloc}", "", "host", "UNSIGNED-PAYLOAD"])
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = f"AWS4{secret}".encode()
    for part in (amz_date[:8], region, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


@contextlib.contextmanager
def s3_down(server: S3Server):
    server.stop()
    try:
        yield
    finally:
        server.start()
