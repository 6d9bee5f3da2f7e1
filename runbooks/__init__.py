"""The runbooks shipped with OpsWatch: an ansible-runner project of playbooks (package data)."""

from __future__ import annotations

from pathlib import Path


def default_dir() -> Path:
    """The folder of the shipped playbooks (the default `remediation.runbooks_dir`)."""
    return Path(__file__).resolve().parent / "project"
