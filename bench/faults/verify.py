"""The invariants checked after every fault, read straight from PostgreSQL and the bucket
(psycopg and a plain boto3 client: not dodoso's own code, which is what is under test).

1. Every instanceID answered 201 is stored once, its XML byte-identical to what was sent,
   with every file of every POST answered 201: the bytes read back from the bucket have the
   sha256 of the bytes sent.
2. Nothing is half-stored: every stored version has its flattened root row, an attachment
   row for each file it refers to, ``attachments_present`` equal to the files it has, and
   every one of those has its bytes in the bucket; nothing is stored for a body torn off
   halfway; nothing is stored that no request had answered 201 (unless its client gave up
   on it after a failure: a commit can succeed and its answer be lost).
3. After the clean-up (grace 0, nothing in flight): the bucket holds exactly the blobs the
   database has rows for, and every blob row is referred to.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import psycopg
from botocore.exceptions import BotoCoreError, ClientError

from bench.faults.clients import FORM_ID, Ledger, Submission


@dataclass
class Check:
    acknowledged: int = 0
    """instanceIDs with every POST answered 201."""
    found: int = 0
    """Of those, found whole: XML and every acknowledged file, bytes compared."""
    stored: int = 0
    """Submissions stored (whatever the ledger says)."""
    attachments_verified: int = 0
    problems: list[str] = field(default_factory=list)
    suspects: set[str] = field(default_factory=set)
    """instanceIDs a problem is about, for a closer look."""

    @property
    def ok(self) -> bool:
        return not self.problems and self.found == self.acknowledged

    def problem(self, text: str) -> None:
        if len(self.problems) < 50:
            self.problems.append(text)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def bucket_objects(s3: Any, bucket: str, prefix: str) -> dict[str, int]:
    """sha256 key → size, of every object under the prefix."""
    found: dict[str, int] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{prefix}/"):
        for item in page.get("Contents", []):
            found[item["Key"].rpartition("/")[2]] = int(item["Size"])
    return found


def object_key(prefix: str, key: str) -> str:
    return f"{prefix}/{key[0:2]}/{key[2:4]}/{key}"


def verify(db_url: str, s3: Any, bucket: str, prefix: str, ledger: Ledger, *,
           read_back: set[str] | None = None) -> Check:
    """``read_back``: attachments (``instanceID/name``) whose bytes were read back and
    compared already, not read again (they are immutable; their listing is still checked);
    the ones read now are added to it."""
    check = Check()
    already = read_back if read_back is not None else set()
    with psycopg.connect(db_url) as conn:
        versions = conn.execute(
            """SELECT d.id, d.instance_id, d.xml, d.attachments_expected, d.attachments_present,
                      (SELECT count(*) FROM submission_rows r
                        WHERE r.submission_def_id = d.id AND r.table_path = '') AS roots
                 FROM submission_defs d JOIN forms f ON f.id = d.form_id
                WHERE f.xml_form_id = %s AND NOT d.draft""", (FORM_ID,)).fetchall()
        files: dict[int, dict[str, tuple[str | None, int | None]]] = defaultdict(dict)
        for def_id, name, key, size in conn.execute(
                """SELECT a.submission_def_id, a.name, b.sha256, b.size
                     FROM submission_attachments a LEFT JOIN blobs b ON b.id = a.blob_id"""):
            files[def_id][name] = (key, size)
        hollow = conn.execute(
            """SELECT s.instance_id FROM submissions s WHERE NOT EXISTS
                 (SELECT 1 FROM submission_defs d WHERE d.submission_id = s.id)""").fetchall()
        doubled = conn.execute(
            """SELECT instance_id, count(*) FROM submissions GROUP BY form_id, draft, instance_id
               HAVING count(*) > 1""").fetchall()
    objects = bucket_objects(s3, bucket, prefix)
    check.stored = len(versions)
    for (instance_id,) in hollow:
        check.problem(f"{instance_id}: a submission without any version")
    for instance_id, count in doubled:
        check.problem(f"{instance_id}: stored {count} times")

    acknowledged = ledger.acknowledged()
    check.acknowledged = len(acknowledged)
    by_id = {instance_id: (def_id, xml, expected, present, roots)
             for def_id, instance_id, xml, expected, present, roots in versions}
    to_read: list[tuple[str, str, str]] = []  # (instanceID, name, sha256 sent)
    whole_ids: set[str] = set()

    # 2. every stored version is whole, and was acknowledged
    for instance_id, (def_id, _xml, expected, present, roots) in by_id.items():
        if instance_id in ledger.torn:
            check.problem(f"{instance_id}: stored, though its only body was torn off halfway")
        if instance_id not in ledger.acked and instance_id not in ledger.abandoned:
            check.problem(f"{instance_id}: stored, but no request for it was answered 201")
        if roots != 1:
            check.problem(f"{instance_id}: {roots} root rows")
        have = files[def_id]
        if len(have) != expected:
            check.problem(f"{instance_id}: {len(have)} attachment rows, {expected} expected")
        with_bytes = [name for name, (key, _) in have.items() if key is not None]
        if len(with_bytes) != present:
            check.problem(f"{instance_id}: attachments_present {present}, "
                          f"{len(with_bytes)} stored")
        for name in with_bytes:
            key, size = have[name]
            assert key is not None
            if objects.get(key) != size:
                check.problem(f"{instance_id}/{name}: blob {key[:12]}… of {size} bytes, the "
                              f"bucket has {objects.get(key)}")

    # 1. every acknowledged instanceID is there, byte for byte
    for instance_id in sorted(ledger.acked):
        submission: Submission | None = ledger.sent.get(instance_id)
        stored = by_id.get(instance_id)
        if submission is None:
            continue
        if stored is None:
            check.problem(f"{instance_id}: answered 201, not stored")
            continue
        def_id, xml, *_ = stored
        whole = xml.encode("utf-8") == submission.xml
        if not whole:
            check.problem(f"{instance_id}: stored XML differs from the XML answered 201")
        for post in sorted(ledger.acked[instance_id]):
            for part in submission.posts[post]:
                key, _ = files[def_id].get(part.name, (None, None))
                if key != sha256(part.data):
                    whole = False
                    check.problem(f"{instance_id}/{part.name}: answered 201, stored "
                                  + ("nothing" if key is None else
                                     f"other bytes: {_whose(ledger, key)}"))
                    check.suspects.add(instance_id)
                elif f"{instance_id}/{part.name}" in already:
                    check.attachments_verified += 1
                else:
                    to_read.append((instance_id, part.name, key))
        if whole and instance_id in acknowledged:
            whole_ids.add(instance_id)

    # the bytes themselves, read back
    def read(item: tuple[str, str, str]) -> str | None:
        instance_id, name, key = item
        try:
            body = s3.get_object(Bucket=bucket, Key=object_key(prefix, key))["Body"].read()
        except (BotoCoreError, ClientError) as exc:
            return f"{instance_id}/{name}: cannot be read back ({type(exc).__name__})"
        return None if sha256(body) == key else f"{instance_id}/{name}: bytes read back differ"

    with ThreadPoolExecutor(max_workers=8) as pool:
        for item, failure in zip(to_read, pool.map(read, to_read), strict=True):
            if failure:
                check.problem(failure)
                whole_ids.discard(item[0])
            else:
                check.attachments_verified += 1
                already.add(f"{item[0]}/{item[1]}")
    check.found = len(whole_ids)
    return check


def _whose(ledger: Ledger, key: str) -> str:
    """Which file sent (if any) has these bytes: the first clue when the wrong ones are
    stored."""
    owners = [f"{i}/{name}" for i, sub in ledger.sent.items()
              for name, part in sub.parts.items() if sha256(part.data) == key]
    return f"sha256 {key[:12]}…, the bytes of {', '.join(owners[:3]) or 'no file sent'}"


def diagnose(db_url: str, ledger: Ledger, instance_ids: set[str]) -> dict[str, Any]:
    """Everything stored and answered about these instanceIDs."""
    out: dict[str, Any] = {}
    with psycopg.connect(db_url) as conn:
        for instance_id in sorted(instance_ids):
            versions = conn.execute(
                """SELECT d.id, d.submission_id, d.created_at::text, d.attachments_expected,
                          d.attachments_present, d.xml_sha256
                     FROM submission_defs d WHERE d.instance_id = %s""", (instance_id,)).fetchall()
            files = conn.execute(
                """SELECT a.submission_def_id, a.name, a.updated_at::text, b.id, b.sha256, b.size,
                          b.content_type, b.created_at::text
                     FROM submission_attachments a JOIN submission_defs d
                       ON d.id = a.submission_def_id LEFT JOIN blobs b ON b.id = a.blob_id
                    WHERE d.instance_id = %s ORDER BY a.id""", (instance_id,)).fetchall()
            events = conn.execute(
                """SELECT e.action, e.details::text, e.logged_at::text FROM audit_events e
                    WHERE e.target_type = 'submission' AND e.target_id IN
                          (SELECT submission_id::text FROM submission_defs
                           WHERE instance_id = %s)
                    ORDER BY e.id""", (instance_id,)).fetchall()
            sent = ledger.sent.get(instance_id)
            out[instance_id] = {
                "versions": versions, "attachments": files, "audit": events,
                "sent": {name: [sha256(part.data), len(part.data), post]
                         for post, parts in enumerate(sent.posts) for part in parts
                         for name in [part.name]} if sent else None,
                "answers": [(a.method, a.post, a.status, a.error, a.at, round(a.ms))
                            for a in ledger.answers if a.instance_id == instance_id],
            }
    return out


@dataclass
class Leftovers:
    objects_without_row: int
    rows_without_object: int
    unreferenced_rows: int

    @property
    def none(self) -> bool:
        return not (self.objects_without_row or self.rows_without_object
                    or self.unreferenced_rows)


def leftovers(db_url: str, s3: Any, bucket: str, prefix: str, references: list[str]
              ) -> Leftovers:
    """``references``: every ``table.column`` that refers to a blob."""
    refs = " AND ".join(f"NOT EXISTS (SELECT 1 FROM {t} WHERE {t}.{c} = b.id)"
                        for t, c in (r.split(".") for r in references))
    with psycopg.connect(db_url) as conn:
        rows = {key for (key,) in conn.execute("SELECT sha256 FROM blobs")}
        unreferenced = conn.execute(f"SELECT count(*) FROM blobs b WHERE {refs}").fetchone()[0]
    objects = set(bucket_objects(s3, bucket, prefix))
    return Leftovers(len(objects - rows), len(rows - objects), unreferenced)
