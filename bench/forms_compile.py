"""Benchmark: the time and memory it takes to compile a large XLSForm (issue 3).

    .venv/bin/python -m bench.forms_compile [--questions 600] [--repeat 5] [--json out.json]

A labour-migration survey of ``--questions`` questions is generated (seeded: every run
compiles the same form), and so is a 10-question baseline. Both go through the same steps,
interleaved, so drift on a noisy machine hits both alike; results are medians (min–max), and
the large form's are also given as ratios to the baseline's.

Peak memory is read from ``VmHWM`` in ``/proc/<pid>/status``, not from ``ru_maxrss``: on
Linux a child's ``ru_maxrss`` starts at its parent's high-water mark (exec records the peak
of the address space it replaces), so any process started from this one would report this
one's size. The sandbox child cannot be changed to report its own VmHWM, so it is started
from a tiny stdlib-only runner, whose ``RUSAGE_CHILDREN`` then holds that child's peak; the
runner's own peak is reported as the floor below which a reading means nothing.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timezone
from io import BytesIO
from pathlib import Path
from typing import Any
from unittest import mock

import pyxform
from openpyxl import Workbook

from forms import sandbox
from forms.compile import compile_xlsform
from forms.issues import FormInvalid
from forms.pipeline import prepare_form
from forms.validate import JAVA_OPTIONS, java_available, odk_validate
from forms.xform import parse_xform

BASELINE_QUESTIONS = 10
QUESTIONS_PER_GROUP = 20
SEED = 3
LANGUAGES = ("English (en)", "Kiswahili (sw)")
MIB = 1024 * 1024
_PROJECT_ROOT = Path(__file__).resolve().parent.parent

# ------------------------------------------------------------------------------ the form

SURVEY_COLUMNS = (
    "type", "name", *(f"label::{lang}" for lang in LANGUAGES),
    *(f"hint::{lang}" for lang in LANGUAGES), "required", "relevant", "constraint",
    *(f"constraint_message::{lang}" for lang in LANGUAGES), "calculation", "choice_filter",
    "appearance",
)
CHOICE_COLUMNS = ("list_name", "name", *(f"label::{lang}" for lang in LANGUAGES), "region")

# Lists whose labels matter to the story; the rest are generated from a title and a size.
_FIXED_LISTS = {
    "yes_no": (("yes", "Yes", "Ndiyo"), ("no", "No", "Hapana")),
    "yes_no_dk": (("yes", "Yes", "Ndiyo"), ("no", "No", "Hapana"),
                  ("dk", "Don't know", "Sijui")),
    "sex": (("female", "Female", "Mwanamke"), ("male", "Male", "Mwanaume"),
            ("other", "Other", "Nyingine")),
}
_SIZED_LISTS = (  # name, English title, Kiswahili title, number of choices
    ("country", "Country", "Nchi", 200), ("region", "Region", "Mkoa", 30),
    ("district", "District", "Wilaya", 150), ("occupation", "Occupation", "Kazi", 40),
    ("sector", "Sector", "Sekta", 20), ("language", "Language", "Lugha", 40),
    ("currency", "Currency", "Sarafu", 25), ("month", "Month", "Mwezi", 12),
    ("likert5", "Agreement", "Makubaliano", 5), ("channel", "Transfer channel", "Njia", 8),
    ("reason_leave", "Reason for leaving", "Sababu ya kuondoka", 15),
    ("reason_return", "Reason for returning", "Sababu ya kurudi", 12),
    ("recruiter", "Recruiter", "Wakala", 8), ("visa_type", "Visa type", "Aina ya viza", 10),
    ("contract", "Contract type", "Aina ya mkataba", 6),
    ("document", "Document", "Hati", 12), ("abuse", "Abuse", "Unyanyasaji", 14),
    ("health", "Health problem", "Tatizo la afya", 10), ("housing", "Housing", "Makazi", 7),
    ("transport", "Transport", "Usafiri", 9), ("income", "Income source", "Chanzo cha kipato", 12),
    ("asset", "Asset", "Mali", 15), ("frequency", "Frequency", "Mara ngapi", 6),
    ("relationship", "Relationship", "Uhusiano", 12), ("religion", "Religion", "Dini", 8),
    ("skill", "Skill", "Ujuzi", 25), ("payment", "Payment", "Malipo", 7),
    ("employer", "Employer type", "Aina ya mwajiri", 8),
    ("accommodation", "Accommodation", "Malazi", 6), ("training", "Training", "Mafunzo", 10),
    ("complaint", "Complaint channel", "Njia ya malalamiko", 9),
    ("satisfaction", "Satisfaction", "Kuridhika", 5), ("duration", "Duration", "Muda", 7),
    ("role", "Household role", "Nafasi katika kaya", 6),
    ("education", "Education", "Elimu", 10), ("marital", "Marital status", "Hali ya ndoa", 5),
    ("agency_fee", "Fee band", "Kiwango cha ada", 6),
)
_TOPICS = (
    ("Respondent", "Mhojiwa"), ("Household", "Kaya"), ("Education", "Elimu"),
    ("Work before leaving", "Kazi kabla ya kuondoka"), ("Recruitment", "Uajiri"),
    ("Fees and debt", "Ada na madeni"), ("Travel", "Safari"), ("Documents", "Hati"),
    ("Work abroad", "Kazi nje ya nchi"), ("Wages", "Mishahara"), ("Housing", "Makazi"),
    ("Health", "Afya"), ("Treatment at work", "Kutendewa kazini"),
    ("Remittances", "Pesa zilizotumwa"), ("Return", "Kurudi"), ("Plans", "Mipango"),
)
_REPEAT_TOPICS = {"roster": ("Household members", "Wanakaya"),
                  "transfers": ("Money sent home", "Pesa zilizotumwa nyumbani")}
_STEMS = {
    "select_one": ("Which best describes", "Ipi inaelezea vizuri zaidi"),
    "select_multiple": ("Select all that apply for", "Chagua vyote vinavyohusika kwa"),
    "integer": ("How many, for", "Ngapi, kwa"), "decimal": ("How much, for", "Kiasi gani, kwa"),
    "text": ("Describe, in your own words,", "Eleza, kwa maneno yako,"),
    "date": ("On what date, for", "Tarehe gani, kwa"),
    "geopoint": ("Record the location for", "Rekodi mahali pa"),
    "note": ("Read to the respondent about", "Msomee mhojiwa kuhusu"),
}
_TYPE_WEIGHTS = {
    "select_one": 30, "select_multiple": 10, "integer": 14, "decimal": 6, "text": 15,
    "date": 5, "geopoint": 2, "calculate": 6, "note": 4,
}
_NUMERIC = ("integer", "decimal", "calculate")


def choice_lists() -> dict[str, list[tuple[str, str, str, str]]]:
    """list name → (name, English label, Kiswahili label, region filter value) rows."""
    lists = {name: [(*row, "") for row in rows] for name, rows in _FIXED_LISTS.items()}
    for name, en, sw, size in _SIZED_LISTS:
        lists[name] = [(f"{name[0]}{k:03d}", f"{en} {k:03d}", f"{sw} {k:03d}",
                        f"r{k % 30:03d}" if name == "district" else "")
                       for k in range(size)]
    return lists


class _Survey:
    """Survey rows, written in order, with the questions each new row may refer to."""

    def __init__(self, rng: random.Random, lists: dict[str, list[tuple[str, str, str, str]]]):
        self.rng = rng
        self.lists = lists
        self.rows: list[dict[str, str]] = []
        self.scopes: list[list[tuple[str, str, str]]] = [[]]  # (name, type, list) per repeat
        self.serial = 0

    def visible(self) -> list[tuple[str, str, str]]:
        return [q for scope in self.scopes for q in scope if q[1] not in ("note", "geopoint")]

    def add(self, row: dict[str, str], *, kind: str, list_name: str = "") -> None:
        self.rows.append(row)
        self.scopes[-1].append((row["name"], kind, list_name))

    def begin(self, kind: str, name: str, topic: tuple[str, str], relevant: str = "") -> None:
        self.rows.append({"type": f"begin_{kind}", "name": name,
                          **_labels(topic[0], topic[1]), "relevant": relevant})
        if kind == "repeat":
            self.scopes.append([])

    def end(self, kind: str) -> None:
        self.rows.append({"type": f"end_{kind}"})
        if kind == "repeat":
            self.scopes.pop()

    def condition(self) -> str:
        """A relevance expression on one or two earlier questions the row can see."""
        seen = self.visible()
        if not seen:
            return ""
        parts = [self._test(*self.rng.choice(seen))
                 for _ in range(1 if self.rng.random() < 0.75 else 2)]
        return " and ".join(parts)

    def _test(self, name: str, kind: str, list_name: str) -> str:
        if kind == "select_one":
            return f"${{{name}}} = '{self.rng.choice(self.lists[list_name])[0]}'"
        if kind == "select_multiple":
            return f"selected(${{{name}}}, '{self.rng.choice(self.lists[list_name])[0]}')"
        if kind in _NUMERIC:
            return f"${{{name}}} > {self.rng.randint(0, 10)}"
        return f"${{{name}}} != ''"

    def names(self) -> set[str]:
        return {row["name"] for row in self.rows if "name" in row}

    def questions(self, topic: tuple[str, str], count: int) -> None:
        for _ in range(count):
            self.question(topic)

    def question(self, topic: tuple[str, str]) -> None:
        self.serial += 1
        name = f"q{self.serial:04d}"
        kind = self.rng.choices(list(_TYPE_WEIGHTS), list(_TYPE_WEIGHTS.values()))[0]
        if kind == "calculate":
            self.add({"type": "calculate", "name": name, "calculation": self._calculation()},
                     kind=kind)
            return
        en, sw = _STEMS[kind]
        row = {"name": name, **_labels(f"{self.serial}. {en} {topic[0].lower()}",
                                       f"{self.serial}. {sw} {topic[1].lower()}")}
        if kind != "note" and self.rng.random() < 0.4:
            row.update(_labels(f"Probe if the answer to {self.serial} is unclear.",
                               f"Dadisi kama jibu la {self.serial} halieleweki.", "hint"))
        if kind != "note" and self.rng.random() < 0.5:
            row["required"] = "yes"
        if self.rng.random() < 0.35:
            row["relevant"] = self.condition()
        list_name = ""
        if kind in ("select_one", "select_multiple"):
            list_name = self.rng.choice([n for n in self.lists if n not in ("region", "district")])
            row["type"] = f"{kind} {list_name}"
            if len(self.lists[list_name]) > 20:
                row["appearance"] = "minimal" if kind == "select_one" else ""
        else:
            row["type"] = kind
            row.update(self._constraint(kind))
        if kind == "note":
            numbers = [q for q in self.visible() if q[1] in _NUMERIC]
            if numbers:
                ref = self.rng.choice(numbers)[0]
                row.update(_labels(f"{self.serial}. Recorded so far: ${{{ref}}}",
                                   f"{self.serial}. Imerekodiwa hadi sasa: ${{{ref}}}"))
        self.add(row, kind=kind, list_name=list_name)

    def _constraint(self, kind: str) -> dict[str, str]:
        if kind == "integer":
            top = self.rng.choice((12, 31, 99, 120, 1000, 100000))
            return {"constraint": f". >= 0 and . <= {top}",
                    **_labels(f"Enter 0 to {top}.", f"Andika 0 hadi {top}.",
                              "constraint_message")}
        if kind == "decimal":
            return {"constraint": ". >= 0", **_labels("Cannot be negative.",
                                                     "Haiwezi kuwa hasi.",
                                                     "constraint_message")}
        if kind == "date" and self.rng.random() < 0.7:
            return {"constraint": ". <= today()", **_labels("Cannot be in the future.",
                                                           "Haiwezi kuwa siku zijazo.",
                                                           "constraint_message")}
        if kind == "text" and self.rng.random() < 0.1:
            return {"constraint": "regex(., '^[0-9]{9,12}$')",
                    **_labels("Enter a phone number.", "Andika namba ya simu.",
                              "constraint_message")}
        return {}

    def _calculation(self) -> str:
        numbers = [q[0] for q in self.visible() if q[1] in _NUMERIC]
        choices = [q for q in self.visible() if q[1] == "select_one"]
        shape = self.rng.random()
        if len(numbers) >= 2 and shape < 0.4:
            a, b = self.rng.sample(numbers, 2)
            return f"coalesce(${{{a}}}, 0) + coalesce(${{{b}}}, 0)"
        if numbers and shape < 0.7:
            return f"${{{self.rng.choice(numbers)}}} * 12"
        if choices:
            return f"if({self._test(*self.rng.choice(choices))}, 1, 0)"
        return "once(decimal-date-time(now()))"


def _labels(en: str, sw: str, column: str = "label") -> dict[str, str]:
    return {f"{column}::{LANGUAGES[0]}": en, f"{column}::{LANGUAGES[1]}": sw}


def _group_sizes(questions: int) -> list[int]:
    groups = max(1, round(questions / QUESTIONS_PER_GROUP))
    return [questions // groups + (1 if i < questions % groups else 0) for i in range(groups)]


def survey_rows(questions: int, seed: int = SEED) -> dict[str, list[dict[str, str]]]:
    """The sheets of a ``questions``-question labour-migration survey, as row dicts.

    About 20 questions a group; from six groups up, one group is a household roster (a
    repeat holding a nested repeat of stays abroad) and another a repeat of transfers home.
    The first group opens with consent, a region → district cascade and age.
    """
    rng = random.Random(f"dodoso-bench:{seed}:{questions}")
    lists = choice_lists()
    survey = _Survey(rng, lists)
    for meta in ("start", "end", "today", "deviceid"):
        survey.rows.append({"type": meta, "name": meta})
    sizes = _group_sizes(questions)
    repeats = {len(sizes) // 6: "roster", (2 * len(sizes)) // 3: "transfers"} \
        if len(sizes) >= 6 else {}
    for index, size in enumerate(sizes):
        kind = "repeat" if index in repeats else "group"
        topic = _REPEAT_TOPICS[repeats[index]] if index in repeats else \
            _TOPICS[index % len(_TOPICS)]
        name = repeats.get(index, f"g{index + 1:02d}")
        relevant = ""
        if index and rng.random() < 0.3:
            relevant = "${consent} = 'yes'" if "consent" in survey.names() else \
                survey.condition()
        survey.begin(kind, name, topic, relevant)
        if index == 0 and size >= 4:
            _intro(survey)
            size -= 4
        if name == "roster":
            nested = min(8, size // 2)
            before = (size - nested) // 2
            survey.questions(topic, before)
            survey.begin("repeat", "stays_abroad", ("Stays abroad", "Vipindi nje ya nchi"),
                         survey.condition())
            survey.questions(topic, nested)
            survey.end("repeat")
            size -= before + nested
        survey.questions(topic, size)
        survey.end(kind)
    used = {row["type"].split()[1] for row in survey.rows if row["type"].startswith("select_")}
    choices = [dict(zip(CHOICE_COLUMNS, (list_name, *row), strict=True))
               for list_name, rows in lists.items() if list_name in used for row in rows]
    settings = [{"form_title": f"Labour migration survey ({questions} questions)",
                 "form_id": f"bench_migration_{questions}", "version": "2024010101",
                 "default_language": LANGUAGES[0]}]
    return {"survey": survey.rows, "choices": choices, "settings": settings}


def _intro(survey: _Survey) -> None:
    survey.serial += 4
    survey.add({"type": "select_one yes_no", "name": "consent", "required": "yes",
                **_labels("Does the respondent agree to take part?",
                          "Je, mhojiwa anakubali kushiriki?")},
               kind="select_one", list_name="yes_no")
    survey.add({"type": "select_one region", "name": "region", "required": "yes",
                "relevant": "${consent} = 'yes'", **_labels("Region", "Mkoa")},
               kind="select_one", list_name="region")
    survey.add({"type": "select_one district", "name": "district", "required": "yes",
                "choice_filter": "region = ${region}", "appearance": "minimal",
                **_labels("District", "Wilaya")}, kind="select_one", list_name="district")
    survey.add({"type": "integer", "name": "age", "required": "yes",
                "constraint": ". >= 15 and . <= 99",
                **_labels("Age in years", "Umri kwa miaka"),
                **_labels("Enter 15 to 99.", "Andika 15 hadi 99.", "constraint_message")},
               kind="integer")


def build_form(questions: int, seed: int = SEED) -> bytes:
    """The survey of :func:`survey_rows` as an .xlsx workbook's bytes."""
    workbook = Workbook()
    workbook.remove(workbook.active)
    for sheet_name, rows in survey_rows(questions, seed).items():
        columns = SURVEY_COLUMNS if sheet_name == "survey" else \
            CHOICE_COLUMNS if sheet_name == "choices" else tuple(rows[0])
        sheet = workbook.create_sheet(sheet_name)
        sheet.append(columns)
        for row in rows:
            sheet.append([row.get(column) or None for column in columns])
    out = BytesIO()
    workbook.save(out)
    return out.getvalue()


# ------------------------------------------------------------------------- measurements

_HWM = """
def _hwm_kib(field='VmHWM'):
    with open('/proc/self/status') as status:
        for line in status:
            if line.startswith(field + ':'):
                return int(line.split()[1])
    return 0
"""
# Starts the sandbox child from a process too small to skew that child's ru_maxrss.
_RUNNER = _HWM + """
import base64, json, resource, subprocess, sys
request = json.loads(sys.stdin.buffer.readline())
data = sys.stdin.buffer.read()
floor = _hwm_kib()
done = subprocess.run(request['args'], input=data, capture_output=True, env=request['env'],
                      cwd=request['cwd'], timeout=request['timeout'], check=False)
sys.stdout.write(json.dumps({
    'returncode': done.returncode, 'floor_kib': floor,
    'peak_kib': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
    'stdout': base64.b64encode(done.stdout).decode(),
    'stderr': base64.b64encode(done.stderr).decode()}))
"""
_IN_PROCESS = _HWM + """
import json, sys
from forms.compile import compile_xlsform
data = sys.stdin.buffer.read()
ready = _hwm_kib()
result = compile_xlsform(data, kind='xlsx')
print(json.dumps({'ready_kib': ready, 'peak_kib': _hwm_kib(),
                  'address_space_kib': _hwm_kib('VmPeak')}))
"""
_REPORT_HWM = _HWM + "\nprint(_hwm_kib())\n"


def _timed(call: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    value = call()
    return (time.perf_counter() - start) * 1000, value


def sandbox_peak(data: bytes) -> tuple[float, float]:
    """(peak RSS of the sandbox child, the runner's floor) in MiB, for one compile_isolated
    call made exactly as the server makes it, its child started from the tiny runner."""
    real_run = subprocess.run
    readings: list[dict[str, Any]] = []

    def run_from_runner(args, *, input, timeout, env, cwd, **_ignored):
        request = json.dumps({"args": args, "env": env, "cwd": cwd, "timeout": timeout})
        done = real_run([sys.executable, "-I", "-S", "-c", _RUNNER],
                        input=request.encode() + b"\n" + input, capture_output=True, check=True)
        reply = json.loads(done.stdout)
        readings.append(reply)
        return subprocess.CompletedProcess(args, reply["returncode"],
                                           base64.b64decode(reply["stdout"]),
                                           base64.b64decode(reply["stderr"]))

    with mock.patch.object(sandbox.subprocess, "run", run_from_runner):
        sandbox.compile_isolated(data, kind="xlsx")
    (reading,) = readings
    return reading["peak_kib"] / 1024, reading["floor_kib"] / 1024


def in_process_peak(data: bytes) -> tuple[float, float, float]:
    """(RSS once forms.compile is imported, peak RSS, peak address space) in MiB around one
    compile_xlsform, in a fresh interpreter so nothing else this benchmark did is counted."""
    done = subprocess.run([sys.executable, "-c", _IN_PROCESS], input=data, capture_output=True,
                          cwd=_PROJECT_ROOT, check=True)
    reply = json.loads(done.stdout)
    return reply["ready_kib"] / 1024, reply["peak_kib"] / 1024, reply["address_space_kib"] / 1024


def smallest_memory_limit(data: bytes, *, high: int = 1 << 30, step: int = 4 * MIB) -> float:
    """The smallest ``memory_bytes`` (the sandbox's RLIMIT_AS) under which compile_isolated
    still converts ``data``, in MiB, found by bisection to within ``step``."""
    def compiles(limit: int) -> bool:
        try:
            sandbox.compile_isolated(data, kind="xlsx", memory_bytes=limit)
        except FormInvalid:
            return False
        return True

    if not compiles(high):
        raise SystemExit("The benchmark form does not compile under the default memory limit.")
    low = 0  # fails; ``high`` compiles
    while high - low > step:
        middle = (low + high) // 2
        low, high = (low, middle) if compiles(middle) else (middle, high)
    return high / MIB


def measure_form(data: bytes, samples: dict[str, list[float]], *, java: str | None) -> None:
    """One round of every measurement of one form, appended to ``samples``."""
    samples["prepare_ms"].append(_timed(lambda: prepare_form(data, filename="survey.xlsx"))[0])
    elapsed, result = _timed(lambda: compile_xlsform(data, kind="xlsx"))
    samples["compile_ms"].append(elapsed)
    samples["parse_ms"].append(_timed(lambda: parse_xform(result.xform))[0])
    if java:
        elapsed, issues = _timed(lambda: odk_validate(result.xform, java=java))
        errors = [issue.message for issue in issues if issue.level == "error"]
        if errors:
            raise SystemExit(f"ODK Validate refused the benchmark form: {errors}")
        samples["validate_ms"].append(elapsed)
    peak, floor = sandbox_peak(data)
    samples["child_peak_mib"].append(peak)
    samples["runner_floor_mib"].append(floor)
    ready, peak, address_space = in_process_peak(data)
    samples["in_process_ready_mib"].append(ready)
    samples["in_process_peak_mib"].append(peak)
    samples["in_process_growth_mib"].append(peak - ready)
    samples["in_process_address_space_mib"].append(address_space)


def overhead_commands(java: str | None) -> dict[str, list[str]]:
    """The sandbox's fixed costs, each as the command that pays it."""
    python = [sys.executable, "-c"]
    commands = {
        "python_start": [*python, _REPORT_HWM],
        "import_pyxform": [*python, "import pyxform\n" + _REPORT_HWM],
        "import_sandbox": [*python, "import forms.sandbox\n" + _REPORT_HWM],
    }
    if java:
        commands["java_start"] = [java, *JAVA_OPTIONS, "-version"]
    return commands


def measure_overhead(commands: dict[str, list[str]], samples: dict[str, list[float]]) -> None:
    with tempfile.TemporaryDirectory(prefix="dodoso-bench-") as scratch:
        env = sandbox._child_env(scratch)  # the child's own environment and working directory
        for name, command in commands.items():
            elapsed, done = _timed(lambda command=command: subprocess.run(
                command, capture_output=True, env=env, cwd=scratch, check=True))
            samples[f"{name}_ms"].append(elapsed)
            if name != "java_start":
                samples[f"{name}_peak_mib"].append(int(done.stdout) / 1024)


def form_facts(data: bytes, questions: int) -> dict[str, Any]:
    prepared = prepare_form(data, filename="survey.xlsx")
    schema = prepared.info.schema
    sheets = survey_rows(questions)
    return {
        "questions": questions, "xlsx_bytes": len(data), "xform_bytes": len(prepared.xform),
        "survey_rows": len(sheets["survey"]), "choice_rows": len(sheets["choices"]),
        "choice_lists": len(schema.choice_lists), "schema_fields": len(schema.fields),
        "schema_questions": len(schema.questions()), "repeats": len(schema.repeats()),
        "languages": list(schema.languages),
        "warnings": [w.code for w in prepared.warnings],
    }


def run(questions: int, repeat: int, seed: int = SEED) -> dict[str, Any]:
    java = "java" if java_available("java") else None
    forms = {"baseline": build_form(BASELINE_QUESTIONS, seed), "form": build_form(questions, seed)}
    counts = {"baseline": BASELINE_QUESTIONS, "form": questions}
    facts = {label: form_facts(data, counts[label]) for label, data in forms.items()}
    for label, data in forms.items():
        facts[label]["smallest_memory_limit_mib"] = smallest_memory_limit(data)
    samples: dict[str, dict[str, list[float]]] = {label: defaultdict(list) for label in forms}
    overhead: dict[str, list[float]] = defaultdict(list)
    commands = overhead_commands(java)
    for data in forms.values():  # warm-up: disk cache, .pyc files, the JIT-less JVM
        measure_form(data, defaultdict(list), java=java)
    measure_overhead(commands, defaultdict(list))
    for _ in range(repeat):  # interleaved, so drift hits baseline and form alike
        for label, data in forms.items():
            measure_form(data, samples[label], java=java)
        measure_overhead(commands, overhead)
    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(java),
        "settings": {"questions": questions, "baseline_questions": BASELINE_QUESTIONS,
                     "repeat": repeat, "seed": seed},
        "facts": facts,
        "samples": {label: dict(values) for label, values in samples.items()},
        "overhead": dict(overhead),
    }


def machine(java: str | None) -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    models = [line.split(":", 1)[1].strip() for line in cpuinfo.splitlines()
              if line.startswith("model name")]
    meminfo = Path("/proc/meminfo").read_text() if Path("/proc/meminfo").exists() else ""
    total_kib = next((int(line.split()[1]) for line in meminfo.splitlines()
                      if line.startswith("MemTotal:")), 0)
    java_version = None
    if java:
        done = subprocess.run([java, "-version"], capture_output=True, text=True, check=False)
        java_version = (done.stderr or done.stdout).splitlines()[0]
    return {
        "nproc": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "cpu": models[0] if models else platform.processor(),
        "ram_gib": round(total_kib / MIB, 1), "python": platform.python_version(),
        "os": platform.platform(), "pyxform": pyxform.__version__, "java": java_version,
    }


# ----------------------------------------------------------------------------- the report

_FORM_ROWS = (  # sample key, label
    ("prepare_ms", "`prepare_form` end to end, sandboxed, validate=False (ms)"),
    ("compile_ms", "`compile_xlsform` in process (ms)"),
    ("parse_ms", "`parse_xform` of the XForm (ms)"),
    ("validate_ms", "ODK Validate (`odk_validate`, JVM included) (ms)"),
    ("child_peak_mib", "Peak RSS of the sandbox child (MiB)"),
    ("in_process_ready_mib", "In process: RSS after importing `forms.compile` (MiB)"),
    ("in_process_peak_mib", "In process: peak RSS after `compile_xlsform` (MiB)"),
    ("in_process_growth_mib", "In process: growth during the compile (MiB)"),
    ("in_process_address_space_mib", "In process: peak address space, VmPeak (MiB)"),
)
_FACT_ROWS = (
    ("survey_rows", "Survey rows (questions, groups, metadata)"),
    ("choice_rows", "Choice rows"),
    ("schema_fields", "Fields in the parsed schema"),
    ("schema_questions", "…of which questions"),
    ("repeats", "Repeats"),
    ("xlsx_bytes", "XLSForm size (bytes)"),
    ("xform_bytes", "XForm size (bytes)"),
    ("smallest_memory_limit_mib", "Smallest sandbox memory limit that compiles it (MiB, ±4)"),
)
_OVERHEAD_ROWS = (
    ("python_start", "Interpreter start alone (the child's environment)"),
    ("import_pyxform", "Interpreter start + `import pyxform`"),
    ("import_sandbox", "Interpreter start + `import forms.sandbox` (all the child imports)"),
    ("java_start", "JVM start (`java -version`, Validate's options)"),
)


def _num(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def _spread(values: list[float]) -> str:
    return f"{_num(statistics.median(values))} ({_num(min(values))}–{_num(max(values))})"


def markdown(report: dict[str, Any]) -> str:
    settings, facts = report["settings"], report["facts"]
    base, form = report["samples"]["baseline"], report["samples"]["form"]
    n, b = settings["questions"], settings["baseline_questions"]
    lines = [f"| Measurement | {b} questions (baseline) | {n} questions | ratio |",
             "| --- | ---: | ---: | ---: |"]
    for key, label in _FORM_ROWS:
        if key in form:
            ratio = statistics.median(form[key]) / statistics.median(base[key])
            lines.append(f"| {label} | {_spread(base[key])} | {_spread(form[key])} "
                         f"| {ratio:.2f}× |")
    for key, label in _FACT_ROWS:
        small, large = facts["baseline"][key], facts["form"][key]
        ratio = f"{large / small:.1f}×" if small else "–"
        show = _num if isinstance(small, float) else "{:,}".format
        lines.append(f"| {label} | {show(small)} | {show(large)} | {ratio} |")
    floor = max(report["samples"]["form"]["runner_floor_mib"]
                + report["samples"]["baseline"]["runner_floor_mib"])
    lines += ["", f"Child peaks are exact above {_num(floor)} MiB (the runner's own peak).", "",
              "| Fixed cost of the sandbox | time (ms) | peak RSS (MiB) |",
              "| --- | ---: | ---: |"]
    overhead = report["overhead"]
    for key, label in _OVERHEAD_ROWS:
        if f"{key}_ms" in overhead:
            peak = overhead.get(f"{key}_peak_mib")
            lines.append(f"| {label} | {_spread(overhead[f'{key}_ms'])} "
                         f"| {_spread(peak) if peak else '–'} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.forms_compile",
                                     description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--questions", type=int, default=600)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--json", type=Path, help="also write every sample to this file")
    args = parser.parse_args(argv)
    report = run(args.questions, args.repeat, args.seed)
    m = report["machine"]
    print(f"{report['date']} · {m['nproc']} CPUs, {m['cpu']} · {m['ram_gib']} GiB · "
          f"Python {m['python']} · pyxform {m['pyxform']} · {m['os']} · "
          f"{m['java'] or 'no Java'}")
    print(f"{args.repeat} repeats, median (min–max)\n")
    print(markdown(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
