"""What every row gets: the servers, a process launcher, the scratch directory, run mode and the memory
sampler whose peaks become row 6."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path

from bench.harness import Infra, Launcher, RssSampler


@dataclass
class Context:
    workdir: Path
    infra: Infra
    launcher: Launcher
    quick: bool = False
    jwt_secret: str = field(default_factory=lambda: f"bench-secret-{uuid.uuid4().hex}")
    # Peak RSS per process group and the row it was measured under: {"intake (gunicorn)": (MB, "1")}.
    memory: dict[str, tuple[float, str]] = field(default_factory=dict)

    def scratch(self, name: str) -> Path:
        path = self.workdir / f"{name}-{uuid.uuid4().hex[:6]}"
        path.mkdir(parents=True)
        return path

    def record_memory(self, sampler: RssSampler, row: str) -> None:
        for label, mb in sampler.peaks_mb().items():
            if label not in self.memory or mb > self.memory[label][0]:
                self.memory[label] = (mb, row)

    def repeats(self, full: int) -> int:
        return 1 if self.quick else full
