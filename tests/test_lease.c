/* test_lease.c - caches backed by the server's promise (a lease), whole
 * directories at a time (kbfs_list.h), and ACCESS answered locally.
 *
 * Every test mounts for real, through tests/tools/kbproxy (no delay) so
 * that the connection can be cut, with attr/entry timeouts of 0.3 s: what
 * is answered after that is answered under the lease. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "th.h"
#include "th_mount.h"
#include "th_server.h"

#define STATUS_XATTR "keibifs.status"
#define SHORT "attr_timeout=0.3,entry_timeout=0.3,negative_timeout=0.3,timeout=3"

struct lt {
	struct th_server srv;
	struct th_server via; /* srv, seen through the proxy (port) */
	struct th_mount mnt;
	pid_t proxy;
	char plog[PATH_MAX];
};

static void lt_start(struct lt *t, const char *opts)
{
	memset(t, 0, sizeof(*t));
	if (!th_fuse_available("lease"))
		return;
	ck_assert_int_eq(th_server_start(&t->srv, 0, NULL), 0);
	ck_assert_int_eq(th_proxy_start(&t->srv, NULL, &t->via, &t->proxy, t->plog), 0);
	ck_assert_int_eq(th_mount_start(&t->mnt, &t->via, "/", opts ? opts : SHORT), 0);
}

static void lt_stop(struct lt *t)
{
	th_mount_stop(&t->mnt);
	if (t->proxy > 0)
		th_stop(t->proxy, 2000);
	th_server_cleanup(&t->srv);
}

#define SKIP_NO_FUSE(t)                                                       \
	do {                                                                  \
		if (!(t)->srv.dir) {                                          \
			fprintf(stderr, "SKIP %s: no /dev/fuse\n", __func__); \
			return;                                               \
		}                                                             \
	} while (0)

static const char *mp(struct lt *t, const char *rel)
{
	static __thread char p[2 * PATH_MAX];

	snprintf(p, sizeof(p), "%s/%s", t->mnt.mnt, rel);
	return p;
}

/* The status text (static buffer). */
static const char *status(struct lt *t)
{
	static __thread char st[8192];
	ssize_t n = getxattr(t->mnt.mnt, STATUS_XATTR, st, sizeof(st) - 1);

	st[n > 0 ? n : 0] = '\0';
	return st;
}

/* Requests of kind `op` sent so far. */
static long requests_of(struct lt *t, const char *op)
{
	const char *p = strstr(status(t), "requests by op:");
	char key[32];
	long v = 0;

	snprintf(key, sizeof(key), " %s ", op);
	p = p ? strstr(p, key) : NULL;
	if (p)
		sscanf(p + strlen(key), "%ld", &v);
	return v;
}

static bool lease_held(struct lt *t)
{
	return strstr(status(t), "lease: held") != NULL;
}

static off_t size_of(const char *p)
{
	struct stat st;

	return stat(p, &st) ? -1 : st.st_size;
}

/* Wait up to ms for p's size to become want. */
static bool size_becomes(const char *p, off_t want, int ms)
{
	for (int waited = 0; waited <= ms; waited += 20) {
		if (size_of(p) == want)
			return true;
		usleep(20000);
	}
	return false;
}

/* Past the short timeouts, names and attributes are answered under the
 * lease without a request; a change on the server's disk (and one by
 * another client) is pushed and seen. */
START_TEST(test_lease_push_invalidates)
{
	struct lt t;
	struct th_mount other = {0};
	long lookups, getattrs;

	lt_start(&t, NULL);
	SKIP_NO_FUSE(&t);
	ck_assert_int_eq(th_sh("mkdir '%s/d' && printf a > '%s/d/f' && printf b > '%s/d/g'",
			       t.srv.share, t.srv.share, t.srv.share),
			 0);
	ck_assert(th_wait_exists(mp(&t, "d/f"), 3000));
	ck_assert_int_eq(size_of(mp(&t, "d/f")), 1);
	ck_assert(lease_held(&t));
	usleep(600 * 1000); /* twice the short timeouts */
	lookups = requests_of(&t, "LOOKUP");
	getattrs = requests_of(&t, "GETATTR");
	ck_assert_int_eq(size_of(mp(&t, "d/f")), 1);
	ck_assert_int_eq(size_of(mp(&t, "d/g")), 1); /* from the listing of d */
	ck_assert_int_eq(size_of(mp(&t, "d/none")), -1);
	ck_assert_int_eq(requests_of(&t, "LOOKUP"), lookups);
	ck_assert_int_eq(requests_of(&t, "GETATTR"), getattrs);
	/* changed on the server's disk: pushed, seen without waiting for a timeout */
	usleep(600 * 1000);
	ck_assert_int_eq(
		th_sh("printf xyz >> '%s/d/f' && printf n > '%s/d/new'", t.srv.share, t.srv.share),
		0);
	ck_assert(size_becomes(mp(&t, "d/f"), 4, 2000));
	ck_assert(th_wait_exists(mp(&t, "d/new"), 2000));
	/* changed by another client */
	ck_assert_int_eq(th_mount_start(&other, &t.srv, "/", SHORT), 0);
	usleep(600 * 1000);
	ck_assert_int_eq(size_of(mp(&t, "d/g")), 1);
	ck_assert_int_eq(th_sh("printf 12345 >> '%s/d/g' && rm '%s/d/new'", other.mnt, other.mnt),
			 0);
	ck_assert(size_becomes(mp(&t, "d/g"), 6, 2000));
	ck_assert(size_becomes(mp(&t, "d/new"), -1, 2000));
	th_mount_stop(&other);
	lt_stop(&t);
}
END_TEST

/* Wait up to ms for p's permission bits to become want. */
static bool mode_becomes(const char *p, mode_t want, int ms)
{
	struct stat st;

	for (int waited = 0; waited <= ms; waited += 20) {
		if (!stat(p, &st) && (st.st_mode & 07777) == want)
			return true;
		usleep(20000);
	}
	return false;
}

/* The push stream cut: what was held under the lease is not served past
 * the short timeout. The change is made while the proxy holds every byte
 * (its push is stuck there), then the connections are cut (it is lost).
 * (A mode, not a size: with the writeback cache the kernel keeps its own
 * size of a regular file until the inode is invalidated, lease or not.) */
START_TEST(test_lease_cut_falls_back)
{
	struct lt t;

	lt_start(&t, NULL);
	SKIP_NO_FUSE(&t);
	ck_assert_int_eq(th_sh("printf a > '%s/f' && chmod 0644 '%s/f'", t.srv.share, t.srv.share),
			 0);
	ck_assert(th_wait_exists(mp(&t, "f"), 3000));
	ck_assert(mode_becomes(mp(&t, "f"), 0644, 0));
	ck_assert(lease_held(&t));
	usleep(600 * 1000);
	ck_assert(mode_becomes(mp(&t, "f"), 0644, 0)); /* under the lease */
	ck_assert_int_eq(kill(t.proxy, SIGUSR2), 0);   /* stall: nothing gets through */
	ck_assert_int_eq(th_sh("chmod 0600 '%s/f'", t.srv.share), 0);
	usleep(300 * 1000);                          /* its push is queued in the proxy */
	ck_assert_int_eq(kill(t.proxy, SIGUSR1), 0); /* cut: the push is lost */
	ck_assert_int_eq(kill(t.proxy, SIGUSR2), 0); /* new connections flow */
	/* the short timeout (0.3 s), the reconnect and margin: never the lease */
	ck_assert(mode_becomes(mp(&t, "f"), 0600, 2500));
	lt_stop(&t);
}
END_TEST

/* access() in map mode: what the server would answer for its own user
 * (root here: read and write always, execute when some x bit is set),
 * without an ACCESS round trip. */
START_TEST(test_access_local)
{
	struct lt t;
	long access0;

	lt_start(&t, NULL);
	SKIP_NO_FUSE(&t);
	if (geteuid() != 0) {
		fprintf(stderr, "SKIP %s: needs root (the server's answers as root)\n", __func__);
		lt_stop(&t);
		return;
	}
	ck_assert_int_eq(th_sh("cd '%s' && : > a && chmod 0644 a && : > x && chmod 0750 x && "
			       ": > z && chmod 0 z && mkdir dd && chmod 0 dd",
			       t.srv.share),
			 0);
	ck_assert(th_wait_exists(mp(&t, "dd"), 3000));
	access0 = requests_of(&t, "ACCESS");
	ck_assert_int_eq(access(mp(&t, "a"), R_OK | W_OK), 0);
	ck_assert_int_eq(access(mp(&t, "a"), X_OK), -1);
	ck_assert_int_eq(errno, EACCES);
	ck_assert_int_eq(access(mp(&t, "x"), X_OK), 0);
	ck_assert_int_eq(access(mp(&t, "z"), R_OK | W_OK), 0);
	ck_assert_int_eq(access(mp(&t, "z"), X_OK), -1);
	ck_assert_int_eq(access(mp(&t, "dd"), X_OK), 0);
	/* the same answers as the server's own check */
	ck_assert_int_eq(access(th_server_path(&t.srv, "a"), X_OK), -1);
	ck_assert_int_eq(access(th_server_path(&t.srv, "dd"), X_OK), 0);
	ck_assert_int_eq(requests_of(&t, "ACCESS"), access0);
	lt_stop(&t);
}
END_TEST

/* A directory of 100,000 entries is not held (KBFS_LIST_MAX): one listing
 * attempt, then per-name lookups; the client's memory does not grow by
 * what holding it would take. */
START_TEST(test_list_bound)
{
	struct lt t;
	char path[PATH_MAX], *out = NULL;
	long rss0, rss1;

	lt_start(&t, NULL);
	SKIP_NO_FUSE(&t);
	ck_assert_int_eq(th_sh("python3 -c \"import os\nd='%s/huge'\nos.mkdir(d)\n"
			       "[open(f'{d}/entry-{i:06d}', 'w').close() for i in range(100000)]\"",
			       t.srv.share),
			 0);
	ck_assert_int_eq(th_sh_out(&out, "grep VmRSS /proc/%d/status | tr -dc 0-9", t.mnt.pid), 0);
	rss0 = atol(out);
	free(out);
	for (int i = 0; i < 50; i++) {
		snprintf(path, sizeof(path), "huge/entry-%06d", i * 1999);
		ck_assert_int_eq(size_of(mp(&t, path)), 0);
	}
	ck_assert_int_eq(size_of(mp(&t, "huge/entry-100000")), -1);
	ck_assert_ptr_nonnull(strstr(status(&t), "1 too big"));
	out = NULL;
	ck_assert_int_eq(th_sh_out(&out, "grep VmRSS /proc/%d/status | tr -dc 0-9", t.mnt.pid), 0);
	rss1 = atol(out);
	free(out);
	/* held, 100,000 entries would take tens of MiB; a listing of 4,096
	 * fetched and dropped leaves a few */
	ck_assert_int_lt(rss1 - rss0, 16 * 1024);
	lt_stop(&t);
}
END_TEST

Suite *suite_lease(void);
Suite *suite_lease(void)
{
	Suite *s = suite_create("lease");
	TCase *tc = tcase_create("mounted");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_lease_push_invalidates);
	tcase_add_test(tc, test_lease_cut_falls_back);
	tcase_add_test(tc, test_access_local);
	tcase_add_test(tc, test_list_bound);
	suite_add_tcase(s, tc);
	return s;
}
