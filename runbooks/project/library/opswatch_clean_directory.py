#!/usr/bin/python
"""Ansible module behind clean_directory.yml: remove or gzip old regular files, inside roots only.

The directory and every file name are untrusted data: they are handled here in Python (never
templated, never given to a shell). Symlinks are never followed: the target is opened from its
root one directory at a time with O_NOFOLLOW, and the walk goes on from that descriptor
(os.fwalk with dir_fd), so a directory swapped for a symlink after the check, at any depth,
cannot lead outside.
"""

from __future__ import annotations

import fnmatch
import gzip
import os
import shutil
import stat
import time
from dataclasses import dataclass, field
from typing import Any

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: opswatch_clean_directory
short_description: Remove or gzip regular files older than N days, only inside allowed roots
options:
  path: {type: str, required: true, description: Absolute directory to clean.}
  roots: {type: list, elements: str, required: true, description: Directories it may touch.}
  older_than_days: {type: float, default: 7}
  mode: {type: str, choices: [remove, compress], default: remove}
  pattern: {type: str, default: "*", description: Glob matched against file names.}
  recurse: {type: bool, default: true}
"""

MAX_LISTED = 100
DAY = 86400.0


class Refused(Exception):
    """The request is outside what this runbook may do."""


@dataclass
class Outcome:
    count: int = 0
    bytes: int = 0
    files: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def add(self, path: str, freed: int) -> None:
        self.count += 1
        self.bytes += freed
        if len(self.files) < MAX_LISTED:
            self.files.append(path)


def resolve_target(path: str, roots: list[str]) -> tuple[str, str]:
    """(root, real path of `path`) if `path` is a directory inside one of `roots`; else Refused."""
    if not path or not os.path.isabs(path) or "\0" in path:
        raise Refused(f"path must be an absolute directory, got {path!r}")
    real_roots = [os.path.realpath(r) for r in roots if r and os.path.isabs(r)]
    if not real_roots:
        raise Refused("no roots configured: set absolute directories in the runbook's roots")
    if "/" in real_roots:
        raise Refused("a root of / would allow cleaning the whole host; name narrower roots")
    target = os.path.realpath(path)
    for root in real_roots:
        if target == root or target.startswith(root + os.sep):
            if not os.path.isdir(target):
                raise Refused(f"{target} is not a directory")
            return root, target
    parent_of = [r for r in real_roots if r.startswith(target.rstrip(os.sep) + os.sep)]
    why = f"it is a parent of the root {parent_of[0]}" if parent_of else "it is not inside any root"
    raise Refused(f"refusing to clean {target}: {why} (roots: {', '.join(real_roots)})")


def open_below(root: str, target: str) -> int:
    """A descriptor of `target`, reached from `root` without following any symlink.

    `resolve_target` saw no symlink in the path, but a directory inside the root can be swapped
    for one before the walk starts: then this refuses instead of following it.
    """
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
    fd = os.open(root, flags)  # the root itself comes from the runbook's configuration
    try:
        relative = os.path.relpath(target, root)
        for part in [] if relative == os.curdir else relative.split(os.sep):
            try:
                below = os.open(part, flags | os.O_NOFOLLOW, dir_fd=fd)
            except OSError as exc:
                raise Refused(f"{target} changed while being opened ({exc.strerror})") from None
            os.close(fd)
            fd = below
    except BaseException:
        os.close(fd)
        raise
    return fd


def human(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def compress(name: str, dir_fd: int, st: os.stat_result) -> int:
    """gzip one file in place (keeping its mtime and mode); return the bytes freed."""
    gz_name = name + ".gz"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
    src_fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=dir_fd)
    try:
        dst_fd = os.open(gz_name, flags, stat.S_IMODE(st.st_mode), dir_fd=dir_fd)
    except BaseException:
        os.close(src_fd)
        raise
    with os.fdopen(src_fd, "rb") as src, os.fdopen(dst_fd, "wb") as raw:
        with gzip.GzipFile(filename=name, mode="wb", fileobj=raw, mtime=int(st.st_mtime)) as dst:
            shutil.copyfileobj(src, dst)
        written = os.fstat(raw.fileno()).st_size
    os.utime(gz_name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dir_fd)
    os.unlink(name, dir_fd=dir_fd)
    return max(st.st_size - written, 0)


def clean_one(name: str, dir_fd: int, st: os.stat_result, mode: str, check: bool) -> int:
    if check:
        return st.st_size
    if mode == "compress":
        return compress(name, dir_fd, st)
    os.unlink(name, dir_fd=dir_fd)
    return st.st_size


def clean(params: dict[str, Any], check: bool, now: float) -> tuple[str, Outcome]:
    """Walk the target and act on each old regular file that matches the pattern."""
    root, target = resolve_target(params["path"], params["roots"])
    cutoff = now - float(params["older_than_days"]) * DAY
    mode, pattern, outcome = params["mode"], params["pattern"], Outcome()
    top = open_below(root, target)
    try:
        walk = os.fwalk(os.curdir, follow_symlinks=False, dir_fd=top)
        for dirpath, dirnames, filenames, dir_fd in walk:
            if not params["recurse"]:
                dirnames.clear()
            for name in filenames:
                skip = mode == "compress" and name.endswith(".gz")
                if skip or not fnmatch.fnmatchcase(name, pattern):
                    continue
                path = os.path.normpath(os.path.join(target, dirpath, name))
                try:
                    st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
                    if stat.S_ISREG(st.st_mode) and st.st_mtime < cutoff:
                        outcome.add(path, clean_one(name, dir_fd, st, mode, check))
                except OSError as exc:
                    outcome.errors.append(f"{path}: {exc.strerror}")
    finally:
        os.close(top)
    return target, outcome


def message(target: str, params: dict[str, Any], outcome: Outcome, check: bool) -> str:
    days = f"{float(params['older_than_days']):g}"
    if not outcome.count:
        wanted = f"files matching {params['pattern']!r} older than {days} days"
        return f"nothing to clean in {target}: no {wanted}"
    verb = {"remove": "removed", "compress": "compressed"}[params["mode"]]
    verb = f"would have {verb}" if check else verb
    freed = f"{human(outcome.bytes)} {'to free' if check else 'freed'}"
    return f"{verb} {outcome.count} files older than {days} days in {target} ({freed})"


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "str", "required": True},
            "roots": {"type": "list", "elements": "str", "required": True},
            "older_than_days": {"type": "float", "default": 7.0},
            "mode": {"type": "str", "choices": ["remove", "compress"], "default": "remove"},
            "pattern": {"type": "str", "default": "*"},
            "recurse": {"type": "bool", "default": True},
        },
        supports_check_mode=True,
    )
    try:
        target, outcome = clean(module.params, module.check_mode, time.time())
    except Refused as exc:
        module.fail_json(msg=str(exc), changed=False)
        return
    # not "path": AnsibleModule would stat it with $VARS expanded (add_path_info)
    result = {"changed": outcome.count > 0, "directory": target, "count": outcome.count,
              "bytes": outcome.bytes, "files": outcome.files, "errors": outcome.errors[:MAX_LISTED]}
    text = message(target, module.params, outcome, module.check_mode)
    if outcome.errors:
        module.fail_json(msg=f"{text}; {len(outcome.errors)} files could not be cleaned", **result)
    module.exit_json(msg=text, **result)


if __name__ == "__main__":
    main()
