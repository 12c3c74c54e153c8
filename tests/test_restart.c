/* test_restart.c - open files across a server restart (kill -9, started
 * again on the same port: a new session) and across a session that
 * expired while the network was down: writers, O_APPEND writers,
 * read-write handles and readers carry on byte-exact; a file deleted on
 * the server meanwhile gives an error, never silence.
 *
 * Each TCase's unchecked fixture (the runner's process) starts the server
 * (and for "expire" tests/kbproxy in front of it, with --session-grace 1),
 * each under a supervisor shell that starts it again when it dies, and the
 * mount; it stops everything by PID even when a test fails. A test kills
 * the server (or proxy) by the PID in its pidfile and waits for its next
 * "ready" line.
 *
 * KB_RESTARTS (default 20) sets how many restarts the streaming writer
 * goes through (scripts/restart-loop.sh runs this suite in a loop). */
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
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "th.h"
#include "th_mount.h"
#include "th_server.h"

#define MIB (1u << 20)

static struct {
	struct th_server ts;
	struct th_mount m;
	pid_t server_loop, proxy_loop; /* supervisor shells (runner's children) */
	int proxy_port;
	char plog[PATH_MAX], spid[PATH_MAX], ppid[PATH_MAX];
	bool up;
	bool expire; /* the "expire" case: proxy in front, grace 1 s */
} F;

static const char *mpath(const char *rel)
{
	static __thread char p[PATH_MAX + 64];

	snprintf(p, sizeof(p), "%s/%s", F.m.mnt, rel);
	return p;
}

/* Byte `off` of the pattern with this seed. */
static uint8_t pat(unsigned seed, uint64_t off)
{
	uint64_t x = (off >> 3) * 0x9e3779b97f4a7c15ull ^ (seed * 0xbf58476d1ce4e5b9ull);

	x ^= x >> 31;
	x *= 0x94d049bb133111ebull;
	x ^= x >> 29;
	return (uint8_t)(x >> ((off & 7) * 8));
}

static void fill(uint8_t *buf, size_t len, unsigned seed, uint64_t off)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = pat(seed, off + i);
}

/* The server's copy of rel: `head` bytes of text, then `len` pattern bytes
 * (offsets counted from after head). 0, or a message in why. */
static int check_server_file(const char *rel, const char *head, uint64_t len, unsigned seed,
			     char *why, size_t wl)
{
	size_t hl = head ? strlen(head) : 0;
	uint8_t *buf = malloc(MIB);
	int fd = open(th_server_path(&F.ts, rel), O_RDONLY);
	struct stat st;
	uint64_t off = 0;
	int ret = -1;

	if (!buf || fd < 0 || fstat(fd, &st) < 0) {
		snprintf(why, wl, "open server copy: %s", strerror(errno));
		goto out;
	}
	if ((uint64_t)st.st_size != hl + len) {
		snprintf(why, wl, "server size %lld, want %llu", (long long)st.st_size,
			 (unsigned long long)(hl + len));
		goto out;
	}
	if (hl && (pread(fd, buf, hl, 0) != (ssize_t)hl || memcmp(buf, head, hl))) {
		snprintf(why, wl, "head differs");
		goto out;
	}
	while (off < len) {
		size_t n = (size_t)(len - off < MIB ? len - off : MIB);

		if (pread(fd, buf, n, (off_t)(hl + off)) != (ssize_t)n) {
			snprintf(why, wl, "short read at %llu", (unsigned long long)off);
			goto out;
		}
		for (size_t i = 0; i < n; i++)
			if (buf[i] != pat(seed, off + i)) {
				snprintf(why, wl, "byte %llu differs",
					 (unsigned long long)(off + i));
				goto out;
			}
		off += n;
	}
	ret = 0;
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	return ret;
}

/* The pid in a pidfile, 0 if none yet. */
static pid_t read_pid(const char *file)
{
	FILE *f = fopen(file, "r");
	int pid = 0;

	if (f) {
		if (fscanf(f, "%d", &pid) != 1)
			pid = 0;
		fclose(f);
	}
	return (pid_t)pid;
}

/* How many lines of `file` hold `needle`. */
static int count_lines(const char *file, const char *needle)
{
	FILE *f = fopen(file, "r");
	char line[4096];
	int n = 0;

	while (f && fgets(line, sizeof(line), f))
		n += strstr(line, needle) != NULL;
	if (f)
		fclose(f);
	return n;
}

/* Servers and proxies are run by a supervisor shell the fixture starts,
 * which starts them again `pause` seconds after they die: a process a
 * test (a child holding descriptors on the mount) forked would close
 * those at exec, and closing one flushes it through the mount, which
 * waits for the very server being started. */
static pid_t supervise(const char *log, const char *pause, const char *cmd)
{
	char script[PATH_MAX * 8];
	const char *argv[] = {"/bin/sh", "-c", script, NULL};

	snprintf(script, sizeof(script), "while :; do %s; sleep %s; done", cmd, pause);
	return th_spawn((char *const *)argv, log);
}

/* kill -9 what pidfile names; wait until the supervisor started the next
 * one and its log says `ready` once more. */
static void kill_and_wait(const char *pidfile, const char *log, const char *ready, int wait_ms)
{
	int before = count_lines(log, ready);
	pid_t pid = read_pid(pidfile);

	ck_assert_int_gt(pid, 0);
	ck_assert_int_eq(kill(pid, SIGKILL), 0);
	for (int i = 0; i < wait_ms / 10 && count_lines(log, ready) <= before; i++)
		usleep(10000);
	ck_assert_msg(count_lines(log, ready) > before, "%s not started again", ready);
}

/* kill -9 the server; it comes back on the same port (a new session). */
static void restart_server(void)
{
	kill_and_wait(F.spid, F.ts.log, "keibifsd: ready", 20000);
}

/* The network goes away (the proxy dies) for longer than the server's
 * session grace, then comes back: the client finds its session gone. */
static void outage(void)
{
	if (F.expire)
		kill_and_wait(F.ppid, F.plog, "kbproxy: ready", 20000);
	else
		restart_server();
}

static void start(bool expire, const char *opts)
{
	char cmd[PATH_MAX * 7];
	struct th_server via;

	memset(&F, 0, sizeof(F));
	F.expire = expire;
	if (!th_fuse_available("restart") || th_server_prepare(&F.ts, 0) < 0)
		return;
	if (th_sh("cd '%s' && mkdir dir && echo one > dir/f && echo two > dir/g", F.ts.share))
		return;
	snprintf(F.spid, sizeof(F.spid), "%s/server.pid", F.ts.dir);
	snprintf(cmd, sizeof(cmd),
		 "'%s' --share '%s' --key '%s' --authorized '%s' --listen "
		 "127.0.0.1:%d --foreground --pidfile '%s' --session-grace %d",
		 th_bin("keibifsd"), F.ts.share, F.ts.server_key, F.ts.authorized, F.ts.port,
		 F.spid, expire ? 1 : 60);
	F.server_loop = supervise(F.ts.log, "0.05", cmd);
	if (F.server_loop <= 0 || !th_wait_file_contains(F.ts.log, "keibifsd: ready", 10000))
		return;
	via = F.ts;
	if (expire) {
		F.proxy_port = via.port = th_free_port();
		snprintf(F.plog, sizeof(F.plog), "%s/proxy.log", F.ts.dir);
		snprintf(F.ppid, sizeof(F.ppid), "%s/proxy.pid", F.ts.dir);
		snprintf(cmd, sizeof(cmd), "'%s' --listen %d --to 127.0.0.1:%d --pidfile '%s'",
			 th_bin("tests/kbproxy"), F.proxy_port, F.ts.port, F.ppid);
		F.proxy_loop = supervise(F.plog, "2.5", cmd); /* past the 1 s grace */
		if (F.proxy_loop <= 0 || !th_wait_file_contains(F.plog, "kbproxy: ready", 10000))
			return;
	}
	if (th_mount_start(&F.m, &via, "/", opts) < 0)
		return;
	F.up = true;
}

static void stop(void)
{
	th_mount_stop(&F.m);
	if (F.proxy_loop > 0) {
		th_stop(F.proxy_loop, 2000); /* the loop first: it would start another */
		th_stop(read_pid(F.ppid), 2000);
	}
	if (F.server_loop > 0) {
		th_stop(F.server_loop, 2000);
		th_stop(read_pid(F.spid), 10000);
	}
	F.proxy_loop = F.server_loop = 0;
	th_server_cleanup(&F.ts);
}

static void setup_wb(void)
{
	start(false, "timeout=10");
}
static void setup_nowb(void)
{
	start(false, "timeout=10,no_writeback_cache");
}
static void setup_names(void)
{
	start(false, "timeout=10,entry_timeout=600");
}
static void setup_expire(void)
{
	start(true, "timeout=10");
}

static ssize_t write_pat(int fd, size_t len, unsigned seed, uint64_t off)
{
	uint8_t *buf = malloc(len);
	ssize_t n;

	ck_assert_ptr_nonnull(buf);
	fill(buf, len, seed, off);
	n = write(fd, buf, len);
	if (n < 0)
		fprintf(stderr, "restart: write at %llu: %s\n", (unsigned long long)off,
			strerror(errno));
	free(buf);
	return n;
}

static void assert_file(const char *rel, const char *head, uint64_t len, unsigned seed)
{
	char why[256] = "";

	ck_assert_msg(check_server_file(rel, head, len, seed, why, sizeof(why)) == 0, "%s: %s", rel,
		      why);
}

/* open(O_CREAT|O_WRONLY), 1 MiB, outage, 1 MiB, fsync: 0 and byte-exact.
 * The file's creation reaches the server before the outage: with
 * write-behind it may still be on its way when open returns, and a
 * session that expires with it in flight loses it (the mount then
 * reports ESTALE, as for any queued change whose session is gone). */
START_TEST(test_writer_fsync)
{
	int fd;

	ck_assert(F.up);
	fd = open(mpath("w1"), O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0644);
	ck_assert_int_ge(fd, 0);
	th_mounts_drain();
	ck_assert_int_eq(write_pat(fd, MIB, 1, 0), MIB);
	outage();
	ck_assert_int_eq(write_pat(fd, MIB, 1, MIB), MIB);
	ck_assert_msg(fsync(fd) == 0, "fsync: %s", strerror(errno));
	assert_file("w1", NULL, 2 * MIB, 1); /* durable before close */
	ck_assert_msg(close(fd) == 0, "close: %s", strerror(errno));
	assert_file("w1", NULL, 2 * MIB, 1);
}
END_TEST

/* O_APPEND onto a file that already has bytes, across the outage. */
START_TEST(test_append_writer)
{
	int fd;

	ck_assert(F.up);
	ck_assert_int_eq(th_sh("printf head > '%s'", th_server_path(&F.ts, "app")), 0);
	fd = open(mpath("app"), O_WRONLY | O_APPEND | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write_pat(fd, MIB, 2, 0), MIB);
	outage();
	ck_assert_int_eq(write_pat(fd, MIB, 2, MIB), MIB);
	ck_assert_msg(close(fd) == 0, "close: %s", strerror(errno));
	assert_file("app", "head", 2 * MIB, 2);
}
END_TEST

/* A read-write handle: read, outage, overwrite the middle, read it back. */
START_TEST(test_rw_handle)
{
	uint8_t *buf = malloc(MIB), *want = malloc(MIB);
	int fd;

	ck_assert(F.up && buf && want);
	ck_assert_int_eq(th_write_pattern(th_server_path(&F.ts, "rw"), 4 * MIB, 5, 0644), 0);
	fd = open(mpath("rw"), O_RDWR | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, buf, MIB, 0), MIB);
	outage();
	fill(want, MIB, 3, 0);
	ck_assert_int_eq(pwrite(fd, want, MIB, MIB), MIB);
	ck_assert_int_eq(pread(fd, buf, MIB, MIB), MIB);
	ck_assert(memcmp(buf, want, MIB) == 0);
	ck_assert_msg(fsync(fd) == 0, "fsync: %s", strerror(errno));
	ck_assert_int_eq(close(fd), 0);
	fd = open(th_server_path(&F.ts, "rw"), O_RDONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, buf, MIB, MIB), MIB);
	close(fd);
	ck_assert(memcmp(buf, want, MIB) == 0);
	free(buf);
	free(want);
}
END_TEST

/* A reader, with a listing of its directory between the outage and the
 * next read (the listing brings the file's new server id first). */
START_TEST(test_reader_after_ls)
{
	char buf[64] = "";
	int fd;

	ck_assert(F.up);
	fd = open(mpath("dir/f"), O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, buf, 1, 0), 1);
	outage();
	ck_assert_int_eq(th_sh("ls -l '%s' > /dev/null", mpath("dir")), 0);
	memset(buf, 0, sizeof(buf));
	ck_assert_msg(pread(fd, buf, sizeof(buf) - 1, 0) == 4, "read: %s", strerror(errno));
	ck_assert_str_eq(buf, "one\n");
	ck_assert_int_eq(close(fd), 0);
	ck_assert_int_eq(th_sh("grep -q two '%s'", mpath("dir/g")), 0);
}
END_TEST

/* Deleted on the server while it was down: the next fsync says so. */
START_TEST(test_deleted_meanwhile)
{
	int fd, rs, rc;

	ck_assert(F.up);
	fd = open(mpath("gone"), O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0644);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write_pat(fd, MIB, 4, 0), MIB);
	ck_assert_int_eq(fsync(fd), 0);
	ck_assert_int_eq(unlink(th_server_path(&F.ts, "gone")), 0);
	outage();
	rs = (int)write_pat(fd, MIB, 4, MIB);
	rs = rs == MIB ? fsync(fd) : -1;
	rc = close(fd);
	ck_assert_msg(rs < 0 || rc < 0, "fsync and close of a file deleted on the server: 0");
	ck_assert_int_ne(access(th_server_path(&F.ts, "gone"), F_OK), 0);
}
END_TEST

/* Right after a restart, through what the kernel still holds (dentries
 * for entry_timeout, open descriptors), every call by an old server id
 * gets ESTALE and is re-resolved (fuse/kbfs_call.c). Calls on descriptors
 * the kernel does not retry itself: fsync of a directory, lseek and
 * fsetxattr on a read-only descriptor (no server handle: by node) failed
 * with ESTALE before. unlink, rmdir and link by path the kernel retries
 * with a fresh lookup (retry_estale); here they succeed at once. */
START_TEST(test_names_after_restart)
{
	char from[PATH_MAX + 64], to[PATH_MAX + 64];
	int dfd, fd, xfd;
	bool xattrs;
	struct stat st;

	ck_assert(F.up);
	ck_assert_int_eq(
		th_sh("cd '%s' && mkdir u r r/e l && touch u/a l/f && echo hello > x", F.ts.share),
		0);
	xattrs = setxattr(th_server_path(&F.ts, "l/f"), "user.kb", "1", 1, 0) == 0;
	ck_assert_int_eq(th_sh("cd '%s' && stat u/a r/e l/f x > /dev/null", F.m.mnt), 0);
	dfd = open(mpath("r"), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	fd = open(mpath("x"), O_RDONLY | O_CLOEXEC);
	xfd = open(mpath("l/f"), O_RDONLY | O_CLOEXEC);
	ck_assert(dfd >= 0 && fd >= 0 && xfd >= 0);
	restart_server();
	ck_assert_msg(fsync(dfd) == 0, "fsync of a directory: %s", strerror(errno));
	ck_assert_msg(lseek(fd, 0, SEEK_DATA) == 0, "lseek: %s", strerror(errno));
	if (xattrs)
		ck_assert_msg(fsetxattr(xfd, "user.kb", "2", 1, 0) == 0, "fsetxattr: %s",
			      strerror(errno));
	close(dfd);
	close(fd);
	close(xfd);
	ck_assert_msg(unlink(mpath("u/a")) == 0, "unlink: %s", strerror(errno));
	ck_assert_msg(rmdir(mpath("r/e")) == 0, "rmdir: %s", strerror(errno));
	snprintf(from, sizeof(from), "%s", mpath("l/f"));
	snprintf(to, sizeof(to), "%s", mpath("l/g"));
	ck_assert_msg(link(from, to) == 0, "link: %s", strerror(errno));
	ck_assert_msg(truncate(mpath("x"), 3) == 0, "truncate: %s", strerror(errno));
	ck_assert_int_ne(access(th_server_path(&F.ts, "u/a"), F_OK), 0);
	ck_assert_int_ne(access(th_server_path(&F.ts, "r/e"), F_OK), 0);
	ck_assert_int_eq(stat(th_server_path(&F.ts, "l/g"), &st), 0);
	ck_assert_uint_eq(st.st_nlink, 2);
	ck_assert_int_eq(stat(th_server_path(&F.ts, "x"), &st), 0);
	ck_assert_int_eq(st.st_size, 3);
}
END_TEST

struct streamer {
	atomic_bool stop;
	uint64_t written;
	int err;
};

#define STREAM_CHUNK (256u << 10)

static void *stream_main(void *arg)
{
	struct streamer *s = arg;
	uint8_t *buf = malloc(STREAM_CHUNK);
	int fd = open(mpath("stream"), O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0644);

	s->err = fd < 0 || !buf ? errno : 0;
	while (!s->err && !atomic_load(&s->stop)) {
		fill(buf, STREAM_CHUNK, 9, s->written);
		if (write(fd, buf, STREAM_CHUNK) != (ssize_t)STREAM_CHUNK)
			s->err = errno ? errno : EIO;
		else
			s->written += STREAM_CHUNK;
	}
	if (!s->err && fsync(fd) < 0)
		s->err = errno;
	if (fd >= 0 && close(fd) < 0 && !s->err)
		s->err = errno;
	free(buf);
	return NULL;
}

/* A writer streaming across many restarts ends byte-exact, no error. */
START_TEST(test_stream_restarts)
{
	const char *env = getenv("KB_RESTARTS");
	unsigned n = env ? (unsigned)atoi(env) : 20;
	struct streamer s = {0};
	struct stat st;
	pthread_t th;

	ck_assert(F.up);
	ck_assert_int_eq(pthread_create(&th, NULL, stream_main, &s), 0);
	for (unsigned i = 0; i < n; i++) {
		for (int w = 0; w < 500; w++) /* let it write on the new session */
			if (stat(th_server_path(&F.ts, "stream"), &st) == 0 &&
			    (uint64_t)st.st_size >= (i + 1) * (2ull * MIB))
				break;
			else
				usleep(2000);
		restart_server();
	}
	usleep(200000);
	atomic_store(&s.stop, true);
	pthread_join(th, NULL);
	ck_assert_msg(s.err == 0, "streaming writer: %s", strerror(s.err));
	assert_file("stream", NULL, s.written, 9);
}
END_TEST

Suite *suite_restart(void);
Suite *suite_restart(void)
{
	Suite *s = suite_create("restart");
	TCase *wb = tcase_create("writeback");
	TCase *nowb = tcase_create("no_writeback");
	TCase *exp = tcase_create("expire");
	TCase *names = tcase_create("names");
	TCase *stream = tcase_create("stream");

	tcase_add_unchecked_fixture(wb, setup_wb, stop);
	tcase_set_timeout(wb, 120);
	tcase_add_test(wb, test_writer_fsync);
	tcase_add_test(wb, test_append_writer);
	tcase_add_test(wb, test_rw_handle);
	tcase_add_test(wb, test_reader_after_ls);
	tcase_add_test(wb, test_deleted_meanwhile);
	suite_add_tcase(s, wb);
	tcase_add_unchecked_fixture(stream, setup_wb, stop); /* its own server */
	tcase_set_timeout(stream, 120);
	tcase_add_test(stream, test_stream_restarts);
	suite_add_tcase(s, stream);
	tcase_add_unchecked_fixture(nowb, setup_nowb, stop);
	tcase_set_timeout(nowb, 60);
	tcase_add_test(nowb, test_writer_fsync);
	tcase_add_test(nowb, test_append_writer);
	tcase_add_test(nowb, test_rw_handle);
	suite_add_tcase(s, nowb);
	tcase_add_unchecked_fixture(exp, setup_expire, stop);
	tcase_set_timeout(exp, 60);
	tcase_add_test(exp, test_writer_fsync);
	tcase_add_test(exp, test_reader_after_ls);
	tcase_add_test(exp, test_append_writer);
	suite_add_tcase(s, exp);
	tcase_add_unchecked_fixture(names, setup_names, stop);
	tcase_set_timeout(names, 60);
	tcase_add_test(names, test_names_after_restart);
	suite_add_tcase(s, names);
	return s;
}
