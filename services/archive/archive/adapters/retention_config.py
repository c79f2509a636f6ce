"""Loads the retention classes YAML (packaged or DOCROUTE_RETENTION_CLASSES) into the domain policy."""

from __future__ import annotations

from pathlib import Path

import yaml

from archive.domain.errors import InvalidRetentionConfig
from archive.domain.retention import RetentionPolicy


def load_policy(path: Path) -> RetentionPolicy:
    """Parses and validates the file; a malformed one raises InvalidRetentionConfig naming the file."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise InvalidRetentionConfig(f"{path}: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidRetentionConfig(f"{path}: expected a mapping at the top level")
    try:
        return RetentionPolicy.from_mapping(data)
    except InvalidRetentionConfig as exc:
        raise InvalidRetentionConfig(f"{path}: {exc}") from exc
