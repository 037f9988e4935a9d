"""ODK Validate (the JavaRosa parser Collect uses) run on a compiled XForm.

pyxform's own wrapper (``pyxform.validators.odk_validate.check_xform``) is not used: it finds
``java`` only on PATH, passes the worker's whole environment to Java, has no heap cap, stops
a hung JVM with SIGTERM only, and returns the raw text with temp-file paths in it. Here the
Java binary is a parameter, the JVM gets a minimal environment and a heap cap, a timeout
kills it, and the output becomes FormIssues with stack traces and paths removed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path

from pyxform.validators import odk_validate as _pyxform_odk_validate

from forms.issues import FormIssue

ODK_VALIDATE_JAR = Path(_pyxform_odk_validate.ODK_VALIDATE_PATH)
JAVA_OPTIONS = ("-Djava.awt.headless=true", "-Xmx512m", "-XX:+UseSerialGC",
                "-XX:TieredStopAtLevel=1")
ERROR = "odk_validate.error"
WARNING = "odk_validate.warning"
MAX_MESSAGE_CHARS = 1000

_STACK_FRAME = re.compile(r"^\s+at\s|^\s*\.\.\. \d+ more\s*$")
_BOILERPLATE = re.compile(
    r"^(>>.*|Validating:.*|Result: .*|The following files failed validation:.*"
    r"|SLF4J: .*)$")
_EXCEPTION_PREFIX = re.compile(r"^(?:[a-z_$][\w$]*\.)+[A-Z][\w$]*(?:Exception|Error)\b:?\s*")
_OBJECT_ID = re.compile(r"\s*Bad node: \S+@[0-9a-f]+,?")


def java_available(java: str = "java") -> bool:
    """True when ``java`` runs (``java -version`` exits 0)."""
    return _java_runs(java)


@lru_cache(maxsize=8)
def _java_runs(java: str) -> bool:
    binary = shutil.which(java)
    if binary is None:
        return False
    try:
        done = subprocess.run([binary, "-version"], capture_output=True, timeout=30,
                              env=_java_env(), stdin=subprocess.DEVNULL, check=False)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def odk_validate(xform: bytes, *, java: str = "java", timeout: float = 60,
                 jar: Path = ODK_VALIDATE_JAR) -> list[FormIssue]:
    """Issues ODK Validate finds in ``xform``: errors if it refuses the form, else warnings."""
    binary = shutil.which(java)
    if binary is None:
        return [FormIssue("error", "odk_validate.unavailable", "ODK Validate could not run: "
                          f"the Java runtime '{Path(java).name}' was not found.")]
    with tempfile.TemporaryDirectory(prefix="dodoso-validate-") as scratch:
        path = Path(scratch) / "form.xml"
        path.write_bytes(xform)
        try:
            done = subprocess.run(
                [binary, *JAVA_OPTIONS, "-jar", str(jar), str(path)], capture_output=True,
                timeout=timeout, env=_java_env(scratch), cwd=scratch,
                stdin=subprocess.DEVNULL, check=False)
        except subprocess.TimeoutExpired:
            return [FormIssue("error", "odk_validate.timeout", f"ODK Validate did not finish "
                              f"within {timeout:g} seconds; the form is too complex to check.")]
        except OSError as exc:
            return [FormIssue("error", "odk_validate.unavailable", "ODK Validate could not "
                              f"run: Java is not available ({exc.strerror or 'not found'}).")]
        stdout = _scrub(done.stdout, scratch)
        stderr = _scrub(done.stderr, scratch)
    return issues_from_output(done.returncode, stdout, stderr)


def issues_from_output(returncode: int, stdout: str, stderr: str) -> list[FormIssue]:
    """ODK Validate's exit code and output as FormIssues (one per reported problem)."""
    if returncode == 0:
        return [FormIssue("warning", WARNING, _clip(block), original=_clip(block))
                for block in _blocks(stderr) + _blocks(_warning_lines(stdout))]
    blocks = _blocks(stderr) or _blocks(stdout)
    if not blocks:
        return [FormIssue("error", ERROR, f"ODK Validate refused the form (exit code "
                          f"{returncode}) without saying why.")]
    original = _clip("\n".join(line for line in stderr.splitlines()
                               if line.strip() and not _STACK_FRAME.match(line)))
    return [FormIssue("error", ERROR, _clip(block), original=original) for block in blocks]


def _blocks(text: str) -> list[str]:
    """Messages in Validate's output: stack traces, 'Caused by' repeats and banners dropped."""
    blocks: list[list[str]] = []
    in_cause = False
    for raw in text.splitlines():
        line = raw.rstrip()
        if not line.strip() or _STACK_FRAME.match(line):
            continue
        if line.startswith("Caused by:"):
            in_cause = True
            continue
        if _BOILERPLATE.match(line.strip()) or line.strip() == "form.xml":
            in_cause = False
            if line.startswith(">>") and blocks and blocks[-1]:
                blocks.append([])
            continue
        if in_cause:
            continue
        cleaned = _OBJECT_ID.sub("", _EXCEPTION_PREFIX.sub("", line.strip())).strip()
        if not cleaned:
            continue
        if not blocks:
            blocks.append([])
        blocks[-1].append(cleaned)
    return [" ".join(lines) for lines in blocks if lines]


def _warning_lines(stdout: str) -> str:
    return "\n".join(line for line in stdout.splitlines() if "warning" in line.lower())


def _scrub(output: bytes, scratch: str) -> str:
    text = output.decode("utf-8", errors="replace")
    for path in (str(Path(scratch) / "form.xml"), scratch, os.path.realpath(scratch)):
        text = text.replace(path + os.sep, "").replace(path, "form.xml")
    return text


def _java_env(scratch: str | None = None) -> dict[str, str]:
    """What a JVM needs (it is started by absolute path), and none of the worker's secrets."""
    env = {"PATH": os.defpath, "LANG": "C.UTF-8"}
    if scratch:
        env["HOME"] = scratch
        env["TMPDIR"] = scratch
    return env


def _clip(text: str) -> str:
    return text if len(text) <= MAX_MESSAGE_CHARS else text[:MAX_MESSAGE_CHARS] + "…"
