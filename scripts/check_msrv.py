#!/usr/bin/env python3
"""Checks the declared `rust-version` against the dependency graph.

The machine has one toolchain, so CI cannot build with the declared MSRV
itself. What it can check, and this script does: no dependency that a user
builds (normal and build dependencies, every feature on) declares a
`rust-version` newer than ours. Clippy's `incompatible_msrv` lint, on in
`.ci/run`'s `-D warnings` run, covers the other half: our own code calling a
standard library API stabilised after the declared version.

Usage: python3 scripts/check_msrv.py   (from the repository root)
"""

import json
import subprocess
import sys


def version(text):
    parts = [int(part) for part in text.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))


def main():
    metadata = json.loads(
        subprocess.run(
            ["cargo", "metadata", "--format-version", "1", "--all-features", "--locked"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    packages = {package["id"]: package for package in metadata["packages"]}
    root = metadata["resolve"]["root"]
    ours = packages[root].get("rust_version")
    if not ours:
        print("check_msrv: Cargo.toml declares no rust-version", file=sys.stderr)
        return 1
    nodes = {node["id"]: node for node in metadata["resolve"]["nodes"]}
    # Walk normal and build edges only: dev-dependencies are not built by users.
    seen, stack = set(), [root]
    while stack:
        node = nodes[stack.pop()]
        for dep in node["deps"]:
            kinds = {kind["kind"] for kind in dep["dep_kinds"]}
            if node["id"] == root and kinds <= {"dev"}:
                continue
            if dep["pkg"] not in seen:
                seen.add(dep["pkg"])
                stack.append(dep["pkg"])
    newer = sorted(
        (packages[pkg]["name"], packages[pkg]["version"], packages[pkg]["rust_version"])
        for pkg in seen
        if packages[pkg].get("rust_version")
        and version(packages[pkg]["rust_version"]) > version(ours)
    )
    for name, ver, needs in newer:
        print(f"check_msrv: {name} {ver} needs Rust {needs}, newer than our rust-version {ours}")
    if newer:
        return 1
    print(f"check_msrv: {len(seen)} dependencies, none needs more than Rust {ours}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
