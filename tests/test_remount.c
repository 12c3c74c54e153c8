/* test_remount.c - the mount's side of reliability and visibility, on a
 * real mount: server restart mid-read, connections cut during cp, a stall
 * past -o timeout, a flipped bit, server-side changes seen through NOTIFY,
 * and the status xattr / `keibifs --status`.
 *
 * Each TCase has an unchecked fixture (the runner's own process) that
 * starts the server, optionally tests/kbproxy in front of it, and the
 * mount, and tears all of it down even when a test fails. A server the
 * restart test spawns anew is recorded by th_spawn for the runner's final
 * cleanup too. */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
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

#define BIG (48u << 20)
#define CHUNK (1u << 20)

static struct {
	struct th_server ts;
	struct th_mount m;
	pid_t proxy;
	char plog[PATH_MAX];
	bool up;
} F;

static void spawn_server(void)
{
	if (truncate(F.ts.log, 0) < 0)
		return;
	th_server_spawn(&F.ts, TH_SRV_NOWAIT, NULL); /* the caller waits */
}

static void start(bool proxy, const char *opts)
{
	struct th_server via;

	memset(&F, 0, sizeof(F));
	if (!th_fuse_available("remount") || th_server_start(&F.ts, 0, NULL) < 0)
		return;
	if (th_write_pattern(th_server_path(&F.ts, "big"), BIG, 11, 0644) < 0 ||
	    th_write_pattern(th_server_path(&F.ts, "big2"), BIG, 12, 0644) < 0 ||
	    th_write_pattern(th_server_path(&F.ts, "cold"), 8u << 20, 13, 0644) < 0 ||
	    th_sh("cd '%s' && mkdir dir && echo one > dir/f && echo gone > dir/old", F.ts.share))
		return;
	via = F.ts;
	if (proxy && th_proxy_start(&F.ts, NULL, &via, &F.proxy, F.plog) < 0)
		return;
	if (th_mount_start(&F.m, &via, "/", opts) < 0)
		return;
	F.up = true;
}

static void stop(void)
{
	th_mount_stop(&F.m);
	if (F.proxy > 0)
		th_stop(F.proxy, 2000);
	F.proxy = 0;
	th_server_cleanup(&F.ts);
}

static void setup_direct(void)
{
	start(false, "timeout=10");
}
static void setup_proxy(void)
{
	start(true, "timeout=2");
}
static void setup_notify(void)
{
	start(false, "attr_timeout=60,entry_timeout=60,negative_timeout=60,no_writeback_cache");
}

static const char *mpath(const char *rel)
{
	static __thread char p[PATH_MAX + 64];

	snprintf(p, sizeof(p), "%s/%s", F.m.mnt, rel);
	return p;
}

/* Read mount file rel whole, comparing with the share's copy; progress
 * counts bytes. 0, or -errno / -EILSEQ (wrong bytes). */
struct rd {
	const char *rel;
	atomic_ulong progress;
	int err;
};

static void *read_main(void *arg)
{
	struct rd *r = arg;
	uint8_t *a = malloc(CHUNK), *b = malloc(CHUNK); /* owned here */
	int fm = open(mpath(r->rel), O_RDONLY), fs = open(th_server_path(&F.ts, r->rel), O_RDONLY);
	ssize_t n, m;

	r->err = fm < 0 || fs < 0 || !a || !b ? -EIO : 0;
	while (!r->err && (n = read(fm, a, CHUNK)) != 0) {
		if (n < 0) {
			r->err = -errno;
			break;
		}
		m = pread(fs, b, (size_t)n, (off_t)atomic_load(&r->progress));
		if (m != n || memcmp(a, b, (size_t)n))
			r->err = -EILSEQ;
		atomic_fetch_add(&r->progress, (unsigned long)n);
	}
	if (!r->err && atomic_load(&r->progress) != BIG)
		r->err = -EILSEQ;
	if (fm >= 0)
		close(fm);
	if (fs >= 0)
		close(fs);
	free(a);
	free(b);
	return NULL;
}

static void wait_progress(struct rd *r, unsigned long n)
{
	for (int i = 0; i < 3000 && atomic_load(&r->progress) < n && !r->err; i++)
		usleep(2000);
}

static char *status_text(void)
{
	char *buf = calloc(1, KBFS_STATUS_MAX + 1); /* caller frees */
	ssize_t n = getxattr(F.m.mnt, KBFS_STATUS_XATTR, buf, KBFS_STATUS_MAX);

	ck_assert_msg(n > 0, "getxattr status: %s", strerror(errno));
	return buf;
}

START_TEST(test_status)
{
	char *st, *out = NULL, list[4096], want[128];
	struct rd r = {.rel = "big2"};
	double in = 0;
	ssize_t n;

	ck_assert(F.up);
	usleep(1200000); /* a throughput sample from before the read */
	read_main(&r);
	ck_assert_int_eq(r.err, 0);
	st = status_text();
	snprintf(want, sizeof(want), "peer: 127.0.0.1:%d SHA256:", F.ts.port);
	ck_assert_msg(strstr(st, want), "%s", st);
	ck_assert_msg(strstr(st, "state: connected, connections 4/4 up, session generation 0"),
		      "%s", st);
	ck_assert_ptr_nonnull(strstr(st, "rtt: "));
	ck_assert_ptr_nonnull(strstr(st, "cache: hit rate "));
	/* mount time, requests in flight, latency by op, the last error */
	ck_assert_msg(strstr(st, "\nmounted: 20") && strstr(st, " UTC (up "), "%s", st);
	ck_assert_msg(strstr(st, "\nin flight: "), "%s", st);
	ck_assert_msg(strstr(st, "\nlast error: "), "%s", st);
	ck_assert_msg(strstr(st, "\nlatency by op (mean/max ms): ") &&
			      strstr(strstr(st, "\nlatency by op"), " READ "),
		      "%s", st);
	/* --status works from anything inside the mount */
	ck_assert_int_eq(th_sh_out(&out, "'%s' --status '%s/big2'", th_bin("keibifs"), F.m.mnt), 0);
	ck_assert_msg(strstr(out, want), "%s", out);
	free(out);
	out = NULL;
	ck_assert_int_eq(sscanf(strstr(st, "throughput: in "), "throughput: in %lf", &in), 1);
	ck_assert_msg(in > 0, "%s", st);
	ck_assert_int_eq(th_sh_out(&out, "'%s' --status '%s'", th_bin("keibifs"), F.m.mnt), 0);
	ck_assert_ptr_nonnull(strstr(out, want));
	free(out);
	out = NULL;
	if (access("/usr/bin/getfattr", X_OK) == 0) {
		ck_assert_int_eq(th_sh_out(&out, "getfattr -n %s --only-values '%s'",
					   KBFS_STATUS_XATTR, F.m.mnt),
				 0);
		ck_assert_msg(strstr(out, want), "%s", out);
		free(out);
		out = NULL;
	}
	ck_assert_int_ne(th_sh_out(&out, "'%s' --status /", th_bin("keibifs")), 0);
	ck_assert_msg(strstr(out, "not a keibifs mount"), "%s", out);
	free(out);
	/* not listed, and only on the root */
	n = listxattr(F.m.mnt, list, sizeof(list));
	ck_assert_int_ge(n, 0);
	for (ssize_t i = 0; i < n; i += (ssize_t)strlen(list + i) + 1)
		ck_assert_str_ne(list + i, KBFS_STATUS_XATTR);
	ck_assert_int_lt(getxattr(mpath("dir"), KBFS_STATUS_XATTR, list, sizeof(list)), 0);
	free(st);
}
END_TEST

START_TEST(test_help_lists_options)
{
	char *out = NULL;

	ck_assert_int_eq(th_sh_out(&out, "'%s' --help", th_bin("keibifs")), 0);
	ck_assert_ptr_nonnull(strstr(out, "timeout=S"));
	ck_assert_ptr_nonnull(strstr(out, "(15)"));
	ck_assert_ptr_nonnull(strstr(out, "noreconnect"));
	ck_assert_ptr_nonnull(strstr(out, "--status PATH"));
	ck_assert_ptr_nonnull(strstr(out, "log=FILE|stderr|syslog"));
	free(out);
}
END_TEST

/* Server killed mid-read and started again (same port, share, key): the
 * reader stalls, the node is re-resolved in the new session, and the
 * bytes are right. */
START_TEST(test_server_restart_mid_read)
{
	struct rd r = {.rel = "big"};
	struct dirent *de;
	pthread_t th;
	char *st;
	DIR *d;
	int n = 0;

	ck_assert(F.up);
	d = opendir(mpath("dir")); /* a directory handle across the restart */
	ck_assert_ptr_nonnull(d);
	ck_assert_int_eq(pthread_create(&th, NULL, read_main, &r), 0);
	wait_progress(&r, 6 * CHUNK);
	ck_assert_int_eq(kill(F.ts.pid, SIGKILL), 0); /* the runner reaps it */
	usleep(300000);
	spawn_server();
	ck_assert_int_gt(F.ts.pid, 0);
	ck_assert(th_wait_file_contains(F.ts.log, "keibifsd: ready", 10000));
	pthread_join(th, NULL);
	ck_assert_msg(r.err == 0, "read: %s", strerror(-r.err));
	ck_assert(th_wait_file_contains(F.m.log, "new session", 2000));
	st = status_text();
	ck_assert_msg(strstr(st, "session generation 1"), "%s", st);
	free(st);
	/* other nodes known before the restart work too (re-resolved) */
	ck_assert_int_eq(th_sh("grep -q one '%s'", mpath("dir/f")), 0);
	rewinddir(d); /* READDIR on a handle of the old session: reopened */
	while ((de = readdir(d)))
		n += strcmp(de->d_name, ".") && strcmp(de->d_name, "..");
	closedir(d);
	ck_assert_int_eq(n, 2);
	th_server_stop(&F.ts);
}
END_TEST

START_TEST(test_bitflip_right_data)
{
	struct rd r = {.rel = "big2"};

	ck_assert(F.up);
	ck_assert_int_eq(kill(F.proxy, SIGHUP), 0);
	usleep(20000);
	read_main(&r);
	ck_assert_msg(r.err == 0, "read: %s", strerror(-r.err));
	ck_assert(th_wait_file_contains(F.m.log, "reconnected to", 3000));
	ck_assert(th_wait_file_contains(F.m.log, "SHA256:", 10));
}
END_TEST

static void *cp_main(void *arg)
{
	int *rc = arg;

	*rc = th_sh("cp '%s' '%s/copy'", mpath("big"), F.ts.dir);
	return NULL;
}

START_TEST(test_cut_during_cp)
{
	char copy[PATH_MAX];
	struct stat s;
	pthread_t th;
	int rc = -1;

	ck_assert(F.up);
	snprintf(copy, sizeof(copy), "%s/copy", F.ts.dir);
	ck_assert_int_eq(pthread_create(&th, NULL, cp_main, &rc), 0);
	for (unsigned cut = 1; cut <= 4; cut++) {
		for (int i = 0; i < 2000; i++)
			if (stat(copy, &s) == 0 && (uint64_t)s.st_size >= cut * (BIG / 6))
				break;
			else
				usleep(2000);
		ck_assert_int_eq(kill(F.proxy, SIGUSR1), 0); /* cut every connection */
	}
	pthread_join(th, NULL);
	ck_assert_int_eq(rc, 0);
	ck_assert_int_eq(th_sh("cmp -s '%s' '%s'", copy, th_server_path(&F.ts, "big")), 0);
}
END_TEST

/* Stalled past timeout=2: EIO within a bounded time, never a hang; the
 * mount works again once the stall ends. */
START_TEST(test_stall_eio_then_recovers)
{
	char buf[4096];
	uint64_t t0;
	ssize_t n = 0;
	int fd, e = 0;

	ck_assert(F.up);
	fd = open(mpath("cold"), O_RDONLY); /* never read by another test */
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(kill(F.proxy, SIGUSR2), 0); /* stall on */
	usleep(50000);
	t0 = kb_now_ns();
	n = pread(fd, buf, sizeof(buf), 4 << 20);
	e = errno;
	ck_assert_int_eq(kill(F.proxy, SIGUSR2), 0); /* stall off */
	ck_assert_int_eq(n, -1);
	ck_assert_msg(e == EIO, "errno %d (%s), want EIO as keibifs(1) says", e, strerror(e));
	ck_assert_uint_lt(kb_now_ns() - t0, 20ull * 1000000000u);
	for (int i = 0; i < 50; i++) {
		n = pread(fd, buf, sizeof(buf), 6 << 20);
		if (n == (ssize_t)sizeof(buf))
			break;
		usleep(200000);
	}
	ck_assert_int_eq(n, sizeof(buf));
	close(fd);
}
END_TEST

static bool wait_true(bool (*pred)(void))
{
	for (int i = 0; i < 100; i++) {
		if (pred())
			return true;
		usleep(10000);
	}
	return false;
}

static bool new_seen(void)
{
	return access(mpath("dir/new"), F_OK) == 0;
}
static bool old_gone(void)
{
	return access(mpath("dir/old"), F_OK) < 0 && errno == ENOENT;
}
static bool f_grown(void)
{
	struct stat s;

	return stat(mpath("dir/f"), &s) == 0 && s.st_size == 8;
}

/* attr/entry/negative timeouts of 60 s: only NOTIFY explains seeing these. */
START_TEST(test_server_changes_seen)
{
	struct stat s;
	char *out = NULL;

	ck_assert(F.up);
	ck_assert_int_eq(stat(mpath("dir/f"), &s), 0);
	ck_assert_int_eq(s.st_size, 4);
	ck_assert_int_eq(th_sh("cat '%s' > /dev/null", mpath("dir/f")), 0);
	ck_assert_int_eq(access(mpath("dir/new"), F_OK), -1); /* now cached as missing */
	ck_assert_int_eq(access(mpath("dir/old"), F_OK), 0);
	ck_assert_int_eq(th_sh("ls '%s' > /dev/null", mpath("dir")), 0);
	ck_assert_int_eq(
		th_sh("cd '%s' && echo two >> dir/f && touch dir/new && rm dir/old", F.ts.share),
		0);
	ck_assert(wait_true(f_grown));
	ck_assert(wait_true(new_seen));
	ck_assert(wait_true(old_gone));
	ck_assert_int_eq(th_sh_out(&out, "cat '%s'", mpath("dir/f")), 0);
	ck_assert_str_eq(out, "one\ntwo\n");
	free(out);
	out = NULL;
	ck_assert_int_eq(th_sh_out(&out, "ls '%s'", mpath("dir")), 0);
	ck_assert_str_eq(out, "f\nnew\n");
	free(out);
}
END_TEST

static bool g_grown(void)
{
	struct stat s;

	return stat(mpath("dir/g"), &s) == 0 && s.st_size == 8;
}

/* Our own changes do not come back to us as invalidations: the server
 * does not push what a session changed itself (srv_notify.c), and what
 * comes anyway is recognised by the client (kbfs_quiet). A change made on
 * the server once that moment is over is pushed and seen at once. */
static unsigned long long delivered(unsigned long long *own)
{
	unsigned long long d = 0, o = 0;
	char *st = status_text();
	const char *p = strstr(st, "notify: ");

	ck_assert_msg(p && sscanf(p, "notify: %llu delivered, %*u dropped, %llu own", &d, &o) == 2,
		      "%s", st);
	free(st);
	if (own)
		*own = o;
	return d;
}

START_TEST(test_own_changes_quiet)
{
	unsigned long long before, own, own2;

	ck_assert(F.up);
	usleep(3 * KBFS_QUIET_MS * 1000); /* earlier tests' pushes are over */
	before = delivered(&own);
	ck_assert_int_eq(
		th_sh("cd '%s' && echo one > dir/g0 && chmod 600 dir/g0 && mv dir/g0 dir/g",
		      mpath("")),
		0);
	usleep(3 * KBFS_QUIET_MS * 1000); /* any push about it has come */
	ck_assert_uint_eq(delivered(&own2), before);
	ck_assert_uint_eq(own2, own); /* the server sent none back */
	ck_assert_int_eq(th_sh("cd '%s' && echo two >> dir/g", F.ts.share), 0);
	ck_assert(wait_true(g_grown));
	for (int i = 0; i < 40 && delivered(NULL) == before; i++) /* the push: ~50 ms */
		usleep(50 * 1000);
	ck_assert_uint_gt(delivered(NULL), before);
}
END_TEST

Suite *suite_remount(void);
Suite *suite_remount(void)
{
	Suite *s = suite_create("remount");
	TCase *direct = tcase_create("direct");
	TCase *proxy = tcase_create("proxy");
	TCase *notify = tcase_create("notify");

	tcase_add_unchecked_fixture(direct, setup_direct, stop);
	tcase_set_timeout(direct, 60);
	tcase_add_test(direct, test_help_lists_options);
	tcase_add_test(direct, test_status);
	tcase_add_test(direct, test_server_restart_mid_read); /* last: restarts */
	suite_add_tcase(s, direct);
	tcase_add_unchecked_fixture(proxy, setup_proxy, stop);
	tcase_set_timeout(proxy, 60);
	tcase_add_test(proxy, test_bitflip_right_data);
	tcase_add_test(proxy, test_cut_during_cp);
	tcase_add_test(proxy, test_stall_eio_then_recovers);
	suite_add_tcase(s, proxy);
	tcase_add_unchecked_fixture(notify, setup_notify, stop);
	tcase_set_timeout(notify, 30);
	tcase_add_test(notify, test_server_changes_seen);
	tcase_add_test(notify, test_own_changes_quiet);
	suite_add_tcase(s, notify);
	return s;
}
