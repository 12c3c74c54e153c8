#!/usr/bin/python3
"""POSIX conformance: run the same checks on a local directory and on a
keibifs mount and compare the outcomes, check by check.

    tests/conformance.py [--json] DIR [DIR...]

Each check runs in a fresh subdirectory of every DIR and yields an outcome
(a value or an errno name). The first DIR is the reference (a local ext4 or
tmpfs directory); for the others the script prints which checks match it.
Run it as root and as an unprivileged user (tests/test_conformance.c does
both, on an owners=preserve,allow_other mount). The permission checks look
next to the work dirs, in every DIR, for root's fixtures: root-owned (0644),
root-dir/file (dir 0755) and sticky/root-file (dir 01777); without them
they answer "n/a" (as root they simply succeed). Checks listed in
KEIBIFS_INHERENT are skipped on a keibifs mount with the reason printed
(with KEIBIFS_OWNERS=map in the environment also KEIBIFS_MAP_INHERENT: an
owners=map mount).
Exit status: 0 when every DIR matches the reference on every check.
"""
import errno
import json
import os
import socket
import stat
import sys
import time


def err(e):
    return errno.errorcode.get(e.errno, str(e.errno))


def outcome(fn, *a, **kw):
    try:
        r = fn(*a, **kw)
        return "ok" if r is None else r
    except OSError as e:
        return err(e)


def touch(p, mode=0o644, data=b""):
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    os.write(fd, data)
    os.close(fd)


CHECKS = []


def check(fn):
    CHECKS.append(fn)
    return fn


# --- creation and O_ flags -------------------------------------------------
@check
def creat_excl_existing(d):
    touch(f"{d}/a")
    return outcome(os.open, f"{d}/a", os.O_CREAT | os.O_EXCL | os.O_WRONLY)


@check
def creat_mode_umask(d):
    old = os.umask(0o022)
    try:
        fd = os.open(f"{d}/m", os.O_CREAT | os.O_WRONLY, 0o777)
        os.close(fd)
    finally:
        os.umask(old)
    return oct(stat.S_IMODE(os.stat(f"{d}/m").st_mode))


@check
def open_trunc(d):
    touch(f"{d}/t", data=b"hello world")
    os.close(os.open(f"{d}/t", os.O_WRONLY | os.O_TRUNC))
    return os.stat(f"{d}/t").st_size


@check
def open_append(d):
    touch(f"{d}/ap", data=b"12345")
    fd = os.open(f"{d}/ap", os.O_WRONLY | os.O_APPEND)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, b"67")
    os.close(fd)
    return open(f"{d}/ap", "rb").read().decode()


@check
def open_nofollow_symlink(d):
    touch(f"{d}/target")
    os.symlink("target", f"{d}/ln")
    return outcome(os.open, f"{d}/ln", os.O_RDONLY | os.O_NOFOLLOW)


@check
def open_dir_for_write(d):
    os.mkdir(f"{d}/dd")
    return outcome(os.open, f"{d}/dd", os.O_WRONLY)


@check
def open_enoent(d):
    return outcome(os.open, f"{d}/missing/x", os.O_RDONLY)


@check
def open_enotdir(d):
    touch(f"{d}/f")
    return outcome(os.open, f"{d}/f/x", os.O_RDONLY)


@check
def name_too_long(d):
    return outcome(os.open, f"{d}/" + "n" * 256, os.O_CREAT | os.O_WRONLY, 0o644)


@check
def name_255_ok(d):
    p = f"{d}/" + "n" * 255
    touch(p)
    return os.path.exists(p)


@check
def mkfifo_type(d):
    os.mkfifo(f"{d}/fifo", 0o600)
    return stat.S_ISFIFO(os.lstat(f"{d}/fifo").st_mode)


def node_made(p, mode, dev=0):
    """mknod p; its type and device numbers as lstat sees them, or errno."""
    r = outcome(os.mknod, p, mode, dev)
    if r != "ok":
        return r
    st = os.lstat(p)
    return [stat.S_IFMT(st.st_mode) == stat.S_IFMT(mode),
            os.major(st.st_rdev), os.minor(st.st_rdev)]


@check
def mknod_char_device(d):
    # root: made (keibifs: owners=preserve, server root); a user: EPERM
    return node_made(f"{d}/null", stat.S_IFCHR | 0o600, os.makedev(1, 3))


@check
def mknod_block_device(d):
    return node_made(f"{d}/loop", stat.S_IFBLK | 0o600, os.makedev(7, 200))


@check
def mknod_socket(d):
    return node_made(f"{d}/sock", stat.S_IFSOCK | 0o600)


@check
def mknod_regular(d):
    return node_made(f"{d}/reg", stat.S_IFREG | 0o600)


@check
def bind_unix_socket(d):
    """bind(2) on a path makes a socket there (a name: connecting to it is
    local to the machine that bound it)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        r = outcome(s.bind, f"{d}/bound")
        if r != "ok":
            return r
        st = os.lstat(f"{d}/bound")
        return [stat.S_ISSOCK(st.st_mode), outcome(s.bind, f"{d}/bound2")]
    finally:
        s.close()


@check
def bind_existing_name(d):
    touch(f"{d}/taken")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        return outcome(s.bind, f"{d}/taken")
    finally:
        s.close()


# --- truncate ----------------------------------------------------------------
@check
def truncate_grow_shrink(d):
    touch(f"{d}/tr", data=b"abcdef")
    os.truncate(f"{d}/tr", 3)
    a = open(f"{d}/tr", "rb").read()
    os.truncate(f"{d}/tr", 6)
    b = open(f"{d}/tr", "rb").read()
    return [a.hex(), b.hex()]


@check
def ftruncate_open_file(d):
    fd = os.open(f"{d}/ft", os.O_RDWR | os.O_CREAT, 0o644)
    os.write(fd, b"x" * 5000)
    os.ftruncate(fd, 100)
    s = os.fstat(fd).st_size
    os.close(fd)
    return [s, os.stat(f"{d}/ft").st_size]


@check
def truncate_dir(d):
    os.mkdir(f"{d}/td")
    return outcome(os.truncate, f"{d}/td", 0)


# --- links, unlink, rename ----------------------------------------------------
@check
def link_count_and_ctime(d):
    touch(f"{d}/l1")
    c0 = os.stat(f"{d}/l1").st_ctime_ns
    time.sleep(0.02)
    os.link(f"{d}/l1", f"{d}/l2")
    st = os.stat(f"{d}/l1")
    return [st.st_nlink, st.st_ctime_ns > c0, os.stat(f"{d}/l2").st_ino == st.st_ino]


@check
def unlink_count(d):
    touch(f"{d}/u1")
    os.link(f"{d}/u1", f"{d}/u2")
    os.unlink(f"{d}/u1")
    return os.stat(f"{d}/u2").st_nlink


@check
def link_to_dir(d):
    os.mkdir(f"{d}/ld")
    return outcome(os.link, f"{d}/ld", f"{d}/ld2")


@check
def link_exists(d):
    touch(f"{d}/x1")
    touch(f"{d}/x2")
    return outcome(os.link, f"{d}/x1", f"{d}/x2")


@check
def unlink_dir(d):
    os.mkdir(f"{d}/ud")
    return outcome(os.unlink, f"{d}/ud")


@check
def rename_over_file(d):
    touch(f"{d}/r1", data=b"one")
    touch(f"{d}/r2", data=b"two")
    os.rename(f"{d}/r1", f"{d}/r2")
    return [os.path.exists(f"{d}/r1"), open(f"{d}/r2", "rb").read().decode()]


@check
def rename_file_over_dir(d):
    touch(f"{d}/rf")
    os.mkdir(f"{d}/rd")
    return outcome(os.rename, f"{d}/rf", f"{d}/rd")


@check
def rename_dir_over_file(d):
    touch(f"{d}/rf")
    os.mkdir(f"{d}/rd")
    return outcome(os.rename, f"{d}/rd", f"{d}/rf")


@check
def rename_dir_over_nonempty_dir(d):
    os.makedirs(f"{d}/a/x")
    os.mkdir(f"{d}/b")
    os.makedirs(f"{d}/c/y")
    return [outcome(os.rename, f"{d}/b", f"{d}/a"), outcome(os.rename, f"{d}/c", f"{d}/b")]


@check
def rename_into_itself(d):
    os.makedirs(f"{d}/p/q")
    return outcome(os.rename, f"{d}/p", f"{d}/p/q/p")


@check
def rename_across_dirs(d):
    os.mkdir(f"{d}/s1")
    os.mkdir(f"{d}/s2")
    touch(f"{d}/s1/f", data=b"moved")
    os.rename(f"{d}/s1/f", f"{d}/s2/g")
    return [sorted(os.listdir(f"{d}/s1")), open(f"{d}/s2/g", "rb").read().decode()]


@check
def rename_open_file(d):
    fd = os.open(f"{d}/of", os.O_RDWR | os.O_CREAT, 0o644)
    os.write(fd, b"abc")
    os.rename(f"{d}/of", f"{d}/of2")
    os.write(fd, b"def")
    os.close(fd)
    return open(f"{d}/of2", "rb").read().decode()


@check
def unlink_open_file(d):
    fd = os.open(f"{d}/uo", os.O_RDWR | os.O_CREAT, 0o644)
    os.write(fd, b"still here")
    os.unlink(f"{d}/uo")
    os.lseek(fd, 0, os.SEEK_SET)
    data = os.read(fd, 100)
    os.close(fd)
    return [data.decode(), os.path.exists(f"{d}/uo")]


def renameat2(d, a, b, flags):
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    r = libc.renameat2(-100, f"{d}/{a}".encode(), -100, f"{d}/{b}".encode(), flags)
    if r != 0:
        e = ctypes.get_errno()
        return errno.errorcode.get(e, str(e))
    return "ok"


@check
def rename_noreplace(d):
    touch(f"{d}/n1")
    touch(f"{d}/n2")
    return [renameat2(d, "n1", "n2", 1), renameat2(d, "n1", "n3", 1)]


@check
def rename_exchange(d):
    touch(f"{d}/e1", data=b"1")
    os.mkdir(f"{d}/e2")
    r = renameat2(d, "e1", "e2", 2)
    return [r, os.path.isdir(f"{d}/e1"), open(f"{d}/e2", "rb").read().decode()]


# --- directories ----------------------------------------------------------------
@check
def mkdir_exists(d):
    os.mkdir(f"{d}/me")
    return outcome(os.mkdir, f"{d}/me")


@check
def rmdir_nonempty(d):
    os.makedirs(f"{d}/rn/x")
    return outcome(os.rmdir, f"{d}/rn")


@check
def rmdir_file(d):
    touch(f"{d}/rf")
    return outcome(os.rmdir, f"{d}/rf")


@check
def dir_nlink(d):
    os.makedirs(f"{d}/dn/a")
    os.mkdir(f"{d}/dn/b")
    return os.stat(f"{d}/dn").st_nlink


@check
def readdir_names(d):
    for n in ["a", "b", "c d", "ü"]:
        touch(f"{d}/{n}")
    return sorted(os.listdir(d))


# --- modes, owners, times ---------------------------------------------------------
@check
def chmod_modes(d):
    touch(f"{d}/cm")
    os.chmod(f"{d}/cm", 0o4751)
    a = oct(stat.S_IMODE(os.stat(f"{d}/cm").st_mode))
    os.chmod(f"{d}/cm", 0o640)
    return [a, oct(stat.S_IMODE(os.stat(f"{d}/cm").st_mode))]


@check
def write_clears_suid(d):
    touch(f"{d}/su", mode=0o755)
    os.chmod(f"{d}/su", 0o6755)
    if os.geteuid() == 0:
        # root writing does not clear; check as the file's non-root writer only
        return "root"
    fd = os.open(f"{d}/su", os.O_WRONLY)
    os.write(fd, b"x")
    os.close(fd)
    return oct(stat.S_IMODE(os.stat(f"{d}/su").st_mode))


@check
def chown_clears_suid(d):
    touch(f"{d}/co", mode=0o755)
    os.chmod(f"{d}/co", 0o4755)
    st = os.stat(f"{d}/co")
    r = outcome(os.chown, f"{d}/co", st.st_uid, st.st_gid)
    return [r, oct(stat.S_IMODE(os.stat(f"{d}/co").st_mode))]


@check
def chown_other_user(d):
    touch(f"{d}/cu")
    return outcome(os.chown, f"{d}/cu", 4242, 4242)


@check
def utimens_set_and_omit(d):
    touch(f"{d}/ut")
    os.utime(f"{d}/ut", ns=(1_000_000_123, 2_000_000_456))
    st = os.stat(f"{d}/ut")
    return [st.st_atime_ns, st.st_mtime_ns]


@check
def utime_now(d):
    touch(f"{d}/un")
    os.utime(f"{d}/un", ns=(0, 0))
    os.utime(f"{d}/un")
    return abs(os.stat(f"{d}/un").st_mtime - time.time()) < 5


@check
def mtime_changes_on_write(d):
    touch(f"{d}/mw", data=b"a")
    os.utime(f"{d}/mw", ns=(0, 0))
    fd = os.open(f"{d}/mw", os.O_WRONLY)
    os.write(fd, b"b")
    os.close(fd)
    return os.stat(f"{d}/mw").st_mtime_ns > 0


@check
def utime_foreign_file(d):
    # as non-root on a root-owned file: explicit times EPERM, now EACCES
    p = f"{d}/../root-owned"
    if not os.path.exists(p):
        return "n/a"
    return [outcome(os.utime, p, ns=(1, 1)), outcome(os.utime, p)]


@check
def write_foreign_file(d):
    p = f"{d}/../root-owned"
    if not os.path.exists(p):
        return "n/a"
    return outcome(lambda: os.close(os.open(p, os.O_WRONLY)))


@check
def chmod_foreign_file(d):
    p = f"{d}/../root-owned"
    if not os.path.exists(p):
        return "n/a"
    return outcome(os.chmod, p, 0o777)


@check
def unlink_in_foreign_dir(d):
    p = f"{d}/../root-dir/file"
    if not os.path.exists(p):
        return "n/a"
    return outcome(os.unlink, p)


@check
def sticky_dir(d):
    p = f"{d}/../sticky/root-file"
    if not os.path.exists(p):
        return "n/a"
    return outcome(os.unlink, p)


# --- symlinks, xattrs, data ----------------------------------------------------------
@check
def symlink_readlink(d):
    os.symlink("../some/where", f"{d}/sl")
    return [os.readlink(f"{d}/sl"), stat.S_ISLNK(os.lstat(f"{d}/sl").st_mode)]


@check
def symlink_exists(d):
    touch(f"{d}/se")
    return outcome(os.symlink, "x", f"{d}/se")


@check
def xattr_roundtrip(d):
    touch(f"{d}/xa")
    os.setxattr(f"{d}/xa", "user.k", b"v" * 100)
    r = [os.getxattr(f"{d}/xa", "user.k").decode()[:3], "user.k" in os.listxattr(f"{d}/xa")]
    os.removexattr(f"{d}/xa", "user.k")
    r.append(outcome(os.getxattr, f"{d}/xa", "user.k"))
    return r


@check
def xattr_create_replace_flags(d):
    touch(f"{d}/xf")
    os.setxattr(f"{d}/xf", "user.a", b"1")
    return [outcome(os.setxattr, f"{d}/xf", "user.a", b"2", os.XATTR_CREATE),
            outcome(os.setxattr, f"{d}/xf", "user.b", b"2", os.XATTR_REPLACE)]


@check
def sparse_seek_hole(d):
    fd = os.open(f"{d}/sp", os.O_RDWR | os.O_CREAT, 0o644)
    os.pwrite(fd, b"x", 1 << 20)
    r = [os.lseek(fd, 0, os.SEEK_DATA) > 0 or True, os.lseek(fd, 0, os.SEEK_HOLE)]
    os.close(fd)
    return r


@check
def pwrite_pread(d):
    fd = os.open(f"{d}/pw", os.O_RDWR | os.O_CREAT, 0o644)
    os.pwrite(fd, b"abc", 10)
    r = [os.fstat(fd).st_size, os.pread(fd, 20, 0).hex()]
    os.close(fd)
    return r


@check
def fsync_ok(d):
    fd = os.open(f"{d}/fs", os.O_RDWR | os.O_CREAT, 0o644)
    os.write(fd, b"data")
    r = [outcome(os.fsync, fd), outcome(os.fdatasync, fd)]
    os.close(fd)
    return r


# Checks a keibifs mount cannot match for a reason inherent to it; skipped
# there (with the reason printed), never weakened for everybody.
KEIBIFS_INHERENT = {
    "sparse_seek_hole":
        "writeback cache: the kernel does not write dirty pages back before "
        "FUSE_LSEEK, so keibifs refuses SEEK_DATA/SEEK_HOLE (EOPNOTSUPP) on a "
        "file open for writing rather than call unwritten data a hole",
}


# ... and on an owners=map mount (KEIBIFS_OWNERS=map in the environment),
# where the server squashes like NFS's root_squash.
KEIBIFS_MAP_INHERENT = {
    "chmod_modes":
        "owners=map: the server hands out no setuid/setgid bits (keibifsd(8))",
    "chown_other_user":
        "owners=map: the server gives files to no other user (keibifsd(8))",
    "mknod_char_device":
        "owners=map: device nodes only for a caller the server acts as "
        "(owners=preserve, keibifsd(8))",
    "mknod_block_device":
        "owners=map: device nodes only for a caller the server acts as "
        "(owners=preserve, keibifsd(8))",
}


def is_keibifs(path):
    """True when path lies on a fuse.keibifs mount (longest mountpoint wins)."""
    path = os.path.realpath(path)
    best, fstype = "", ""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, right = line.split(" - ", 1)
            mnt = left.split()[4].encode().decode("unicode_escape")
            if (path == mnt or path.startswith(mnt.rstrip("/") + "/")) and len(mnt) > len(best):
                best, fstype = mnt, right.split()[0]
    return fstype == "fuse.keibifs"


def run(dirs):
    results = {}
    for i, base in enumerate(dirs):
        res = {}
        for fn in CHECKS:
            d = os.path.join(base, f"conf.{os.getpid()}.{fn.__name__}")
            try:
                os.mkdir(d)
                res[fn.__name__] = json.loads(json.dumps(outcome(fn, d)))
            except Exception as e:  # a crash in a check is an outcome too
                res[fn.__name__] = f"exception: {e!r}"
        results[base] = res
    return results


def main():
    args = sys.argv[1:]
    as_json = "--json" in args
    dirs = [a for a in args if a != "--json"]
    if not dirs:
        print(__doc__)
        return 2
    results = run(dirs)
    ref = results[dirs[0]]
    who = "root" if os.geteuid() == 0 else f"uid {os.geteuid()}"
    status = 0
    if as_json:
        print(json.dumps(results, indent=1))
    print(f"conformance ({who}): {len(CHECKS)} checks; reference {dirs[0]}")
    for d in dirs[1:]:
        skip = dict(KEIBIFS_INHERENT) if is_keibifs(d) else {}
        if skip and os.environ.get("KEIBIFS_OWNERS") == "map":
            skip.update(KEIBIFS_MAP_INHERENT)
        skipped = [n for n in skip if results[d][n] != ref[n]]
        for n in skipped:
            print(f"  {d}: SKIP {n} on keibifs ({results[d][n]!r}): {skip[n]}")
        bad = [n for n in ref if results[d][n] != ref[n] and n not in skip]
        print(f"  {d}: {len(ref) - len(bad) - len(skipped)}/{len(ref)} match the reference"
              f"{f', {len(skipped)} skipped' if skipped else ''}")
        for n in bad:
            print(f"    MISMATCH {n}: reference {ref[n]!r}, here {results[d][n]!r}")
        status |= 1 if bad else 0
    return status


if __name__ == "__main__":
    sys.exit(main())
