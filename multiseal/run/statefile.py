"""A simulation's state as data: JSON for the structure, safetensors for tensors, npz for arrays.

A checkpoint must never be able to run code when it is loaded (run directories are things researchers
share), so nothing here is a pickle. :func:`encode` turns a tree of plain values, containers, numpy
arrays and scalars, torch tensors and objects of the *allowed* classes into a JSON-able tree plus two
flat maps of arrays; :func:`decode` turns them back. A class is allowed only if the caller names it
(``types``): decoding looks a class name up in that table and nowhere else, never imports anything,
and builds the object with ``cls.__new__`` and its attributes (or its own ``__setstate__``), so the
worst a crafted file can do is fail to decode.

The JSON tree, tagged where JSON has no type of its own::

    {"$tuple": [...]}, {"$set": [...]}, {"$frozenset": [...]}, {"$bytes": "<base64>"}
    {"$map": [[key, value], ...]}          a dict whose keys are not all strings (or one starts with "$")
    {"$defaultdict": "list", "items": [[key, value], ...]}
    {"$ndarray": "a3"}  {"$tensor": "t7"}   an entry of the npz / safetensors file
    {"$np": "<f8", "value": 0.5}           a numpy scalar
    {"$obj": "multiseal.types:Note", "state": {...}}
    {"$id": 4, ...} on a container or object referenced more than once; {"$ref": 4} at later places

Shared references come back shared (as with pickle): two attributes holding one list still hold one
list after a resume, so a later change through either is seen by both.
"""

from __future__ import annotations

import base64
import collections
import dataclasses
import json
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch

FORMAT = "multiseal-state"
VERSION = 1
_FACTORIES: dict[str, Any] = {"list": list, "set": set, "dict": dict, "int": int, "float": float}
_SCALARS = (str, int, float, bool, type(None))


class StateError(ValueError):
    """The state cannot be written (an object of a class not allowed) or read back (malformed)."""


def class_name(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _own(cls: type, method: str) -> bool:
    """Whether ``cls`` defines ``method`` itself (or a base other than ``object`` does)."""
    return getattr(cls, method, None) is not getattr(object, method, None)


class _Encoder:
    def __init__(self, types: Mapping[str, type]):
        self.allowed = {cls: name for name, cls in types.items()}
        self.arrays: dict[str, np.ndarray] = {}
        self.tensors: dict[str, torch.Tensor] = {}
        self.seen: dict[int, dict] = {}  # id(obj) -> its encoded node (to tag "$id" when met again)
        self.keep: list[Any] = []  # keep objects alive so their ids are not reused during encoding
        self.next_id = 0

    def __call__(self, x: Any, where: str) -> Any:
        if isinstance(x, bool) or x is None or isinstance(x, str):
            return x
        if isinstance(x, int) and type(x) is int:
            return x
        if isinstance(x, float) and type(x) is float:
            return x
        if isinstance(x, np.generic):
            if x.dtype.hasobject:
                raise StateError(f"{where}: a numpy object scalar cannot be stored")
            return {"$np": x.dtype.str, "value": x.item()}
        if isinstance(x, bytes):
            return {"$bytes": base64.b64encode(x).decode()}
        if id(x) in self.seen:
            node = self.seen[id(x)]
            if "$id" not in node:
                node["$id"] = self.next_id
                self.next_id += 1
            return {"$ref": node["$id"]}
        node: dict[str, Any] = {}
        self.seen[id(x)] = node  # before its parts: a part that refers back to it gets a "$ref"
        self.keep.append(x)
        node.update(self._container(x, where))
        return node

    def _container(self, x: Any, where: str) -> dict:
        if isinstance(x, torch.Tensor):
            key = f"t{len(self.tensors)}"
            self.tensors[key] = x.detach().cpu().contiguous().clone()
            return {"$tensor": key}
        if isinstance(x, np.ndarray):
            if x.dtype.hasobject:
                raise StateError(f"{where}: a numpy array of Python objects cannot be stored")
            key = f"a{len(self.arrays)}"
            self.arrays[key] = np.ascontiguousarray(x)
            return {"$ndarray": key}
        if isinstance(x, (tuple, list, set, frozenset)) and type(x) in (tuple, list, set, frozenset):
            node: dict[str, Any] = {}
            items = [self(v, f"{where}[{i}]") for i, v in enumerate(x)]
            if type(x) is list:
                node["$list"] = items
            else:
                node[{tuple: "$tuple", set: "$set", frozenset: "$frozenset"}[type(x)]] = items
            return node
        if isinstance(x, collections.defaultdict):
            factory = next((n for n, f in _FACTORIES.items() if f is x.default_factory), None)
            if factory is None and x.default_factory is not None:
                raise StateError(f"{where}: a defaultdict of {x.default_factory!r} cannot be stored")
            return {"$defaultdict": factory, "items": self._pairs(x, where)}
        if type(x) is dict:
            if all(isinstance(k, str) and not k.startswith("$") for k in x):
                return {"$dict": {k: self(v, f"{where}.{k}") for k, v in x.items()}}
            return {"$map": self._pairs(x, where)}
        cls = type(x)
        name = self.allowed.get(cls)
        if name is None:
            raise StateError(
                f"{where}: an object of class {class_name(cls)} cannot be stored in a checkpoint "
                "(only plain data and the classes the checkpoint allows; a plugin registers its "
                "own with multiseal.sim.checkpoint.allow_in_checkpoints)"
            )
        if _own(cls, "__getstate__"):
            state = x.__getstate__()
        elif dataclasses.is_dataclass(x):
            state = {f.name: getattr(x, f.name) for f in dataclasses.fields(x)}
        else:
            state = dict(vars(x))
        return {"$obj": name, "state": self(state, f"{where}<{cls.__qualname__}>")}

    def _pairs(self, x: Mapping, where: str) -> list:
        return [[self(k, f"{where}.<key>"), self(v, f"{where}[{k!r:.40}]")] for k, v in x.items()]


def encode(obj: Any, types: Mapping[str, type]) -> tuple[Any, dict[str, np.ndarray], dict[str, torch.Tensor]]:
    """``obj`` as (a JSON-able tree, numpy arrays by key, tensors by key); ``types`` maps the names
    written to the classes allowed (see :func:`allowed_types`). Raises :class:`StateError` naming
    where an object of another class sits."""
    enc = _Encoder(types)
    tree = enc(obj, "state")
    return tree, enc.arrays, enc.tensors


class _Decoder:
    def __init__(
        self, types: Mapping[str, type], arrays: Mapping[str, np.ndarray], tensors: Mapping[str, torch.Tensor]
    ):
        self.types, self.arrays, self.tensors = types, arrays, tensors
        self.refs: dict[int, Any] = {}

    def _remember(self, node: dict, value: Any) -> Any:
        if "$id" in node:
            self.refs[node["$id"]] = value
        return value

    def __call__(self, node: Any) -> Any:
        if node is None or isinstance(node, (str, bool, int, float)):
            return node
        if not isinstance(node, dict):
            raise StateError(f"unexpected {type(node).__name__} in the state tree")
        if "$ref" in node:
            if node["$ref"] not in self.refs:
                raise StateError(f"reference {node['$ref']!r} before its object")
            return self.refs[node["$ref"]]
        if "$list" in node:
            out: Any = self._remember(node, [])
            out.extend(self(v) for v in node["$list"])
            return out
        if "$set" in node:
            out = self._remember(node, set())
            out.update(self(v) for v in node["$set"])
            return out
        if "$tuple" in node:
            return self._remember(node, tuple(self(v) for v in node["$tuple"]))
        if "$frozenset" in node:
            return self._remember(node, frozenset(self(v) for v in node["$frozenset"]))
        if "$dict" in node:
            out = self._remember(node, {})
            for k, v in node["$dict"].items():
                out[k] = self(v)
            return out
        if "$map" in node:
            out = self._remember(node, {})
            for k, v in node["$map"]:
                key = self(k)  # the key first: it may be the first place an object appears
                out[key] = self(v)
            return out
        if "$defaultdict" in node:
            factory = node["$defaultdict"]
            if factory is not None and factory not in _FACTORIES:
                raise StateError(f"unknown defaultdict factory {str(factory)[:40]!r}")
            out = self._remember(node, collections.defaultdict(_FACTORIES.get(factory)))
            for k, v in node["items"]:
                key = self(k)
                out[key] = self(v)
            return out
        if "$ndarray" in node:
            return self._remember(node, self._entry(self.arrays, node["$ndarray"]))
        if "$tensor" in node:
            return self._remember(node, self._entry(self.tensors, node["$tensor"]))
        if "$np" in node:
            return np.dtype(_plain_dtype(node["$np"])).type(node["value"])
        if "$bytes" in node:
            return base64.b64decode(node["$bytes"], validate=True)
        if "$obj" in node:
            cls = self.types.get(node["$obj"])
            if cls is None:
                raise StateError(f"class {str(node['$obj'])[:80]!r} is not allowed in a checkpoint")
            obj = self._remember(node, cls.__new__(cls))
            state = self(node["state"])
            if _own(cls, "__setstate__"):
                obj.__setstate__(state)
            elif isinstance(state, dict):
                for k, v in state.items():
                    object.__setattr__(obj, k, v)
            else:
                raise StateError(f"the state of a {node['$obj']} is not a mapping")
            return obj
        raise StateError(f"untagged mapping with keys {sorted(node)[:5]} in the state tree")

    @staticmethod
    def _entry(table: Mapping[str, Any], key: Any) -> Any:
        if key not in table:
            raise StateError(f"array {str(key)[:40]!r} is missing from the checkpoint")
        return table[key]


def _plain_dtype(text: Any) -> np.dtype:
    dtype = np.dtype(str(text))
    if dtype.hasobject:
        raise StateError("numpy object dtypes are not allowed")
    return dtype


def decode(
    tree: Any, types: Mapping[str, type], arrays: Mapping[str, np.ndarray], tensors: Mapping[str, torch.Tensor]
) -> Any:
    """:func:`encode`'s inverse. Raises :class:`StateError` on anything malformed or not allowed."""
    try:
        return _Decoder(types, arrays, tensors)(tree)
    except (KeyError, TypeError, ValueError, RecursionError) as e:
        if isinstance(e, StateError):
            raise
        raise StateError(f"malformed state ({type(e).__name__}: {str(e)[:120]})") from None


def allowed_types(classes: Iterable[type]) -> dict[str, type]:
    """The ``types`` table for :func:`encode` / :func:`decode`: each class under its module and name."""
    return {class_name(cls): cls for cls in classes}


# --------------------------------------------------------------------------- files


def dump_files(obj: Any, types: Mapping[str, type]) -> dict[str, bytes]:
    """``obj`` as the bytes of ``state.json``, ``state.npz`` and ``state.safetensors``."""
    import io

    from safetensors.torch import save

    tree, arrays, tensors = encode(obj, types)
    buf = io.BytesIO()
    np.savez(buf, **arrays)  # no object arrays reach here (encode refuses them): no pickles inside
    return {
        "state.json": json.dumps({"format": FORMAT, "version": VERSION, "state": tree}).encode(),
        "state.npz": buf.getvalue(),
        "state.safetensors": save(tensors) if tensors else save({}),
    }


def load_files(files: Mapping[str, bytes], types: Mapping[str, type]) -> Any:
    """:func:`dump_files`' inverse: JSON, npz read with ``allow_pickle=False``, safetensors."""
    import io

    from safetensors.torch import load

    try:
        doc = json.loads(files["state.json"])
    except (ValueError, RecursionError) as e:
        raise StateError(f"state.json is not valid JSON ({str(e)[:80]})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise StateError("state.json is not a multiseal state file")
    if doc.get("version") != VERSION:
        raise StateError(
            f"state.json has format version {str(doc.get('version'))[:20]}, this multiseal reads {VERSION}"
        )
    try:
        with np.load(io.BytesIO(files["state.npz"]), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        tensors = load(files["state.safetensors"])
    except Exception as e:  # noqa: BLE001 - any failure to parse is a damaged file
        raise StateError(f"state arrays cannot be read ({type(e).__name__}: {str(e)[:80]})") from None
    return decode(doc.get("state"), types, arrays, tensors)
