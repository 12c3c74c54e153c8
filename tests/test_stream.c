/* test_stream.c - the server's side of write-behind (PROTOCOL.md,
 * "Write-behind") through the protocol client library: the ordered
 * stream (Request.seq), ids the client chose (new_id), directory leases
 * (want_lease, NOTIFY_RECALL, LEASE_RETURN) and SYNCFS. Each test starts
 * its own keibifsd on a free port and stops it by PID.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rpc.h"
#include "stream.h"
#include "th.h"
#include "th_server.h"
#include "util.h"
#include "wire.h"

#define PROV (1ull << 63)

static struct th_server ts;
static struct kb_rpc *A, *B;
static kb_Entry root_a, root_b;

static void setup(void)
{
	ck_assert_int_eq(th_server_start(&ts, 0, NULL), 0);
	ck_assert_int_eq(th_server_connect(&ts, 2, &A, &root_a, NULL), 0);
	B = NULL;
}

static void teardown(void)
{
	kb_rpc_free(B);
	kb_rpc_free(A);
	th_server_cleanup(&ts);
}

struct done {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int n;
	int status[8];
};

static void on_done(void *arg, int status, struct kb_rpc_result *res)
{
	struct done *d = arg;

	(void)res;
	pthread_mutex_lock(&d->lock);
	d->status[d->n++ % 8] = status;
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
}

static void wait_done(struct done *d, int n)
{
	pthread_mutex_lock(&d->lock);
	while (d->n < n)
		pthread_cond_wait(&d->cond, &d->lock);
	pthread_mutex_unlock(&d->lock);
}

/* Sent in reverse order (on two connections): the server still runs the
 * mkdir of the parent (seq 1) before the mkdir inside it (seq 2), which
 * names the parent by the id the client chose. */
START_TEST(test_stream_order_and_ids)
{
	struct done d = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, {0}};
	kb_Request q2 = {
		.op = kb_Op_MKDIR, .node = PROV | 1, .mode = 0755, .seq = 2, .new_id = PROV | 2};
	kb_Request q1 = {
		.op = kb_Op_MKDIR, .node = root_a.node, .mode = 0755, .seq = 1, .new_id = PROV | 1};
	kb_Request g = {.op = kb_Op_GETATTR, .node = PROV | 2};
	struct stat st;

	strcpy(q1.name, "a");
	strcpy(q2.name, "b");
	ck_assert_int_eq(kb_rpc_submit(A, &q2, NULL, 0, 1, on_done, &d), 0);
	usleep(100 * 1000); /* seq 2 is there first */
	ck_assert_int_eq(kb_rpc_submit(A, &q1, NULL, 0, 0, on_done, &d), 0);
	wait_done(&d, 2);
	ck_assert_int_eq(d.status[0], 0);
	ck_assert_int_eq(d.status[1], 0);
	ck_assert_int_eq(stat(th_server_path(&ts, "a/b"), &st), 0);
	ck_assert_int_eq(th_call(A, &g, NULL, 0, NULL), 0);
}
END_TEST

/* A create under an id of ours gives a handle of that id; a write on it,
 * and a position sent twice runs once (the second copy gets its status). */
START_TEST(test_stream_create_write_dup)
{
	kb_Request c = {.op = kb_Op_CREATE,
			.node = root_a.node,
			.mode = 0444,
			.flags = O_WRONLY,
			.seq = 1,
			.new_id = PROV | 7};
	kb_Request w = {.op = kb_Op_WRITE, .node = PROV | 7, .fh = PROV | 7, .seq = 2};
	kb_Request again;
	struct kb_rpc_result *res;
	struct stat st;
	int fd;

	strcpy(c.name, "f");
	again = c;
	ck_assert_int_eq(th_call(A, &c, NULL, 0, NULL), 0);
	ck_assert_int_eq(th_call(A, &w, "hello", 5, NULL), 0);
	ck_assert_int_eq(stat(th_server_path(&ts, "f"), &st), 0);
	ck_assert_int_eq(st.st_size, 5);
	ck_assert_int_eq(st.st_mode & 07777, 0444);
	/* a new request id for position 1: it ran, its status again */
	ck_assert_int_eq(th_call(A, &again, NULL, 0, NULL), 0);
	/* the WRITE again (re-sent after a cut): not run twice, and its count
	 * again: a count of 0 would be a short write to the client */
	fd = open(th_server_path(&ts, "f"), O_WRONLY | O_APPEND);
	ck_assert_int_eq(write(fd, "!", 1), 1);
	close(fd);
	res = kb_rpc_result_new();
	ck_assert_int_eq(th_call(A, &w, "hello", 5, res), 0);
	ck_assert_uint_eq(res->resp.value, 5);
	kb_rpc_result_free(res);
	ck_assert_int_eq(stat(th_server_path(&ts, "f"), &st), 0);
	ck_assert_int_eq(st.st_size, 6);
	/* an id without the client bit is refused */
	c.new_id = 5;
	c.seq = 3;
	strcpy(c.name, "g");
	ck_assert_int_eq(th_call(A, &c, NULL, 0, NULL), -EINVAL);
	/* the name existing: EEXIST, as O_EXCL */
	c.new_id = PROV | 8;
	c.seq = 4;
	strcpy(c.name, "f");
	ck_assert_int_eq(th_call(A, &c, NULL, 0, NULL), -EEXIST);
}
END_TEST

/* Append request q (with its bulk) to a COMPOUND's bulk at buf+*len. */
static void part_put(uint8_t *buf, size_t *len, const kb_Request *q, const char *bulk)
{
	size_t hl, bl = bulk ? strlen(bulk) : 0;

	ck_assert_int_eq(kb_wire_encode_req(buf + *len + 4, 4096, q, &hl), 0);
	memcpy(buf + *len + 4 + hl, bulk ? bulk : "", bl);
	kb_put_be32(buf + *len, (uint32_t)(hl + bl));
	*len += 4 + hl + bl;
}

/* The replies in a COMPOUND's reply: their errors and values. */
static int parts_of(const struct kb_rpc_result *res, kb_Err *err, uint64_t *value, uint64_t *id)
{
	const uint8_t *p = res->bulk, *pt, *bulk;
	size_t left = res->bulk_len, len, blen;
	kb_Response *r = calloc(1, sizeof(*r));
	int n = 0, more;

	while ((more = kb_wire_part_next(&p, &left, &pt, &len)) > 0 && n < 8 &&
	       kb_wire_decode_resp(pt, len, r, &bulk, &blen) == 0) {
		err[n] = r->err;
		value[n] = r->value;
		id[n++] = r->id;
	}
	free(r);
	return more ? -1 : n;
}

#define PART (1ull << 63)

/* Four stream requests in one COMPOUND: run in order, each answered in
 * the reply's bulk under its own id (an error stays that part's); the
 * same COMPOUND again (re-sent after a cut) runs none of them twice and
 * gets the same answers; one with a part that may not be there (a READ)
 * is refused whole, before any runs. */
START_TEST(test_stream_compound)
{
	kb_Request cq = {.op = kb_Op_COMPOUND},
		   q[4] = {{.op = kb_Op_MKDIR,
			    .node = root_a.node,
			    .mode = 0755,
			    .new_id = PROV | 20},
			   {.op = kb_Op_CREATE,
			    .node = PROV | 20,
			    .mode = 0644,
			    .flags = O_WRONLY,
			    .new_id = PROV | 21},
			   {.op = kb_Op_WRITE, .node = PROV | 21, .fh = PROV | 21},
			   {.op = kb_Op_UNLINK, .node = PROV | 20}};
	kb_Request rd = {.op = kb_Op_READ,
			 .node = PROV | 21,
			 .fh = PROV | 21,
			 .length = 3,
			 .seq = 5,
			 .id = PART | 5};
	kb_Request mk = {.op = kb_Op_MKDIR,
			 .node = root_a.node,
			 .mode = 0755,
			 .seq = 6,
			 .id = PART | 6,
			 .new_id = PROV | 22};
	struct kb_rpc_result *res = kb_rpc_result_new();
	static uint8_t buf[32768];
	kb_Err err[8];
	uint64_t value[8], id[8];
	size_t len = 0;
	struct stat sb;

	strcpy(q[0].name, "c");
	strcpy(q[1].name, "f");
	strcpy(q[3].name, "nope");
	strcpy(mk.name, "x");
	for (int i = 0; i < 4; i++) {
		q[i].seq = (uint64_t)i + 1;
		q[i].id = PART | (uint64_t)(i + 1);
		part_put(buf, &len, &q[i], i == 2 ? "abc" : NULL);
	}
	for (int round = 0; round < 2; round++) {
		ck_assert_int_eq(th_call(A, &cq, buf, len, res), 0);
		ck_assert_uint_eq(res->resp.value, 4);
		ck_assert_int_eq(parts_of(res, err, value, id), 4);
		for (int i = 0; i < 4; i++)
			ck_assert_uint_eq(id[i], PART | (uint64_t)(i + 1));
		ck_assert_int_eq(err[0], kb_Err_OK);
		ck_assert_int_eq(err[1], kb_Err_OK);
		ck_assert_int_eq(err[2], kb_Err_OK);
		ck_assert_uint_eq(value[2], 3); /* the WRITE's count, the second time too */
		ck_assert_int_eq(err[3], kb_Err_E_NOENT);
		/* the share changed meanwhile: the copy must not write again */
		ck_assert_int_eq(truncate(th_server_path(&ts, "c/f"), 1), 0);
	}
	ck_assert_int_eq(stat(th_server_path(&ts, "c/f"), &sb), 0);
	ck_assert_int_eq(sb.st_size, 1);
	/* a READ among the parts: refused whole, the MKDIR before it not run */
	len = 0;
	part_put(buf, &len, &mk, NULL);
	part_put(buf, &len, &rd, NULL);
	ck_assert_int_eq(th_call(A, &cq, buf, len, res), -EINVAL);
	ck_assert_int_eq(stat(th_server_path(&ts, "x"), &sb), -1);
	kb_rpc_result_free(res);
}
END_TEST

struct recall {
	atomic_uint n;
	atomic_ullong node;
	bool answer;
	struct done d;
};

static void on_notify(void *arg, const kb_Response *n)
{
	struct recall *rc = arg;
	kb_Request q = {.op = kb_Op_LEASE_RETURN};

	if (!(n->notify_flags & kb_NotifyFlags_NOTIFY_RECALL))
		return;
	atomic_fetch_add(&rc->n, 1);
	atomic_store(&rc->node, n->notify_node);
	if (!rc->answer)
		return;
	q.node = n->notify_node;
	q.seq = 2; /* after the stream's first */
	kb_rpc_submit(A, &q, NULL, 0, -1, on_done, &rc->d);
}

static int list_lease(struct kb_rpc *r, uint64_t node, bool *leased)
{
	kb_Request q = {
		.op = kb_Op_READDIR, .node = node, .plus = true, .want_lease = true, .count = 64};
	struct kb_rpc_result *res = kb_rpc_result_new();
	int ret = th_call(r, &q, NULL, 0, res);

	*leased = ret == 0 && res->resp.dir_lease;
	kb_rpc_result_free(res);
	return ret;
}

/* A lists d asking for its lease and gets it; B looking d up makes the
 * server recall it; A gives it back in its stream; only then is B
 * answered, and A's queued mkdir is there for B to see. */
START_TEST(test_dir_lease_recall)
{
	static struct recall rc = {
		.answer = true, .d = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, {0}}};
	kb_Request m = {.op = kb_Op_MKDIR, .mode = 0755, .seq = 1, .new_id = PROV | 3};
	uint64_t d = 0, x = 0;
	bool leased = false;

	ck_assert_int_eq(mkdir(th_server_path(&ts, "d"), 0755), 0);
	kb_rpc_set_notify(A, on_notify, &rc);
	ck_assert_int_eq(th_lookup(A, root_a.node, "d", &d), 0);
	ck_assert_int_eq(list_lease(A, d, &leased), 0);
	ck_assert(leased);
	/* a second time: still ours */
	ck_assert_int_eq(list_lease(A, d, &leased), 0);
	ck_assert(leased);
	m.node = d;
	strcpy(m.name, "new");
	ck_assert_int_eq(th_call(A, &m, NULL, 0, NULL), 0);
	ck_assert_int_eq(th_server_connect(&ts, 1, &B, &root_b, NULL), 0);
	ck_assert_int_eq(th_lookup(B, root_b.node, "d", &d), 0);
	ck_assert_uint_eq(atomic_load(&rc.n), 1);
	wait_done(&rc.d, 1);
	ck_assert_int_eq(rc.d.status[0], 0);
	ck_assert_int_eq(th_lookup(B, d, "new", &x), 0);
	/* two users now: no lease for either */
	ck_assert_int_eq(list_lease(B, d, &leased), 0);
	ck_assert(!leased);
}
END_TEST

/* A holder that never gives the lease back loses it and its session
 * (bounded wait for B); B is answered. */
START_TEST(test_dir_lease_revoked)
{
	static struct recall rc = {.answer = false};
	uint64_t d = 0, gen0 = kb_rpc_gen(A);
	bool leased = false;
	uint64_t t0;

	ck_assert_int_eq(mkdir(th_server_path(&ts, "d"), 0755), 0);
	kb_rpc_set_notify(A, on_notify, &rc);
	ck_assert_int_eq(th_lookup(A, root_a.node, "d", &d), 0);
	ck_assert_int_eq(list_lease(A, d, &leased), 0);
	ck_assert(leased);
	ck_assert_int_eq(th_server_connect(&ts, 1, &B, &root_b, NULL), 0);
	t0 = kb_now_ns();
	ck_assert_int_eq(th_lookup(B, root_b.node, "d", NULL), 0);
	ck_assert_uint_ge(atomic_load(&rc.n), 1);
	ck_assert_uint_ge((kb_now_ns() - t0) / 1000000u, 4000); /* it waited for A */
	/* A's session is gone: its client starts a new one */
	for (int i = 0; i < 100 && kb_rpc_gen(A) == gen0; i++) {
		kb_rpc_ping(A, NULL);
		usleep(50 * 1000);
	}
	ck_assert_uint_gt(kb_rpc_gen(A), gen0);
}
END_TEST

/* A directory made in the stream is leased to its maker. */
START_TEST(test_mkdir_lease_syncfs)
{
	kb_Request m = {.op = kb_Op_MKDIR,
			.node = root_a.node,
			.mode = 0755,
			.seq = 1,
			.new_id = PROV | 9,
			.want_lease = true};
	kb_Request s = {.op = kb_Op_SYNCFS};
	struct kb_rpc_result *res = kb_rpc_result_new();

	strcpy(m.name, "m");
	ck_assert_int_eq(th_call(A, &m, NULL, 0, res), 0);
	ck_assert(res->resp.dir_lease);
	ck_assert_uint_eq(res->resp.entry.node, PROV | 9);
	kb_rpc_result_free(res);
	s.node = root_a.node;
	ck_assert_int_eq(th_call(A, &s, NULL, 0, NULL), 0);
	ck_assert(kb_rpc_features(A) & kb_Features_FEATURE_WRITE_BEHIND);
}
END_TEST

/* The client's stream: 300 files made, written and renamed in a directory
 * made in the same stream, all pipelined; the drain returns when the
 * server has them, and reports the one that failed, once. */
START_TEST(test_stream_client_pipeline)
{
	struct kb_stream *st = NULL;
	kb_Request m = {.op = kb_Op_MKDIR, .node = root_a.node, .mode = 0755, .new_id = PROV | 1};
	static char data[300][16];
	char path[64];
	struct stat sb;

	ck_assert_int_eq(kb_stream_new(&st, A, 64, 1 << 20, 15000), 0);
	strcpy(m.name, "p");
	ck_assert_int_eq(kb_stream_submit(st, &m, NULL, 0, NULL, NULL), 0);
	for (int i = 0; i < 300; i++) {
		uint64_t id = PROV | (uint64_t)(100 + i);
		kb_Request c = {.op = kb_Op_CREATE,
				.node = PROV | 1,
				.mode = 0644,
				.flags = O_WRONLY,
				.new_id = id};
		kb_Request w = {.op = kb_Op_WRITE, .node = id, .fh = id};
		kb_Request rl = {.op = kb_Op_RELEASE, .node = id, .fh = id};
		kb_Request rn = {.op = kb_Op_RENAME, .node = PROV | 1, .node2 = PROV | 1};

		snprintf(c.name, sizeof(c.name), ".t%d", i);
		snprintf(data[i], sizeof(data[i]), "file %d\n", i);
		ck_assert_int_eq(kb_stream_submit(st, &c, NULL, 0, NULL, NULL), 0);
		ck_assert_int_eq(kb_stream_submit(st, &w, data[i], strlen(data[i]), NULL, NULL), 0);
		ck_assert_int_eq(kb_stream_submit(st, &rl, NULL, 0, NULL, NULL), 0);
		snprintf(rn.name, sizeof(rn.name), ".t%d", i);
		snprintf(rn.name2, sizeof(rn.name2), "f%d", i);
		ck_assert_int_eq(kb_stream_submit(st, &rn, NULL, 0, NULL, NULL), 0);
	}
	ck_assert_int_eq(kb_stream_drain(st, 15000), 0);
	ck_assert_uint_eq(kb_stream_pending(st), 0);
	for (int i = 0; i < 300; i++) {
		snprintf(path, sizeof(path), "p/f%d", i);
		ck_assert_int_eq(stat(th_server_path(&ts, path), &sb), 0);
		ck_assert_int_eq(sb.st_size, (off_t)strlen(data[i]));
	}
	/* one that fails: the drain says so, once */
	m.new_id = PROV | 2;
	ck_assert_int_eq(kb_stream_submit(st, &m, NULL, 0, NULL, NULL), 0);
	ck_assert_int_eq(kb_stream_drain(st, 15000), -EEXIST);
	ck_assert_int_eq(kb_stream_drain(st, 15000), 0);
	kb_stream_free(st);
}
END_TEST

/* The client's stream through a 20 ms round trip: what queues up while
 * connection 0's window is full goes out as COMPOUNDs (fewer frames than
 * requests); every request still runs, in order, and the one that fails
 * is reported by the drain. */
START_TEST(test_stream_client_compounds)
{
	const char *const extra[] = {"--delay-ms", "10", NULL};
	struct th_server via;
	struct kb_stream *st = NULL;
	struct kb_stream_stats ss;
	static char data[400][16];
	char err[256], path[64], plog[PATH_MAX];
	struct stat sb;
	pid_t proxy = 0;

	ck_assert_int_eq(th_proxy_start(&ts, extra, &via, &proxy, plog), 0);
	ck_assert_int_eq(th_server_connect_via(&ts, via.port_str, ts.client_priv, 1, 15000, &B,
					       &root_b, NULL, err, sizeof(err)),
			 0);
	ck_assert(kb_rpc_features(B) & kb_Features_FEATURE_COMPOUND);
	ck_assert_int_eq(kb_stream_new(&st, B, 1024, 8 << 20, 15000), 0);
	for (int i = 0; i < 400; i++) {
		uint64_t id = PROV | (uint64_t)(500 + i);
		kb_Request c = {.op = kb_Op_CREATE,
				.node = root_b.node,
				.mode = 0644,
				.flags = O_WRONLY,
				.new_id = id};
		kb_Request w = {.op = kb_Op_WRITE, .node = id, .fh = id};
		kb_Request rl = {.op = kb_Op_RELEASE, .node = id, .fh = id};

		snprintf(c.name, sizeof(c.name), "c%d", i);
		snprintf(data[i], sizeof(data[i]), "compound %d\n", i);
		ck_assert_int_eq(kb_stream_submit(st, &c, NULL, 0, NULL, NULL), 0);
		ck_assert_int_eq(kb_stream_submit(st, &w, data[i], strlen(data[i]), NULL, NULL), 0);
		ck_assert_int_eq(kb_stream_submit(st, &rl, NULL, 0, NULL, NULL), 0);
	}
	{ /* the name exists: fails, in its place */
		kb_Request c = {.op = kb_Op_CREATE,
				.node = root_b.node,
				.mode = 0644,
				.flags = O_WRONLY,
				.new_id = PROV | 499};

		strcpy(c.name, "c7");
		ck_assert_int_eq(kb_stream_submit(st, &c, NULL, 0, NULL, NULL), 0);
	}
	ck_assert_int_eq(kb_stream_drain(st, 15000), -EEXIST);
	kb_stream_stats(st, &ss);
	ck_assert_uint_eq(ss.sent, 1201);
	ck_assert_uint_gt(ss.compounds, 0);
	ck_assert_uint_lt(ss.frames, ss.sent);
	ck_assert_uint_eq(ss.failed, 1);
	for (int i = 0; i < 400; i++) {
		snprintf(path, sizeof(path), "c%d", i);
		ck_assert_int_eq(stat(th_server_path(&ts, path), &sb), 0);
		ck_assert_int_eq(sb.st_size, (off_t)strlen(data[i]));
	}
	kb_stream_free(st);
	th_stop(proxy, 2000);
}
END_TEST

Suite *suite_stream(void);
Suite *suite_stream(void)
{
	Suite *s = suite_create("stream");
	TCase *tc = tcase_create("server");

	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_stream_order_and_ids);
	tcase_add_test(tc, test_stream_create_write_dup);
	tcase_add_test(tc, test_stream_compound);
	tcase_add_test(tc, test_dir_lease_recall);
	tcase_add_test(tc, test_dir_lease_revoked);
	tcase_add_test(tc, test_mkdir_lease_syncfs);
	tcase_add_test(tc, test_stream_client_pipeline);
	tcase_add_test(tc, test_stream_client_compounds);
	suite_add_tcase(s, tc);
	return s;
}
