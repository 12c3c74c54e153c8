/* test_rpc.c - the protocol client library.
 *
 * "fake": an in-process fake server over socketpair channels
 * (kb_rpc_new_raw): out-of-order replies, pipelining, timeouts, dead
 * connections, pushes, pool reuse - deterministic and fast.
 * "server": against a real build/keibifsd (th_server.h).
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chan.h"
#include "err.h"
#include "keys.h"
#include "noise.h"
#include "rpc_int.h"
#include "th.h"
#include "th_server.h"
#include "util.h"
#include "wire.h"

/* ---- fake server ------------------------------------------------------ */

#define FAKE_BATCH 16
#define FAKE_SILENT_NODE 0xdeadu /* GETATTR of this node is never answered */
#define FAKE_MAX_FRAME ((1u << 20) + 4096u)

struct fake_conn {
	struct kb_chan *chan; /* owned: server side */
	pthread_t th;
	kb_Request *batch; /* owned: FAKE_BATCH requests */
	const uint8_t *bulk[FAKE_BATCH];
	size_t bulk_len[FAKE_BATCH];
	uint8_t *in;       /* owned: receive buffer */
	uint8_t *out;      /* owned: reply header + bulk */
	kb_Response *resp; /* owned */
};

struct fake {
	unsigned n;
	struct fake_conn conns[8];
	struct kb_rpc *r;
};

static uint8_t pattern_byte(uint64_t node, uint64_t pos)
{
	uint64_t x = (pos + 1) * 0x9e3779b97f4a7c15ull ^ node;

	return (uint8_t)(x >> 29);
}

static int fake_send(struct fake_conn *f, size_t bulk)
{
	size_t hlen;
	uint8_t *data = f->out + 16384;
	struct iovec iov[2];

	ck_assert_int_eq(kb_wire_encode_resp(f->out, 16384, f->resp, &hlen), 0);
	iov[0] = (struct iovec){f->out, hlen};
	iov[1] = (struct iovec){data, bulk};
	return kb_chan_sendv(f->chan, iov, bulk ? 2 : 1);
}

/* 0: answered (or deliberately not); <0: stop serving. */
static int fake_handle(struct fake_conn *f, const kb_Request *q, const uint8_t *bulk, size_t blen)
{
	kb_Response *p = f->resp;
	size_t out_bulk = 0;

	memset(p, 0, sizeof(*p));
	p->id = q->id;
	switch (q->op) {
	case kb_Op_PING: break;
	case kb_Op_LOOKUP:
		if (!strcmp(q->name, "die")) {
			kb_chan_shutdown(f->chan);
			return -1;
		}
		if (!strcmp(q->name, "missing")) {
			p->err = kb_Err_E_NOENT;
			break;
		}
		p->has_entry = true;
		p->entry.node = strlen(q->name) + 1000 * q->node;
		p->entry.has_attr = true;
		p->entry.attr.ino = p->entry.node + 1;
		break;
	case kb_Op_GETATTR:
		if (q->node == FAKE_SILENT_NODE)
			return 0;
		p->has_attr = true;
		p->attr.ino = q->node;
		p->attr.size = q->node * 10;
		break;
	case kb_Op_STATFS: {
		kb_Response *n = p;

		n->id = 0;
		n->notify_node = 42;
		snprintf(n->notify_name, sizeof(n->notify_name), "changed");
		if (fake_send(f, 0))
			return -1;
		memset(p, 0, sizeof(*p));
		p->id = q->id;
		p->has_st = true;
		p->st.bsize = 4096;
		break;
	}
	case kb_Op_READ:
		out_bulk = (size_t)q->length;
		for (size_t i = 0; i < out_bulk; i++)
			f->out[16384 + i] = pattern_byte(q->node, q->offset + i);
		break;
	case kb_Op_WRITE: {
		uint64_t sum = 0;

		for (size_t i = 0; i < blen; i++)
			sum += bulk[i];
		p->value = sum << 32 | blen;
		break;
	}
	default: p->err = kb_Err_E_NOSYS;
	}
	return fake_send(f, out_bulk) ? -1 : 0;
}

static bool more_ready(struct fake_conn *f)
{
	struct pollfd pfd = {.fd = kb_chan_fd(f->chan), .events = POLLIN};

	return poll(&pfd, 1, 2) == 1;
}

/* Reads up to FAKE_BATCH pipelined requests, answers them in reverse. */
static void *fake_main(void *arg)
{
	struct fake_conn *f = arg;
	size_t cap = 4u << 20;

	f->in = malloc(cap);
	for (;;) {
		unsigned n = 0;
		size_t off = 0;

		do {
			size_t plen;

			if (kb_chan_recv(f->chan, f->in + off, cap - off, &plen))
				goto out;
			ck_assert_int_eq(kb_wire_decode_req(f->in + off, plen, &f->batch[n],
							    &f->bulk[n], &f->bulk_len[n]),
					 0);
			off += plen + KB_FRAME_TAG;
			n++;
		} while (n < FAKE_BATCH && cap - off > FAKE_MAX_FRAME + KB_FRAME_TAG &&
			 more_ready(f));
		while (n-- > 0)
			if (fake_handle(f, &f->batch[n], f->bulk[n], f->bulk_len[n]))
				goto out;
	}
out:
	free(f->in);
	return NULL;
}

static struct fake *fake_new_ka(unsigned n, int timeout_ms, int keepalive_ms)
{
	static const uint8_t k1[32] = {1}, k2[32] = {2};
	struct kb_chan *cc[8];
	struct kb_rpc_cfg cfg = {.host = "fake",
				 .conns = n,
				 .timeout_ms = timeout_ms,
				 .max_frame = FAKE_MAX_FRAME,
				 .keepalive_ms = keepalive_ms};
	struct fake *fk = calloc(1, sizeof(*fk));

	fk->n = n;
	for (unsigned i = 0; i < n; i++) {
		struct fake_conn *f = &fk->conns[i];
		int sv[2];

		ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
		ck_assert_int_eq(kb_chan_from_keys(&cc[i], sv[0], KB_AEAD_DEFAULT, k1, k2,
						   FAKE_MAX_FRAME, FAKE_MAX_FRAME),
				 0);
		ck_assert_int_eq(kb_chan_from_keys(&f->chan, sv[1], KB_AEAD_DEFAULT, k2, k1,
						   FAKE_MAX_FRAME, FAKE_MAX_FRAME),
				 0);
		f->batch = calloc(FAKE_BATCH, sizeof(*f->batch));
		f->out = malloc(FAKE_MAX_FRAME + 16384);
		f->resp = malloc(sizeof(*f->resp));
		ck_assert_int_eq(pthread_create(&f->th, NULL, fake_main, f), 0);
	}
	ck_assert_int_eq(kb_rpc_new_raw(&fk->r, &cfg, cc), 0);
	return fk;
}

static struct fake *fake_new(unsigned n, int timeout_ms)
{
	return fake_new_ka(n, timeout_ms, -1); /* no PINGs of our own */
}

static void fake_free(struct fake *fk)
{
	kb_rpc_free(fk->r);
	for (unsigned i = 0; i < fk->n; i++) {
		struct fake_conn *f = &fk->conns[i];

		kb_chan_shutdown(f->chan);
		pthread_join(f->th, NULL);
		kb_chan_free(f->chan);
		free(f->batch);
		free(f->out);
		free(f->resp);
	}
	free(fk);
}

/* ---- fake-server tests ------------------------------------------------ */

START_TEST(test_fake_sync_basic)
{
	struct fake *fk = fake_new(1, 5000);
	struct kb_rpc_result *res = kb_rpc_result_new();
	kb_Request req = kb_Request_init_zero;
	kb_Entry e;
	kb_Attr a;
	uint64_t rtt;

	ck_assert_int_eq(kb_rpc_ping(fk->r, &rtt), 0);
	ck_assert_int_eq(kb_rpc_lookup(fk->r, 3, "abcd", &e), 0);
	ck_assert_uint_eq(e.node, 3004);
	ck_assert_uint_eq(e.attr.ino, 3005);
	ck_assert_int_eq(kb_rpc_lookup(fk->r, 1, "missing", &e), -ENOENT);
	ck_assert_int_eq(kb_rpc_getattr(fk->r, 77, &a), 0);
	ck_assert_uint_eq(a.size, 770);
	/* a full result: the reply's frame and bulk are handed over */
	req.op = kb_Op_READ;
	req.node = 5;
	req.offset = 100;
	req.length = 3000;
	ck_assert_int_eq(kb_rpc_call(fk->r, &req, NULL, 0, res), 0);
	ck_assert_ptr_nonnull(res->frame);
	ck_assert_uint_eq(res->bulk_len, 3000);
	for (size_t i = 0; i < 3000; i++)
		ck_assert_uint_eq(res->bulk[i], pattern_byte(5, 100 + i));
	ck_assert_ptr_eq(res->bulk, res->frame->mem + res->frame->off);
	/* unknown op: the server's errno comes back unchanged */
	req.op = kb_Op_MKNOD;
	ck_assert_int_eq(kb_rpc_call(fk->r, &req, NULL, 0, res), -ENOSYS);
	kb_rpc_result_free(res);
	fake_free(fk);
}
END_TEST

START_TEST(test_fake_write_bulk)
{
	struct fake *fk = fake_new(2, 5000);
	struct kb_rpc_result *res = kb_rpc_result_new();
	kb_Request req = kb_Request_init_zero;
	static uint8_t data[60000];
	uint64_t sum = 0;

	for (size_t i = 0; i < sizeof(data); i++)
		sum += data[i] = (uint8_t)(i * 7);
	req.op = kb_Op_WRITE;
	ck_assert_int_eq(kb_rpc_call(fk->r, &req, data, sizeof(data), res), 0);
	ck_assert_uint_eq(res->resp.value, sum << 32 | sizeof(data));
	/* larger than the peer accepts: refused before sending, conn intact */
	{
		size_t big = kb_rpc_max_write(fk->r) + 4096;
		uint8_t *b = calloc(1, big);

		ck_assert_int_eq(kb_rpc_call(fk->r, &req, b, big, res), -KB_ETOOBIG);
		free(b);
	}
	ck_assert_int_eq(kb_rpc_ping(fk->r, NULL), 0);
	kb_rpc_result_free(res);
	fake_free(fk);
}
END_TEST

#define NREADS 400

struct rd_state {
	pthread_mutex_t lock;
	pthread_cond_t cv;
	unsigned done, bad, errors;
	uint64_t off[NREADS];
	uint32_t len[NREADS];
	struct kb_buf *kept; /* one frame kept past its callback */
};

struct rd_one {
	struct rd_state *st;
	unsigned i;
};

static void rd_cb(void *arg, int status, struct kb_rpc_result *res)
{
	struct rd_one *o = arg;
	struct rd_state *st = o->st;
	bool ok = status == 0 && res && res->bulk_len == st->len[o->i];

	for (size_t j = 0; ok && j < res->bulk_len; j += 97)
		ok = res->bulk[j] == pattern_byte(o->i, st->off[o->i] + j);
	pthread_mutex_lock(&st->lock);
	if (status)
		st->errors++;
	else if (!ok)
		st->bad++;
	if (ok && o->i == 7)
		st->kept = kb_buf_ref(res->frame);
	st->done++;
	pthread_cond_signal(&st->cv);
	pthread_mutex_unlock(&st->lock);
}

START_TEST(test_fake_pipelined_reads)
{
	struct fake *fk = fake_new(4, 10000);
	struct rd_state *st = calloc(1, sizeof(*st));
	struct rd_one *ones = calloc(NREADS, sizeof(*ones));
	struct kb_rpc_stats rs;

	pthread_mutex_init(&st->lock, NULL);
	pthread_cond_init(&st->cv, NULL);
	for (unsigned i = 0; i < NREADS; i++) {
		st->off[i] = (uint64_t)i * 7919;
		st->len[i] = i % 5 == 0 ? (1u << 20) : 1 + (i * 4099) % 70000;
		ones[i] = (struct rd_one){st, i};
		ck_assert_int_eq(kb_rpc_read_async(fk->r, i, 0, st->off[i], st->len[i], (int)i,
						   rd_cb, &ones[i]),
				 0);
	}
	pthread_mutex_lock(&st->lock);
	while (st->done < NREADS)
		pthread_cond_wait(&st->cv, &st->lock);
	pthread_mutex_unlock(&st->lock);
	ck_assert_uint_eq(st->errors, 0);
	ck_assert_uint_eq(st->bad, 0);
	/* the kept frame still holds read 7's bytes after its callback */
	ck_assert_ptr_nonnull(st->kept);
	ck_assert_uint_eq(st->kept->mem[st->kept->off], pattern_byte(7, st->off[7]));
	kb_buf_put(st->kept);
	kb_rpc_stats(fk->r, &rs);
	ck_assert_uint_eq(rs.requests, NREADS);
	ck_assert_uint_eq(rs.conns_up, 4);
	fake_free(fk);
	free(ones);
	free(st);
}
END_TEST

static void *sync_worker(void *arg)
{
	struct kb_rpc *r = arg;
	uint8_t *buf = malloc(100000);
	long bad = 0;

	for (unsigned k = 0; k < 150; k++) {
		uint64_t node = (uint64_t)(uintptr_t)buf % 1000 + k;
		size_t len = 1 + (k * 7777) % 100000, got = 0;
		kb_Attr a;

		if (kb_rpc_getattr(r, node, &a) || a.size != node * 10)
			bad++;
		if (kb_rpc_pread(r, node, 0, buf, len, k * 13, &got) || got != len)
			bad++;
		for (size_t j = 0; j < got; j += 101)
			bad += buf[j] != pattern_byte(node, k * 13 + j);
	}
	free(buf);
	return (void *)bad;
}

START_TEST(test_fake_sync_threads)
{
	struct fake *fk = fake_new(3, 10000);
	pthread_t th[8];

	for (int i = 0; i < 8; i++)
		ck_assert_int_eq(pthread_create(&th[i], NULL, sync_worker, fk->r), 0);
	for (int i = 0; i < 8; i++) {
		void *bad;

		pthread_join(th[i], &bad);
		ck_assert_ptr_null(bad);
	}
	fake_free(fk);
}
END_TEST

START_TEST(test_fake_timeout)
{
	struct fake *fk = fake_new(1, 300);
	kb_Attr a;
	uint64_t t0 = kb_now_ns();

	ck_assert_int_eq(kb_rpc_getattr(fk->r, FAKE_SILENT_NODE, &a), -ETIMEDOUT);
	ck_assert_uint_ge(kb_now_ns() - t0, 250u * 1000000u); /* not early */
	/* the connection is still usable afterwards */
	ck_assert_int_eq(kb_rpc_getattr(fk->r, 9, &a), 0);
	ck_assert_uint_eq(a.size, 90);
	fake_free(fk);
}
END_TEST

struct st_cb {
	pthread_mutex_t lock;
	pthread_cond_t cv;
	int n;
	int status[16];
};

static void status_cb(void *arg, int status, struct kb_rpc_result *res)
{
	struct st_cb *s = arg;

	(void)res;
	pthread_mutex_lock(&s->lock);
	s->status[s->n++] = status;
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->lock);
}

static void wait_n(struct st_cb *s, int n)
{
	pthread_mutex_lock(&s->lock);
	while (s->n < n)
		pthread_cond_wait(&s->cv, &s->lock);
	pthread_mutex_unlock(&s->lock);
}

START_TEST(test_fake_conn_death)
{
	struct fake *fk = fake_new(2, 20000);
	struct st_cb s = {.lock = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
	kb_Request req = kb_Request_init_zero;
	struct kb_rpc_stats rs;

	/* three requests the server never answers, pending on connection 0 */
	req.op = kb_Op_GETATTR;
	req.node = FAKE_SILENT_NODE;
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(kb_rpc_submit(fk->r, &req, NULL, 0, 0, status_cb, &s), 0);
	/* then connection 0 dies: all four fail with -ENOTCONN, no timeout */
	memset(&req, 0, sizeof(req));
	req.op = kb_Op_LOOKUP;
	strcpy(req.name, "die");
	ck_assert_int_eq(kb_rpc_submit(fk->r, &req, NULL, 0, 0, status_cb, &s), 0);
	wait_n(&s, 4);
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(s.status[i], -ENOTCONN);
	kb_rpc_stats(fk->r, &rs);
	ck_assert_uint_eq(rs.conns_up, 1);
	/* later requests (even hinted at 0) go to the remaining connection */
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(kb_rpc_ping(fk->r, NULL), 0);
	memset(&req, 0, sizeof(req));
	req.op = kb_Op_PING;
	ck_assert_int_eq(kb_rpc_submit(fk->r, &req, NULL, 0, 0, status_cb, &s), 0);
	wait_n(&s, 5);
	ck_assert_int_eq(s.status[4], 0);
	/* the last one dies: calls fail fast */
	ck_assert_int_eq(kb_rpc_lookup(fk->r, 1, "die", &(kb_Entry){0}), -ENOTCONN);
	ck_assert_int_eq(kb_rpc_ping(fk->r, NULL), -ENOTCONN);
	ck_assert_int_eq(kb_rpc_submit(fk->r, &req, NULL, 0, -1, status_cb, &s), -ENOTCONN);
	fake_free(fk);
}
END_TEST

START_TEST(test_fake_free_fails_pending)
{
	struct fake *fk = fake_new(2, 20000);
	struct st_cb s = {.lock = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
	kb_Request req = kb_Request_init_zero;

	req.op = kb_Op_GETATTR;
	req.node = FAKE_SILENT_NODE;
	for (int i = 0; i < 5; i++)
		ck_assert_int_eq(kb_rpc_submit(fk->r, &req, NULL, 0, i, status_cb, &s), 0);
	kb_rpc_free(fk->r);
	fk->r = NULL;
	ck_assert_int_eq(s.n, 5);
	for (int i = 0; i < 5; i++)
		ck_assert_int_eq(s.status[i], -ENOTCONN);
	fake_free(fk);
}
END_TEST

struct notes {
	pthread_mutex_t lock;
	uint64_t node;
	char name[256];
};

static void note_cb(void *arg, const kb_Response *n)
{
	struct notes *nt = arg;

	pthread_mutex_lock(&nt->lock);
	nt->node = n->notify_node;
	snprintf(nt->name, sizeof(nt->name), "%s", n->notify_name);
	pthread_mutex_unlock(&nt->lock);
}

START_TEST(test_fake_notify)
{
	struct fake *fk = fake_new(1, 5000);
	struct notes nt = {.lock = PTHREAD_MUTEX_INITIALIZER};
	kb_Statfs st;

	kb_rpc_set_notify(fk->r, note_cb, &nt);
	/* the fake pushes a NOTIFY before the STATFS reply, same connection */
	ck_assert_int_eq(kb_rpc_statfs(fk->r, 1, &st), 0);
	ck_assert_uint_eq(st.bsize, 4096);
	pthread_mutex_lock(&nt.lock);
	ck_assert_uint_eq(nt.node, 42);
	ck_assert_str_eq(nt.name, "changed");
	pthread_mutex_unlock(&nt.lock);
	fake_free(fk);
}
END_TEST

START_TEST(test_fake_keepalive)
{
	struct fake *fk = fake_new_ka(1, 5000, 100);
	struct kb_rpc_stats rs = {0};

	/* idle: the timer PINGs on its own and records the round trip */
	for (int i = 0; i < 300 && rs.requests < 2; i++) {
		usleep(10000);
		kb_rpc_stats(fk->r, &rs);
	}
	ck_assert_uint_ge(rs.requests, 2);
	ck_assert_uint_gt(rs.rtt_us, 0);
	ck_assert_uint_eq(rs.errors, 0);
	fake_free(fk);
}
END_TEST

START_TEST(test_fake_no_alloc_steady)
{
	struct fake *fk = fake_new(2, 5000);
	struct kb_rpc_result *res = kb_rpc_result_new();
	kb_Request req = kb_Request_init_zero;
	unsigned long before[KB_RPC_NCLASS] = {0};

	req.op = kb_Op_READ;
	req.length = 1u << 20;
	for (int round = 0; round < 2; round++) {
		for (int i = 0; i < 50; i++) {
			req.offset = (uint64_t)i << 20;
			ck_assert_int_eq(kb_rpc_call(fk->r, &req, NULL, 0, res), 0);
			ck_assert_uint_eq(res->bulk_len, 1u << 20);
			/* a 1 MiB block lands in a buffer of about its size */
			ck_assert_uint_lt(res->frame->cap, (1u << 20) + 8192);
			kb_rpc_result_reset(res);
			ck_assert_int_eq(kb_rpc_ping(fk->r, NULL), 0);
		}
		for (unsigned p = 0; p < fk->r->npools; p++) {
			unsigned long n = kb_bufpool_allocs(fk->r->pools[p]);

			if (round == 1)
				ck_assert_uint_eq(n, before[p]); /* no new buffers */
			before[p] = n;
		}
	}
	kb_rpc_result_free(res);
	fake_free(fk);
}
END_TEST

/* ---- real-server tests ------------------------------------------------ */

struct conn_opts {
	const char *host;         /* default 127.0.0.1 */
	const char *port;         /* default the server's */
	const char *path;         /* default "/" */
	unsigned conns;           /* default 1 */
	const uint8_t *trust_pub; /* default the server's key */
	const uint8_t *priv;      /* default the test client key */
	int timeout_ms;           /* default 10 s */
	bool noreconnect;
	const uint8_t *psk;      /* default none */
	struct kb_keyset *trust; /* default {trust_pub} (borrowed) */
};

static int srv_connect(struct th_server *ts, const struct conn_opts *o, struct kb_rpc **r,
		       kb_Entry *root, bool *ro, char *err, size_t errlen)
{
	struct kb_keyset *trust = NULL;
	struct kb_rpc_cfg cfg = {
		.host = o->host ? o->host : "127.0.0.1",
		.port = o->port ? o->port : ts->port_str,
		.path = o->path ? o->path : "/",
		.conns = o->conns ? o->conns : 1,
		.identity = o->priv ? o->priv : ts->client_priv,
		.timeout_ms = o->timeout_ms ? o->timeout_ms : 10000,
		.noreconnect = o->noreconnect,
		.psk = o->psk,
	};
	int rc;

	if (o->trust) {
		cfg.trust = o->trust;
		return kb_rpc_new(r, &cfg, root, ro, err, errlen);
	}
	ck_assert_int_eq(kb_keyset_new(&trust), 0);
	ck_assert_int_eq(kb_keyset_add(trust, o->trust_pub ? o->trust_pub : ts->server_pub, 0), 0);
	cfg.trust = trust;
	rc = kb_rpc_new(r, &cfg, root, ro, err, errlen);
	kb_keyset_free(trust); /* only needed while connecting */
	return rc;
}

static void srv_start(struct th_server *ts)
{
	int rc = -1;

	/* a free port can be taken by a concurrent test run before the server
	 * binds it: try again on a new one */
	for (int i = 0; i < 3 && rc; i++) {
		rc = th_server_start(ts, 0, NULL);
		if (rc)
			th_server_cleanup(ts);
	}
	ck_assert_int_eq(rc, 0);
	ck_assert_int_eq(th_write_pattern(th_server_path(ts, "small"), 5000, 1, 0644), 0);
	ck_assert_int_eq(th_write_pattern(th_server_path(ts, "big"), 8u << 20, 2, 0644), 0);
	ck_assert_int_eq(mkdir(th_server_path(ts, "sub"), 0755), 0);
	ck_assert_int_eq(mkdir(th_server_path(ts, "sub/deeper"), 0755), 0);
}

static uint8_t *slurp(const char *path, size_t *len)
{
	struct stat st;
	uint8_t *p;
	int fd = open(path, O_RDONLY);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(fstat(fd, &st), 0);
	p = malloc((size_t)st.st_size + 1);
	ck_assert_int_eq(kb_read_full(fd, p, (size_t)st.st_size), 0);
	close(fd);
	*len = (size_t)st.st_size;
	return p;
}

static void check_session(struct th_server *ts, unsigned conns)
{
	struct conn_opts o = {.conns = conns};
	struct kb_rpc *r = NULL;
	struct kb_rpc_stats rs;
	char err[512], fpr[KB_FPR_LEN];
	kb_Entry root, e;
	kb_Attr a;
	bool ro = true;
	struct stat st;

	ck_assert_msg(!srv_connect(ts, &o, &r, &root, &ro, err, sizeof(err)), "%s", err);
	ck_assert(!ro);
	ck_assert_uint_ne(root.node, 0);
	ck_assert(S_ISDIR(root.attr.mode));
	ck_assert_int_eq(stat(ts->share, &st), 0);
	ck_assert_uint_eq(root.attr.ino, st.st_ino);
	for (unsigned i = 0; i < 2 * conns; i++) { /* touches every connection */
		ck_assert_int_eq(kb_rpc_ping(r, NULL), 0);
		ck_assert_int_eq(kb_rpc_lookup(r, root.node, "small", &e), 0);
		ck_assert_int_eq(kb_rpc_getattr(r, e.node, &a), 0);
		ck_assert_uint_eq(a.size, 5000);
		ck_assert_int_eq(kb_rpc_forget(r, e.node, 1), 0);
	}
	ck_assert_int_eq(kb_rpc_lookup(r, root.node, "nothing-here", &e), -ENOENT);
	kb_rpc_stats(r, &rs);
	ck_assert_uint_eq(rs.conns_up, conns);
	kb_key_fingerprint(ts->server_pub, fpr);
	ck_assert_str_eq(rs.peer_fpr, fpr);
	kb_rpc_free(r);
}

START_TEST(test_srv_connect)
{
	struct th_server ts;

	srv_start(&ts);
	check_session(&ts, 1);
	check_session(&ts, 4);
	th_server_cleanup(&ts);
}
END_TEST

START_TEST(test_srv_subdir_and_names)
{
	struct th_server ts;
	struct conn_opts o = {.path = "/sub", .host = "localhost", .conns = 2};
	struct kb_rpc *r = NULL;
	char err[512];
	kb_Entry root, e;
	bool ro;
	struct stat st;

	srv_start(&ts);
	ck_assert_msg(!srv_connect(&ts, &o, &r, &root, &ro, err, sizeof(err)), "%s", err);
	ck_assert_int_eq(stat(th_server_path(&ts, "sub"), &st), 0);
	ck_assert_uint_eq(root.attr.ino, st.st_ino);
	ck_assert_int_eq(kb_rpc_lookup(r, root.node, "deeper", &e), 0);
	ck_assert(S_ISDIR(e.attr.mode));
	ck_assert_int_eq(kb_rpc_lookup(r, root.node, "small", &e), -ENOENT); /* not in /sub */
	kb_rpc_free(r);
	th_server_cleanup(&ts);
}
END_TEST

/* Start the prepared server ts listening on `listen` (ADDR:PORT). */
static void spawn_listening(struct th_server *ts, const char *listen)
{
	const char *argv[] = {th_bin("keibifsd"),
			      "--share",
			      ts->share,
			      "--key",
			      ts->server_key,
			      "--authorized",
			      ts->authorized,
			      "--listen",
			      listen,
			      "--foreground",
			      NULL};

	ts->pid = th_spawn((char *const *)argv, ts->log);
	ck_assert_int_gt(ts->pid, 0);
}

/* The default address and [::] serve IPv6 and IPv4 on one socket (as
 * sshd does), unless IPv6 is off. */
START_TEST(test_srv_dual_stack)
{
	static const char *const specs[] = {":%d", "[::]:%d"};
	struct th_server ts;
	struct conn_opts o = {0};
	char listen[64], err[512];
	struct kb_rpc *r = NULL;
	kb_Entry root;
	bool ro;

	for (size_t i = 0; i < 2; i++) {
		ck_assert_int_eq(th_server_prepare(&ts, 0), 0);
		snprintf(listen, sizeof(listen), specs[i], ts.port);
		spawn_listening(&ts, listen);
		ck_assert(th_wait_file_contains(ts.log, "keibifsd: ready on [::]:", 10000));
		o.host = "127.0.0.1";
		ck_assert_msg(!srv_connect(&ts, &o, &r, &root, &ro, err, sizeof(err)), "%s", err);
		kb_rpc_free(r);
		r = NULL;
		o.host = "::1";
		ck_assert_msg(!srv_connect(&ts, &o, &r, &root, &ro, err, sizeof(err)), "%s", err);
		kb_rpc_free(r);
		r = NULL;
		/* an IPv4 peer is logged as IPv4, not ::ffff:127.0.0.1 */
		ck_assert(th_wait_file_contains(ts.log, "connect from 127.0.0.1:", 5000));
		th_server_cleanup(&ts);
	}
}
END_TEST

START_TEST(test_srv_ipv6)
{
	struct th_server ts;
	struct conn_opts o = {.host = "::1", .conns = 2};
	char listen[64], err[512];
	struct kb_rpc *r = NULL;
	kb_Entry root;
	bool ro;

	ck_assert_int_eq(th_server_prepare(&ts, 0), 0);
	snprintf(listen, sizeof(listen), "[::1]:%d", ts.port);
	spawn_listening(&ts, listen);
	ck_assert(th_wait_file_contains(ts.log, "keibifsd: ready", 10000));
	ck_assert_msg(!srv_connect(&ts, &o, &r, &root, &ro, err, sizeof(err)), "%s", err);
	ck_assert_int_eq(kb_rpc_ping(r, NULL), 0);
	kb_rpc_free(r);
	/* and IPv4 is not served: refused, with the address in brackets */
	o.host = "127.0.0.1";
	ck_assert_int_eq(srv_connect(&ts, &o, &r, &root, &ro, err, sizeof(err)), -ECONNREFUSED);
	o.host = "::1";
	o.port = "1"; /* nothing listens there */
	ck_assert_int_eq(srv_connect(&ts, &o, &r, &root, &ro, err, sizeof(err)), -ECONNREFUSED);
	ck_assert_str_eq(err, "connection refused by [::1]:1");
	th_server_cleanup(&ts);
}
END_TEST

START_TEST(test_srv_errors)
{
	struct th_server ts;
	struct conn_opts o = {.path = "/nope"};
	struct kb_rpc *r = NULL;
	uint8_t other_priv[32], other_pub[32];
	char err[512], fpr[KB_FPR_LEN], want[256];
	struct kb_noise_rng *rng;
	kb_Entry root;
	bool ro;

	srv_start(&ts);
	/* missing directory */
	ck_assert_int_eq(srv_connect(&ts, &o, &r, &root, &ro, err, sizeof(err)), -ENOENT);
	ck_assert_msg(strstr(err, "no such directory in the share: /nope (PATH is relative"), "%s",
		      err);
	ck_assert_ptr_null(r);
	/* a file, not a directory */
	o.path = "/small";
	ck_assert_int_ne(srv_connect(&ts, &o, &r, &root, &ro, err, sizeof(err)), 0);
	ck_assert_msg(strstr(err, "/small") != NULL, "%s", err);
	/* unknown server key: its fingerprint and how to trust it */
	ck_assert_int_eq(kb_noise_rng_new(&rng), 0);
	ck_assert_int_eq(kb_x25519_keygen(rng, other_priv, other_pub), 0);
	kb_noise_rng_free(rng);
	o = (struct conn_opts){.trust_pub = other_pub};
	ck_assert_int_eq(srv_connect(&ts, &o, &r, &root, &ro, err, sizeof(err)), -KB_EUNTRUSTED);
	kb_key_fingerprint(ts.server_pub, fpr);
	snprintf(want, sizeof(want), "unknown server key %s for 127.0.0.1", fpr);
	ck_assert_msg(strstr(err, want) != NULL, "%s", err);
	snprintf(want, sizeof(want), "-o peer=%s", fpr);
	ck_assert_msg(strstr(err, want) != NULL, "%s", err);
	/* our key is not authorized: "refused" and our fingerprint */
	o = (struct conn_opts){.priv = other_priv};
	ck_assert_int_eq(srv_connect(&ts, &o, &r, &root, &ro, err, sizeof(err)), -KB_EREFUSED);
	kb_key_fingerprint(other_pub, fpr);
	ck_assert_msg(strstr(err, "refused our key") && strstr(err, fpr), "%s", err);
	/* the server still serves the right client */
	check_session(&ts, 1);
	th_server_cleanup(&ts);
}
END_TEST

/* A pinned key that does not match: a loud CHANGED naming the known_peers
 * file and line, unlike an unknown key; a key bound to another host is not
 * accepted for this one. */
START_TEST(test_srv_key_changed)
{
	struct th_server ts;
	struct conn_opts o = {0};
	struct kb_rpc *r = NULL;
	char err[1024], text[512], kp[PATH_MAX + 8], b64[48];
	uint8_t other[32];
	kb_Entry root;
	bool ro;
	FILE *f;

	srv_start(&ts);
	memset(other, 0x42, sizeof(other));
	kb_b64_encode(b64, other, 32, 1);
	snprintf(kp, sizeof(kp), "%s/kp", ts.dir);
	snprintf(text, sizeof(text), "# old key\n127.0.0.1,[127.0.0.1]:%d keibifs-x25519 %s\n",
		 ts.port, b64);
	f = fopen(kp, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
	ck_assert_int_eq(kb_keyset_load_peers(&o.trust, kp, err, sizeof(err)), 0);
	ck_assert_int_eq(srv_connect(&ts, &o, &r, &root, &ro, err, sizeof(err)), -KB_EUNTRUSTED);
	ck_assert_msg(strstr(err, "SERVER KEY CHANGED") && strstr(err, "/kp:2"), "%s", err);
	kb_keyset_free(o.trust);
	/* the right key, bound to another host: not accepted here */
	kb_b64_encode(b64, ts.server_pub, 32, 1);
	snprintf(text, sizeof(text), "other.example keibifs-x25519 %s\n", b64);
	f = fopen(kp, "w");
	fputs(text, f);
	fclose(f);
	ck_assert_int_eq(kb_keyset_load_peers(&o.trust, kp, err, sizeof(err)), 0);
	ck_assert_int_eq(srv_connect(&ts, &o, &r, &root, &ro, err, sizeof(err)), -KB_EUNTRUSTED);
	ck_assert_msg(strstr(err, "unknown server key") && !strstr(err, "CHANGED"), "%s", err);
	/* ...and it suggests the line to add, in known_hosts' form for a port */
	snprintf(text, sizeof(text), "'[127.0.0.1]:%d keibifs-x25519 %s'", ts.port, b64);
	ck_assert_msg(strstr(err, text), "%s", err);
	kb_keyset_free(o.trust);
	/* bound to this host and port: accepted */
	snprintf(text, sizeof(text), "[127.0.0.1]:%d keibifs-x25519 %s\n", ts.port, b64);
	f = fopen(kp, "w");
	fputs(text, f);
	fclose(f);
	ck_assert_int_eq(kb_keyset_load_peers(&o.trust, kp, err, sizeof(err)), 0);
	ck_assert_int_eq(srv_connect(&ts, &o, &r, &root, &ro, err, sizeof(err)), 0);
	kb_rpc_free(r);
	kb_keyset_free(o.trust);
	th_server_cleanup(&ts);
}
END_TEST

/* Pre-shared key mistakes say so, whichever side has which key. */
START_TEST(test_srv_psk_mismatch)
{
	struct th_server ts;
	struct conn_opts o = {0};
	struct kb_rpc *r = NULL;
	struct kb_noise_rng *rng;
	uint8_t psk[32], wrong[32];
	char err[1024], pskfile[PATH_MAX + 8];
	const char *extra[] = {"--psk", pskfile, NULL};
	kb_Entry root;
	bool ro;

	char *pdir = th_tmpdir("psk");

	snprintf(pskfile, sizeof(pskfile), "%s/psk", pdir);
	ck_assert_int_eq(kb_noise_rng_new(&rng), 0);
	ck_assert_int_eq(kb_psk_generate(pskfile, false, rng, err, sizeof(err)), 0);
	kb_noise_rng_free(rng);
	ck_assert_int_eq(kb_psk_load(pskfile, psk, err, sizeof(err)), 0);
	ck_assert_int_eq(th_server_start(&ts, 0, extra), 0);
	/* both sides, the same key */
	o.psk = psk;
	ck_assert_int_eq(srv_connect(&ts, &o, &r, &root, &ro, err, sizeof(err)), 0);
	kb_rpc_free(r);
	r = NULL;
	/* another key */
	memcpy(wrong, psk, 32);
	wrong[0] ^= 1;
	o.psk = wrong;
	ck_assert_int_ne(srv_connect(&ts, &o, &r, &root, &ro, err, sizeof(err)), 0);
	ck_assert_msg(strstr(err, "pre-shared key mismatch"), "%s", err);
	ck_assert_msg(!strstr(err, "handshake failed: handshake failed"), "%s", err);
	/* none on the client */
	o.psk = NULL;
	ck_assert_int_ne(srv_connect(&ts, &o, &r, &root, &ro, err, sizeof(err)), 0);
	ck_assert_msg(strstr(err, "pre-shared key"), "%s", err);
	ck_assert_msg(!strstr(err, "refused our key"), "%s", err);
	th_server_cleanup(&ts);
	/* none on the server */
	srv_start(&ts);
	o.psk = psk;
	ck_assert_int_ne(srv_connect(&ts, &o, &r, &root, &ro, err, sizeof(err)), 0);
	ck_assert_msg(strstr(err, "pre-shared key mismatch"), "%s", err);
	th_server_cleanup(&ts);
	th_sh("rm -rf '%s'", pdir);
	free(pdir);
}
END_TEST

START_TEST(test_srv_conn_refused)
{
	struct th_server ts;
	struct conn_opts o = {0};
	struct kb_rpc *r = NULL;
	char err[512], want[128];
	kb_Entry root;
	bool ro;

	ck_assert_int_eq(th_server_prepare(&ts, 0), 0); /* keys only, no server */
	ck_assert_int_eq(srv_connect(&ts, &o, &r, &root, &ro, err, sizeof(err)), -ECONNREFUSED);
	snprintf(want, sizeof(want), "connection refused by 127.0.0.1:%d", ts.port);
	ck_assert_str_eq(err, want);
	o.host = "no-such-host.invalid";
	ck_assert_int_eq(srv_connect(&ts, &o, &r, &root, &ro, err, sizeof(err)), -EHOSTUNREACH);
	ck_assert_msg(strstr(err, "cannot resolve no-such-host.invalid") != NULL, "%s", err);
	th_server_cleanup(&ts);
}
END_TEST

#define BLK (256u << 10)

struct pull {
	pthread_mutex_t lock;
	pthread_cond_t cv;
	const uint8_t *ref; /* the file, read locally */
	size_t ref_len;
	unsigned done, bad, enotconn, other;
};

struct pull_one {
	struct pull *p;
	uint64_t off;
};

static void pull_cb(void *arg, int status, struct kb_rpc_result *res)
{
	struct pull_one *o = arg;
	struct pull *p = o->p;
	bool ok = false;

	if (!status) {
		size_t want = KB_MIN(BLK, p->ref_len - o->off);

		ok = res->bulk_len == want && !memcmp(res->bulk, p->ref + o->off, want);
	}
	pthread_mutex_lock(&p->lock);
	if (status == -ENOTCONN)
		p->enotconn++;
	else if (status)
		p->other++;
	else if (!ok)
		p->bad++;
	p->done++;
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->lock);
}

static void pull_wait(struct pull *p, unsigned n)
{
	pthread_mutex_lock(&p->lock);
	while (p->done < n)
		pthread_cond_wait(&p->cv, &p->lock);
	pthread_mutex_unlock(&p->lock);
}

START_TEST(test_srv_pipelined_reads)
{
	struct th_server ts;
	struct conn_opts o = {.conns = 4};
	struct kb_rpc *r = NULL;
	struct pull p = {.lock = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
	unsigned nblk, rounds = 3;
	struct pull_one *ones;
	char err[512];
	kb_Entry root, e;
	bool ro;
	uint8_t *ref;

	srv_start(&ts);
	ref = slurp(th_server_path(&ts, "big"), &p.ref_len);
	p.ref = ref;
	nblk = (unsigned)(p.ref_len / BLK);
	ones = calloc(nblk * rounds, sizeof(*ones));
	ck_assert_msg(!srv_connect(&ts, &o, &r, &root, &ro, err, sizeof(err)), "%s", err);
	ck_assert_int_eq(kb_rpc_lookup(r, root.node, "big", &e), 0);
	/* every block, three times, in a scrambled order, all in flight at once */
	for (unsigned i = 0; i < nblk * rounds; i++) {
		unsigned b = (i * 13) % nblk;

		ones[i] = (struct pull_one){&p, (uint64_t)b * BLK};
		ck_assert_int_eq(kb_rpc_read_async(r, e.node, 0, ones[i].off, BLK, (int)b, pull_cb,
						   &ones[i]),
				 0);
	}
	pull_wait(&p, nblk * rounds);
	ck_assert_uint_eq(p.bad + p.enotconn + p.other, 0);
	/* past the end: short read */
	{
		uint8_t buf[100];
		size_t got = 99;

		ck_assert_int_eq(kb_rpc_pread(r, e.node, 0, buf, 100, p.ref_len - 10, &got), 0);
		ck_assert_uint_eq(got, 10);
		ck_assert_mem_eq(buf, ref + p.ref_len - 10, 10);
	}
	kb_rpc_free(r);
	free(ones);
	free(ref);
	th_server_cleanup(&ts);
}
END_TEST

struct srv_worker {
	struct kb_rpc *r;
	uint64_t root;
	const uint8_t *ref;
	size_t ref_len;
	long bad;
};

static void *srv_sync_worker(void *arg)
{
	struct srv_worker *w = arg;
	uint8_t *buf = malloc(65536);

	for (unsigned k = 0; k < 100; k++) {
		size_t len = 1 + (k * 7777) % 65536, got = 0;
		uint64_t off = (uint64_t)k * 40503 % (w->ref_len - len);
		kb_Entry e;
		kb_Attr a;

		if (kb_rpc_lookup(w->r, w->root, "big", &e) || kb_rpc_getattr(w->r, e.node, &a) ||
		    a.size != w->ref_len) {
			w->bad++;
			continue;
		}
		if (kb_rpc_pread(w->r, e.node, 0, buf, len, off, &got) || got != len ||
		    memcmp(buf, w->ref + off, len))
			w->bad++;
		kb_rpc_forget(w->r, e.node, 1);
	}
	free(buf);
	return NULL;
}

START_TEST(test_srv_sync_threads)
{
	struct th_server ts;
	struct conn_opts o = {.conns = 3};
	struct srv_worker w[8];
	pthread_t th[8];
	char err[512];
	kb_Entry root;
	size_t len;
	uint8_t *ref;
	bool ro;
	struct kb_rpc *r = NULL;

	srv_start(&ts);
	ref = slurp(th_server_path(&ts, "big"), &len);
	ck_assert_msg(!srv_connect(&ts, &o, &r, &root, &ro, err, sizeof(err)), "%s", err);
	for (int i = 0; i < 8; i++) {
		w[i] = (struct srv_worker){r, root.node, ref, len, 0};
		ck_assert_int_eq(pthread_create(&th[i], NULL, srv_sync_worker, &w[i]), 0);
	}
	for (int i = 0; i < 8; i++) {
		pthread_join(th[i], NULL);
		ck_assert_int_eq(w[i].bad, 0);
	}
	kb_rpc_free(r);
	free(ref);
	th_server_cleanup(&ts);
}
END_TEST

/* True when the task's /proc status says "T (stopped)". */
static bool task_stopped(const char *path)
{
	char line[256];
	bool stopped = false;
	FILE *f = fopen(path, "r");

	if (!f)
		return true; /* gone */
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "State:", 6))
			stopped = strchr(line, 'T') != NULL;
	fclose(f);
	return stopped;
}

/* SIGSTOP is asynchronous: wait until every thread of pid is stopped. */
static void wait_stopped(pid_t pid)
{
	char dir[64], path[512];

	snprintf(dir, sizeof(dir), "/proc/%d/task", (int)pid);
	for (int i = 0; i < 500; i++) {
		bool all = true;
		struct dirent *de;
		DIR *d = opendir(dir);

		ck_assert_ptr_nonnull(d);
		while (all && (de = readdir(d)))
			if (de->d_name[0] != '.') {
				snprintf(path, sizeof(path), "%s/%s/status", dir, de->d_name);
				all = task_stopped(path);
			}
		closedir(d);
		if (all)
			return;
		usleep(10000);
	}
	ck_abort_msg("server did not stop");
}

START_TEST(test_srv_stopped_timeout)
{
	struct th_server ts;
	struct conn_opts o = {.conns = 2, .timeout_ms = 500};
	struct kb_rpc *r = NULL;
	char err[512];
	kb_Entry root;
	kb_Attr a;
	bool ro;

	srv_start(&ts);
	ck_assert_msg(!srv_connect(&ts, &o, &r, &root, &ro, err, sizeof(err)), "%s", err);
	ck_assert_int_eq(kill(ts.pid, SIGSTOP), 0);
	wait_stopped(ts.pid);
	ck_assert_int_eq(kb_rpc_getattr(r, root.node, &a), -ETIMEDOUT);
	ck_assert_int_eq(kb_rpc_ping(r, NULL), -ETIMEDOUT);
	ck_assert_int_eq(kill(ts.pid, SIGCONT), 0);
	/* the late replies are dropped; the session works again */
	ck_assert_int_eq(kb_rpc_getattr(r, root.node, &a), 0);
	ck_assert(S_ISDIR(a.mode));
	kb_rpc_free(r);
	th_server_cleanup(&ts);
}
END_TEST

START_TEST(test_srv_killed_midstream)
{
	struct th_server ts;
	/* noreconnect: pending requests fail fast (test_reliability covers
	 * the reconnecting default) */
	struct conn_opts o = {.conns = 4, .timeout_ms = 20000, .noreconnect = true};
	struct pull p = {.lock = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
	struct pull_one ones[64];
	struct kb_rpc *r = NULL;
	struct kb_rpc_stats rs;
	char err[512];
	kb_Entry root, e;
	uint8_t *ref;
	bool ro;

	srv_start(&ts);
	ref = slurp(th_server_path(&ts, "big"), &p.ref_len);
	p.ref = ref;
	ck_assert_msg(!srv_connect(&ts, &o, &r, &root, &ro, err, sizeof(err)), "%s", err);
	ck_assert_int_eq(kb_rpc_lookup(r, root.node, "big", &e), 0);
	for (unsigned i = 0; i < 64; i++) {
		int rc;

		ones[i] = (struct pull_one){&p, (uint64_t)(i % 32) * BLK};
		rc = kb_rpc_read_async(r, e.node, 0, ones[i].off, BLK, (int)i, pull_cb, &ones[i]);
		if (rc == -ENOTCONN) /* every connection already down: not accepted */
			pull_cb(&ones[i], rc, NULL);
		else
			ck_assert_int_eq(rc, 0);
		if (i == 8)
			ck_assert_int_eq(kill(ts.pid, SIGKILL), 0);
	}
	pull_wait(&p, 64); /* every callback runs: data or -ENOTCONN */
	ck_assert_uint_eq(p.bad, 0);
	ck_assert_uint_eq(p.other, 0);
	ck_assert_uint_eq(p.done, 64);
	th_stop(ts.pid, 1000);
	ts.pid = 0;
	ck_assert_int_eq(kb_rpc_ping(r, NULL), -ENOTCONN);
	kb_rpc_stats(r, &rs);
	ck_assert_uint_eq(rs.conns_up, 0);
	kb_rpc_free(r);
	free(ref);
	th_server_cleanup(&ts);
}
END_TEST

/* ---- suite ------------------------------------------------------------ */

Suite *suite_rpc(void);
Suite *suite_rpc(void)
{
	Suite *s = suite_create("rpc");
	TCase *tf = tcase_create("fake");
	TCase *ts = tcase_create("server");

	tcase_set_timeout(tf, 30);
	tcase_add_test(tf, test_fake_sync_basic);
	tcase_add_test(tf, test_fake_write_bulk);
	tcase_add_test(tf, test_fake_pipelined_reads);
	tcase_add_test(tf, test_fake_sync_threads);
	tcase_add_test(tf, test_fake_timeout);
	tcase_add_test(tf, test_fake_conn_death);
	tcase_add_test(tf, test_fake_free_fails_pending);
	tcase_add_test(tf, test_fake_notify);
	tcase_add_test(tf, test_fake_keepalive);
	tcase_add_test(tf, test_fake_no_alloc_steady);
	suite_add_tcase(s, tf);
	tcase_set_timeout(ts, 60);
	tcase_add_test(ts, test_srv_connect);
	tcase_add_test(ts, test_srv_subdir_and_names);
	tcase_add_test(ts, test_srv_ipv6);
	tcase_add_test(ts, test_srv_errors);
	tcase_add_test(ts, test_srv_dual_stack);
	tcase_add_test(ts, test_srv_key_changed);
	tcase_add_test(ts, test_srv_psk_mismatch);
	tcase_add_test(ts, test_srv_conn_refused);
	tcase_add_test(ts, test_srv_pipelined_reads);
	tcase_add_test(ts, test_srv_sync_threads);
	tcase_add_test(ts, test_srv_stopped_timeout);
	tcase_add_test(ts, test_srv_killed_midstream);
	suite_add_tcase(s, ts);
	return s;
}
