"""Which engine, and which engine-side model name, a public `model` name reaches."""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from .adapters import AdapterManager, AdapterVersion
from .engine import EngineGroup
from .errors import ModelNotFound
from .protocol import ModelCard


@dataclass
class Target:
    """A resolved request: where it goes and the adapter lease it holds until it finishes."""

    public: str
    group: EngineGroup
    engine_model: str
    lease: AdapterVersion | None = None


class ModelRouter:
    def __init__(self, groups: dict[str, EngineGroup], adapters: AdapterManager):
        self.groups = groups
        self.adapters = adapters
        # An upstream group is reachable by the names its server lists, and by its own
        # name only when the config gave one.
        self.base = {n: g for n, g in groups.items() if g.config.managed or n != "upstream"}
        self.aliases: dict[str, str] = {}  # alias -> group name
        self.upstream_names: dict[str, tuple[EngineGroup, str | None]] = {}  # name -> (group, parent)
        for g in groups.values():
            for a in g.config.aliases:
                self.aliases[a] = g.name

    def add_upstream_models(self, group: EngineGroup, models: list[dict]) -> None:
        """Names an external server already serves (its base models and its own adapters)."""
        for m in models:
            self.upstream_names[m["id"]] = (group, m.get("parent"))

    def names(self) -> list[str]:
        return sorted({*self.base, *self.aliases, *self.adapters.current, *self.upstream_names})

    def resolve(self, name: str) -> Target:
        if name in self.adapters.current:
            lease = self.adapters.acquire(name)
            return Target(name, lease.group, lease.engine_name, lease)
        group_name = self.aliases.get(name, name)
        if group_name in self.base:
            group = self.base[group_name]
            lease = self.adapters.acquire_zero(group.name)
            engine_model = lease.engine_name if lease else (group.served_names or [group.name])[0]
            return Target(name, group, engine_model, lease)
        if name in self.upstream_names:
            return Target(name, self.upstream_names[name][0], name)
        raise self.not_found(name)

    def release(self, target: Target) -> None:
        if target.lease is not None:
            self.adapters.release(target.lease)
            target.lease = None

    def not_found(self, name: str) -> ModelNotFound:
        names = self.names()
        close = difflib.get_close_matches(name, names, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        return ModelNotFound(f"The model {name!r} does not exist.{hint} Available models: {', '.join(names)}",
                             param="model")

    def cards(self) -> list[ModelCard]:
        cards: list[ModelCard] = []
        for g in self.base.values():
            root = g.config.model or (g.served_names or [g.name])[0]
            if g.name not in self.upstream_names:
                cards.append(ModelCard(id=g.name, root=root, max_model_len=g.max_model_len,
                                       max_num_seqs=g.max_num_seqs))
            cards += [ModelCard(id=a, root=g.name, max_model_len=g.max_model_len, max_num_seqs=g.max_num_seqs)
                      for a, target in self.aliases.items() if target == g.name]
        for name, (g, parent) in self.upstream_names.items():
            cards.append(ModelCard(id=name, root=g.name if parent else name, parent=parent))
        for name, v in sorted(self.adapters.current.items()):
            cards.append(ModelCard(id=name, root=v.source, parent=v.group.name, max_model_len=v.group.max_model_len,
                                   max_num_seqs=v.group.max_num_seqs,
                                   created=int(v.loaded_at), version=v.version))
        return cards
