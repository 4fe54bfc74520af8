"""Tiny name → builder registries: the extension points of multiseal.

A new prompt style, grader or recipe is one function plus one ``register`` line (:class:`Registry`).
A new topology, scheduler or policy also declares the *parameters* it takes, as a pydantic model
(:class:`KindRegistry`, the way PEFT pairs a method with its config class)::

    class TwoCliquesParams(Params):
        bridge: bool = True

    @TOPOLOGIES.register("two-cliques", params=TwoCliquesParams)
    def two_cliques(n: int, params: TwoCliquesParams, rng, directed): ...

Validation then needs nothing else: unknown keys are errors naming the allowed ones, and every
problem comes back as a ``(dotted key, message)`` pair (``params.bridge: Input should be a valid
boolean, got 'yes'``). A rule that needs more than the parameters (the number of agents) reads it from
the validation context (``info.context["n"]`` in a validator).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any, Generic, TypeVar, overload

from pydantic import BaseModel, ConfigDict, ValidationError

from multiseal.errors import ParamsError, pydantic_problems, shown

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])
Problems = list[tuple[str, str]]


class Registry(Generic[T]):
    """A plain dict from name to object that rejects duplicate names and explains unknown ones."""

    def __init__(self, what: str):
        self.what = what
        self._items: dict[str, T] = {}

    @overload
    def register(self, name: str, item: None = None) -> Callable[[T], T]: ...
    @overload
    def register(self, name: str, item: T) -> T: ...

    def register(self, name: str, item: T | None = None) -> Callable[[T], T] | T:
        """Register ``item`` under ``name``; usable as ``@REG.register("name")`` too."""
        if item is None:

            def deco(obj: T) -> T:
                self.register(name, obj)
                return obj

            return deco
        self._add(name, item)
        return item

    def _add(self, name: str, item: T) -> None:
        if name in self._items:
            raise ValueError(f"{self.what} '{name}' is already registered")
        self._items[name] = item

    def unregister(self, name: str) -> None:
        """Forget ``name`` (tests that register a kind of their own clean up with this)."""
        self._items.pop(name, None)

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise KeyError(f"unknown {self.what} '{name}'; known: {', '.join(self.names())}") from None

    def names(self) -> list[str]:
        return list(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)


# ---------------------------------------------------------------- kinds with typed parameters


class Params(BaseModel):
    """Base of a kind's parameter model: unknown keys are errors, values are not coerced (an int
    stays an int: ``"3"``, ``2.0`` and ``true`` are not 3, 2 or 1), floats are finite, defaults go
    through the validators too (a default ``k`` must still fit the number of agents), and the parsed
    parameters are frozen."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True, validate_default=True)


class NoParams(Params):
    """The parameters of a kind that takes none."""


def validate_params(
    model: type[BaseModel],
    params: Mapping[str, Any] | None,
    *,
    context: Mapping[str, Any] | None = None,
    prefix: str = "params",
    owner: str | None = None,
) -> tuple[BaseModel | None, Problems]:
    """``params`` validated against ``model``: ``(parsed, [])``, or ``(None, problems)``.

    Problems are ``(dotted key, message)`` pairs under ``prefix`` (``params.k``); ``context`` reaches
    the model's validators (``info.context``), e.g. the number of agents; ``owner`` names the kind in
    the message for an unknown key (``unknown parameter for topology ring; allowed: none``).
    """
    if params is None:
        params = {}
    if not isinstance(params, Mapping):
        return None, [(prefix, f"must be a mapping, got {shown(params)}")]
    try:
        return model.model_validate(dict(params), context=dict(context or {})), []
    except ValidationError as e:
        return None, [(p.path, p.message) for p in pydantic_problems(e, prefix=prefix, model=model, owner=owner)]


@dataclass(frozen=True)
class Kind(Generic[F]):
    """One registered kind: its builder ``fn`` and the pydantic model of its parameters.

    Calling a kind calls its builder, so ``REGISTRY.get(name)(...)`` builds as before.
    """

    name: str
    fn: F
    params: type[BaseModel] = NoParams
    what: str = "kind"
    cost: Callable[..., Any] | None = None  # the kind's share of a run's estimate; its registry says what it takes

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def validate(
        self, params: Mapping[str, Any] | None, *, context: Mapping[str, Any] | None = None, prefix: str = "params"
    ) -> tuple[BaseModel | None, Problems]:
        """``params`` checked against this kind's model (see :func:`validate_params`)."""
        return validate_params(self.params, params, context=context, prefix=prefix, owner=f"{self.what} {self.name}")

    def parse(
        self, params: Mapping[str, Any] | None, *, context: Mapping[str, Any] | None = None, prefix: str = "params"
    ) -> BaseModel:
        """The parsed parameters; raises :class:`multiseal.errors.ParamsError` listing every problem."""
        parsed, problems = self.validate(params, context=context, prefix=prefix)
        if problems:
            raise ParamsError(problems)
        assert parsed is not None
        return parsed


class KindRegistry(Registry[Kind[F]]):
    """A registry whose entries declare their parameters: ``register(name, fn, params=Model)``.

    ``get(name)`` returns the :class:`Kind` (callable like its builder; ``.params`` is the model).
    A kind registered without ``params`` takes none (:class:`NoParams`). The model must forbid
    unknown keys: subclass :class:`Params`.
    """

    @overload  # type: ignore[override]
    def register(
        self, name: str, fn: None = None, *, params: type[BaseModel] = NoParams, cost: Callable[..., Any] | None = None
    ) -> Callable[[F], F]: ...
    @overload
    def register(
        self, name: str, fn: F, *, params: type[BaseModel] = NoParams, cost: Callable[..., Any] | None = None
    ) -> F: ...

    def register(
        self,
        name: str,
        fn: F | None = None,
        *,
        params: type[BaseModel] = NoParams,
        cost: Callable[..., Any] | None = None,
    ) -> Callable[[F], F] | F:
        """Register builder ``fn`` with its parameter model (and, where its registry asks for one, its
        ``cost`` hook: the kind's share of the estimate); usable as a decorator too (returns ``fn``)."""
        if fn is None:

            def deco(obj: F) -> F:
                self.register(name, obj, params=params, cost=cost)
                return obj

            return deco
        if not (isinstance(params, type) and issubclass(params, BaseModel)):
            raise TypeError(f"{self.what} '{name}': params must be a pydantic model class, got {params!r}")
        if params.model_config.get("extra") != "forbid":
            raise TypeError(
                f"{self.what} '{name}': {params.__name__} must forbid unknown keys (subclass multiseal.registry.Params)"
            )
        self._add(name, Kind(name, fn, params, self.what, cost))
        return fn

    def set_cost(self, name: str, cost: Callable[..., Any]) -> None:
        """Give registered kind ``name`` its cost hook (for a layer above the kind's that knows it)."""
        self._items[name] = replace(self.get(name), cost=cost)

    def validate(
        self,
        name: str,
        params: Mapping[str, Any] | None,
        *,
        context: Mapping[str, Any] | None = None,
        prefix: str = "params",
    ) -> tuple[BaseModel | None, Problems]:
        """``params`` of kind ``name``: ``(parsed, [])`` or ``(None, problems)``; an unknown name is a
        problem at ``kind``."""
        if name not in self:
            return None, [("kind", f"{shown(name)} is not one of {', '.join(self.names())}")]
        return self.get(name).validate(params, context=context, prefix=prefix)

    def parse(
        self,
        name: str,
        params: Mapping[str, Any] | None,
        *,
        context: Mapping[str, Any] | None = None,
        prefix: str = "params",
    ) -> BaseModel:
        """The parsed parameters of kind ``name``; raises ``ParamsError`` listing every problem."""
        parsed, problems = self.validate(name, params, context=context, prefix=prefix)
        if problems:
            raise ParamsError(problems)
        assert parsed is not None
        return parsed
