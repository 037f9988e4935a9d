"""Collect-like clients that keep a ledger of every answer.

A submission is an instance of the household migration survey (tests/data/forms): a roster
with stays abroad and transfers, a photo of the dwelling and the form's audit log, as Collect
fills it. Collect sends it as ``HEAD …/submission`` (only a 204 counts), then a multipart POST
of ``xml_submission_file`` and the files; when the files exceed what the server accepts in
one request it splits them over several POSTs, each repeating the identical XML, each but the
last carrying ``*isIncomplete*=yes`` (openrosa-wire.md). Here a share of the submissions is
split that way, and a share reuses a photo another submission sent (the server stores
identical bytes once).

Only 201 and 202 count as success. Like Collect, a client whose upload failed (a 5xx, a
refused or dropped connection, a timeout) sends the whole submission again later, here after
a short back-off (a person or auto-send retries minutes later, which a test cannot wait
for; ``Retry-After`` is not waited for either). Any other answer is final and a failure of the run.

The ledger records every request and its answer, the POSTs each instanceID had answered 201
(what must be found afterwards), the bodies torn off halfway (which must not be), and the
outcome of deliberate races.
"""

from __future__ import annotations

import queue
import random
import socket
import struct
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import requests

from bench.ingest import OPENROSA

FORM_ID = "household_migration"
FORM_VERSION = "2024061201"
PHOTO_FIELD_NAME = "photo"
AUDIT_NAME = "audit.csv"
INCOMPLETE_MARKER = "*isIncomplete*"
XML_SUBMISSION_FILE = "xml_submission_file"
TIMEOUT = (5, 60)
SUCCESS = (201, 202)
JFIF = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"

NAMES = ["Amina Said", "Juma Said", "Mwanaisha Ali", "Baraka Otieno", "Neema Wanjiru",
         "Hassan Mwinyi", "Zawadi Achieng", "Omari Kiprono", "Rehema Njeri", "Tumaini Mutua"]
DISTRICTS = {"coast": ["mombasa", "kilifi"], "western": ["kakamega"]}
COUNTRIES = ["sa", "qa", "ae"]
CHANNELS = ["mpesa", "bank", "hand"]
INCOMES = ["farming", "wages", "remittances"]


@dataclass(frozen=True)
class Part:
    name: str
    data: bytes
    content_type: str


@dataclass(frozen=True)
class Submission:
    instance_id: str
    xml: bytes
    posts: tuple[tuple[Part, ...], ...]
    """The files each POST carries; more than one POST is Collect's split upload."""

    @property
    def parts(self) -> dict[str, Part]:
        return {p.name: p for post in self.posts for p in post}

    @property
    def size(self) -> int:
        return len(self.xml) + sum(len(p.data) for p in self.parts.values())


# -- what is sent -------------------------------------------------------------------------------

def instance_xml(rng: random.Random, instance_id: str, photo_name: str) -> bytes:
    """An interview as javarosa serialises it (``@`` as ``&#64;``, like the corpus sample)."""
    region = rng.choice(sorted(DISTRICTS))
    roster = []
    for _ in range(rng.randint(1, 5)):
        stays = []
        abroad = rng.random() < 0.5
        for _ in range(rng.randint(1, 2) if abroad else 0):
            transfers = "".join(
                f"<transfers><transfer_date>20{rng.randint(15, 24)}-"
                f"{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}</transfer_date>"
                f"<amount_kes>{rng.randint(500, 90000)}</amount_kes><transfer_channel>"
                f"{rng.choice(CHANNELS)}</transfer_channel></transfers>"
                for _ in range(rng.randint(0, 3)))
            stays.append(
                f"<stays_abroad><destination>{rng.choice(COUNTRIES)}</destination>"
                f"<year_left>{rng.randint(2005, 2024)}</year_left>"
                f"<reasons_ranked>work family study</reasons_ranked><job><occupation>Driver "
                f"&#64; depot {rng.randint(1, 99)}</occupation><wage_usd>{rng.randint(150, 900)}"
                f"</wage_usd></job>{transfers}</stays_abroad>")
        incomes = " ".join(rng.sample(INCOMES, rng.randint(0, 2)))
        roster.append(
            f"<roster><member_name>{rng.choice(NAMES)}</member_name>"
            f"<member_age>{rng.randint(1, 90)}</member_age>"
            f"<member_sex>{rng.choice(['female', 'male'])}</member_sex><livelihood>"
            f"<income_sources>{incomes}</income_sources><monthly_income>"
            f"{rng.randint(0, 60000)}</monthly_income></livelihood>"
            f"<ever_abroad>{'yes' if abroad else 'no'}</ever_abroad>{''.join(stays)}</roster>")
    lat, lon = -3.9 + rng.random() / 10, 39.7 + rng.random() / 10
    return (
        "<?xml version='1.0' ?><data id=\"household_migration\" version=\"2024061201\" "
        'xmlns:h="http://www.w3.org/1999/xhtml" xmlns:jr="http://openrosa.org/javarosa" '
        'xmlns:odk="http://www.opendatakit.org/xforms" xmlns:orx="http://openrosa.org/xforms">'
        "<start>2024-06-12T09:14:03.120+03:00</start><end>2024-06-12T09:41:57.004+03:00</end>"
        f"<deviceid>collect:{rng.getrandbits(64):016x}</deviceid><consent>OK</consent>"
        f"<region>{region}</region><district>{rng.choice(DISTRICTS[region])}</district>"
        f"<village>Mtwapa</village><household_gps>{lat:.7f} {lon:.7f} 12.5 4.8</household_gps>"
        f"<dwelling_photo>{photo_name}</dwelling_photo>{''.join(roster)}"
        f"<household_size>{len(roster)}</household_size><thanks/>"
        f"<meta><audit>{AUDIT_NAME}</audit><instanceID>{instance_id}</instanceID></meta></data>"
    ).encode()


def audit_log(rng: random.Random) -> bytes:
    rows = ["event,node,start,end"]
    t = 1718173211000
    for node in ("consent", "region", "district", "village", "household_gps", "dwelling_photo",
                 "roster"):
        rows.append(f"question,/data/{node},{t},{t + rng.randint(900, 30000)}")
        t += rng.randint(1000, 40000)
    return ("\n".join(rows) + "\n").encode()


class Factory:
    """Makes submissions: ``photo_bytes`` a (min, max) size, ``split_share`` of them sent
    over two POSTs, ``shared_photo_share`` reusing an earlier submission's photo."""

    def __init__(self, *, seed: int | None = None, photo_bytes: tuple[int, int] = (60_000,
                 200_000), split_share: float = 0.3, shared_photo_share: float = 0.1) -> None:
        self.rng = random.Random(seed)
        self.photo_bytes = photo_bytes
        self.split_share = split_share
        self.shared_photo_share = shared_photo_share
        self._photos: list[bytes] = []
        self._lock = threading.Lock()

    def _photo(self) -> bytes:
        if self._photos and self.rng.random() < self.shared_photo_share:
            return self.rng.choice(self._photos)
        size = self.rng.randint(*self.photo_bytes)
        photo = JFIF + self.rng.randbytes(max(0, size - len(JFIF) - 2)) + b"\xff\xd9"
        if len(self._photos) < 20:
            self._photos.append(photo)
        return photo

    def make(self, instance_id: str | None = None) -> Submission:
        with self._lock:
            instance_id = instance_id or f"uuid:{uuid.uuid4()}"  # as Collect: never reused
            photo_name = f"{1718173211000 + self.rng.randint(0, 10**9)}.jpg"
            xml = instance_xml(self.rng, instance_id, photo_name)
            photo = Part(photo_name, self._photo(), "image/jpeg")
            audit = Part(AUDIT_NAME, audit_log(self.rng), "text/csv")
            split = self.rng.random() < self.split_share
        posts = ((photo,), (audit,)) if split else ((photo, audit),)
        return Submission(instance_id, xml, posts)

    def variant(self, submission: Submission) -> Submission:
        """The same instanceID with other answers (a second device, or an edit gone wrong)."""
        with self._lock:
            xml = instance_xml(self.rng, submission.instance_id,
                               submission.posts[0][0].name)
        return Submission(submission.instance_id, xml, submission.posts)


def multipart(submission: Submission, post: int, boundary: str) -> bytes:
    def part(name: str, filename: str | None, content_type: str | None, data: bytes) -> bytes:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"'
                                                    if filename else "")
        head = f"--{boundary}\r\nContent-Disposition: {disposition}\r\n"
        if content_type:
            head += f"Content-Type: {content_type}\r\n"
        return head.encode() + b"\r\n" + data + b"\r\n"

    chunks = [part(XML_SUBMISSION_FILE, "submission.xml", "text/xml", submission.xml)]
    chunks += [part(p.name, p.name, p.content_type, p.data) for p in submission.posts[post]]
    if post < len(submission.posts) - 1:
        chunks.append(part(INCOMPLETE_MARKER, None, None, b"yes"))
    return b"".join(chunks) + f"--{boundary}--\r\n".encode()


# -- the ledger ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Answer:
    instance_id: str
    method: str
    post: int
    status: int | None
    error: str | None
    at: float
    ms: float


@dataclass
class Ledger:
    sent: dict[str, Submission] = field(default_factory=dict)
    acked: dict[str, set[int]] = field(default_factory=dict)
    """instanceID → the POSTs answered 201/202."""
    completed_ms: dict[str, float] = field(default_factory=dict)
    """instanceID → time from its first HEAD to its last POST's 201 (retries included)."""
    torn: set[str] = field(default_factory=set)
    """Bodies cut off halfway and never sent again: must not be stored."""
    variants: dict[str, list[Submission]] = field(default_factory=dict)
    """Same-instanceID, different-XML races: every variant sent."""
    gave_up: dict[str, str] = field(default_factory=dict)
    abandoned: set[str] = field(default_factory=set)
    """Uploads that failed once and were never sent again (the form deleted on the tablet):
    stored or not, but if stored, whole."""
    answers: list[Answer] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, answer: Answer) -> None:
        with self._lock:
            self.answers.append(answer)
            if answer.method == "POST" and answer.status in SUCCESS:
                self.acked.setdefault(answer.instance_id, set()).add(answer.post)

    def will_send(self, submission: Submission) -> None:
        with self._lock:
            self.sent.setdefault(submission.instance_id, submission)

    def acknowledged(self) -> set[str]:
        """instanceIDs with every POST answered 201."""
        with self._lock:
            return {i for i, posts in self.acked.items()
                    if i in self.sent and len(posts) == len(self.sent[i].posts)}

    def statuses(self, since: float = 0.0) -> Counter:
        with self._lock:
            return Counter(f"{a.method} {a.status or a.error}" for a in self.answers
                           if a.at >= since)


# -- sending ------------------------------------------------------------------------------------

class Backoff:
    def __init__(self, first: float = 0.2, cap: float = 2.0) -> None:
        self.first, self.cap, self.attempt = first, cap, 0

    def wait(self, stop: threading.Event | None = None) -> None:
        delay = min(self.cap, self.first * 2 ** self.attempt) * random.uniform(0.5, 1.0)
        self.attempt += 1
        if stop is not None:
            stop.wait(delay)
        else:
            time.sleep(delay)


class Final(Exception):
    """An answer that no retry changes (a 4xx): the upload stops there."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


def send(session: requests.Session, url: str, submission: Submission, ledger: Ledger, *,
         deadline: float | Callable[[], float], stop: threading.Event | None = None,
         device: str = "collect:harness", abandon: float = 0.0) -> int:
    """Upload ``submission`` as Collect does, again and again until every POST is answered
    201/202; returns that status, or the final 4xx. Gives up at ``deadline`` (a monotonic
    time, or a function giving it: it may move) and returns 0. After a failed attempt, with
    probability ``abandon`` it is never sent again (returns -1)."""
    ledger.will_send(submission)
    backoff = Backoff()
    started = time.perf_counter()
    while True:
        if time.monotonic() > (deadline() if callable(deadline) else deadline):
            ledger.gave_up[submission.instance_id] = "deadline"
            return 0
        try:
            status = _upload_once(session, url, submission, ledger, device)
            if status in SUCCESS:
                ledger.completed_ms[submission.instance_id] = (
                    time.perf_counter() - started) * 1000
            return status
        except Final as final:
            return final.status
        except _Retry:
            if abandon and random.random() < abandon:
                ledger.abandoned.add(submission.instance_id)
                return -1
            backoff.wait(stop)


class _Retry(Exception):
    pass


def _upload_once(session: requests.Session, url: str, submission: Submission,
                 ledger: Ledger, device: str) -> int:
    _call(session, "HEAD", url, submission.instance_id, 0, ledger, headers=OPENROSA,
          expect=(204,))
    status = 0
    for post in range(len(submission.posts)):
        boundary = uuid.uuid4().hex
        status = _call(
            session, "POST", url, submission.instance_id, post, ledger,
            data=multipart(submission, post, boundary), params={"deviceID": device},
            headers={**OPENROSA, "Content-Type": f"multipart/form-data; boundary={boundary}"},
            expect=SUCCESS)
    return status


def _call(session: requests.Session, method: str, url: str, instance_id: str, post: int,
          ledger: Ledger, *, expect: tuple[int, ...], **kw) -> int:
    at, started = time.time(), time.perf_counter()
    try:
        reply = session.request(method, url, timeout=TIMEOUT, **kw)
    except requests.RequestException as exc:
        ledger.record(Answer(instance_id, method, post, None, type(exc).__name__, at,
                             (time.perf_counter() - started) * 1000))
        raise _Retry from None
    ledger.record(Answer(instance_id, method, post, reply.status_code, None, at,
                         (time.perf_counter() - started) * 1000))
    if reply.status_code in expect:
        return reply.status_code
    if reply.status_code >= 500:
        raise _Retry
    raise Final(reply.status_code)


class Clients:
    """``count`` client threads taking submissions from a queue: closed loop (each sends its
    next as soon as one is done) unless ``rate`` is given (submissions per second, open
    loop, as in a soak)."""

    def __init__(self, url: str, factory: Factory, ledger: Ledger, *, count: int,
                 rate: float | None = None, abandon: float = 0.0) -> None:
        self.url, self.factory, self.ledger = url, factory, ledger
        self.count, self.rate, self.abandon = count, rate, abandon
        self.work: queue.Queue[Submission] = queue.Queue()
        self.feeding = threading.Event()
        self.stop = threading.Event()
        self.final: Counter = Counter()
        self.deadline = float("inf")
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        self.feeding.set()
        for n in range(self.count):
            thread = threading.Thread(target=self._client, args=(n,), name=f"client-{n}",
                                      daemon=True)
            thread.start()
            self._threads.append(thread)
        if self.rate:
            feeder = threading.Thread(target=self._feed, name="feeder", daemon=True)
            feeder.start()
            self._threads.append(feeder)

    def _feed(self) -> None:
        assert self.rate
        next_at = time.monotonic()
        while self.feeding.is_set():
            self.work.put(self.factory.make())
            next_at += 1 / self.rate
            time.sleep(max(0.0, next_at - time.monotonic()))

    def _next(self) -> Submission | None:
        if self.rate is None and self.feeding.is_set():
            return self.factory.make()
        try:
            return self.work.get(timeout=0.2)
        except queue.Empty:
            return None

    def _client(self, n: int) -> None:
        session = requests.Session()
        try:
            while not self.stop.is_set():
                submission = self._next()
                if submission is None:
                    if not self.feeding.is_set() and self.work.empty():
                        return
                    continue
                status = send(session, self.url, submission, self.ledger,
                              deadline=lambda: self.deadline, stop=self.stop,
                              device=f"collect:harness{n}", abandon=self.abandon)
                self.final[status] += 1
        finally:
            session.close()

    def finish(self, drain_seconds: float) -> bool:
        """Stop taking new work; let every submission under way get its 201 (retrying
        through whatever is still broken) for at most ``drain_seconds``."""
        self.feeding.clear()
        self.deadline = time.monotonic() + drain_seconds
        for thread in self._threads:
            thread.join(timeout=max(0.1, self.deadline + 5 - time.monotonic()))
        self.stop.set()
        return not any(t.is_alive() for t in self._threads)


# -- faults on the client's side ----------------------------------------------------------------

def send_torn(url: str, submission: Submission, *, fraction: float, reset: bool) -> None:
    """Send the POST's headers and ``fraction`` of its body, then hang up: a FIN, or with
    ``reset`` a RST (a phone losing its network, or Collect killed)."""
    parts = urlsplit(url)
    boundary = uuid.uuid4().hex
    body = multipart(submission, 0, boundary)
    head = (f"POST {parts.path}?deviceID=collect%3Atorn HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            f"X-OpenRosa-Version: 1.0\r\nContent-Type: multipart/form-data; "
            f"boundary={boundary}\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(head + body[:int(len(body) * fraction)])
        time.sleep(0.05)
        if reset:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def race(url: str, submissions: list[Submission], ledger: Ledger, *,
         deadline: float) -> list[int]:
    """Every submission sent at the same moment, one thread each; their final statuses."""
    barrier = threading.Barrier(len(submissions))
    results: list[int] = [0] * len(submissions)

    def one(i: int) -> None:
        with requests.Session() as session:
            barrier.wait(timeout=30)
            results[i] = send(session, url, submissions[i], ledger, deadline=deadline,
                              device=f"collect:racer{i}")

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(submissions))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results
