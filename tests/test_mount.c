/* test_mount.c - the mount client for real: keibifsd + keibifs -f on a
 * temp mountpoint, then plain POSIX calls against the mount compared with
 * the share itself. The mount is made once, in an unchecked fixture (the
 * runner's own process), and torn down there even when a test fails. */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "kbfs.h"
#include "th.h"
#include "th_mount.h"
#include "th_server.h"
#include "util.h"

#define BS (1u << 20) /* the default block size */
#define BIG (100u << 20)

static struct th_server srv;
static struct th_mount mnt;
static bool up; /* fixture succeeded */

static const struct {
	const char *name;
	size_t size;
} files[] = {
	{"empty", 0}, {"one", 1},       {"bs-1", BS - 1},
	{"bs", BS},   {"bs+1", BS + 1}, {"mid", 5 * BS + 12345},
	{"big", BIG},
};

static void setup(void)
{
	up = false;
	if (!th_fuse_available("mount"))
		return;
	if (th_server_start(&srv, 0, NULL) < 0)
		return;
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		if (th_write_pattern(th_server_path(&srv, files[i].name), files[i].size,
				     (unsigned)i + 1, 0644) < 0)
			return;
	/* read only by the tests that check what gets pulled / cached */
	if (th_write_pattern(th_server_path(&srv, "rnd"), 64 * BS, 77, 0644) < 0 ||
	    th_write_pattern(th_server_path(&srv, "kc"), 3 * BS, 78, 0644) < 0)
		return;
	if (th_sh("cd '%s' && mkdir -p sub/deeper && echo hi > sub/deeper/f && "
		  "ln -s mid link && ln -s nowhere dangling && ln -s sub dirlink && "
		  "ln bs hardlink && chmod 0600 one && chmod 0751 sub && "
		  "touch -d '2001-02-03 04:05:06.789' bs && "
		  "for i in $(seq 1 300); do : > sub/many$i; done && "
		  "mkdir wide && for i in $(seq 1 2600); do : > wide/entry-with-a-longer-name-$i; "
		  "done && "
		  "mkdir smalls && for i in $(seq 1 64); do head -c 3000 /dev/urandom > "
		  "smalls/s$i; done",
		  srv.share))
		return;
	if (th_mount_start(&mnt, &srv, "/", NULL) < 0)
		return;
	up = true;
}

static void teardown(void)
{
	th_mount_stop(&mnt);
	th_server_cleanup(&srv);
}

static const char *mp(const char *rel)
{
	static __thread char p[2 * PATH_MAX];

	snprintf(p, sizeof(p), "%s/%s", mnt.mnt, rel);
	return p;
}

#define REQUIRE_UP() ck_assert_msg(up, "mount fixture failed (see stderr)")

/* Sorted names of a directory, one per line. */
static char *listing(const char *dir)
{
	char *out = NULL;

	th_sh_out(&out, "cd '%s' && ls -1a | LC_ALL=C sort", dir);
	return out;
}

START_TEST(test_tree_listing)
{
	char *a, *b;

	REQUIRE_UP();
	a = listing(srv.share);
	b = listing(mnt.mnt);
	ck_assert_str_eq(a, b);
	free(a);
	free(b);
	a = listing(th_server_path(&srv, "sub"));
	b = listing(mp("sub"));
	ck_assert_str_eq(a, b); /* 300+ entries: several READDIR batches */
	ck_assert_ptr_nonnull(strstr(b, "many300"));
	free(a);
	free(b);
	th_sh_out(&a, "cd '%s' && find . | LC_ALL=C sort", srv.share);
	th_sh_out(&b, "cd '%s' && find . | LC_ALL=C sort", mnt.mnt);
	ck_assert_str_eq(a, b);
	free(a);
	free(b);
}
END_TEST

/* Names from dir's current position to its end, one per line (appended). */
static size_t read_rest(DIR *d, char *out, size_t cap)
{
	struct dirent *e;
	size_t n = 0, len = strlen(out);

	while ((e = readdir(d))) {
		len += (size_t)snprintf(out + len, cap - len, "%s\n", e->d_name);
		ck_assert_uint_lt(len, cap);
		n++;
	}
	return n;
}

/* wide/ spans three READDIR batches (1024 entries each): each is fetched
 * while the previous one is consumed. seekdir into the middle drops the
 * read-ahead (its entries' lookups are forgotten) and must still list
 * exactly the same names. */
START_TEST(test_readdir_seek_across_batches)
{
	static char all[256 << 10], tail1[256 << 10], tail2[256 << 10];
	DIR *d;
	long pos = -1;
	size_t n = 0, n1, n2;

	REQUIRE_UP();
	all[0] = tail1[0] = tail2[0] = '\0';
	d = opendir(mp("wide"));
	ck_assert_ptr_nonnull(d);
	while (n < 1500 && readdir(d))
		n++;
	ck_assert_uint_eq(n, 1500);
	pos = telldir(d);
	n1 = read_rest(d, tail1, sizeof(tail1));
	seekdir(d, pos);
	n2 = read_rest(d, tail2, sizeof(tail2));
	ck_assert_uint_eq(n1, n2);
	ck_assert_str_eq(tail1, tail2);
	rewinddir(d);
	n = read_rest(d, all, sizeof(all));
	closedir(d);
	ck_assert_uint_eq(n, 1500 + n1);
	ck_assert_uint_eq(n, 2600 + 2); /* the entries, ".", ".." */
	/* the names are the share's own */
	ck_assert_int_eq(th_sh("test \"$(ls -1a '%s' | LC_ALL=C sort)\" = "
			       "\"$(ls -1a '%s' | LC_ALL=C sort)\"",
			       mp("wide"), th_server_path(&srv, "wide")),
			 0);
}
END_TEST

START_TEST(test_stat_fields)
{
	const char *names[] = {"empty", "one", "bs", "mid", "sub", "link", "hardlink"};

	REQUIRE_UP();
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		struct stat s, m;

		ck_assert_int_eq(lstat(th_server_path(&srv, names[i]), &s), 0);
		ck_assert_int_eq(lstat(mp(names[i]), &m), 0);
		ck_assert_msg(s.st_mode == m.st_mode, "%s: mode %o vs %o", names[i], s.st_mode,
			      m.st_mode);
		ck_assert_uint_eq(s.st_size, m.st_size);
		ck_assert_uint_eq(s.st_ino, m.st_ino);
		ck_assert_uint_eq(s.st_nlink, m.st_nlink);
		ck_assert_int_eq(s.st_mtim.tv_sec, m.st_mtim.tv_sec);
		ck_assert_int_eq(s.st_mtim.tv_nsec, m.st_mtim.tv_nsec);
		ck_assert_uint_eq(m.st_uid, getuid()); /* idmap=user */
	}
	{
		struct stat a, b;

		ck_assert_int_eq(stat(mp("bs"), &a), 0);
		ck_assert_int_eq(stat(mp("hardlink"), &b), 0);
		ck_assert_uint_eq(a.st_ino, b.st_ino);
		ck_assert_int_eq(a.st_mtim.tv_sec, 981173106);
	}
	ck_assert_int_eq(stat(mp("nope"), &(struct stat){0}), -1);
	ck_assert_int_eq(errno, ENOENT);
}
END_TEST

START_TEST(test_contents)
{
	REQUIRE_UP();
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		ck_assert_msg(th_sh("cmp '%s' '%s'", th_server_path(&srv, files[i].name),
				    mp(files[i].name)) == 0,
			      "%s differs", files[i].name);
	/* checksums too: a read through dd with odd request sizes */
	ck_assert_int_eq(th_sh("test \"$(dd if='%s' bs=77777 status=none | sha256sum)\" = "
			       "\"$(sha256sum < '%s')\"",
			       mp("mid"), th_server_path(&srv, "mid")),
			 0);
	ck_assert_int_eq(th_sh("test \"$(cat '%s')\" = hi", mp("sub/deeper/f")), 0);
}
END_TEST

/* Whole-file reference, read from the share. */
static char *load(const char *path, size_t size)
{
	char *buf = malloc(size ? size : 1);
	int fd = open(path, O_RDONLY);

	ck_assert_ptr_nonnull(buf);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, buf, size, 0), (ssize_t)size);
	close(fd);
	return buf;
}

struct reader {
	const char *ref;
	size_t size;
	unsigned seed;
	int bad;
};

static void *reader_main(void *arg)
{
	struct reader *r = arg;
	int fd = open(mp("mid"), O_RDONLY);
	size_t chunk = 131072 + r->seed * 4096;
	char *buf = malloc(chunk);

	if (fd < 0 || !buf) {
		r->bad = -1;
		goto out;
	}
	/* every reader walks the file from a different starting point */
	for (size_t n = 0, off = (r->seed * 777777) % r->size; n < r->size; n += chunk) {
		ssize_t got = pread(fd, buf, chunk, (off_t)off);
		size_t want = KB_MIN(chunk, r->size - off);

		if (got != (ssize_t)want || memcmp(buf, r->ref + off, want))
			r->bad++;
		off = (off + want) % r->size;
	}
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	return NULL;
}

START_TEST(test_concurrent_readers)
{
	enum {
		N = 8
	};
	size_t size = 5 * BS + 12345;
	char *ref;
	struct reader rs[N];
	pthread_t th[N];

	REQUIRE_UP();
	ref = load(th_server_path(&srv, "mid"), size);
	for (int i = 0; i < N; i++) {
		rs[i] = (struct reader){ref, size, (unsigned)i, 0};
		ck_assert_int_eq(pthread_create(&th[i], NULL, reader_main, &rs[i]), 0);
	}
	for (int i = 0; i < N; i++) {
		pthread_join(th[i], NULL);
		ck_assert_msg(rs[i].bad == 0, "reader %d saw %d bad reads", i, rs[i].bad);
	}
	free(ref);
}
END_TEST

START_TEST(test_random_reads)
{
	char *ref, *buf = malloc(300000);
	int fd;
	uint64_t x = 88172645463325252ull;

	REQUIRE_UP();
	ref = load(th_server_path(&srv, "big"), BIG);
	fd = open(mp("big"), O_RDONLY);
	ck_assert_int_ge(fd, 0);
	for (int i = 0; i < 1500; i++) {
		size_t len, off;
		ssize_t got;

		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		off = (size_t)(x % (BIG + 4096)); /* sometimes past the end */
		len = i % 3 ? 4096 : 1 + (size_t)((x >> 40) % 300000);
		got = pread(fd, buf, len, (off_t)off);
		if (off >= BIG) {
			ck_assert_int_eq(got, 0);
			continue;
		}
		ck_assert_int_eq(got, (ssize_t)KB_MIN(len, BIG - off));
		ck_assert_msg(!memcmp(buf, ref + off, (size_t)got), "data at %zu+%zu", off, len);
	}
	close(fd);
	free(buf);
	free(ref);
}
END_TEST

START_TEST(test_symlinks)
{
	char buf[PATH_MAX];
	ssize_t n;
	struct stat st;

	REQUIRE_UP();
	n = readlink(mp("link"), buf, sizeof(buf));
	ck_assert_int_eq(n, 3);
	ck_assert_mem_eq(buf, "mid", 3);
	n = readlink(mp("dangling"), buf, sizeof(buf));
	ck_assert_int_eq(n, 7);
	ck_assert_int_eq(stat(mp("dangling"), &st), -1);
	ck_assert_int_eq(stat(mp("link"), &st), 0); /* followed by the kernel */
	ck_assert_uint_eq(st.st_size, 5 * BS + 12345);
	ck_assert_int_eq(th_sh("cmp '%s' '%s'", mp("link"), th_server_path(&srv, "mid")), 0);
	ck_assert_int_eq(th_sh("test -f '%s'", mp("dirlink/deeper/f")), 0);
}
END_TEST

START_TEST(test_xattrs)
{
	char val[64], list[256];
	ssize_t n;

	REQUIRE_UP();
	if (setxattr(th_server_path(&srv, "mid"), "user.kb", "hello", 5, 0) < 0) {
		fprintf(stderr, "*** SKIP xattrs: the share's filesystem has no user xattrs\n");
		return;
	}
	ck_assert_int_eq(
		th_sh("getfattr -n user.kb --only-values '%s' | grep -qx hello", mp("mid")), 0);
	n = getxattr(mp("mid"), "user.kb", NULL, 0);
	ck_assert_int_eq(n, 5);
	n = getxattr(mp("mid"), "user.kb", val, sizeof(val));
	ck_assert_int_eq(n, 5);
	ck_assert_mem_eq(val, "hello", 5);
	ck_assert_int_eq(getxattr(mp("mid"), "user.kb", val, 2), -1);
	ck_assert_int_eq(errno, ERANGE);
	ck_assert_int_eq(getxattr(mp("mid"), "user.none", val, sizeof(val)), -1);
	ck_assert_int_eq(errno, ENODATA);
	n = listxattr(mp("mid"), list, sizeof(list));
	ck_assert_int_gt(n, 0);
	ck_assert_ptr_nonnull(memmem(list, (size_t)n, "user.kb", 8));
	/* set through the mount: stored on the server */
	ck_assert_int_eq(setxattr(mp("mid"), "user.x", "1", 1, 0), 0);
	ck_assert_int_eq(getxattr(th_server_path(&srv, "mid"), "user.x", val, sizeof(val)), 1);
	ck_assert_int_eq(removexattr(mp("mid"), "user.x"), 0);
}
END_TEST

/* (EROFS on `ro` mounts and read-only shares: test_write.c) */
START_TEST(test_statfs)
{
	REQUIRE_UP();
	ck_assert_int_eq(
		th_sh("df '%s' >/dev/null && test -n \"$(stat -f -c %%b '%s')\"", mnt.mnt, mnt.mnt),
		0);
}
END_TEST

START_TEST(test_changed_file_seen)
{
	char buf[16] = {0};
	int fd;

	REQUIRE_UP();
	ck_assert_int_eq(th_sh("printf 'version-1' > '%s'", th_server_path(&srv, "chg")), 0);
	/* a name made on the server appears once its push arrives (or after
	 * entry_timeout): the root's listing may say it is missing until then */
	ck_assert(th_wait_file_contains(mp("chg"), "version-1", 3000));
	/* a different size and mtime: a new version after the attr timeout */
	ck_assert_int_eq(th_sh("printf 'version-two' > '%s' && touch -d '2020-01-01' '%s'",
			       th_server_path(&srv, "chg"), th_server_path(&srv, "chg")),
			 0);
	usleep(1200 * 1000);
	fd = open(mp("chg"), O_RDONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(read(fd, buf, sizeof(buf)), 11);
	ck_assert_str_eq(buf, "version-two");
	close(fd);
}
END_TEST

/* Bytes the client process has read so far (sockets included). */
static long long client_rchar(void)
{
	char path[64], *out = NULL;
	long long v = -1;

	snprintf(path, sizeof(path), "/proc/%d/io", (int)mnt.pid);
	if (th_sh_out(&out, "awk '/^rchar/ {print $2}' %s", path) == 0 && out)
		v = atoll(out);
	free(out);
	return v;
}

/* Blocks the client's cache holds, from its status text; -1 on error. */
static int cached_blocks(void)
{
	char st[4096], *p;
	ssize_t n = getxattr(mnt.mnt, KBFS_STATUS_XATTR, st, sizeof(st) - 1);
	int blocks = -1;

	if (n < 0)
		return -1;
	st[n] = '\0';
	p = strstr(st, "cache: ");
	p = p ? strstr(p, " MiB, ") : NULL;
	if (p)
		sscanf(p, " MiB, %d blocks", &blocks);
	return blocks;
}

/* Requests of kind `op` sent so far ("requests by op" in the status). */
static long requests_of(const char *op)
{
	char st[4096], key[32], *p;
	ssize_t n = getxattr(mnt.mnt, KBFS_STATUS_XATTR, st, sizeof(st) - 1);
	long v = 0;

	if (n < 0)
		return -1;
	st[n] = '\0';
	snprintf(key, sizeof(key), " %s ", op);
	p = strstr(st, "requests by op:");
	p = p ? strstr(p, key) : NULL;
	if (p)
		sscanf(p + strlen(key), "%ld", &v);
	return v;
}

/* What a listing with attributes (READDIRPLUS) returned is used: stat and
 * open of every file listed cost no LOOKUP and no GETATTR. */
START_TEST(test_listing_serves_stat)
{
	long lookups, getattrs;
	struct stat st;
	char p[64];
	int fd;

	REQUIRE_UP();
	ck_assert_int_eq(th_sh("ls -l '%s/smalls' > /dev/null", mnt.mnt), 0);
	lookups = requests_of("LOOKUP");
	getattrs = requests_of("GETATTR");
	ck_assert_int_ge(lookups, 0);
	for (int i = 0; i < 64; i++) {
		snprintf(p, sizeof(p), "smalls/s%d", i + 1);
		ck_assert_int_eq(stat(mp(p), &st), 0);
		fd = open(mp(p), O_RDONLY);
		ck_assert_int_ge(fd, 0);
		close(fd);
	}
	ck_assert_int_eq(requests_of("LOOKUP"), lookups);
	ck_assert_int_eq(requests_of("GETATTR"), getattrs);
}
END_TEST

/* Opening a small file pulls the small files listed after it in its
 * directory (kbfs_siblings.c): after one open, 32 more are cached; listing
 * alone pulls nothing; every file still reads back as on the share. */
START_TEST(test_siblings_prefetched)
{
	char names[70][256], *a = NULL, *b = NULL;
	int n = 0, before, after = -1;
	struct dirent *e;
	DIR *d;

	REQUIRE_UP();
	before = cached_blocks();
	ck_assert_int_ge(before, 0);
	d = opendir(mp("smalls"));
	ck_assert_ptr_nonnull(d);
	while ((e = readdir(d)) && n < 70)
		if (e->d_name[0] != '.')
			snprintf(names[n++], sizeof(names[0]), "%s", e->d_name);
	closedir(d);
	ck_assert_int_eq(n, 64);
	ck_assert_int_eq(cached_blocks(), before); /* listing pulled nothing */
	ck_assert_int_eq(th_sh("cat '%s/smalls/%s' > /dev/null", mnt.mnt, names[0]), 0);
	for (int i = 0; i < 200 && (after = cached_blocks()) < before + 1 + 32; i++)
		usleep(10000);
	ck_assert_msg(after >= before + 1 + 32, "blocks %d -> %d", before, after);
	for (int i = 0; i < n; i++) {
		ck_assert_int_eq(th_sh_out(&a, "cksum < '%s/smalls/%s'", mnt.mnt, names[i]), 0);
		ck_assert_int_eq(
			th_sh_out(&b, "cksum < '%s/%s'", th_server_path(&srv, "smalls"), names[i]),
			0);
		ck_assert_str_eq(a, b);
		free(a);
		free(b);
		a = b = NULL;
	}
}
END_TEST

/* A 4 KiB random read pulls a small sub-block (4 to 64 KiB), not a whole
 * 1 MiB block. */
START_TEST(test_random_no_overfetch)
{
	char buf[4096];
	long long before, after;
	int fd;

	REQUIRE_UP();
	fd = open(mp("rnd"), O_RDONLY);
	ck_assert_int_ge(fd, 0);
	before = client_rchar();
	ck_assert_int_ge(before, 0);
	for (int i = 0; i < 32; i++) /* one read in every other block */
		ck_assert_int_eq(pread(fd, buf, sizeof(buf), (off_t)i * 2 * BS + 300000), 4096);
	after = client_rchar();
	close(fd);
	/* whole blocks would be 32 MiB, 64 KiB sub-blocks over 2 MiB; sub-blocks
	 * the size of the kernel's reads (4-16 KiB here) stay well below */
	ck_assert_msg(after - before < 1024 * 1024, "pulled %lld bytes for 32 x 4 KiB",
		      after - before);
	ck_assert_msg(after - before >= 32 * 4096, "before %lld after %lld", before, after);
}
END_TEST

/* An unchanged file keeps the kernel page cache across opens; a changed
 * one loses it (fincore opens the file, then counts resident pages). */
START_TEST(test_kernel_cache_versions)
{
	char *out = NULL;

	REQUIRE_UP();
	ck_assert_int_eq(th_sh("cat '%s' > /dev/null", mp("kc")), 0);
	ck_assert_int_eq(th_sh_out(&out, "fincore -b -n -o RES '%s'", mp("kc")), 0);
	ck_assert_msg(atoll(out) == 3 * BS, "resident after reopen: %s", out);
	free(out);
	ck_assert_int_eq(th_sh("touch -d '2011-11-11' '%s'", th_server_path(&srv, "kc")), 0);
	usleep(1200 * 1000); /* attr_timeout */
	ck_assert_int_eq(th_sh_out(&out, "fincore -b -n -o RES '%s'", mp("kc")), 0);
	ck_assert_msg(atoll(out) == 0, "resident after change: %s", out);
	free(out);
}
END_TEST

/* ---- refusals: no mount may be left behind ---------------------------- */

START_TEST(test_unknown_peer)
{
	char *out, kp[PATH_MAX + 16], opts[PATH_MAX + 64];
	bool left;
	int st;

	if (!th_fuse_available("unknown peer"))
		return;
	ck_assert_int_eq(th_server_start(&srv, 0, NULL), 0);
	snprintf(kp, sizeof(kp), "%s/empty_peers", srv.dir);
	ck_assert_int_eq(th_sh("install -m 600 /dev/null '%s'", kp), 0);
	snprintf(opts, sizeof(opts), "known_peers=%s", kp); /* later option wins */
	st = th_mount_expect_fail(&srv, "/", opts, &out, &left);
	ck_assert_msg(st > 0, "exit %d: %s", st, out);
	ck_assert(!left);
	ck_assert_msg(strstr(out, "SHA256:"), "no fingerprint shown: %s", out);
	ck_assert_int_eq(strchr(out, '\n') - out + 1, (long)strlen(out)); /* one line */
	free(out);
	th_server_cleanup(&srv);
}
END_TEST

START_TEST(test_wrong_key)
{
	char *out, key[PATH_MAX + 16], opts[PATH_MAX + 64];
	bool left;
	int st;

	if (!th_fuse_available("wrong key"))
		return;
	ck_assert_int_eq(th_server_start(&srv, 0, NULL), 0);
	snprintf(key, sizeof(key), "%s/other.key", srv.dir);
	ck_assert_int_eq(th_sh("'%s' -f '%s' >/dev/null", th_bin("keibifs-keygen"), key), 0);
	snprintf(opts, sizeof(opts), "identity=%s", key);
	st = th_mount_expect_fail(&srv, "/", opts, &out, &left);
	ck_assert_msg(st > 0, "exit %d: %s", st, out);
	ck_assert(!left);
	ck_assert_msg(strstr(out, "refused"), "%s", out);
	free(out);
	th_server_cleanup(&srv);
}
END_TEST

START_TEST(test_missing_path)
{
	char *out;
	bool left;
	int st;

	if (!th_fuse_available("missing path"))
		return;
	ck_assert_int_eq(th_server_start(&srv, 0, NULL), 0);
	st = th_mount_expect_fail(&srv, "/no/such/dir", NULL, &out, &left);
	ck_assert_msg(st > 0, "exit %d: %s", st, out);
	ck_assert(!left);
	ck_assert_msg(strstr(out, "keibifs:"), "%s", out);
	free(out);
	/* a refused connection (nobody listening) is an error too */
	th_server_stop(&srv);
	st = th_mount_expect_fail(&srv, "/", "timeout=3", &out, &left);
	ck_assert_msg(st > 0, "exit %d: %s", st, out);
	ck_assert(!left);
	free(out);
	th_server_cleanup(&srv);
}
END_TEST

/* `mount -t fuse.keibifs` through mount(8) and mount.fuse3, with the binary
 * staged the way `make install DESTDIR=` lays it out. mount(8) drops PATH,
 * so the helper only finds keibifs in the standard directories: the test
 * bind-mounts the staged bin/ over /usr/local/bin in a private mount
 * namespace (unshare -m), which leaves nothing behind on the machine. */
START_TEST(test_mount_type)
{
	char *stage, bin[PATH_MAX], m[PATH_MAX], *out = NULL;
	int st;
	pid_t pid;

	REQUIRE_UP();
	stage = th_tmpdir("install");
	ck_assert_ptr_nonnull(stage);
	snprintf(bin, sizeof(bin), "%s/usr/local/bin", stage);
	snprintf(m, sizeof(m), "%s/mnt", stage);
	ck_assert_int_eq(th_sh("install -d '%s' '%s' && install -m 755 '%s' '%s/'", bin, m,
			       th_bin("keibifs"), bin),
			 0);
	st = th_sh_out(
		&out,
		"unshare -m --propagation private sh -ec '"
		"mount --bind %s /usr/local/bin; trap \"umount %s 2>/dev/null || true\" EXIT; "
		"mount -t fuse.keibifs 127.0.0.1:/sub %s -o port=%d,identity=%s,"
		"known_peers=%s,_netdev,nofail,noatime,x-systemd.device-timeout=5; "
		"grep -F \" %s \" /proc/self/mounts | grep -q \" fuse.keibifs \"; "
		"test \"$(cat %s/deeper/f)\" = hi; umount %s; echo MOUNT-T-OK'",
		bin, m, m, srv.port, srv.client_key, srv.known_peers, m, m, m);
	ck_assert_msg(st == 0 && strstr(out, "MOUNT-T-OK"), "exit %d: %s", st, out);
	free(out);
	/* unmounting ended the daemon by itself */
	for (int waited = 0; (pid = th_find_keibifs(m)) > 0 && waited < 5000; waited += 20)
		usleep(20000);
	if (pid > 0) {
		char *info = NULL;

		th_sh_out(&info,
			  "tr '\\0' ' ' < /proc/%d/cmdline; echo; for t in /proc/%d/task/*; do "
			  "echo \"$(cat $t/comm) $(cat $t/wchan)\"; done",
			  (int)pid, (int)pid);
		th_stop(pid, 1000);
		ck_abort_msg("keibifs daemon %d still running after umount: %s", (int)pid,
			     info ? info : "");
	}
	th_sh("rm -rf '%s'", stage);
	free(stage);
}
END_TEST

/* ---- option parsing (no mount) ------------------------------------------ */

static char *joined(const struct fuse_args *a)
{
	size_t len = 1;
	char *s;

	for (int i = 0; i < a->argc; i++)
		len += strlen(a->argv[i]) + 1;
	s = calloc(1, len);
	for (int i = 0; i < a->argc; i++) {
		strcat(s, a->argv[i]);
		strcat(s, " ");
	}
	return s;
}

START_TEST(test_opts)
{
	char *argv[] = {
		"keibifs", "host.example:/data/x",
		"/mnt/x",  "-f",
		"-o",      "port=4000,conns=2,block_size=256,cache_size=64,ro,allow_other",
		"-o",      "rw,nosuid,_netdev,nofail,x-systemd.automount,defaults,timeout=7",
		NULL};
	struct kbfs_opts o;
	struct fuse_args args;
	char err[256];
	char *j;

	ck_assert_int_eq(kbfs_opts_parse(8, argv, &o, &args, err, sizeof(err)), 0);
	ck_assert_str_eq(o.host, "host.example");
	ck_assert_str_eq(o.path, "/data/x");
	ck_assert_str_eq(o.mountpoint, "/mnt/x");
	ck_assert_str_eq(o.port, "4000");
	ck_assert_uint_eq(o.conns, 2);
	ck_assert_uint_eq(o.block_size, 256 << 10);
	ck_assert_uint_eq(o.cache_size, 64 << 20);
	ck_assert_int_eq(o.timeout, 7);
	ck_assert(o.ro && o.foreground && !o.debug);
	ck_assert(o.attr_timeout == 1.0 && o.negative_timeout == 1.0);
	j = joined(&args);
	ck_assert_msg(strstr(j, "allow_other") && strstr(j, "nosuid") && strstr(j, "ro") &&
			      strstr(j, "max_read=262144") &&
			      strstr(j, "fsname=host.example:/data/x"),
		      "%s", j);
	ck_assert_msg(!strstr(j, "_netdev") && !strstr(j, "nofail") && !strstr(j, "x-systemd") &&
			      !strstr(j, "port=") && !strstr(j, "defaults"),
		      "%s", j);
	free(j);
	fuse_opt_free_args(&args);
	kbfs_opts_free(&o);
}
END_TEST

START_TEST(test_opts_defaults_and_errors)
{
	char *ok[] = {"keibifs", "[::1]:/", "m", NULL};
	char *v6bad[] = {"keibifs", "[::1]/x", "m", NULL};
	char *nomnt[] = {"keibifs", "h:/x", NULL};
	char *badbs[] = {"keibifs", "h:/x", "m", "-o", "block_size=3000", NULL};
	char *bigbs[] = {"keibifs", "h:/x", "m", "-o", "block_size=8M", NULL};
	char *badcr[] = {"keibifs", "h:/x", "m", "-o", "crypto=rot13", NULL};
	struct kbfs_opts o;
	struct fuse_args args;
	char err[256];
	size_t v;

	ck_assert_int_eq(kbfs_opts_parse(3, ok, &o, &args, err, sizeof(err)), 0);
	ck_assert_str_eq(o.host, "::1");
	ck_assert_str_eq(o.path, "/");
	ck_assert_str_eq(o.port, "26431");
	ck_assert_uint_eq(o.conns, 4);
	ck_assert_uint_eq(o.block_size, 1 << 20);
	ck_assert_uint_eq(o.cache_size, 256u << 20);
	ck_assert_int_eq(o.timeout, 15);
	ck_assert(!o.foreground);
	fuse_opt_free_args(&args);
	kbfs_opts_free(&o);
#define BAD(a)                                                                               \
	do {                                                                                 \
		ck_assert_int_eq(kbfs_opts_parse((int)(sizeof(a) / sizeof(a[0])) - 1, a, &o, \
						 &args, err, sizeof(err)),                   \
				 -EINVAL);                                                   \
		ck_assert_int_gt(strlen(err), 0);                                            \
		fuse_opt_free_args(&args);                                                   \
		kbfs_opts_free(&o);                                                          \
	} while (0)
	BAD(v6bad);
	BAD(nomnt);
	BAD(badbs);
	BAD(bigbs);
	BAD(badcr);
	ck_assert_int_eq(kbfs_parse_size("4M", 1024, &v), 0);
	ck_assert_uint_eq(v, 4 << 20);
	ck_assert_int_eq(kbfs_parse_size("512KiB", 1, &v), 0);
	ck_assert_uint_eq(v, 512 << 10);
	ck_assert_int_eq(kbfs_parse_size("64", 1024, &v), 0);
	ck_assert_uint_eq(v, 64 << 10);
	ck_assert_int_eq(kbfs_parse_size("-1", 1, &v), -EINVAL);
	ck_assert_int_eq(kbfs_parse_size("12X", 1, &v), -EINVAL);
}
END_TEST

/* Option mistakes: one line naming the fix, before anything connects. */
START_TEST(test_opts_messages)
{
	static const struct {
		const char *remote, *opts, *msg;
	} cases[] = {
		{"h:/", "conn=4", "unknown option 'conn': did you mean 'conns'?"},
		{"h:/", "identiy=/k", "unknown option 'identiy': did you mean 'identity'?"},
		{"h:/", "alow_other", "did you mean 'allow_other'?"},
		{"h:/", "frobnicate", "unknown option 'frobnicate' (see keibifs --help)"},
		{"h:/", "cache_size=lots", "cache_size=lots: not a size"},
		{"h:/", "conns=lots", "conns=lots: not a number"},
		{"h:/", "timeout=", "timeout=: not a number"},
		{"h:/", "attr_timeout=x", "attr_timeout=x: not a number"},
		{"h:/", "owners=yes", "owners=yes: owners=preserve or owners=map"},
		{"::1:/", "ro", "write an IPv6 address in brackets: [::1]:/"},
		{"nocolon", "ro", "'nocolon' is not HOST:PATH"},
	};
	struct kbfs_opts o;
	struct fuse_args args;
	char err[256], opt[64];
	char *ok[] = {"keibifs", "h:/", "m", "-o", "log=stderr,x-gvfs-hide,allow_other,conns=2",
		      NULL};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *argv[] = {"keibifs", (char *)cases[i].remote, "m", "-o", opt, NULL};

		snprintf(opt, sizeof(opt), "%s", cases[i].opts);
		ck_assert_int_eq(kbfs_opts_parse(5, argv, &o, &args, err, sizeof(err)), -EINVAL);
		ck_assert_msg(strstr(err, cases[i].msg) != NULL, "%s: %s", cases[i].opts, err);
		ck_assert_msg(!strchr(err, '\n'), "%s", err);
		fuse_opt_free_args(&args);
		kbfs_opts_free(&o);
	}
	ck_assert_int_eq(kbfs_opts_parse(5, ok, &o, &args, err, sizeof(err)), 0);
	ck_assert_str_eq(o.log, "stderr");
	ck_assert_uint_eq(o.conns, 2);
	fuse_opt_free_args(&args);
	kbfs_opts_free(&o);
}
END_TEST

Suite *suite_mount(void);
Suite *suite_mount(void)
{
	Suite *s = suite_create("mount");
	TCase *tc = tcase_create("mounted");
	TCase *refuse = tcase_create("refused");
	TCase *opts = tcase_create("opts");

	/* unchecked: runs in the runner itself, so teardown happens even when
	 * a test's forked child crashes */
	tcase_add_unchecked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_tree_listing);
	tcase_add_test(tc, test_stat_fields);
	tcase_add_test(tc, test_readdir_seek_across_batches);
	tcase_add_test(tc, test_siblings_prefetched);
	tcase_add_test(tc, test_listing_serves_stat);
	tcase_add_test(tc, test_contents);
	tcase_add_test(tc, test_concurrent_readers);
	tcase_add_test(tc, test_random_reads);
	tcase_add_test(tc, test_random_no_overfetch);
	tcase_add_test(tc, test_kernel_cache_versions);
	tcase_add_test(tc, test_symlinks);
	tcase_add_test(tc, test_xattrs);
	tcase_add_test(tc, test_statfs);
	tcase_add_test(tc, test_changed_file_seen);
	tcase_add_test(tc, test_mount_type);
	suite_add_tcase(s, tc);
	tcase_set_timeout(refuse, 60);
	tcase_add_test(refuse, test_unknown_peer);
	tcase_add_test(refuse, test_wrong_key);
	tcase_add_test(refuse, test_missing_path);
	suite_add_tcase(s, refuse);
	tcase_add_test(opts, test_opts);
	tcase_add_test(opts, test_opts_defaults_and_errors);
	tcase_add_test(opts, test_opts_messages);
	suite_add_tcase(s, opts);
	return s;
}
