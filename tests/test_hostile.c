/* test_hostile.c - keibifsd's limits against peers that hold resources
 * (keibifsd(8), LIMITS), each against a real server:
 *   - 256 silent TCP connections do not lock a real client out;
 *   - a client that stops reading while pushes are made for it, plus a
 *     session expiring, do not freeze accept;
 *   - a connection that sends no HELLO, stalls mid-frame, or idles is cut;
 *     a key gets at most --max-conns-per-key connections;
 *   - a client not reading its replies is cut when queued bytes are over
 *     budget;
 *   - one session opening nodes until refused (EMFILE) leaves fds for
 *     another key's HELLO.
 * Each asserts the log line of the limit that bit.
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "chan.h"
#include "err.h"
#include "keys.h"
#include "noise.h"
#include "raw_chan.h"
#include "rpc.h"
#include "th.h"
#include "th_server.h"
#include "wire.h"

static struct th_server ts;
static uint8_t other_priv[32]; /* a second authorized key (start_srv) */

static void teardown(void)
{
	if (ts.pid > 0) {
		int st = th_server_stop(&ts);

		ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "keibifsd exit status %d", st);
	}
	th_server_cleanup(&ts);
}

/* Start keibifsd with a second authorized key and extra arguments. */
static void start_srv(unsigned flags, const char *const *extra)
{
	struct kb_noise_rng *rng = NULL;
	char key[PATH_MAX + 16], err[256];
	uint8_t pub[32];
	FILE *f;

	ck_assert_int_eq(th_server_prepare(&ts, flags), 0);
	ck_assert_int_eq(kb_noise_rng_new(&rng), 0);
	snprintf(key, sizeof(key), "%s/other.key", ts.dir);
	ck_assert_int_eq(kb_key_generate(key, false, rng, pub, err, sizeof(err)), 0);
	kb_noise_rng_free(rng);
	ck_assert_int_eq(kb_key_load_private(key, other_priv, pub, err, sizeof(err)), 0);
	ck_assert_int_eq(th_sh("cat '%s.pub' >> '%s'", key, ts.authorized), 0);
	ck_assert_msg(th_server_spawn(&ts, flags, extra) == 0, "not ready");
	f = fopen(ts.log, "r");
	ck_assert_ptr_nonnull(f);
	fclose(f);
}

/* The server logged needle within ms (else its log goes to stderr). */
static bool logged(const char *needle, int ms)
{
	char line[1024];
	FILE *f;

	if (th_wait_file_contains(ts.log, needle, ms))
		return true;
	fprintf(stderr, "no '%s' in the server log %s:\n", needle, ts.log);
	f = fopen(ts.log, "r");
	while (f && fgets(line, sizeof(line), f))
		if (!strstr(line, "connect"))
			fputs(line, stderr);
	if (f)
		fclose(f);
	return false;
}

static int tcp(const char *src)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)ts.port)};
	struct timeval tv = {.tv_sec = 20};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(fd, 0);
	if (src) {
		struct sockaddr_in b = {.sin_family = AF_INET};

		inet_pton(AF_INET, src, &b.sin_addr);
		ck_assert_int_eq(bind(fd, (struct sockaddr *)&b, sizeof(b)), 0);
	}
	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&a, sizeof(a))) {
		close(fd);
		return -1;
	}
	return fd;
}

/* An encrypted channel (no HELLO yet); rcvbuf > 0 shrinks the socket's
 * receive buffer first (a peer that reads nothing fills up sooner). */
static int raw_conn(const uint8_t *priv, int rcvbuf, struct kb_chan **out)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)ts.port)};
	struct timeval tv = {.tv_sec = 20};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), ret;

	if (fd < 0)
		return -errno;
	if (rcvbuf > 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a))) {
		ret = -errno;
		close(fd);
		return ret;
	}
	return kb_rawchan_handshake(fd, priv ? priv : ts.client_priv, 10000, out, NULL);
}

static int raw_call(struct kb_chan *c, const kb_Request *q, kb_Response *resp)
{
	uint8_t f[8192];
	size_t len = 0;
	int ret = kb_wire_encode_req(f, sizeof(f), q, &len);

	return ret ? ret : th_raw_call(c, f, len, resp);
}

/* HELLO on a raw channel: the root node, or a negative value. */
static int64_t raw_hello(struct kb_chan *c)
{
	kb_Request q = {.id = 1, .op = kb_Op_HELLO, .version = 1};
	static __thread kb_Response resp;
	int ret;

	snprintf(q.path, sizeof(q.path), "/");
	ret = raw_call(c, &q, &resp);
	if (ret)
		return ret;
	return resp.err ? -1 : (int64_t)resp.entry.node;
}

/* The server closed c: a receive ends with an error (not a timeout). */
static bool closed_by_server(struct kb_chan *c)
{
	uint8_t buf[65536 + KB_FRAME_TAG];
	size_t plen;
	int ret;

	while (!(ret = kb_chan_recv(c, buf, sizeof(buf), &plen)))
		;
	return ret != -KB_ETIMEOUT;
}

/* A real client: a session, a PING, a LOOKUP of the root's "." (GETATTR). */
static void client_works(const uint8_t *priv)
{
	struct kb_rpc *r = NULL;
	char err[256] = "";

	ck_assert_msg(th_server_connect_as(&ts, priv ? priv : ts.client_priv, 1, &r, NULL, err,
					   sizeof(err)) == 0,
		      "client could not connect: %s", err);
	ck_assert_int_eq(kb_rpc_ping(r, NULL), 0);
	kb_rpc_free(r);
}

/* 1. Pre-auth lockout: silent connections, from the client's own address
 * and from others, take handshake slots, never the authenticated ones. */
START_TEST(test_silent_connections)
{
	static int fds[256];
	char src[32];

	start_srv(0, NULL);
	for (int i = 0; i < 256; i++) {
		snprintf(src, sizeof(src), "127.0.%d.%d", 1 + i % 2, 2 + i % 64);
		fds[i] = tcp(i % 4 ? src : NULL);
	}
	usleep(300000);
	client_works(NULL);
	client_works(other_priv);
	ck_assert(logged("handshake limit", 1000));
	for (int i = 0; i < 256; i++)
		if (fds[i] >= 0)
			close(fds[i]);
}
END_TEST

/* A handshake that never finishes is cut at --handshake-timeout. */
START_TEST(test_handshake_deadline)
{
	static const char *const extra[] = {"--handshake-timeout", "1", NULL};
	char b;
	int fd;

	start_srv(0, extra);
	fd = tcp(NULL);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(read(fd, &b, 1), 0); /* EOF from the server, not our 20 s */
	close(fd);
	ck_assert(logged("handshake deadline", 1000));
}
END_TEST

/* A raw connection with a small receive buffer that asks for 32 MiB of
 * the share's "big" (16 MiB, written here) in 8 READs and reads none of
 * the replies. */
static struct kb_chan *not_reading(void)
{
	struct kb_chan *slow = NULL;
	kb_Request q = {.id = 2, .op = kb_Op_LOOKUP};
	static kb_Response resp;
	int64_t root;

	ck_assert_int_eq(th_write_pattern(th_server_path(&ts, "big"), 16u << 20, 1, 0644), 0);
	ck_assert_int_eq(raw_conn(NULL, 4096, &slow), 0);
	root = raw_hello(slow);
	ck_assert_int_gt(root, 0);
	q.node = (uint64_t)root;
	snprintf(q.name, sizeof(q.name), "big");
	ck_assert_int_eq(raw_call(slow, &q, &resp), 0);
	ck_assert_int_eq(resp.err, kb_Err_OK);
	for (int i = 0; i < 8; i++) {
		kb_Request rd = {.id = 10 + (uint64_t)i,
				 .op = kb_Op_READ,
				 .node = resp.entry.node,
				 .offset = (uint64_t)(i % 4) << 22,
				 .length = 4u << 20};

		ck_assert_int_eq(kb_rawchan_send_req(slow, &rd), 0);
	}
	return slow;
}

/* 2. A client (an ro key) that stops reading while its replies and pushes
 * pile up, and another session expiring: accept must not freeze. */
START_TEST(test_not_reading_and_expiry)
{
	static const char *const extra[] = {"--session-grace", "1", NULL};
	struct kb_chan *slow, *gone = NULL;

	start_srv(TH_SRV_RO_KEY, extra);
	/* 32 MiB of replies nobody reads */
	slow = not_reading();
	usleep(300000);                 /* the workers are now blocked sending */
	for (int i = 0; i < 200; i++) { /* pushes for the slow session */
		char name[32];

		snprintf(name, sizeof(name), "f%d", i);
		ck_assert_int_eq(th_write_pattern(th_server_path(&ts, name), 1, 1, 0644), 0);
		if (i % 50 == 0)
			usleep(100000); /* one burst each */
	}
	/* another session, left without BYE: it expires after 1 s */
	ck_assert_int_eq(raw_conn(other_priv, 0, &gone), 0);
	ck_assert_int_gt(raw_hello(gone), 0);
	kb_chan_free(gone);
	ck_assert(logged("session expired", 5000));
	client_works(other_priv);
	client_works(other_priv);
	kb_chan_free(slow);
}
END_TEST

/* 3. After the handshake: no HELLO, a frame begun and never finished, an
 * idle connection: each is cut, with its line. */
START_TEST(test_after_auth_deadlines)
{
	static const char *const extra[] = {
		"--hello-timeout", "1", "--frame-timeout", "1", "--idle-timeout", "2", NULL};
	struct kb_chan *c = NULL;

	start_srv(0, extra);
	ck_assert_int_eq(raw_conn(NULL, 0, &c), 0); /* no HELLO */
	ck_assert(closed_by_server(c));
	kb_chan_free(c);
	ck_assert(logged("no HELLO", 1000));

	ck_assert_int_eq(raw_conn(NULL, 0, &c), 0); /* half a frame */
	ck_assert_int_gt(raw_hello(c), 0);
	ck_assert_int_eq(write(kb_chan_fd(c), "\0\0", 2), 2);
	ck_assert(closed_by_server(c));
	kb_chan_free(c);
	ck_assert(logged("frame not received in time", 1000));

	ck_assert_int_eq(raw_conn(NULL, 0, &c), 0); /* nothing at all */
	ck_assert_int_gt(raw_hello(c), 0);
	ck_assert(closed_by_server(c));
	kb_chan_free(c);
	ck_assert(logged("idle (--idle-timeout)", 1000));
	client_works(NULL);
}
END_TEST

/* Per-key connections: the third of a key is refused, others' are not. */
START_TEST(test_conns_per_key)
{
	static const char *const extra[] = {"--max-conns-per-key", "2", NULL};
	struct kb_chan *c[3] = {NULL, NULL, NULL};

	start_srv(0, extra);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(raw_conn(NULL, 0, &c[i]), 0);
	ck_assert_int_gt(raw_hello(c[0]), 0);
	ck_assert_int_gt(raw_hello(c[1]), 0);
	ck_assert_int_lt(raw_hello(c[2]), 0);
	ck_assert(logged("connections of this key (--max-conns-per-key)", 1000));
	client_works(other_priv);
	for (int i = 0; i < 3; i++)
		kb_chan_free(c[i]);
	client_works(NULL);
}
END_TEST

/* Queued bytes: a client not reading 4 MiB replies holds them; over the
 * budget it is cut (well before --frame-timeout), others carry on. */
START_TEST(test_queued_budget)
{
	static const char *const extra[] = {"--max-queued-mib", "4", NULL};
	struct kb_chan *slow;

	start_srv(0, extra);
	slow = not_reading();
	ck_assert(logged("queued bytes over budget", 15000));
	client_works(other_priv);
	kb_chan_free(slow);
}
END_TEST

/* keibifsd under RLIMIT_NOFILE 4096 (made small for the server, which
 * inherits it; these tests run in their own process), the files n1..n<n>
 * in its share, and a session *r: the root node. */
static uint64_t start_small_fds(int n, struct kb_rpc **r)
{
	struct rlimit rl = {.rlim_cur = 4096, .rlim_max = 4096};
	kb_Entry root;
	bool ro;

	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
	start_srv(0, NULL);
	ck_assert_int_eq(th_sh("cd '%s' && seq 1 %d | sed 's/^/n/' | xargs touch", ts.share, n), 0);
	ck_assert_int_eq(th_server_connect(&ts, 1, r, &root, &ro), 0);
	return root.node;
}

/* LOOKUP of n<i> in the root. */
static int lookup_n(struct kb_rpc *r, uint64_t root, int i)
{
	char name[32];
	kb_Entry e;

	snprintf(name, sizeof(name), "n%d", i);
	return kb_rpc_lookup(r, root, name, &e);
}

/* 4. fds: one session looks up nodes until refused (EMFILE, its budget);
 * another key still says HELLO and works. */
#define NFILES 4500
START_TEST(test_fd_budget)
{
	struct kb_rpc *r = NULL;
	uint64_t root = start_small_fds(NFILES, &r);
	int ret = 0, n;

	for (n = 1; n <= NFILES; n++) {
		ret = lookup_n(r, root, n);
		if (ret)
			break;
	}
	ck_assert_int_eq(ret, -EMFILE);
	ck_assert_int_lt(n, NFILES);
	client_works(other_priv);
	ck_assert(logged("fd limit", 1000));
	kb_rpc_free(r);
}
END_TEST

/* The budget must not cut one honest client listing a big directory at
 * half of what the server has: with RLIMIT_NOFILE 4096 (a budget of 3,072),
 * one session holds 2,000 nodes (`ls -l` of 10,000 files failed with
 * EMFILE on a 20,000 limit when one key could take only half). */
#define NBIG 2000
START_TEST(test_fd_budget_big_dir)
{
	struct kb_rpc *r = NULL;
	uint64_t root = start_small_fds(NBIG, &r);

	for (int n = 1; n <= NBIG; n++)
		ck_assert_int_eq(lookup_n(r, root, n), 0);
	client_works(other_priv);
	kb_rpc_free(r);
}
END_TEST

Suite *suite_hostile(void);
Suite *suite_hostile(void)
{
	Suite *s = suite_create("hostile");
	TCase *t = tcase_create("limits");

	tcase_add_checked_fixture(t, NULL, teardown);
	tcase_set_timeout(t, 60);
	tcase_add_test(t, test_silent_connections);
	tcase_add_test(t, test_handshake_deadline);
	tcase_add_test(t, test_not_reading_and_expiry);
	tcase_add_test(t, test_after_auth_deadlines);
	tcase_add_test(t, test_conns_per_key);
	tcase_add_test(t, test_queued_budget);
	tcase_add_test(t, test_fd_budget);
	tcase_add_test(t, test_fd_budget_big_dir);
	suite_add_tcase(s, t);
	return s;
}
