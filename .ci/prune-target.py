#!/usr/bin/env python3
"""Removes from a cached cargo target directory the build units the last CI run did not use.

Usage: prune-target.py PROFILE_DIR STAMP MESSAGES.json [MESSAGES.json ...]

PROFILE_DIR is e.g. $CARGO_TARGET_DIR/debug; STAMP a file touched before the run; each
MESSAGES.json the output of a cargo command of the run, repeated with --message-format=json.
Cargo reports every unit it builds or finds fresh there (a `compiler-artifact` or
`build-script-executed` message), mostly with paths that carry the unit's 16-hex-digit hash, the
same hash that names its entries in deps/, .fingerprint/ and build/. The paths of binaries and
cdylibs are copied up out of deps/ and lose the hash, so entries written since STAMP stay too:
that covers the workspace's own units, which a fresh checkout always builds.

Everything else under those three folders is left over from other feature sets, other checkouts
or older lock files; a cache that keeps it grows without bound (64 GB here once). Entries
without a hash (a few per crate at most) and the top-level artifacts stay. Removing an entry a
later build wants only makes that build compile it again. Prints what it freed.
"""

import json
import os
import re
import shutil
import sys

HASH = re.compile(r"-([0-9a-f]{16})(?=[./]|$)")


def used_hashes(message_files):
    hashes = set()
    for path in message_files:
        with open(path, encoding="utf-8") as messages:
            for line in messages:
                if not line.startswith("{"):
                    continue
                message = json.loads(line)
                reason = message.get("reason")
                if reason == "compiler-artifact":
                    paths = list(message["filenames"])
                    if message.get("executable"):
                        paths.append(message["executable"])
                elif reason == "build-script-executed":
                    paths = [message["out_dir"]]
                else:
                    continue
                for artifact in paths:
                    hashes.update(HASH.findall(artifact))
    return hashes


def size_of(path):
    if os.path.isdir(path) and not os.path.islink(path):
        return sum(
            os.path.getsize(os.path.join(root, name))
            for root, _, names in os.walk(path)
            for name in names
        )
    return os.path.getsize(path)


def remove(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    else:
        os.remove(path)


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    profile, stamp, message_files = sys.argv[1], sys.argv[2], sys.argv[3:]
    since = os.path.getmtime(stamp)
    keep = used_hashes(message_files)
    if not keep:
        # Something is off with the messages, not with the build: keep everything, and keep the
        # run green, since the tests passed.
        print("prune-target: warning: the cargo messages name no build unit; nothing removed")
        return
    freed = removed = 0
    for folder in ("deps", ".fingerprint", "build"):
        folder = os.path.join(profile, folder)
        if not os.path.isdir(folder):
            continue
        for entry in os.listdir(folder):
            match = HASH.search(entry)
            if not match or match.group(1) in keep:
                continue
            path = os.path.join(folder, entry)
            if os.path.getmtime(path) >= since:
                continue
            freed += size_of(path)
            remove(path)
            removed += 1
    print(
        f"prune-target: kept {len(keep)} build units, removed {removed} unused entries "
        f"({freed / 2**30:.1f} GiB) from {profile}"
    )


if __name__ == "__main__":
    main()
