"""Per-process caches (ingest's, the verified keys) stay bounded, the oldest entries out
first, under threads."""

from __future__ import annotations

import threading

from server.caches import bounded_put


def test_the_oldest_entry_goes_first_and_the_size_is_kept():
    cache: dict = {}
    for n in range(5):
        bounded_put(cache, n, str(n), 3)
    assert list(cache) == [2, 3, 4]


def test_concurrent_writers_never_break_the_bound():
    cache: dict = {}
    errors: list[BaseException] = []

    def write(offset: int) -> None:
        try:
            for n in range(2_000):
                bounded_put(cache, (offset, n), n, 16)
        except BaseException as exc:  # noqa: BLE001 - any error fails the test
            errors.append(exc)
    threads = [threading.Thread(target=write, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(cache) == 16
