"""S3 that accepts connections and never answers (hostile-inputs.md B5 81, option B): the
request must end in a 503 within a bounded time, freeing its worker thread before a proxy
(nginx's default ``proxy_read_timeout`` is 60 s) or the tablet gives up.

Measured with the fault harness (``python -m bench.faults run --faults s3_blackhole``): with
the default settings a put waits ``s3_read_timeout_seconds`` (30 s) on each of 4 attempts
(``retries={"max_attempts": 3}`` counts retries, not attempts) of its first S3 call: two
minutes. Collect-like clients time out and send again, and every resend pins one more of the
server's 16 threads.
"""

from __future__ import annotations

import hashlib
import io
import socket
import threading
from collections.abc import Iterator

import pytest

from server.settings import Settings
from server.storage import BlobStoreError, open_blob_store

pytestmark = pytest.mark.postgres_only

BUDGET_SECONDS = 25.0  # a put, then a 503, well inside a 60 s proxy timeout


@pytest.fixture
def black_hole() -> Iterator[str]:
    """A port that accepts connections (the kernel's backlog) and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()


def test_s3_black_hole__a_put_gives_up_within_the_budget(black_hole):
    store = open_blob_store(Settings(
        env="test", blob_store="s3://bucket/blobs", s3_endpoint_url=black_hole,
        s3_region="us-east-1", s3_access_key_id="x", s3_secret_access_key="x",
        s3_addressing_style="path"))
    data = b"a photo, while S3 hangs"
    key = hashlib.sha256(data).hexdigest()
    outcome: list[BaseException | None] = []

    def put() -> None:
        try:
            store.put(key, io.BytesIO(data), size=len(data), sha256=key,
                      md5=hashlib.md5(data).hexdigest(), content_type="image/jpeg")
            outcome.append(None)
        except BlobStoreError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=put, daemon=True)
    thread.start()
    thread.join(BUDGET_SECONDS)
    assert not thread.is_alive(), f"still waiting for S3 after {BUDGET_SECONDS:.0f} s"
    assert outcome and isinstance(outcome[0], BlobStoreError)
