"""The composition root's view of the three services: how to configure, migrate, serve and run each one."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from shared.db import make_engine


@dataclass(frozen=True)
class ServiceSpec:
    """What the composition root needs to know about one service."""

    name: str
    port: int

    def module(self, suffix: str) -> ModuleType:
        return importlib.import_module(f"{self.name}.{suffix}")

    def settings(self) -> Any:
        return self.module("settings").Settings.from_env()

    def migrate(self, settings: Any) -> None:
        engine = make_engine(settings.database_url)
        try:
            self.module("adapters.db").migrate(engine)
        finally:
            engine.dispose()

    def create_app(self, settings: Any) -> Any:
        return self.module("api").create_app(settings)

    def build_worker(self, settings: Any) -> Any:
        return self.module("worker").build_worker(settings)


SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec("intake", 8001),
    ServiceSpec("routing", 8002),
    ServiceSpec("archive", 8003),
)


def by_name(name: str) -> ServiceSpec:
    for spec in SERVICES:
        if spec.name == name:
            return spec
    raise KeyError(name)
