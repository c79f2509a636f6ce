"""A small reader of the services' Dockerfile: instructions by stage with the build arguments substituted as
Docker does (an ARG counts from where a stage declares it), and a builder-stage replay with uv."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Instruction:
    keyword: str
    args: str


@dataclass
class Stage:
    image: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [i.args for i in self.instructions if i.keyword == keyword]


def substitute(text: str, scope: dict[str, str | None]) -> str:
    """${NAME} and $NAME of the build arguments in scope; an argument without a value becomes ""."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return (scope[name] or "") if name in scope else match.group(0)

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", value, text)


def parse(path: Path, build_args: dict[str, str] | None = None) -> list[Stage]:
    """Splits a Dockerfile into stages of (keyword, arguments); continuation lines are joined and the
    build arguments a stage has declared (ARG) are replaced by `build_args`' values or their defaults."""
    given = build_args or {}
    text = path.read_text(encoding="utf-8")
    logical: list[str] = []
    buffer = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not buffer and (not line or line.startswith("#")):
            continue
        if buffer and line.startswith("#"):
            continue
        if line.endswith("\\"):
            buffer += line[:-1] + " "
            continue
        logical.append(buffer + line)
        buffer = ""
    stages: list[Stage] = []
    global_args: dict[str, str | None] = {}
    scope: dict[str, str | None] = {}
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "ARG":
            name, has_default, default = args.strip().partition("=")
            inherited = global_args.get(name) if stages else None
            value = given.get(name, default if has_default else inherited)
            (scope if stages else global_args)[name] = value
            if stages:
                stages[-1].instructions.append(Instruction(keyword, args.strip()))
            continue
        if keyword == "FROM":
            args = substitute(args, global_args)
            scope = {}
            match = re.fullmatch(
                r"(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", args.strip(), re.IGNORECASE
            )
            assert match, f"unreadable FROM: {args}"
            stages.append(Stage(image=match.group(1), name=match.group(2)))
        else:
            assert stages, "instruction before the first FROM"
            stages[-1].instructions.append(Instruction(keyword, substitute(args.strip(), scope)))
    return stages


def env_pairs(args: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in shlex.split(args) if "=" in part)


class ReplayError(AssertionError):
    pass


def replay_builder(stage: Stage, context: Path, root: Path, python: str) -> dict[str, str]:
    """Runs a builder stage's WORKDIR/ENV/COPY/RUN against a scratch root instead of an image.

    Absolute paths of the image (/src, /app, ...) become paths under `root`; uv runs offline from the
    local cache and with this machine's Python 3.11. Returns the final environment."""
    env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/root")}
    if "UV_CACHE_DIR" in os.environ:
        env["UV_CACHE_DIR"] = os.environ["UV_CACHE_DIR"]
    workdir = root

    def host(path: str) -> Path:
        return root / path.lstrip("/") if path.startswith("/") else workdir / path

    def rewrite(value: str) -> str:
        return re.sub(r"(?<![\w.])/(src|app)\b", lambda m: str(root / m.group(1)), value)

    for instruction in stage.instructions:
        if instruction.keyword == "WORKDIR":
            workdir = host(instruction.args)
            workdir.mkdir(parents=True, exist_ok=True)
        elif instruction.keyword == "ENV":
            env.update({k: rewrite(v) for k, v in env_pairs(instruction.args).items()})
        elif instruction.keyword == "COPY":
            parts = shlex.split(instruction.args)
            if any(p.startswith("--from") for p in parts):
                continue  # the uv binary: this machine's uv stands in for it
            *sources, target = [p for p in parts if not p.startswith("--")]
            for source in sources:
                src = context / source
                if not src.exists():
                    raise ReplayError(f"COPY {source}: not in the build context")
                dst = host(target)
                if src.is_dir():
                    shutil.copytree(
                        src, dst, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__")
                    )
                else:
                    if target.endswith("/"):
                        dst = dst / src.name
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(src, dst)
        elif instruction.keyword == "RUN":
            command = re.sub(r"--mount=\S+\s*", "", instruction.args)
            run_env = {
                **env,
                "UV_OFFLINE": "1",
                "UV_PYTHON": python,
                # Bytecode compilation changes nothing about what is installed; skip it to stay fast.
                "UV_COMPILE_BYTECODE": "0",
                "UV_NO_PROGRESS": "1",
            }
            result = subprocess.run(
                ["bash", "-c", rewrite(command)],
                cwd=workdir,
                env=run_env,
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            if result.returncode != 0:
                raise ReplayError(f"RUN {command!r} failed:\n{result.stdout}\n{result.stderr}")
    return env
