"""A run's local directory: the source of truth that MLflow mirrors.

::

    runs/<experiment>/<run name>-<YYYYmmdd-HHMMSS>-<uid>/
        run.json             who and what: uid, experiment, name, tags, status, pid, host, started, heartbeat
        scenario.json        the resolved scenario
        journal.jsonl        one line per completed round (and one for row 0): metrics, checkpoint, bytes
        checkpoints/round-0003/  manifest.json + state.json, state.npz, state.safetensors (the simulation's
                             state as data, multiseal.run.statefile) + adapters.safetensors: everything
                             needed to go on; the manifest holds each file's sha256 and the round, seed
                             and scenario hash it belongs to
        artifacts/           what the run logs at its end (accuracy tensor, notes, answers, graph, ...)
        mirror.json          per tracking URI: the MLflow run id and how far it has been mirrored

Every file is written atomically (to a temporary name in the same folder, then renamed), and a
round's journal line is appended only after its checkpoint is complete, so the last journal line
always names a checkpoint that can be loaded. ``multiseal run --resume`` continues from the newest
checkpoint that proves itself (:meth:`RunDir.verify_checkpoint`), saying which it passed over;
``multiseal sync`` uploads the directory to any tracking store.

Nothing in a run directory can run code when it is read: no pickles (a checkpoint written as a pickle
by an older multiseal is refused, :class:`PickledCheckpoint`), JSON, npz without object arrays and
safetensors only.

What multiseal reads from a run directory it never reads through a symbolic link: a linked
``run.json``, ``scenario.json`` or ``mirror.json`` is refused, and a link among the artifacts is not
uploaded (see :mod:`multiseal.run.mirror`), so a run directory cannot make ``sync`` send files
from elsewhere. A ``run.json`` that cannot be read, or is not the object multiseal wrote, makes the
run *corrupt* (:class:`CorruptRun`): listed as such, never resumed or marked.
"""

from __future__ import annotations

import datetime as _dt
import errno
import hashlib
import json
import os
import shutil
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from multiseal.errors import FileReadError, InputError, read_bytes
from multiseal.run.statefile import StateError, dump_files, load_files

DEFAULT_ROOT = "runs"
HEARTBEAT_SECONDS = 30.0
ACTIVE = "RUNNING"
CHECKPOINT_FORMAT = "multiseal-checkpoint"
CHECKPOINT_VERSION = 2  # 1: state.pkl (a pickle), refused since
MANIFEST = "manifest.json"
RUN_FILE_MAX_BYTES = 16 << 20  # run.json, scenario.json, mirror.json


class CheckpointError(Exception):
    """A checkpoint that does not prove itself (a file missing, changed, or from another run or round)."""


class PickledCheckpoint(InputError):
    """A run directory whose checkpoints are pickles (multiseal before checkpoint format 2)."""


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def scenario_hash(scenario: Mapping[str, Any]) -> str:
    """The sha256 of a resolved scenario (canonical JSON: sorted keys, no spaces)."""
    return _sha256(json.dumps(scenario, sort_keys=True, separators=(",", ":")).encode())


NO_SPACE = (errno.ENOSPC, errno.EDQUOT)  # a full disk or quota: the run cannot go on writing its directory
START_TOLERANCE = 1.0  # seconds between a recorded process start time and the one read now that still match
_IDENTITY = ("uid", "experiment", "name", "kind", "status")  # what every run.json holds, as strings


class CorruptRun(InputError):
    """A run directory whose ``run.json`` cannot be read or is not the object multiseal writes."""

    def __init__(self, path: Path, reason: str):
        self.path, self.reason = path, reason
        super().__init__(f"{path}: corrupt ({reason})")


def write_error(exc: BaseException, where: str | Path) -> OSError | None:
    """``exc`` as an ``OSError`` naming the path that could not be written, when it means the disk is full
    (or the quota spent): an ``OSError`` with ENOSPC or EDQUOT (its own file name kept; else ``where``), or
    a library's error that wraps one (safetensors reports "os error 28"). None for any other error."""
    if isinstance(exc, OSError) and exc.errno in NO_SPACE:
        return exc if exc.filename else OSError(exc.errno, os.strerror(exc.errno), str(where))
    for code in NO_SPACE:
        if f"os error {code})" in str(exc):
            return OSError(code, os.strerror(code), str(where))
    return None


def process_started(pid: int) -> float | None:
    """When process ``pid`` started (seconds since the epoch, from psutil); None when there is no such
    process (a zombie counts as gone). Raises ``LookupError`` when it runs but its start cannot be read."""
    import psutil

    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return proc.create_time()
    except psutil.NoSuchProcess:
        return None
    except (psutil.Error, OSError) as e:
        raise LookupError(f"process {pid}: start time unreadable ({e})") from None


def _read_text(path: Path) -> str:
    """The text of a run directory's file (run.json, scenario.json, mirror.json), never through a
    symbolic link and at most ``RUN_FILE_MAX_BYTES``: ``FileNotFoundError``, or ``OSError`` saying why."""
    try:
        return read_bytes(path, RUN_FILE_MAX_BYTES, "a run directory's file", follow_links=False).decode()
    except FileReadError as e:
        if e.reason == "file not found":
            raise FileNotFoundError(errno.ENOENT, e.reason, str(path)) from None
        raise OSError(e.reason) from None


def atomic_write(path: Path, data: bytes | str) -> None:
    """Write ``data`` to ``path`` so that a reader sees the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError) and e.filename is None:  # a failed write names no file: name ours
            raise OSError(e.errno, e.strerror, str(path)) from None
        raise


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def _number(value: Any) -> float | None:
    """``value`` when it is a real number (not a bool), else None: for fields read from run.json."""
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _owner() -> dict[str, Any]:
    """run.json's fields naming this process as the run's owner: pid, host, start time, heartbeat."""
    try:
        started = process_started(os.getpid())
    except LookupError:
        started = None
    return {"pid": os.getpid(), "host": socket.gethostname(), "started": started, "heartbeat": time.time()}


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in text).strip("-") or "run"


class RunDir:
    """One run's directory (see the module docstring). Create with :meth:`create`, reopen with
    :meth:`open`; ``meta`` is ``run.json``."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._beat: threading.Thread | None = None
        self._stop_beat = threading.Event()

    # ------------------------------------------------------------------ life cycle
    @classmethod
    def create(
        cls,
        root: str | Path,
        experiment: str,
        name: str,
        scenario: dict[str, Any],
        tags: dict[str, str] | None = None,
        kind: str = "simulation",
        source: str | Path | None = None,
    ) -> RunDir:
        uid = uuid.uuid4().hex[:12]
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        run = cls(Path(root) / _slug(experiment) / f"{_slug(name)}-{stamp}-{uid}")
        run.path.mkdir(parents=True)
        atomic_write(run.path / "scenario.json", json.dumps(scenario, indent=2))
        run._write_meta(
            {
                "uid": uid,
                "experiment": experiment,
                "name": name,
                "kind": kind,
                "tags": dict(tags or {}),
                "status": ACTIVE,
                "created": _now(),
                **_owner(),
                "rounds_total": scenario.get("rounds"),
                "source": str(Path(source).resolve()) if source else None,
            }
        )
        return run

    @classmethod
    def open(cls, path: str | Path) -> RunDir:
        run = cls(path)
        if not (run.path / "run.json").is_file():
            raise InputError(f"{path}: not a multiseal run directory (no run.json)")
        return run

    @property
    def meta(self) -> dict[str, Any]:
        """``run.json``; :class:`CorruptRun` when it cannot be read or is not the object multiseal writes
        (the identity fields ``uid experiment name kind status`` as strings, ``tags`` an object). The other
        fields (``pid``, ``host``, ``started``, ``heartbeat``, ...) may be missing or ill-typed: their
        readers check them."""
        path = self.path / "run.json"
        try:
            meta = json.loads(_read_text(path))
        except FileNotFoundError:
            raise CorruptRun(path, "missing") from None
        except OSError as e:  # a link, a folder, a device, too large (the reason from _read_text)
            raise CorruptRun(path, e.strerror or str(e)) from None
        except ValueError as e:  # not JSON, or not UTF-8
            raise CorruptRun(path, f"not JSON: {str(e)[:80]}") from None
        if not isinstance(meta, dict):
            raise CorruptRun(path, f"a JSON {type(meta).__name__}, not an object")
        for key in _IDENTITY:
            if not isinstance(meta.get(key), str):
                raise CorruptRun(path, f"'{key}' missing" if key not in meta else f"'{key}' is not a string")
        if not isinstance(meta.get("tags", {}), dict):
            raise CorruptRun(path, "'tags' is not an object")
        return meta

    def _write_meta(self, meta: dict[str, Any]) -> None:
        atomic_write(self.path / "run.json", json.dumps(meta, indent=2))

    def update(self, **changes: Any) -> dict[str, Any]:
        with self._lock:
            meta = {**self.meta, **changes}
            self._write_meta(meta)
            return meta

    @property
    def scenario(self) -> dict[str, Any]:
        return json.loads(_read_text(self.path / "scenario.json"))

    def claim(self) -> None:
        """This process now owns the run (a resumed run gets the resuming process's pid and start time)."""
        self.update(status=ACTIVE, **_owner())

    def finish(self, status: str) -> None:
        self.stop_heartbeat()
        self.update(status=status, finished=_now(), heartbeat=time.time())

    # ------------------------------------------------------------------ heartbeat
    def start_heartbeat(self, every: float = HEARTBEAT_SECONDS) -> None:
        """Refresh ``heartbeat`` in run.json every ``every`` seconds from a daemon thread, so
        ``multiseal runs`` can tell a live run from one whose process is gone."""

        def beat() -> None:
            while not self._stop_beat.wait(every):
                try:
                    self.update(heartbeat=time.time())
                except (OSError, CorruptRun):  # a full disk, a clobbered run.json: the run itself will tell
                    pass

        self._stop_beat.clear()
        self._beat = threading.Thread(target=beat, name="multiseal-heartbeat", daemon=True)
        self._beat.start()

    def stop_heartbeat(self) -> None:
        self._stop_beat.set()
        if self._beat is not None:
            self._beat.join(timeout=5)
            self._beat = None

    def process_alive(self) -> bool:
        """Whether the process that owns this run still runs. On this host: its pid runs and started when
        run.json says (``started``), so a pid reused by another process does not count. Where that cannot be
        told (another host, no or an ill-typed ``pid`` or ``started``, a start time that cannot be read):
        by a heartbeat newer than three beats."""
        meta = self.meta
        pid, host, started, beat = (meta.get(k) for k in ("pid", "host", "started", "heartbeat"))
        fresh = _number(beat) is not None and time.time() - beat < 3 * HEARTBEAT_SECONDS
        if host != socket.gethostname() or not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
            return fresh
        try:
            now = process_started(pid)
        except LookupError:
            return fresh
        if now is None:
            return False
        if _number(started) is None:  # an older run.json: the pid runs, but is it still ours?
            return fresh
        return abs(now - started) < START_TOLERANCE

    # ------------------------------------------------------------------ journal and checkpoints
    def journal(self) -> list[dict[str, Any]]:
        """Complete journal lines in order. A line is complete when its newline is written: a torn
        last line (a crash mid-write) is left out, and the next :meth:`append` cuts it off."""
        path = self.path / "journal.jsonl"
        if not path.exists():
            return []
        out = []
        text = path.read_text(errors="replace")
        for line in text.split("\n")[:-1]:  # the part after the last newline is not a complete line
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                break
            if not isinstance(entry, dict) or not isinstance(entry.get("step"), int):
                break
            out.append(entry)
        return out

    def append(self, entry: dict[str, Any]) -> None:
        """Append one journal line, first cutting off a torn last line so the new one starts a line."""
        with open(self.path / "journal.jsonl", "ab+") as f:
            _cut_torn_tail(f)
            f.write((json.dumps(entry, sort_keys=True) + "\n").encode())
            f.flush()
            os.fsync(f.fileno())

    def identity(self) -> dict[str, Any]:
        """What a checkpoint of this run belongs to: the scenario's seed and hash."""
        scenario = self.scenario
        return {"seed": scenario.get("seed"), "scenario_sha256": scenario_hash(scenario)}

    def checkpoint(
        self,
        round: int,
        state: dict[str, Any],
        tensors: dict[str, Any],
        keep: int | None = None,
        types: Mapping[str, type] | None = None,
    ) -> int:
        """Write the checkpoint after ``round`` (1-based rounds played) atomically; returns its bytes.
        ``state`` is stored as data (:mod:`multiseal.run.statefile`; ``types``: the classes allowed in
        it), ``tensors`` as safetensors, and a manifest with every file's sha256 last. ``keep``: only
        the newest ``keep`` checkpoints stay on disk (None: all)."""
        from safetensors.torch import save

        files = dump_files(state, types or {})
        files["adapters.safetensors"] = save({k: v.contiguous() for k, v in tensors.items()})
        manifest = {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "round": round,
            **self.identity(),
            "files": {name: {"sha256": _sha256(data), "bytes": len(data)} for name, data in files.items()},
        }
        final = self.path / "checkpoints" / f"round-{round:04d}"
        tmp = self.path / "checkpoints" / f".tmp-round-{round:04d}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        for name, data in [*files.items(), (MANIFEST, json.dumps(manifest, indent=2).encode())]:
            with open(tmp / name, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        size = sum(f.stat().st_size for f in final.iterdir())
        if keep is not None:
            for old in self.checkpoints()[:-keep]:
                shutil.rmtree(old, ignore_errors=True)
        return size

    def checkpoints(self) -> list[Path]:
        folder = self.path / "checkpoints"
        if not folder.is_dir() or folder.is_symlink():
            return []
        return sorted(p for p in folder.glob("round-*") if p.is_dir() and not p.is_symlink())

    def last_complete_round(self) -> int:
        """The last round whose journal line is written and whose checkpoint exists (0: none)."""
        return max(self.complete_rounds(), default=0)

    def complete_rounds(self) -> list[int]:
        """Rounds whose journal line is written and whose checkpoint folder exists, oldest first."""
        have = {p.name for p in self.checkpoints()}
        return sorted(
            {
                e["round"]
                for e in self.journal()
                if isinstance(e.get("round"), int) and e["round"] > 0 and f"round-{e['round']:04d}" in have
            }
        )

    def refuse_pickles(self) -> None:
        """Raise :class:`PickledCheckpoint` if any checkpoint is a pickle from an older multiseal."""
        for folder in self.checkpoints():
            if (folder / "state.pkl").exists() and not (folder / MANIFEST).exists():
                raise PickledCheckpoint(
                    f"{folder / 'state.pkl'}: a checkpoint pickled by an older multiseal. Pickles can run code "
                    "when loaded, so this version never loads them; start the run again from its scenario "
                    f"(`multiseal run` with {self.path / 'scenario.json'})"
                )

    def verify_checkpoint(self, round: int) -> dict[str, bytes]:
        """The checkpoint's files, once each is proved: the manifest is for this run (seed, scenario
        hash) and this round, and every file it lists has its size and sha256. Raises
        :class:`CheckpointError` naming the first file that fails."""
        folder = self.path / "checkpoints" / f"round-{round:04d}"
        where = f"checkpoints/{folder.name}"
        try:
            manifest = json.loads(_read_regular(folder / MANIFEST))
        except (OSError, ValueError, RecursionError) as e:
            raise CheckpointError(f"{where}/{MANIFEST}: unreadable ({_short(e)})") from None
        if not isinstance(manifest, dict) or manifest.get("format") != CHECKPOINT_FORMAT:
            raise CheckpointError(f"{where}/{MANIFEST}: not a multiseal checkpoint manifest")
        if manifest.get("version") != CHECKPOINT_VERSION:
            raise CheckpointError(
                f"{where}/{MANIFEST}: format version {str(manifest.get('version'))[:20]}, "
                f"this multiseal reads {CHECKPOINT_VERSION}"
            )
        if manifest.get("round") != round:
            raise CheckpointError(
                f"{where}/{MANIFEST}: written for round {str(manifest.get('round'))[:20]}, "
                f"found in the folder of round {round}"
            )
        identity = self.identity()
        for key, want in identity.items():
            if manifest.get(key) != want:
                raise CheckpointError(
                    f"{where}/{MANIFEST}: {key} {str(manifest.get(key))[:70]} belongs to "
                    f"another run (this run's: {want})"
                )
        listed = manifest.get("files")
        needed = {"state.json", "state.npz", "state.safetensors", "adapters.safetensors"}
        if not isinstance(listed, dict) or not needed <= set(listed):
            raise CheckpointError(f"{where}/{MANIFEST}: does not list {', '.join(sorted(needed))}")
        files = {}
        for name in sorted(needed):
            info = listed[name]
            try:
                data = _read_regular(folder / name, limit=int(info["bytes"]) + 1)
            except (OSError, KeyError, TypeError, ValueError) as e:
                raise CheckpointError(f"{where}/{name}: unreadable ({_short(e)})") from None
            if len(data) != info.get("bytes") or _sha256(data) != info.get("sha256"):
                raise CheckpointError(f"{where}/{name}: sha256 mismatch (the file changed after it was written)")
            files[name] = data
        return files

    def load_checkpoint(
        self, round: int, types: Mapping[str, type] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The state and adapter tensors of a proved checkpoint (:meth:`verify_checkpoint`); raises
        :class:`CheckpointError` if it does not prove itself or its state does not decode."""
        from safetensors.torch import load

        files = self.verify_checkpoint(round)
        where = f"checkpoints/round-{round:04d}"
        try:
            state = load_files(files, types or {})
            tensors = load(files["adapters.safetensors"])
        except StateError as e:
            raise CheckpointError(f"{where}/state.json: {e}") from None
        except Exception as e:  # noqa: BLE001 - safetensors' own errors: a damaged file
            raise CheckpointError(f"{where}/adapters.safetensors: unreadable ({_short(e)})") from None
        if not isinstance(state, dict) or state.get("round", round) != round:
            raise CheckpointError(
                f"{where}/state.json: the state of round {state.get('round') if isinstance(state, dict) else '?'}, "
                f"not of round {round}"
            )
        return state, tensors

    def newest_intact(
        self,
        types: Mapping[str, type] | None = None,
    ) -> tuple[int, dict[str, Any] | None, dict[str, Any] | None, list[str]]:
        """The newest complete round whose checkpoint proves itself and loads: ``(round, state,
        tensors, problems)``, ``problems`` naming each newer checkpoint passed over; ``(0, None,
        None, problems)`` when none does (the run goes on from its start)."""
        problems = []
        for round in reversed(self.complete_rounds()):
            try:
                state, tensors = self.load_checkpoint(round, types)
            except CheckpointError as e:
                problems.append(str(e))
                continue
            return round, state, tensors, problems
        return 0, None, None, problems

    def truncate_journal(self, step: int) -> None:
        """Drop journal lines past ``step`` (rounds that ran after the last checkpoint, then died)."""
        keep = [e for e in self.journal() if e["step"] <= step]
        atomic_write(self.path / "journal.jsonl", "".join(json.dumps(e, sort_keys=True) + "\n" for e in keep))

    # ------------------------------------------------------------------ mirrors
    def mirrors(self) -> dict[str, dict[str, Any]]:
        """Per tracking URI: ``{"run_id", "entries", "status"}`` — how far it is mirrored. Missing, unreadable
        or not that shape: nothing mirrored yet (a mirror finds its MLflow run again by the run's uid)."""
        try:
            mirrors = json.loads(_read_text(self.path / "mirror.json"))
        except (OSError, ValueError):
            return {}
        if not isinstance(mirrors, dict):
            return {}
        return {uri: info for uri, info in mirrors.items() if isinstance(info, dict)}

    def set_mirror(self, uri: str, **info: Any) -> None:
        with self._lock:
            mirrors = self.mirrors()
            mirrors[uri] = {**mirrors.get(uri, {}), **info}
            atomic_write(self.path / "mirror.json", json.dumps(mirrors, indent=2))

    # ------------------------------------------------------------------ artifacts
    @property
    def artifacts(self) -> Path:
        folder = self.path / "artifacts"
        folder.mkdir(exist_ok=True)
        return folder

    def artifact_text(self, name: str, text: str) -> Path:
        path = self.artifacts / name
        atomic_write(path, text)
        return path

    def artifact_jsonl(self, name: str, rows: Any) -> Path:
        return self.artifact_text(name, "".join(json.dumps(r, default=str) + "\n" for r in rows))


def _short(e: BaseException) -> str:
    return f"{type(e).__name__}: {str(e)[:100]}"


def _read_regular(path: Path, limit: int = 64 << 20) -> bytes:
    """A checkpoint file's bytes: a regular file, not a link, at most ``limit`` of them (``OSError``
    saying why not)."""
    try:
        return read_bytes(path, limit, "a checkpoint file", follow_links=False)
    except FileReadError as e:
        raise OSError(e.reason) from None


def _cut_torn_tail(f: Any) -> None:
    """In a file opened ``ab+``: cut everything after the last newline (a line a crash left half-written)."""
    size = f.seek(0, os.SEEK_END)
    if size == 0:
        return
    f.seek(size - 1)
    if f.read(1) == b"\n":
        return
    pos, chunk = size, 1 << 16
    while pos > 0:
        start = max(0, pos - chunk)
        f.seek(start)
        block = f.read(pos - start)
        i = block.rfind(b"\n")
        if i >= 0:
            f.truncate(start + i + 1)
            return
        pos = start
    f.truncate(0)


def find_runs(root: str | Path = DEFAULT_ROOT) -> Iterator[RunDir]:
    """Every run directory under ``root`` (``<root>/<experiment>/<run>/run.json``), oldest first."""
    root = Path(root)
    if not root.exists():
        return iter(())
    return (
        RunDir(p.parent) for p in sorted(root.glob("*/*/run.json"), key=lambda p: p.parent.name.rsplit("-", 3)[-3:])
    )


def resolve_run(ref: str, root: str | Path = DEFAULT_ROOT) -> RunDir:
    """A run directory from a path, a run uid or an MLflow run id (searched under ``root``)."""
    if Path(ref, "run.json").is_file():
        return RunDir.open(ref)
    for run in find_runs(root):
        try:
            meta = run.meta
        except CorruptRun:
            continue
        if ref == meta.get("uid") or ref in {m.get("run_id") for m in run.mirrors().values()}:
            return run
    raise InputError(f"--resume {ref}: no run directory, run uid or MLflow run id '{ref}' under {root}/")
