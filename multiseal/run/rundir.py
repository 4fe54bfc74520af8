"""A run's local directory: the source of truth that MLflow mirrors.

::

    runs/<experiment>/<run name>-<YYYYmmdd-HHMMSS>-<uid>/
        run.json             who and what: uid, experiment, name, tags, status, pid, host, heartbeat
        scenario.json        the resolved scenario
        journal.jsonl        one line per completed round (and one for row 0): metrics, checkpoint, bytes
        checkpoints/round-0003/  state.pkl + adapters.safetensors: everything needed to go on
        artifacts/           what the run logs at its end (accuracy tensor, notes, answers, graph, ...)
        mirror.json          per tracking URI: the MLflow run id and how far it has been mirrored

Every file is written atomically (to a temporary name in the same folder, then renamed), and a
round's journal line is appended only after its checkpoint is complete, so the last journal line
always names a checkpoint that can be loaded. ``multiseal run --resume`` continues from there;
``multiseal sync`` uploads the directory to any tracking store.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import pickle
import shutil
import socket
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

from multiseal.errors import InputError

DEFAULT_ROOT = "runs"
HEARTBEAT_SECONDS = 30.0
ACTIVE = "RUNNING"


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
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


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
    def create(cls, root: str | Path, experiment: str, name: str, scenario: dict[str, Any],
               tags: dict[str, str] | None = None, kind: str = "simulation", source: str | Path | None = None) -> RunDir:
        uid = uuid.uuid4().hex[:12]
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        run = cls(Path(root) / _slug(experiment) / f"{_slug(name)}-{stamp}-{uid}")
        run.path.mkdir(parents=True)
        atomic_write(run.path / "scenario.json", json.dumps(scenario, indent=2))
        run._write_meta({"uid": uid, "experiment": experiment, "name": name, "kind": kind, "tags": dict(tags or {}),
                         "status": ACTIVE, "created": _now(), "pid": os.getpid(), "host": socket.gethostname(),
                         "heartbeat": time.time(), "rounds_total": scenario.get("rounds"),
                         "source": str(Path(source).resolve()) if source else None})
        return run

    @classmethod
    def open(cls, path: str | Path) -> RunDir:
        run = cls(path)
        if not (run.path / "run.json").is_file():
            raise InputError(f"{path}: not a multiseal run directory (no run.json)")
        return run

    @property
    def meta(self) -> dict[str, Any]:
        return json.loads((self.path / "run.json").read_text())

    def _write_meta(self, meta: dict[str, Any]) -> None:
        atomic_write(self.path / "run.json", json.dumps(meta, indent=2))

    def update(self, **changes: Any) -> dict[str, Any]:
        with self._lock:
            meta = {**self.meta, **changes}
            self._write_meta(meta)
            return meta

    @property
    def scenario(self) -> dict[str, Any]:
        return json.loads((self.path / "scenario.json").read_text())

    def claim(self) -> None:
        """This process now owns the run (a resumed run gets the resuming process's pid)."""
        self.update(status=ACTIVE, pid=os.getpid(), host=socket.gethostname(), heartbeat=time.time())

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
                except OSError:
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
        """Whether the process that owns this run still runs (on this host; elsewhere: by heartbeat)."""
        meta = self.meta
        if meta.get("host") != socket.gethostname():
            return time.time() - float(meta.get("heartbeat", 0)) < 3 * HEARTBEAT_SECONDS
        try:
            os.kill(int(meta["pid"]), 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    # ------------------------------------------------------------------ journal and checkpoints
    def journal(self) -> list[dict[str, Any]]:
        """Complete journal lines in order (a half-written last line, from a crash, is ignored)."""
        path = self.path / "journal.jsonl"
        if not path.exists():
            return []
        out = []
        for line in path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                break
        return out

    def append(self, entry: dict[str, Any]) -> None:
        with open(self.path / "journal.jsonl", "a") as f:
            f.write(json.dumps(entry, sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def checkpoint(self, round: int, state: dict[str, Any], tensors: dict[str, Any], keep: int | None = None) -> int:
        """Write the checkpoint after ``round`` (1-based rounds played) atomically; returns its bytes.
        ``keep``: only the newest ``keep`` checkpoints stay on disk (None: all)."""
        from safetensors.torch import save_file

        final = self.path / "checkpoints" / f"round-{round:04d}"
        tmp = self.path / "checkpoints" / f".tmp-round-{round:04d}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        (tmp / "state.pkl").write_bytes(pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL))
        save_file(tensors, str(tmp / "adapters.safetensors"))
        for f in tmp.iterdir():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        size = sum(f.stat().st_size for f in final.iterdir())
        if keep is not None:
            for old in self.checkpoints()[:-keep]:
                shutil.rmtree(old, ignore_errors=True)
        return size

    def checkpoints(self) -> list[Path]:
        folder = self.path / "checkpoints"
        return sorted(p for p in folder.glob("round-*") if p.is_dir()) if folder.exists() else []

    def last_complete_round(self) -> int:
        """The last round whose journal line is written and whose checkpoint exists (0: none)."""
        have = {p.name for p in self.checkpoints()}
        rounds = [e["round"] for e in self.journal() if e.get("round", 0) > 0 and f"round-{e['round']:04d}" in have]
        return max(rounds, default=0)

    def load_checkpoint(self, round: int) -> tuple[dict[str, Any], dict[str, Any]]:
        from safetensors.torch import load_file

        folder = self.path / "checkpoints" / f"round-{round:04d}"
        state = pickle.loads((folder / "state.pkl").read_bytes())
        return state, load_file(str(folder / "adapters.safetensors"))

    def truncate_journal(self, step: int) -> None:
        """Drop journal lines past ``step`` (rounds that ran after the last checkpoint, then died)."""
        keep = [e for e in self.journal() if e["step"] <= step]
        atomic_write(self.path / "journal.jsonl", "".join(json.dumps(e, sort_keys=True) + "\n" for e in keep))

    # ------------------------------------------------------------------ mirrors
    def mirrors(self) -> dict[str, dict[str, Any]]:
        """Per tracking URI: ``{"run_id", "rounds", "artifacts", "status"}`` — how far it is mirrored."""
        path = self.path / "mirror.json"
        return json.loads(path.read_text()) if path.exists() else {}

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


def find_runs(root: str | Path = DEFAULT_ROOT) -> Iterator[RunDir]:
    """Every run directory under ``root`` (``<root>/<experiment>/<run>/run.json``), oldest first."""
    root = Path(root)
    if not root.exists():
        return iter(())
    return (RunDir(p.parent) for p in sorted(root.glob("*/*/run.json"), key=lambda p: p.parent.name.rsplit("-", 3)[-3:]))


def resolve_run(ref: str, root: str | Path = DEFAULT_ROOT) -> RunDir:
    """A run directory from a path, a run uid or an MLflow run id (searched under ``root``)."""
    if Path(ref, "run.json").is_file():
        return RunDir.open(ref)
    for run in find_runs(root):
        meta = run.meta
        if ref == meta.get("uid") or ref in {m.get("run_id") for m in run.mirrors().values()}:
            return run
    raise InputError(f"--resume {ref}: no run directory, run uid or MLflow run id '{ref}' under {root}/")
