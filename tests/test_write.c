/* test_write.c - writing through a real mount: the scenario scripts
 * (tests/scenarios/), POSIX conformance against a local directory, and C
 * checks of O_EXCL, renameat2 flags, truncation, utimensat, cache coherence
 * after our own writes, server-side copies, ENOSPC from a small tmpfs in
 * the share, and EROFS. Server and mount are made in unchecked fixtures
 * (the runner's process), so they are stopped even when a test fails. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/xattr.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kbfs_node.h"
#include "th.h"
#include "th_mount.h"
#include "th_server.h"

#define MIB (1u << 20)

static struct th_server srv;
static struct th_mount mnt;
static bool up;

static void setup(void)
{
	up = false;
	if (!th_fuse_available("write"))
		return;
	if (th_server_start(&srv, 0, NULL) < 0 || th_mount_start(&mnt, &srv, "/", NULL) < 0)
		return;
	up = true;
}

static void teardown(void)
{
	th_mount_stop(&mnt);
	th_server_cleanup(&srv);
}

#define REQUIRE_UP() ck_assert_msg(up, "mount fixture failed (see stderr)")

/* Paths in the mount (mp) and in the share (sp): rotating buffers, so
 * that several may be arguments of one call. */
static const char *path_in(const char *base, const char *rel)
{
	static __thread char p[8][2 * PATH_MAX];
	static __thread unsigned next;
	char *b = p[next++ % 8];

	snprintf(b, sizeof(p[0]), "%s/%s", base, rel);
	return b;
}

static const char *mp(const char *rel)
{
	return path_in(mnt.mnt, rel);
}

static const char *sp(const char *rel)
{
	th_mounts_drain(); /* write-behind: what the mount queued is there first */
	return path_in(srv.share, rel);
}

/* ---- scenario scripts ----------------------------------------------------- */

static const char *const scenarios[] = {
	"rsync_roundtrip", "cp_a",   "atomic_save", "git_clone",
	"build_c",         "tar_xc", "concurrent",  "open_files",
};

START_TEST(test_scenario)
{
	const char *name = scenarios[_i];
	char *work, *out = NULL, sub[64];
	int st;

	REQUIRE_UP();
	work = th_tmpdir("work");
	ck_assert_ptr_nonnull(work);
	/* each script in its own directory of the share */
	snprintf(sub, sizeof(sub), "sc-%s", name);
	ck_assert_int_eq(mkdir(mp(sub), 0755), 0);
	st = th_sh_out(&out, "bash '%s/tests/scenarios/%s.sh' '%s' '%s' '%s' 2>&1", th_srcdir(),
		       name, mp(sub), sp(sub), work);
	ck_assert_msg(st == 0, "scenario %s: exit %d:\n%s", name, st, out ? out : "");
	free(out);
	th_sh("rm -rf '%s'", work);
	free(work);
}
END_TEST

START_TEST(test_conformance)
{
	char *local, *out = NULL;
	int st;

	REQUIRE_UP();
	local = th_tmpdir("conf");
	ck_assert_ptr_nonnull(local);
	ck_assert_int_eq(mkdir(mp("conf"), 0755), 0);
	st = th_sh_out(&out, "KEIBIFS_OWNERS=map python3 '%s/tests/conformance.py' '%s' '%s' 2>&1",
		       th_srcdir(), local, mp("conf"));
	ck_assert_msg(st == 0, "conformance: exit %d:\n%s", st, out ? out : "");
	ck_assert_ptr_nonnull(strstr(out, "match the reference"));
	free(out);
	th_sh("rm -rf '%s'", local);
	free(local);
}
END_TEST

/* ---- POSIX details ----------------------------------------------------------- */

static void put(const char *path, const char *data)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, data, strlen(data)), (ssize_t)strlen(data));
	ck_assert_int_eq(close(fd), 0);
}

/* Whole file (at most cap bytes) into a NUL-terminated malloc'd buffer. */
static char *get(const char *path, size_t cap, ssize_t *len)
{
	char *buf = calloc(1, cap + 1);
	int fd = open(path, O_RDONLY);

	ck_assert_int_ge(fd, 0);
	*len = 0;
	for (ssize_t n; (n = read(fd, buf + *len, cap - (size_t)*len)) > 0;)
		*len += n;
	close(fd);
	return buf;
}

START_TEST(test_excl_and_rename_flags)
{
	ssize_t n;
	char *s;
	int fd;

	REQUIRE_UP();
	put(mp("ex"), "one");
	ck_assert_int_eq(open(mp("ex"), O_CREAT | O_EXCL | O_WRONLY, 0644), -1);
	ck_assert_int_eq(errno, EEXIST);
	fd = open(mp("ex2"), O_CREAT | O_EXCL | O_WRONLY, 0640);
	ck_assert_int_ge(fd, 0);
	close(fd);
	put(mp("rn1"), "A");
	put(mp("rn2"), "B");
	ck_assert_int_eq(renameat2(AT_FDCWD, mp("rn1"), AT_FDCWD, mp("rn2"), RENAME_NOREPLACE), -1);
	ck_assert_int_eq(errno, EEXIST);
	ck_assert_int_eq(renameat2(AT_FDCWD, mp("rn1"), AT_FDCWD, mp("rn2"), RENAME_EXCHANGE), 0);
	s = get(mp("rn1"), 16, &n);
	ck_assert_str_eq(s, "B");
	free(s);
	s = get(sp("rn2"), 16, &n); /* the server did it, not only the kernel */
	ck_assert_str_eq(s, "A");
	free(s);
	ck_assert_int_eq(renameat2(AT_FDCWD, mp("rn1"), AT_FDCWD, mp("rn3"), RENAME_NOREPLACE), 0);
	ck_assert_int_eq(access(sp("rn3"), F_OK), 0);
	ck_assert_int_eq(access(mp("rn1"), F_OK), -1);
}
END_TEST

/* A name the mount has seen missing, then made on the server: the kernel
 * re-asks before O_EXCL creates and renames, and the mount answers from
 * what it knows missing (kbfs_neg.c). Whether the server's push has
 * arrived or not, the server decides: EEXIST, no truncation, a real
 * replacement. */
START_TEST(test_missing_then_made_on_server)
{
	char buf[16] = {0};
	struct stat st;
	int fd;

	REQUIRE_UP();
	/* made on the server: a directory this mount made is leased to it, and
	 * what the server's own disk gets there is seen only through pushes
	 * (write-behind decides there; test_wb covers that case) */
	ck_assert_int_eq(mkdir(sp("neg"), 0755), 0);
	ck_assert_int_eq(stat(mp("neg/x"), &st), -1);
	ck_assert_int_eq(stat(mp("neg/y"), &st), -1);
	ck_assert_int_eq(
		th_sh("printf server > '%s' && printf other > '%s'", sp("neg/x"), sp("neg/y")), 0);
	/* the mount listed neg (and holds its lease): the server's own disk
	 * changed it, which the mount learns from the push (write-behind
	 * stops deciding there); until then it still says missing */
	ck_assert(th_wait_exists(mp("neg/x"), 5000));
	fd = open(mp("neg/x"), O_WRONLY | O_CREAT | O_EXCL, 0644);
	ck_assert_int_eq(fd, -1);
	ck_assert_int_eq(errno, EEXIST);
	fd = open(mp("neg/x"), O_WRONLY | O_CREAT, 0644); /* opens it, no truncation */
	ck_assert_int_ge(fd, 0);
	close(fd);
	fd = open(sp("neg/x"), O_RDONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(read(fd, buf, sizeof(buf) - 1), 6);
	close(fd);
	ck_assert_str_eq(buf, "server");
	ck_assert_int_eq(th_sh("printf mine > '%s'", mp("neg/z")), 0);
	ck_assert_int_eq(rename(mp("neg/z"), mp("neg/y")), 0); /* replaces the server's y */
	memset(buf, 0, sizeof(buf));
	fd = open(sp("neg/y"), O_RDONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(read(fd, buf, sizeof(buf) - 1), 4);
	close(fd);
	ck_assert_str_eq(buf, "mine");
	ck_assert_int_eq(access(sp("neg/z"), F_OK), -1);
	ck_assert_int_eq(th_sh("rm -rf '%s'", sp("neg")), 0);
}
END_TEST

/* A directory this mount made answers for the names it never put there
 * without asking (kbfs_newdirs.c). A second mount with entry_timeout=0 makes
 * the kernel ask again for every name: each name we made there (file,
 * hard link, symlink, fifo, subdirectory, rename target) is found; a name
 * renamed away is gone; a name made on the server is found once its push
 * arrives, long before the 30 s negative_timeout this mount was given
 * (without the push it would stay hidden until KBFS_NEWDIRS_MAX_NS). */
START_TEST(test_fresh_dir)
{
	static const char *const made[] = {"fr/a",   "fr/h", "fr/l",       "fr/p",
					   "fr/sub", "fr/r", "fr/sub/deep"};
	struct th_mount m2 = {0};
	char p[2 * PATH_MAX];
	struct stat st;
	int i, fd;

	REQUIRE_UP();
	ck_assert_int_eq(th_mount_start(&m2, &srv, "/",
					"entry_timeout=0,attr_timeout=0,negative_timeout=30"),
			 0);
#define M2(rel) (snprintf(p, sizeof(p), "%s/%s", m2.mnt, rel), p)
	ck_assert_int_eq(mkdir(M2("fr"), 0755), 0);
	fd = open(M2("fr/a"), O_WRONLY | O_CREAT | O_EXCL, 0644);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "a", 1), 1);
	close(fd);
	ck_assert_int_eq(th_sh("cd '%s/fr' && ln a h && ln -s a l && mkfifo p && mkdir sub && "
			       "touch sub/deep t && mv t r",
			       m2.mnt),
			 0);
	for (i = 0; i < (int)(sizeof(made) / sizeof(made[0])); i++)
		ck_assert_msg(lstat(M2(made[i]), &st) == 0, "%s: %s", made[i], strerror(errno));
	ck_assert_int_eq(lstat(M2("fr/t"), &st), -1); /* renamed away */
	ck_assert_int_eq(errno, ENOENT);
	ck_assert_int_eq(lstat(M2("fr/never"), &st), -1);
	ck_assert_int_eq(errno, ENOENT);
	ck_assert_int_eq(lstat(M2("fr/x"), &st), -1);
	/* made on the server: seen once the push comes (within 5 s here) */
	ck_assert_int_eq(th_sh("printf s > '%s'", sp("fr/x")), 0);
	for (i = 0; i < 100 && lstat(M2("fr/x"), &st) != 0; i++)
		usleep(50 * 1000);
	ck_assert_msg(i < 100, "a name made on the server stayed hidden");
	ck_assert_int_eq(st.st_size, 1);
	/* and made by the other mount (the fixture's) likewise */
	ck_assert_int_eq(th_sh("printf yy > '%s'", mp("fr/y")), 0);
	for (i = 0; i < 100 && lstat(M2("fr/y"), &st) != 0; i++)
		usleep(50 * 1000);
	ck_assert_msg(i < 100, "a name made by another client stayed hidden");
	ck_assert_int_eq(st.st_size, 2);
#undef M2
	th_mount_stop(&m2);
	ck_assert_int_eq(th_sh("rm -rf '%s'", sp("fr")), 0);
}
END_TEST

/* The mount answers the kernel's repeated GETATTRs from a reply nothing
 * has overtaken (kbfs_node.h, "current"): a link count changed by our own
 * link and unlink, and a ctime moved by a rename, must still be right. */
START_TEST(test_attrs_after_own_changes)
{
	struct stat st, st2;

	REQUIRE_UP();
	put(mp("nl"), "x");
	ck_assert_int_eq(stat(mp("nl"), &st), 0);
	ck_assert_int_eq(st.st_nlink, 1);
	ck_assert_int_eq(link(mp("nl"), mp("nl2")), 0);
	ck_assert_int_eq(stat(mp("nl"), &st), 0);
	ck_assert_int_eq(st.st_nlink, 2);
	ck_assert_int_eq(unlink(mp("nl2")), 0);
	ck_assert_int_eq(stat(mp("nl"), &st), 0);
	ck_assert_int_eq(st.st_nlink, 1);
	ck_assert_int_eq(mkdir(mp("nld"), 0755), 0);
	ck_assert_int_eq(stat(mp("nld"), &st), 0);
	ck_assert_int_eq(mkdir(mp("nld/sub"), 0755), 0);
	ck_assert_int_eq(stat(mp("nld"), &st2), 0);
	ck_assert_int_eq(st2.st_nlink, st.st_nlink + 1);
	ck_assert_int_eq(rmdir(mp("nld/sub")), 0);
	ck_assert_int_eq(stat(mp("nld"), &st2), 0);
	ck_assert_int_eq(st2.st_nlink, st.st_nlink);
	ck_assert_int_eq(rename(mp("nl"), mp("nld/nl")), 0);
	/* the server's first (sp() waits for the mount's queue): a rename
	 * answered by the mount (write-behind) takes the server's ctime from
	 * its reply */
	ck_assert_int_eq(stat(sp("nld/nl"), &st2), 0);
	ck_assert_int_eq(stat(mp("nld/nl"), &st), 0);
	ck_assert_int_eq(st.st_ctim.tv_sec, st2.st_ctim.tv_sec);
	ck_assert_int_eq(st.st_ctim.tv_nsec, st2.st_ctim.tv_nsec);
	ck_assert_int_eq(st.st_nlink, 1);
	ck_assert_int_eq(th_sh("rm -rf '%s'", sp("nld")), 0);
	/* a written file: size and blocks as the server has them (answered
	 * from the WRITE's reply when it was the only one). Not the mtime:
	 * the kernel keeps the one it gave the file (writeback cache) until
	 * it next fetches the attributes, and sends no flush of it here. */
	put(mp("nlw"), "hello, world");
	ck_assert_int_eq(stat(mp("nlw"), &st), 0);
	ck_assert_int_eq(stat(sp("nlw"), &st2), 0);
	ck_assert_int_eq(st.st_size, 12);
	ck_assert_int_eq(st.st_size, st2.st_size);
	ck_assert_int_eq(st.st_blocks, st2.st_blocks);
	ck_assert_int_eq(unlink(mp("nlw")), 0);
}
END_TEST

/* As user nobody (65534), through dirfd: 0 = write, 1 = ftruncate, 2 =
 * open with O_TRUNC on `name`. True if it worked. */
static bool as_nobody(int dirfd, const char *name, int how)
{
	pid_t pid = fork();
	int status;

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int fd;

		if (setgid(65534) || setuid(65534))
			_exit(2);
		fd = openat(dirfd, name, O_WRONLY | (how == 2 ? O_TRUNC : O_APPEND));
		if (fd < 0 || (how == 0 && write(fd, "y", 1) != 1) ||
		    (how == 1 && ftruncate(fd, 0)) || close(fd))
			_exit(1);
		_exit(0);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* setuid/setgid bits as on a local disk (FUSE_HANDLE_KILLPRIV_V2,
 * kbfs_devio.c): a write, a truncation or an open with O_TRUNC by a caller
 * without CAP_FSETID clears them, the server being root or not. In this
 * default owners=map mount root's own write clears them too (the server
 * squashes setuid/setgid outside owners mode, test_privilege.c). */
START_TEST(test_write_kills_suid)
{
	static const char *const what[] = {"write", "ftruncate", "O_TRUNC"};
	struct th_mount m2 = {0};
	struct stat st;
	int dirfd, fd;

	REQUIRE_UP();
	ck_assert_int_eq(th_mount_start(&m2, &srv, "/", "allow_other"), 0);
	dirfd = open(m2.mnt, O_PATH | O_DIRECTORY);
	ck_assert_int_ge(dirfd, 0);
	put(mp("suid"), "x");
	ck_assert_int_eq(chmod(mp("suid"), 06777), 0);
	fd = openat(dirfd, "suid", O_WRONLY | O_APPEND);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "r", 1), 1);
	ck_assert_int_eq(close(fd), 0);
	ck_assert_int_eq(stat(sp("suid"), &st), 0);
	ck_assert_int_eq(st.st_mode & 07777, 0777); /* root, but owners=map */
	for (int how = 0; how < 3; how++) {
		ck_assert_int_eq(chmod(sp("suid"), 06777), 0);
		usleep(1100 * 1000); /* the mount's attributes: attr_timeout */
		ck_assert_msg(as_nobody(dirfd, "suid", how), "%s as nobody failed", what[how]);
		ck_assert_int_eq(stat(sp("suid"), &st), 0);
		ck_assert_msg((st.st_mode & 07777) == 0777, "%s left mode %o", what[how],
			      st.st_mode & 07777);
	}
	close(dirfd);
	th_mount_stop(&m2);
	ck_assert_int_eq(unlink(sp("suid")), 0);
}
END_TEST

START_TEST(test_truncate)
{
	struct stat st;
	char buf[64];
	int fd;

	REQUIRE_UP();
	put(mp("tr"), "0123456789");
	ck_assert_int_eq(truncate(mp("tr"), 4), 0);
	ck_assert_int_eq(stat(sp("tr"), &st), 0);
	ck_assert_int_eq(st.st_size, 4);
	ck_assert_int_eq(truncate(mp("tr"), 8), 0); /* grows with zeros */
	fd = open(mp("tr"), O_RDWR);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, buf, sizeof(buf), 0), 8);
	ck_assert_mem_eq(buf, "0123\0\0\0\0", 8);
	ck_assert_int_eq(ftruncate(fd, 2), 0);
	ck_assert_int_eq(fstat(fd, &st), 0);
	ck_assert_int_eq(st.st_size, 2);
	ck_assert_int_eq(ftruncate(fd, 3 * MIB), 0);
	ck_assert_int_eq(pwrite(fd, "Z", 1, 3 * MIB - 1), 1);
	ck_assert_int_eq(fsync(fd), 0);
	ck_assert_int_eq(pread(fd, buf, 4, 0), 4);
	ck_assert_mem_eq(buf, "01\0\0", 4);
	close(fd);
	ck_assert_int_eq(stat(sp("tr"), &st), 0);
	ck_assert_int_eq(st.st_size, 3 * MIB);
	ck_assert_int_eq(th_sh("test \"$(tail -c 1 '%s')\" = Z", sp("tr")), 0);
}
END_TEST

START_TEST(test_utimens)
{
	struct timespec ts[2] = {{1000000000, 123}, {1200000000, 456789}};
	struct stat a, b;
	int fd;

	REQUIRE_UP();
	put(mp("ut"), "x");
	ck_assert_int_eq(utimensat(AT_FDCWD, mp("ut"), ts, 0), 0);
	ck_assert_int_eq(stat(sp("ut"), &a), 0);
	ck_assert_int_eq(a.st_atim.tv_sec, 1000000000);
	ck_assert_int_eq(a.st_mtim.tv_sec, 1200000000);
	ck_assert_int_eq(a.st_mtim.tv_nsec, 456789);
	/* atime now, mtime untouched */
	ts[0].tv_nsec = UTIME_NOW;
	ts[1].tv_nsec = UTIME_OMIT;
	ck_assert_int_eq(utimensat(AT_FDCWD, mp("ut"), ts, 0), 0);
	ck_assert_int_eq(stat(sp("ut"), &b), 0);
	ck_assert_int_gt(b.st_atim.tv_sec, 1600000000);
	ck_assert_int_eq(b.st_mtim.tv_sec, 1200000000);
	ck_assert_int_eq(b.st_mtim.tv_nsec, 456789);
	/* futimens on an open file after a write: the set mtime wins over
	 * the write's (writeback cache: the kernel sends its mtime too) */
	fd = open(mp("ut"), O_WRONLY | O_APPEND);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "yz", 2), 2);
	ts[0] = (struct timespec){1300000000, 0};
	ts[1] = (struct timespec){1400000000, 7};
	ck_assert_int_eq(futimens(fd, ts), 0);
	ck_assert_int_eq(close(fd), 0);
	ck_assert_int_eq(stat(sp("ut"), &b), 0);
	ck_assert_int_eq(b.st_size, 3);
	ck_assert_int_eq(b.st_mtim.tv_sec, 1400000000);
	ck_assert_int_eq(b.st_mtim.tv_nsec, 7);
	ck_assert_int_eq(stat(mp("ut"), &a), 0);
	ck_assert_int_eq(a.st_mtim.tv_sec, 1400000000);
	ck_assert_int_eq(chmod(mp("ut"), 0604), 0);
	ck_assert_int_eq(stat(sp("ut"), &b), 0);
	ck_assert_int_eq(b.st_mode & 07777, 0604);
	/* changed on the server, then set back through the mount to the
	 * mtime the mount saw last: that must reach the server (a known mtime
	 * is answered locally only from attributes still fresh) */
	ck_assert_int_eq(
		th_sh("chmod 600 '%s' && touch -m -d @1500000000 '%s'", sp("ut"), sp("ut")), 0);
	usleep(1100 * 1000); /* attr_timeout */
	ts[0].tv_nsec = UTIME_OMIT;
	ts[1] = (struct timespec){1400000000, 7};
	ck_assert_int_eq(utimensat(AT_FDCWD, mp("ut"), ts, 0), 0);
	ck_assert_int_eq(chmod(mp("ut"), 0604), 0);
	ck_assert_int_eq(stat(sp("ut"), &b), 0);
	ck_assert_int_eq(b.st_mtim.tv_sec, 1400000000);
	ck_assert_int_eq(b.st_mtim.tv_nsec, 7);
	ck_assert_int_eq(b.st_mode & 07777, 0604);
	/* and to the same values again: nothing to change, still right */
	ck_assert_int_eq(utimensat(AT_FDCWD, mp("ut"), ts, 0), 0);
	ck_assert_int_eq(chmod(mp("ut"), 0604), 0);
	ck_assert_int_eq(stat(sp("ut"), &b), 0);
	ck_assert_int_eq(b.st_mtim.tv_sec, 1400000000);
	ck_assert_int_eq(b.st_mode & 07777, 0604);
}
END_TEST

/* Pattern byte of file version v at offset i. */
static unsigned char pat(unsigned v, size_t i)
{
	return (unsigned char)((i * 131 + v * 17 + (i >> 12)) & 0xff);
}

static void fill(unsigned char *b, size_t len, unsigned v, size_t base)
{
	for (size_t i = 0; i < len; i++)
		b[i] = pat(v, base + i);
}

/* Drop the kernel's clean pages of a mount file, so the next read comes
 * to the client (and its block cache). */
static void drop_kernel_cache(const char *path)
{
	int fd = open(path, O_RDONLY);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
	close(fd);
}

/* Reads through the mount (kernel cache dropped first) equal the share. */
static void same_as_share(const char *rel, size_t size)
{
	unsigned char *a = malloc(size), *b = malloc(size);
	int fa, fb;

	drop_kernel_cache(mp(rel));
	fa = open(mp(rel), O_RDONLY);
	fb = open(sp(rel), O_RDONLY);
	ck_assert(fa >= 0 && fb >= 0);
	ck_assert_int_eq(pread(fa, a, size, 0), (ssize_t)size);
	ck_assert_int_eq(pread(fb, b, size, 0), (ssize_t)size);
	if (memcmp(a, b, size)) { /* (no assert per byte: Check marks each) */
		size_t i = 0;

		while (a[i] == b[i])
			i++;
		ck_abort_msg("%s: byte %zu: mount %u share %u", rel, i, a[i], b[i]);
	}
	close(fa);
	close(fb);
	free(a);
	free(b);
}

/* Blocks cached by the client (and pages by the kernel) never outlive our
 * own overwrite, truncate or rename of the file. */
START_TEST(test_cache_coherence)
{
	size_t size = 3 * MIB + 5000;
	unsigned char *buf = malloc(size);
	int fd;

	REQUIRE_UP();
	fill(buf, size, 1, 0);
	fd = open(mp("coh"), O_RDWR | O_CREAT | O_TRUNC, 0644);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, buf, size), (ssize_t)size);
	ck_assert_int_eq(fsync(fd), 0);
	close(fd);
	same_as_share("coh", size); /* now in the client's block cache */
	/* overwrite across a block boundary through a new descriptor */
	fill(buf, 300000, 2, MIB - 100000);
	fd = open(mp("coh"), O_WRONLY);
	ck_assert_msg(fd >= 0, "reopen: %s", strerror(errno));
	ck_assert_int_eq(pwrite(fd, buf, 300000, MIB - 100000), 300000);
	ck_assert_int_eq(fsync(fd), 0);
	same_as_share("coh", size);
	/* shrink into block 1, then grow: the tail reads as zeros */
	ck_assert_int_eq(ftruncate(fd, MIB + 10), 0);
	ck_assert_int_eq(ftruncate(fd, 2 * MIB), 0);
	ck_assert_int_eq(fsync(fd), 0);
	close(fd);
	same_as_share("coh", 2 * MIB);
	/* a rename keeps the node: the data read under the new name is right */
	ck_assert_int_eq(rename(mp("coh"), mp("coh2")), 0);
	same_as_share("coh2", 2 * MIB);
	/* a file changed behind our back on the server is seen too: past the
	 * 300 ms in which the server takes events on a name we just changed
	 * for our own (not pushed); a change inside them shows after the
	 * attribute timeout, or 10 s for a file this mount changed itself
	 * under write-behind (keibifs(1), WRITE-BEHIND) */
	usleep(400 * 1000);
	ck_assert_int_eq(th_write_pattern(sp("coh2"), 2 * MIB, 9, 0644), 0);
	ck_assert_int_eq(th_sh("touch -d '2012-12-12' '%s'", sp("coh2")), 0);
	usleep(1200 * 1000); /* attr_timeout */
	same_as_share("coh2", 2 * MIB);
	free(buf);
}
END_TEST

/* The written bytes are on the server when fsync returns, from many
 * writes in flight at once (writeback) or one after another. */
START_TEST(test_write_fsync_durable)
{
	size_t size = 24 * MIB + 12345;
	unsigned char *buf = malloc(size);
	int fd;

	REQUIRE_UP();
	fill(buf, size, 3, 0);
	fd = open(mp("big"), O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	for (size_t off = 0; off < size; off += 65536) {
		size_t n = size - off < 65536 ? size - off : 65536;

		ck_assert_int_eq(write(fd, buf + off, n), (ssize_t)n);
	}
	ck_assert_int_eq(fsync(fd), 0);
	/* before close: fsync alone made it reach the server */
	ck_assert_int_eq(th_sh("cmp -n %zu '%s' /dev/stdin < '%s'", size, sp("big"), mp("big")), 0);
	ck_assert_int_eq(close(fd), 0);
	same_as_share("big", size);
	ck_assert_int_eq(unlink(mp("big")), 0);
	ck_assert_int_eq(access(sp("big"), F_OK), -1);
	free(buf);
}
END_TEST

/* Bytes the client process has moved through read()/write() (sockets
 * included). */
static long long client_io(const char *field)
{
	char *out = NULL;
	long long v = -1;

	if (th_sh_out(&out, "awk '/^%s/ {print $2}' /proc/%d/io", field, (int)mnt.pid) == 0 && out)
		v = atoll(out);
	free(out);
	return v;
}

/* copy_file_range inside the mount is done by the server: no file data
 * crosses the wire. */
START_TEST(test_copy_on_server)
{
	long long r0, w0, r1, w1;

	REQUIRE_UP();
	ck_assert_int_eq(th_write_pattern(sp("cfr-src"), 16 * MIB, 5, 0644), 0);
	r0 = client_io("rchar");
	w0 = client_io("wchar");
	ck_assert_int_eq(
		th_sh("python3 -c \"import os\n"
		      "i=os.open('%s',os.O_RDONLY); o=os.open('%s',os.O_WRONLY|os.O_CREAT,0o644)\n"
		      "n=0\n"
		      "while n < 16<<20: n+=os.copy_file_range(i,o,(16<<20)-n)\n\"",
		      mp("cfr-src"), mp("cfr-dst")),
		0);
	r1 = client_io("rchar");
	w1 = client_io("wchar");
	ck_assert_int_eq(th_sh("cmp '%s' '%s'", sp("cfr-src"), sp("cfr-dst")), 0);
	ck_assert_msg(r1 - r0 < 2 * MIB && w1 - w0 < 2 * MIB, "client moved %lld/%lld bytes",
		      r1 - r0, w1 - w0);
	same_as_share("cfr-dst", 16 * MIB);
}
END_TEST

START_TEST(test_seek_hole_and_xattrs)
{
	char v[16];
	int fd;

	REQUIRE_UP();
	ck_assert_int_eq(th_sh("truncate -s 8M '%s' && printf d | dd of='%s' bs=1 seek=4194304 "
			       "conv=notrunc status=none",
			       sp("sparse"), sp("sparse")),
			 0);
	ck_assert(th_wait_exists(mp("sparse"), 3000)); /* made on the server: its push */
	fd = open(mp("sparse"), O_RDONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(lseek(fd, 0, SEEK_DATA), 4194304);
	ck_assert_int_eq(lseek(fd, 4194304, SEEK_HOLE), 4194304 + 4096);
	close(fd);
	put(mp("xa"), "x");
	if (setxattr(sp("xa"), "user.probe", "1", 1, 0) < 0)
		return; /* the share has no user xattrs */
	ck_assert_int_eq(setxattr(mp("xa"), "user.k", "val", 3, XATTR_CREATE), 0);
	ck_assert_int_eq(setxattr(mp("xa"), "user.k", "v", 1, XATTR_CREATE), -1);
	ck_assert_int_eq(errno, EEXIST);
	ck_assert_int_eq(getxattr(sp("xa"), "user.k", v, sizeof(v)), 3);
	ck_assert_int_eq(removexattr(mp("xa"), "user.k"), 0);
	ck_assert_int_eq(getxattr(sp("xa"), "user.k", v, sizeof(v)), -1);
	ck_assert_int_eq(mkfifo(mp("fifo"), 0600), 0);
	ck_assert_int_eq(th_sh("test -p '%s'", sp("fifo")), 0);
}
END_TEST

/* ---- a full disk on the server ------------------------------------------------ */

START_TEST(test_enospc)
{
	size_t chunk = MIB;
	unsigned char *buf = malloc(chunk);
	int fd, err = 0, ret;
	char *s;
	ssize_t n;

	REQUIRE_UP();
	fill(buf, chunk, 4, 0);
	ck_assert_int_eq(mkdir(sp("small"), 0755), 0);
	ck_assert_int_eq(mount("tmpfs", sp("small"), "tmpfs", 0, "size=8m"), 0);
	th_track_mount(sp("small"));
	ck_assert(th_wait_exists(mp("small"), 3000)); /* made on the server: its push */
	/* acknowledged first: 2 MiB, fsynced */
	fd = open(mp("small/keep"), O_WRONLY | O_CREAT, 0644);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, buf, chunk), (ssize_t)chunk);
	ck_assert_int_eq(write(fd, buf, chunk), (ssize_t)chunk);
	ck_assert_int_eq(fsync(fd), 0);
	ck_assert_int_eq(close(fd), 0);
	/* then far more than fits */
	fd = open(mp("small/fill"), O_WRONLY | O_CREAT, 0644);
	ck_assert_int_ge(fd, 0);
	for (int i = 0; i < 16 && !err; i++)
		if (write(fd, buf, chunk) < 0)
			err = errno;
	if (!err && fsync(fd) < 0)
		err = errno;
	ret = close(fd);
	if (!err && ret < 0)
		err = errno;
	ck_assert_msg(err == ENOSPC, "writer saw %s, not ENOSPC", strerror(err));
	/* the mount stays usable and the acknowledged data is intact */
	put(mp("after-enospc"), "still works");
	s = get(mp("after-enospc"), 64, &n);
	ck_assert_str_eq(s, "still works");
	free(s);
	ck_assert_int_eq(unlink(mp("small/fill")), 0);
	/* the space comes back once the kernel forgets the unlinked inode
	 * (the server's node holds it until FORGET) */
	for (int i = 0; i < 500 && th_sh("test $(stat -f -c %%a '%s') -gt 512", sp("small")); i++)
		usleep(10000);
	put(mp("small/after"), "still works");
	s = get(mp("small/after"), 64, &n);
	ck_assert_str_eq(s, "still works");
	free(s);
	ck_assert_int_eq(th_sh("cmp -n %zu '%s' '%s'", chunk, sp("small/keep"), mp("small/keep")),
			 0);
	s = get(sp("small/keep"), 2 * chunk, &n);
	ck_assert_int_eq(n, 2 * (ssize_t)chunk);
	ck_assert_mem_eq(s, buf, chunk);
	ck_assert_mem_eq(s + chunk, buf, chunk);
	free(s);
	free(buf);
	th_umount(sp("small"));
}
END_TEST

/* ---- read-only: an `ro` mount and a read-only share ------------------------------ */

static void expect_erofs(const struct th_mount *m)
{
	char p[PATH_MAX + 16];

	snprintf(p, sizeof(p), "%s/newfile", m->mnt);
	ck_assert_int_eq(open(p, O_CREAT | O_WRONLY, 0644), -1);
	ck_assert_int_eq(errno, EROFS);
	snprintf(p, sizeof(p), "%s/file", m->mnt);
	ck_assert_int_eq(open(p, O_WRONLY), -1);
	ck_assert_int_eq(errno, EROFS);
	ck_assert_int_eq(truncate(p, 0), -1);
	ck_assert_int_eq(errno, EROFS);
	ck_assert_int_eq(chmod(p, 0600), -1);
	ck_assert_int_eq(errno, EROFS);
	snprintf(p, sizeof(p), "%s/newdir", m->mnt);
	ck_assert_int_eq(mkdir(p, 0755), -1);
	ck_assert_int_eq(errno, EROFS);
	snprintf(p, sizeof(p), "%s/file", m->mnt);
	ck_assert_int_eq(unlink(p), -1);
	ck_assert_int_eq(errno, EROFS);
	ck_assert_int_eq(th_sh("test \"$(cat '%s')\" = data", p), 0); /* reads work */
}

START_TEST(test_erofs)
{
	struct th_server ro_srv;
	struct th_mount m;

	if (!th_fuse_available("erofs"))
		return;
	/* an `ro` mount of a writable share */
	ck_assert_int_eq(th_server_start(&ro_srv, 0, NULL), 0);
	ck_assert_int_eq(th_sh("echo data > '%s'", th_server_path(&ro_srv, "file")), 0);
	ck_assert_int_eq(th_mount_start(&m, &ro_srv, "/", "ro"), 0);
	expect_erofs(&m);
	th_mount_stop(&m);
	th_server_cleanup(&ro_srv);
	/* a read-only share mounted rw */
	ck_assert_int_eq(th_server_start(&ro_srv, TH_SRV_RO, NULL), 0);
	ck_assert_int_eq(th_sh("echo data > '%s'", th_server_path(&ro_srv, "file")), 0);
	ck_assert_int_eq(th_mount_start(&m, &ro_srv, "/", NULL), 0);
	expect_erofs(&m);
	th_mount_stop(&m);
	th_server_cleanup(&ro_srv);
}
END_TEST

/* ---- the inode table follows our renames (no mount) ------------------------- */

static const char *where_name(struct kbfs_nodes *t, uint64_t ino, int *ret)
{
	static struct kbfs_node_where w;

	*ret = kbfs_node_where(t, ino, &w);
	return w.name;
}

START_TEST(test_nodes_follow_renames)
{
	kb_Entry root = {.node = 100}, e = {0};
	struct kbfs_nodes *t;
	uint64_t a, b, d;
	int ret;

	ck_assert_int_eq(kbfs_nodes_new(&t, &root), 0);
	e.node = 101;
	a = kbfs_node_enter(t, 1, "a", &e, 0, UINT64_MAX);
	e.node = 102;
	b = kbfs_node_enter(t, 1, "b", &e, 0, UINT64_MAX);
	e.node = 103;
	d = kbfs_node_enter(t, 1, "d", &e, 0, UINT64_MAX);
	ck_assert(a && b && d);
	kbfs_node_renamed(t, 1, "a", d, "a2", false); /* into another directory */
	ck_assert_str_eq(where_name(t, a, &ret), "a2");
	ck_assert_int_eq(ret, 0);
	kbfs_node_renamed(t, d, "a2", 1, "b", true); /* exchange */
	ck_assert_str_eq(where_name(t, a, &ret), "b");
	ck_assert_str_eq(where_name(t, b, &ret), "a2");
	kbfs_node_renamed(t, d, "a2", 1, "b", false); /* b (now a2) replaces a */
	ck_assert_str_eq(where_name(t, b, &ret), "b");
	where_name(t, a, &ret);
	ck_assert_int_eq(ret, -ESTALE); /* replaced: no name to re-resolve */
	kbfs_nodes_free(t);
}
END_TEST

Suite *suite_write(void);
Suite *suite_write(void)
{
	Suite *s = suite_create("write");
	TCase *tc = tcase_create("mounted");
	TCase *ro = tcase_create("readonly");
	TCase *nodes = tcase_create("nodes");

	tcase_add_unchecked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_loop_test(tc, test_scenario, 0, (int)(sizeof(scenarios) / sizeof(scenarios[0])));
	tcase_add_test(tc, test_conformance);
	tcase_add_test(tc, test_excl_and_rename_flags);
	tcase_add_test(tc, test_missing_then_made_on_server);
	tcase_add_test(tc, test_fresh_dir);
	tcase_add_test(tc, test_attrs_after_own_changes);
	tcase_add_test(tc, test_write_kills_suid);
	tcase_add_test(tc, test_truncate);
	tcase_add_test(tc, test_utimens);
	tcase_add_test(tc, test_cache_coherence);
	tcase_add_test(tc, test_write_fsync_durable);
	tcase_add_test(tc, test_copy_on_server);
	tcase_add_test(tc, test_seek_hole_and_xattrs);
	tcase_add_test(tc, test_enospc);
	suite_add_tcase(s, tc);
	tcase_set_timeout(ro, 60);
	tcase_add_test(ro, test_erofs);
	suite_add_tcase(s, ro);
	tcase_add_test(nodes, test_nodes_follow_renames);
	suite_add_tcase(s, nodes);
	return s;
}
