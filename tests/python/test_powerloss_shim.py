"""The power-loss shim (tests/durability/powerloss.c) keeps exactly what POSIX promises survives.

Tests/CollectorTests/PowerLossTests.swift runs the real collector under the shim; this checks the
shim itself, file-system operation by operation, in a child Python process (os.fsync, os.rename …
are libc calls the shim intercepts): what was synced survives the restore, everything else is
undone. If the shim kept unsynced data, the collector's power-loss test could pass for a WAL that
is not durable.
"""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

SOURCE = os.path.join(os.path.dirname(__file__), "..", "durability", "powerloss.c")


def compiler():
    for cc in (os.environ.get("CC"), "cc", "clang", "gcc"):
        if cc and shutil.which(cc):
            return cc
    pytest.fail("no C compiler (cc, clang or gcc) to build tests/durability/powerloss.c")


@pytest.fixture(scope="module")
def shim(tmp_path_factory):
    out = tmp_path_factory.mktemp("shim")
    lib, tool = str(out / "libpowerloss.so"), str(out / "powerloss")
    cc = compiler()
    subprocess.run([cc, "-O1", "-Wall", "-Werror", "-shared", "-fPIC", "-o", lib, SOURCE, "-ldl", "-lpthread"], check=True)
    subprocess.run([cc, "-O1", "-Wall", "-Werror", "-DPOWERLOSS_TOOL", "-o", tool, SOURCE], check=True)
    return lib, tool


def power_loss(shim, tmp_path, script, before=None):
    """Runs `script` (with `root` bound) under the shim, then restores the durable state."""
    lib, tool = shim
    root, state = tmp_path / "disk", tmp_path / "state"
    root.mkdir()
    state.mkdir()
    if before:
        before(root)
    prelude = textwrap.dedent("""
        import os
        root = os.environ["ROOT"]
        def put(name, data, sync=True, flags=0):
            fd = os.open(os.path.join(root, name), os.O_WRONLY | os.O_CREAT | os.O_APPEND | flags, 0o644)
            os.write(fd, data)
            if sync:
                os.fsync(fd)
            os.close(fd)
        def sync_dir(name=""):
            fd = os.open(os.path.join(root, name), os.O_RDONLY | os.O_DIRECTORY)
            os.fsync(fd)
            os.close(fd)
    """)
    env = dict(os.environ, LD_PRELOAD=lib, EVALFORGE_POWERLOSS_ROOT=str(root), EVALFORGE_POWERLOSS_STATE=str(state), ROOT=str(root))
    subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(script)], env=env, check=True)
    restored = subprocess.run([tool, "restore", str(state), str(root)], capture_output=True, text=True, check=True)
    json.loads(restored.stdout)
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        for d in dirnames:
            found[os.path.normpath(os.path.join(rel, d)) + "/"] = None
        for f in filenames:
            with open(os.path.join(dirpath, f), "rb") as fh:
                found[os.path.normpath(os.path.join(rel, f))] = fh.read()
    return found


def test_a_synced_file_needs_its_directory_synced(shim, tmp_path):
    found = power_loss(shim, tmp_path, """
        put("named", b"kept")
        sync_dir()
        put("unnamed", b"synced, but its name never was")
    """)
    assert found == {"named": b"kept"}


def test_unsynced_bytes_are_cut_off(shim, tmp_path):
    found = power_loss(shim, tmp_path, """
        put("log", b"one|")
        sync_dir()
        put("log", b"two|", sync=False)
        put("never", b"x", sync=False)
        sync_dir()
    """)
    assert found == {"log": b"one|", "never": b""}


def test_unsynced_rename_and_unlink_are_undone(shim, tmp_path):
    found = power_loss(shim, tmp_path, """
        put("a", b"A")
        put("b", b"B")
        sync_dir()
        os.rename(os.path.join(root, "a"), os.path.join(root, "a2"))
        os.unlink(os.path.join(root, "b"))
    """)
    assert found == {"a": b"A", "b": b"B"}


def test_synced_rename_replaces_atomically(shim, tmp_path):
    found = power_loss(shim, tmp_path, """
        put("checkpoint", b"old")
        sync_dir()
        fd = os.open(os.path.join(root, "checkpoint.tmp"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.write(fd, b"new")
        os.fsync(fd)
        os.close(fd)
        os.rename(os.path.join(root, "checkpoint.tmp"), os.path.join(root, "checkpoint"))
        sync_dir()
        put("checkpoint", b"+unsynced", sync=False)
    """)
    assert found == {"checkpoint": b"new"}


def test_a_new_directory_needs_its_parent_synced(shim, tmp_path):
    found = power_loss(shim, tmp_path, """
        os.mkdir(os.path.join(root, "kept"))
        put("kept/y", b"y")
        sync_dir("kept")
        sync_dir()
        os.mkdir(os.path.join(root, "lost"))
        put("lost/x", b"x")
        sync_dir("lost")
    """)
    assert found == {"kept/": None, "kept/y": b"y"}


def test_what_was_there_at_start_counts_as_durable_and_o_dsync_writes_are_durable(shim, tmp_path):
    found = power_loss(shim, tmp_path, """
        put("old", b"+unsynced", sync=False)
        put("dsync", b"at once", sync=False, flags=os.O_DSYNC)
        sync_dir()
    """, before=lambda root: (root / "old").write_bytes(b"before"))
    assert found == {"old": b"before", "dsync": b"at once"}
