"""Compile an XLSForm in a child process with CPU, time and memory limits (hostile input #45).

The parent sends one JSON header line and the file's bytes on the child's stdin; the child
answers one JSON document on stdout. A pathological form can then exhaust only the child:
the web worker sees ``form.compile_timeout`` or ``form.compile_too_large``, never a hang,
an OOM or an unhandled exception.

The child sets its own rlimits as its first act rather than through ``preexec_fn``, which
CPython documents as unsafe in a process with threads (a threaded web worker): the fork
could deadlock before exec. The limits are in force before a byte of the upload is read.
ODK Validate runs in the parent, after the child: a JVM cannot start under a 1 GB address
space limit, and ``forms.validate`` gives it its own timeout and heap cap.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

from forms.compile import CompileResult, compile_xlsform, validated
from forms.guards import DEFAULT_LIMITS, FileKind, UploadLimits
from forms.issues import FormInvalid, FormIssue

TIMEOUT = "form.compile_timeout"
TOO_LARGE = "form.compile_too_large"
FAILED = "xlsform.invalid"
_PROJECT_ROOT = Path(__file__).resolve().parent.parent


def compile_isolated(data: bytes, *, kind: FileKind, form_id_fallback: str | None = None,
                     validate: bool = False, timeout_s: float = 30,
                     memory_bytes: int = 1 << 30, java: str | None = None,
                     limits: UploadLimits = DEFAULT_LIMITS) -> CompileResult:
    """``compile_xlsform`` in a child limited to ``timeout_s`` (wall and CPU) and
    ``memory_bytes`` of address space. Every failure is a FormInvalid."""
    header = json.dumps({"kind": kind, "form_id_fallback": form_id_fallback,
                         "limits": asdict(limits)}).encode("utf-8")
    cpu_seconds = max(1, math.ceil(timeout_s))
    with tempfile.TemporaryDirectory(prefix="dodoso-compile-") as scratch:
        try:
            done = subprocess.run(
                [sys.executable, "-m", "forms.sandbox", str(int(memory_bytes)),
                 str(cpu_seconds)],
                input=header + b"\n" + data, capture_output=True, timeout=timeout_s,
                env=_child_env(scratch), cwd=scratch, check=False)
        except subprocess.TimeoutExpired:
            raise _timeout(timeout_s) from None
        except OSError:
            raise _failed("The form converter could not be started.") from None
    result = _read_reply(done, timeout_s)
    return validated(result, java=java) if validate else result


def _child_env(scratch: str) -> dict[str, str]:
    """Only what the interpreter needs to import ``forms``: none of the worker's secrets."""
    return {
        "PATH": os.defpath, "HOME": scratch, "TMPDIR": scratch, "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8", "PYTHONPATH": str(_PROJECT_ROOT), "PYTHONIOENCODING": "utf-8",
        "PYTHONDONTWRITEBYTECODE": "1", "PYTHONNOUSERSITE": "1",
    }


def _read_reply(done: subprocess.CompletedProcess, timeout_s: float) -> CompileResult:
    if done.returncode in (-signal.SIGXCPU, -signal.SIGKILL) and not done.stdout:
        if done.returncode == -signal.SIGXCPU:
            raise _timeout(timeout_s)
        raise _too_large()
    try:
        reply = json.loads(done.stdout)
    except ValueError:
        if b"MemoryError" in done.stderr:
            raise _too_large() from None
        raise _failed("The form converter stopped unexpectedly.") from None
    if reply.get("ok"):
        return CompileResult(xform=reply["xform"].encode("utf-8"),
                             warnings=[FormIssue(**w) for w in reply["warnings"]],
                             itemsets=reply.get("itemsets"))
    if reply.get("memory"):
        raise _too_large()
    if reply.get("issues"):
        raise FormInvalid([FormIssue(**i) for i in reply["issues"]],
                          too_large=bool(reply.get("too_large")))
    raise _failed("The form converter stopped unexpectedly.")


def _timeout(timeout_s: float) -> FormInvalid:
    return FormInvalid([FormIssue("error", TIMEOUT, f"Converting the form took longer than "
                                  f"{timeout_s:g} seconds; it is too complex. Simplify long "
                                  "expressions or split very long choice lists.")])


def _too_large() -> FormInvalid:
    return FormInvalid([FormIssue("error", TOO_LARGE, "Converting the form needed more memory "
                                  "than allowed; it is too large.")], too_large=True)


def _failed(message: str) -> FormInvalid:
    return FormInvalid([FormIssue("error", FAILED, message)])


# ------------------------------------------------------------------------------- the child

def _limit(memory_bytes: int, cpu_seconds: int) -> None:
    import resource
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    # pyxform writes each XForm to a temp file (in the child's scratch TMPDIR) even when
    # not validating, so files are allowed, but no bigger than the memory cap.
    resource.setrlimit(resource.RLIMIT_FSIZE, (memory_bytes, memory_bytes))


def _child(argv: list[str]) -> int:
    _limit(int(argv[1]), int(argv[2]))
    reply_to = sys.stdout.buffer
    sys.stdout = sys.stderr  # a stray print must not corrupt the reply
    try:
        answer = json.dumps(_compile_request(sys.stdin.buffer.read())).encode("utf-8")
    except MemoryError:
        answer = b'{"ok": false, "memory": true}'
    except Exception as exc:  # reported, never a traceback on the parent's side
        answer = json.dumps({"ok": False, "crash": type(exc).__name__}).encode("utf-8")
    reply_to.write(answer)
    reply_to.flush()
    return 0


def _compile_request(raw: bytes) -> dict:
    header, _, data = raw.partition(b"\n")
    request = json.loads(header)
    try:
        result = compile_xlsform(data, kind=request["kind"],
                                 form_id_fallback=request["form_id_fallback"],
                                 limits=UploadLimits(**request["limits"]))
    except FormInvalid as invalid:
        return {"ok": False, "issues": [i.to_json() for i in invalid.issues],
                "too_large": invalid.too_large}
    return {"ok": True, "xform": result.xform.decode("utf-8"),
            "warnings": [w.to_json() for w in result.warnings], "itemsets": result.itemsets}


if __name__ == "__main__":
    sys.exit(_child(sys.argv))
