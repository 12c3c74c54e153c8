/* stream.c - the write-behind stream (stream.h). */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "op.h"
#include "stream.h"
#include "util.h"
#include "wire.h"

/* One request in the stream, until its callback ran. */
struct sreq {
	struct kb_stream *st;
	struct sreq *next; /* st->lock: in the queue, not yet sent */
	uint64_t ticket;   /* order of submission (never reset) */
	uint64_t gen;      /* session generation it was sent in */
	uint64_t basis;    /* session generation its ids belong to */
	size_t bytes;
	uint32_t op;
	kb_Request *req;  /* the caller's while it waits (sync, or in submit), else copy */
	const void *bulk; /* the caller's, valid until cb ran */
	size_t bulk_len;
	kb_rpc_cb cb;
	void *arg;
	/* kb_stream_call: the caller waits and owns this */
	bool sync;
	kb_rpc_take_fn take;
	void *take_arg;
	struct kb_rpc_result *res; /* kb_stream_call_res: gets the frame */
	bool sync_done;            /* lock */
	int sync_status;
	kb_Request *copy; /* owned: an async request's, made when it queues */
};

/* A COMPOUND in flight: its parts, in order, and its bulk. */
struct cpd {
	unsigned n;
	struct sreq *part[KB_WIRE_COMPOUND_MAX];
	uint8_t *buf; /* owned: the parts' plaintexts, kept for a re-send */
	size_t len, cap;
	kb_Response resp; /* a part's reply, decoded (receiver thread) */
};

struct kb_stream {
	struct kb_rpc *r; /* not owned */
	unsigned max_ops;
	size_t max_bytes;
	int timeout_ms;
	pthread_t sender; /* sends what queued up, in order */
	bool started;
	/* The thread that holds `busy` alone (the sender thread, or a
	 * submitter sending its request at once): */
	uint64_t gen;              /* session generation the positions belong to */
	uint64_t seq;              /* last position given in gen */
	uint64_t part_id;          /* last COMPOUND part id given (never reset) */
	pthread_mutex_t lock;      /* the fields below */
	pthread_cond_t cond;       /* monotonic: a request was answered */
	pthread_cond_t wake;       /* the queue got a request, or stop */
	struct sreq *head, **tail; /* submitted, not yet sent (owned) */
	bool busy;                 /* a thread numbers and sends */
	bool stopping;             /* kb_stream_stop: nothing more goes out */
	atomic_bool halt;          /* stopping, for the sender's waits (no lock) */
	uint64_t ticket;           /* last ticket given */
	uint8_t *done;             /* owned ring of KB_STREAM_MAX_OPS: ticket answered */
	uint64_t low;              /* every ticket <= low is answered */
	unsigned pending;
	size_t bytes;
	int first_err; /* since the last drain */
	struct kb_stream_stats stats;
};

static void *sender_main(void *arg);

int kb_stream_new(struct kb_stream **out, struct kb_rpc *r, unsigned max_ops, size_t max_bytes,
		  int timeout_ms)
{
	struct kb_stream *st = calloc(1, sizeof(*st));
	pthread_condattr_t ca;

	if (!st || !(st->done = calloc(KB_STREAM_MAX_OPS, 1))) {
		free(st);
		return -ENOMEM;
	}
	st->r = r;
	st->max_ops = max_ops && max_ops < KB_STREAM_MAX_OPS ? max_ops : KB_STREAM_MAX_OPS - 1;
	st->max_bytes = max_bytes ? max_bytes : 32u << 20;
	st->timeout_ms = timeout_ms > 0 ? timeout_ms : 30000;
	st->gen = UINT64_MAX; /* numbering starts at the first send */
	st->tail = &st->head;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_mutex_init(&st->lock, NULL);
	pthread_cond_init(&st->cond, &ca);
	pthread_cond_init(&st->wake, NULL);
	pthread_condattr_destroy(&ca);
	if (pthread_create(&st->sender, NULL, sender_main, st)) {
		kb_stream_free(st);
		return -EAGAIN;
	}
	st->started = true;
	*out = st;
	return 0;
}

void kb_stream_stop(struct kb_stream *st)
{
	if (!st || !st->started)
		return;
	pthread_mutex_lock(&st->lock);
	st->stopping = true;
	atomic_store(&st->halt, true);
	pthread_cond_signal(&st->wake);
	pthread_mutex_unlock(&st->lock);
	pthread_join(st->sender, NULL);
	st->started = false;
}

void kb_stream_free(struct kb_stream *st)
{
	if (!st)
		return;
	kb_stream_stop(st);
	pthread_cond_destroy(&st->wake);
	pthread_cond_destroy(&st->cond);
	pthread_mutex_destroy(&st->lock);
	free(st->done);
	free(st);
}

static struct timespec abs_ts(uint64_t ns)
{
	return (struct timespec){.tv_sec = (time_t)(ns / 1000000000u),
				 .tv_nsec = (long)(ns % 1000000000u)};
}

/* Lock held: ticket t answered with status. */
static void mark_done(struct kb_stream *st, struct sreq *q, int status)
{
	st->done[q->ticket % KB_STREAM_MAX_OPS] = 1;
	while (st->low < st->ticket && st->done[(st->low + 1) % KB_STREAM_MAX_OPS]) {
		st->low++;
		st->done[st->low % KB_STREAM_MAX_OPS] = 0;
	}
	st->pending--;
	st->bytes -= q->bytes;
	if (status) {
		st->stats.failed++;
		st->stats.last_err = status;
		st->stats.last_err_op = q->op;
		st->stats.last_err_time = (int64_t)time(NULL);
		if (!st->first_err)
			st->first_err = status;
	}
	pthread_cond_broadcast(&st->cond);
}

/* Requests whose failure loses nothing (a handle or lookup count given
 * back, a lease returned): not the stream's errors. A RELEASE of a file
 * whose queued CREATE failed gets EBADF; the CREATE's error was told. */
static bool quiet_op(uint32_t op)
{
	return op == kb_Op_RELEASE || op == kb_Op_RELEASEDIR || op == kb_Op_FORGET ||
	       op == kb_Op_LEASE_RETURN;
}

static void on_reply(void *arg, int status, struct kb_rpc_result *res)
{
	struct sreq *q = arg;
	struct kb_stream *st = q->st;
	bool moved, stale;

	if (q->take && res)
		q->take(q->take_arg, &res->resp, res->bulk, res->bulk_len);
	if (q->res && res) { /* the frame is the caller's now (one reference more) */
		q->res->resp = res->resp;
		q->res->frame = res->frame ? kb_buf_ref(res->frame) : NULL;
		q->res->bulk = res->bulk;
		q->res->bulk_len = res->bulk_len;
	}
	if (q->cb)
		q->cb(q->arg, status, res);
	pthread_mutex_lock(&st->lock);
	/* not an error of the stream: a synchronous call's (its caller has
	 * it), one whose failure loses nothing, or one that did not run
	 * because another session began and that its caller sends again */
	moved = kb_rpc_gen(st->r) != q->gen;
	stale = ((status == -ESTALE || status == -EBADF) &&
		 /* or sent with ids of an older session than the one it went to */
		 (moved || q->basis != q->gen)) ||
		/* attributes set to absolute values, lost with the session: the
		 * mount logs it (its kernel sets them again at the next flush) */
		(moved && status == -EIO && q->op == kb_Op_SETATTR);
	mark_done(st, q, q->sync || quiet_op(q->op) || stale ? 0 : status);
	if (q->sync) { /* a kb_stream_call: its caller owns q */
		q->sync_done = true;
		q->sync_status = status;
		pthread_mutex_unlock(&st->lock);
		return;
	}
	pthread_mutex_unlock(&st->lock);
	free(q->copy);
	free(q);
}

/* Lock held: wait for room (backpressure). */
static int wait_room(struct kb_stream *st, size_t bytes)
{
	uint64_t deadline = kb_now_ns() + (uint64_t)st->timeout_ms * 1000000u;

	while (st->pending >= st->max_ops || (st->pending && st->bytes + bytes > st->max_bytes)) {
		struct timespec ts = abs_ts(deadline);

		if (pthread_cond_timedwait(&st->cond, &st->lock, &ts) == ETIMEDOUT)
			return -ETIMEDOUT;
	}
	return 0;
}

#define KB_STREAM_SLICE_NS 100000000ull /* a stop waits for a send at most this */

/* Submit in session gen, waiting for a slot (or the connection) until
 * deadline, in slices: a stop is not kept waiting. */
static int submit_until(struct kb_stream *st, uint64_t gen, kb_Request *req, const void *bulk,
			size_t len, kb_rpc_cb cb, void *arg, uint64_t deadline)
{
	for (;;) {
		uint64_t until = KB_MIN(deadline, kb_now_ns() + KB_STREAM_SLICE_NS);
		int ret = kb_rpc_submit_gen_until(st->r, gen, req, bulk, len, 0, cb, arg, until);

		if ((ret != -ETIMEDOUT && ret != -ENOTCONN) || kb_now_ns() >= deadline)
			return ret;
		if (atomic_load(&st->halt))
			return -ESHUTDOWN;
	}
}

/* Lock held: q into the queue, at its end or (front) its head; an
 * asynchronous one with a copy of its request (its caller's goes when
 * submit returns). -ENOMEM: not queued. */
static int enqueue(struct kb_stream *st, struct sreq *q, bool front)
{
	if (!q->sync && !q->copy) {
		if (!(q->copy = malloc(sizeof(*q->copy))))
			return -ENOMEM;
		*q->copy = *q->req;
		q->req = q->copy;
	}
	if (front) {
		q->next = st->head;
		st->head = q;
		if (!q->next)
			st->tail = &q->next;
	} else {
		q->next = NULL;
		*st->tail = q;
		st->tail = &q->next;
	}
	pthread_cond_signal(&st->wake);
	return 0;
}

/* busy held: the session generation to number in now (a new session's
 * stream starts at position 1). */
static uint64_t session_now(struct kb_stream *st)
{
	uint64_t gen = kb_rpc_gen(st->r);

	if (gen != st->gen) {
		st->gen = gen;
		st->seq = 0;
	}
	return gen;
}

/* busy held: q is position pos of session gen. */
static void number(struct sreq *q, uint64_t gen, uint64_t pos)
{
	q->req->seq = pos;
	q->gen = gen;
	if (q->basis == KB_STREAM_NOW)
		q->basis = gen;
}

/* busy held, the queue empty: send q now if connection 0 has a free
 * slot in the current session; -EAGAIN: not now (the sender thread will
 * wait for one). */
static int send_now(struct kb_stream *st, struct sreq *q)
{
	uint64_t gen = session_now(st);
	int ret;

	number(q, gen, st->seq + 1);
	ret = kb_rpc_submit_gen_until(st->r, gen, q->req, q->bulk, q->bulk_len, 0, on_reply, q,
				      kb_now_ns());
	if (!ret)
		st->seq++;
	return ret == -ESTALE || ret == -ETIMEDOUT || ret == -ENOTCONN ? -EAGAIN : ret;
}

/* Count q in and send it: at once when nothing is queued before it and
 * the window has room (no thread handoff), else through the queue. cb
 * runs for it, once. */
static int submit(struct kb_stream *st, struct sreq *q)
{
	bool now;
	int ret;

	q->st = st;
	q->bytes = q->bulk_len;
	q->op = q->req->op;
	pthread_mutex_lock(&st->lock);
	ret = st->stopping ? -ESHUTDOWN : wait_room(st, q->bytes);
	if (ret) {
		pthread_mutex_unlock(&st->lock);
		return ret;
	}
	q->ticket = ++st->ticket; /* counted before it is sent: its reply may come at once */
	st->pending++;
	st->bytes += q->bytes;
	st->stats.sent++;
	if (st->pending > st->stats.max_pending)
		st->stats.max_pending = st->pending;
	now = !st->busy && !st->head;
	st->busy |= now;
	if (!now)
		ret = enqueue(st, q, false);
	pthread_mutex_unlock(&st->lock);
	if (!now) {
		if (ret)
			on_reply(q, ret, NULL);
		return 0;
	}
	ret = send_now(st, q);
	pthread_mutex_lock(&st->lock);
	if (!ret)
		st->stats.frames++;
	if (ret == -EAGAIN && st->stopping)
		ret = -ESHUTDOWN;
	else if (ret == -EAGAIN && enqueue(st, q, true)) /* before what queued meanwhile */
		ret = -ENOMEM;
	st->busy = false;
	pthread_cond_signal(&st->wake); /* the sender: its turn, if anything queued */
	pthread_mutex_unlock(&st->lock);
	if (ret && ret != -EAGAIN)
		on_reply(q, ret, NULL);
	return 0;
}

int kb_stream_submit_basis(struct kb_stream *st, uint64_t basis, kb_Request *req, const void *bulk,
			   size_t bulk_len, kb_rpc_cb cb, void *arg)
{
	struct sreq *q = malloc(sizeof(*q));
	int ret;

	if (!q)
		return -ENOMEM;
	*q = (struct sreq){
		.basis = basis, .bulk = bulk, .bulk_len = bulk_len, .cb = cb, .arg = arg};
	q->req = req;
	ret = submit(st, q);
	if (ret)
		free(q);
	return ret;
}

int kb_stream_submit(struct kb_stream *st, kb_Request *req, const void *bulk, size_t bulk_len,
		     kb_rpc_cb cb, void *arg)
{
	return kb_stream_submit_basis(st, KB_STREAM_NOW, req, bulk, bulk_len, cb, arg);
}

static void take_none(void *arg, const kb_Response *resp, const uint8_t *bulk, size_t len)
{
	(void)arg;
	(void)resp;
	(void)bulk;
	(void)len;
}

/* A synchronous call: q (the caller's) queued, waited for. */
static int call(struct kb_stream *st, struct sreq *q)
{
	int ret = submit(st, q);

	if (ret)
		return ret;
	pthread_mutex_lock(&st->lock);
	while (!q->sync_done) /* the rpc's deadline bounds this */
		pthread_cond_wait(&st->cond, &st->lock);
	pthread_mutex_unlock(&st->lock);
	return q->sync_status;
}

int kb_stream_call(struct kb_stream *st, kb_Request *req, const void *bulk, size_t bulk_len,
		   kb_rpc_take_fn take, void *arg)
{
	struct sreq q = {.sync = true,
			 .take = take ? take : take_none,
			 .take_arg = arg,
			 .req = req,
			 .bulk = bulk,
			 .bulk_len = bulk_len,
			 .basis = KB_STREAM_NOW};

	return call(st, &q);
}

int kb_stream_call_res(struct kb_stream *st, kb_Request *req, const void *bulk, size_t bulk_len,
		       struct kb_rpc_result *res)
{
	struct sreq q = {.sync = true,
			 .take = take_none,
			 .res = res,
			 .req = req,
			 .bulk = bulk,
			 .bulk_len = bulk_len,
			 .basis = KB_STREAM_NOW};

	kb_rpc_result_reset(res);
	return call(st, &q);
}

/* ---- COMPOUND: queued requests in one frame --------------------------- */

/* Parts: asynchronous requests with a small bulk and none in their reply
 * (a READ of a file in the stream goes alone, as a synchronous call:
 * its caller may want a bulk reply). The server checks the same. */
#define KB_STREAM_PART_BULK (16u << 10)
#define KB_STREAM_CPD_BULK (256u << 10) /* their bulk in one COMPOUND */
#define KB_STREAM_PART_ID (1ull << 63)  /* parts' ids: the rpc's never have it */

static bool part_ok(const struct sreq *q)
{
	return !q->sync && q->bulk_len <= KB_STREAM_PART_BULK &&
	       !(kb_op_props(q->op) & (KB_OP_BULK_OUT | KB_OP_FIRST | KB_OP_PUSH)) &&
	       q->op != kb_Op_BYE && q->op != kb_Op_COMPOUND;
}

/* A part's status when the whole COMPOUND failed: what the request alone
 * would have got. In a new session the rpc says ESTALE (the COMPOUND is
 * safe to repeat); only parts safe to repeat say so too, the others'
 * outcome is unknown. */
static int part_fail(const struct sreq *q, int status)
{
	return status == -ESTALE && !kb_op_is(q->op, KB_OP_IDEMPOTENT) ? -EIO : status;
}

/* The reply to a COMPOUND: each part's own reply to its callback. */
static void cpd_done(void *arg, int status, struct kb_rpc_result *res)
{
	struct cpd *c = arg;
	const uint8_t *p = status == 0 && res ? res->bulk : NULL, *pt;
	size_t left = p ? res->bulk_len : 0, len;
	bool ok = p; /* the replies so far decoded */

	for (unsigned i = 0; i < c->n; i++) {
		struct kb_rpc_result part = {.frame = res ? res->frame : NULL};
		int st = status ? part_fail(c->part[i], status) : -EIO;

		/* short or malformed: this one and the rest are unknown (EIO) */
		ok = ok && kb_wire_part_next(&p, &left, &pt, &len) > 0 &&
		     !kb_wire_decode_resp(pt, len, &c->resp, &part.bulk, &part.bulk_len) &&
		     c->resp.id == c->part[i]->req->id;
		if (ok) {
			part.resp = c->resp;
			st = part.resp.err == kb_Err_OK ? 0 : kb_wire_err_to_errno(part.resp.err);
		}
		on_reply(c->part[i], st, st || !ok ? NULL : &part);
	}
	free(c->buf);
	free(c);
}

/* Append q's plaintext to c: [u32 len][header][bulk]. */
static int cpd_put(struct cpd *c, struct sreq *q)
{
	size_t hl = kb_wire_req_size(q->req), need = KB_WIRE_LEN + hl + q->bulk_len;
	uint8_t *at;

	if (c->len + need > c->cap) {
		size_t cap = KB_MAX(c->len + need, 2 * c->cap);
		uint8_t *nb = realloc(c->buf, cap);

		if (!nb)
			return -ENOMEM;
		c->buf = nb;
		c->cap = cap;
	}
	at = c->buf + c->len;
	if (kb_wire_encode_req(at + KB_WIRE_LEN, hl, q->req, &hl))
		return -EIO;
	if (q->bulk_len) /* a small write's bytes: the one copy a part costs */
		memcpy(at + KB_WIRE_LEN + hl, q->bulk, q->bulk_len);
	kb_put_be32(at, (uint32_t)(hl + q->bulk_len));
	c->len += KB_WIRE_LEN + hl + q->bulk_len;
	c->part[c->n++] = q;
	return 0;
}

/* Number b[0..n) in session gen after the positions given so far, into
 * c's plaintext. */
static int cpd_build(struct kb_stream *st, struct cpd *c, struct sreq **b, unsigned n, uint64_t gen)
{
	int ret = 0;

	c->n = 0;
	c->len = 0;
	for (unsigned i = 0; i < n && !ret; i++) {
		number(b[i], gen, st->seq + 1 + i);
		b[i]->req->id = KB_STREAM_PART_ID | ++st->part_id;
		ret = cpd_put(c, b[i]);
	}
	return ret;
}

/* One try to send b[0..n) in the current session: alone, or (c) as one
 * COMPOUND. */
static int send_try(struct kb_stream *st, struct sreq **b, unsigned n, struct cpd *c,
		    uint64_t deadline)
{
	kb_Request req = {.op = kb_Op_COMPOUND};
	uint64_t gen = session_now(st);
	int ret;

	if (!c) {
		number(b[0], gen, st->seq + 1);
		ret = submit_until(st, gen, b[0]->req, b[0]->bulk, b[0]->bulk_len, on_reply, b[0],
				   deadline);
	} else {
		ret = cpd_build(st, c, b, n, gen);
		if (!ret)
			ret = submit_until(st, gen, &req, c->buf, c->len, cpd_done, c, deadline);
	}
	if (!ret)
		st->seq += n;
	return ret;
}

/* The sender: send b[0..n), taken from the queue in order, alone (n == 1)
 * or as one COMPOUND, or fail each: that failure. The rpc refuses it
 * (-ESTALE) while connection 0 is not yet in the session kb_rpc_gen
 * names: a new session is being made (the mount learns of it before
 * kb_rpc_gen moves), or connection 0 has yet to find the old one gone.
 * Both end within the timeout: wait for that. */
static int send_batch(struct kb_stream *st, struct sreq **b, unsigned n)
{
	uint64_t deadline = kb_now_ns() + (uint64_t)st->timeout_ms * 1000000u;
	struct cpd *c = n > 1 ? calloc(1, sizeof(*c)) : NULL;
	uint32_t ops[KB_WIRE_COMPOUND_MAX];
	unsigned nap_us = 500;
	int ret = -ENOMEM;

	for (unsigned i = 0; i < n; i++)
		ops[i] = b[i]->op;
	if (n > 1 && !c)
		goto fail;
	for (;;) {
		uint64_t gen = kb_rpc_gen(st->r);

		ret = send_try(st, b, n, c, deadline);
		if (!ret && c) /* the rpc counted the COMPOUND; b[i] may be freed by now */
			for (unsigned i = 0; i < n; i++)
				kb_rpc_count_op(st->r, ops[i]);
		if (!ret)
			return 0;
		if (ret != -ESTALE || kb_now_ns() > deadline)
			break;
		if (kb_rpc_gen(st->r) == gen) {
			usleep(nap_us);
			nap_us = KB_MIN(nap_us * 2, 50000u);
		}
	}
	if (c)
		free(c->buf);
	free(c);
fail:
	for (unsigned i = 0; i < n; i++)
		on_reply(b[i], n > 1 ? part_fail(b[i], ret) : ret, NULL);
	return ret;
}

/* Lock held: fail what is queued (the link stayed down for the whole
 * timeout: each would wait as long again behind it). */
static void fail_queue(struct kb_stream *st, int err)
{
	while (st->head) {
		struct sreq *q = st->head;

		st->head = q->next;
		if (!st->head)
			st->tail = &st->head;
		pthread_mutex_unlock(&st->lock);
		on_reply(q, err, NULL);
		pthread_mutex_lock(&st->lock);
	}
}

/* Lock held: the next requests to send, in order: one, or as many parts
 * as one COMPOUND takes when the server has it. */
static unsigned take_batch(struct kb_stream *st, struct sreq **b, bool cpd)
{
	size_t bulk = 0;
	unsigned n = 0;

	while (st->head && n < KB_WIRE_COMPOUND_MAX) {
		struct sreq *q = st->head;
		bool part = cpd && part_ok(q);

		if (n && (!part || bulk + q->bulk_len > KB_STREAM_CPD_BULK))
			break;
		st->head = q->next;
		if (!st->head)
			st->tail = &st->head;
		b[n++] = q;
		bulk += q->bulk_len;
		if (!part)
			break;
	}
	return n;
}

/* The sender thread: what is queued goes out at once, in order; what
 * queued up while it sent (the connection's window full) goes out as
 * one COMPOUND. At stop, what was never sent fails. */
static void *sender_main(void *arg)
{
	struct kb_stream *st = arg;
	struct sreq *b[KB_WIRE_COMPOUND_MAX];

	pthread_mutex_lock(&st->lock);
	for (;;) {
		bool cpd = kb_rpc_features(st->r) & kb_Features_FEATURE_COMPOUND, stop;
		unsigned n;
		int ret = 0;

		while ((!st->head || st->busy) && !st->stopping)
			pthread_cond_wait(&st->wake, &st->lock);
		while (st->busy) /* stopping: a submitter sends; it signals when done */
			pthread_cond_wait(&st->wake, &st->lock);
		if (!st->head)
			break;
		stop = st->stopping;
		n = take_batch(st, b, cpd && !stop);
		st->stats.frames++;
		if (n > 1)
			st->stats.compounds++;
		st->busy = true;
		pthread_mutex_unlock(&st->lock);
		if (stop)
			on_reply(b[0], -ESHUTDOWN, NULL);
		else
			ret = send_batch(st, b, n);
		pthread_mutex_lock(&st->lock);
		if (ret == -ETIMEDOUT || ret == -ESHUTDOWN)
			fail_queue(st, ret);
		st->busy = false;
	}
	pthread_mutex_unlock(&st->lock);
	return NULL;
}

/* Lock held: wait until every ticket given so far is answered. */
static int wait_all(struct kb_stream *st, int timeout_ms)
{
	uint64_t deadline = kb_now_ns() + (uint64_t)timeout_ms * 1000000u;
	uint64_t mark = st->ticket;

	while (st->low < mark) {
		struct timespec ts = abs_ts(deadline);

		if (pthread_cond_timedwait(&st->cond, &st->lock, &ts) == ETIMEDOUT)
			return -ETIMEDOUT;
	}
	return 0;
}

int kb_stream_wait(struct kb_stream *st, int timeout_ms)
{
	int ret;

	pthread_mutex_lock(&st->lock);
	ret = wait_all(st, timeout_ms);
	pthread_mutex_unlock(&st->lock);
	return ret;
}

int kb_stream_drain(struct kb_stream *st, int timeout_ms)
{
	int ret;

	pthread_mutex_lock(&st->lock);
	ret = wait_all(st, timeout_ms);
	if (!ret) {
		ret = st->first_err;
		st->first_err = 0;
	}
	pthread_mutex_unlock(&st->lock);
	return ret;
}

unsigned kb_stream_pending(struct kb_stream *st)
{
	unsigned n;

	pthread_mutex_lock(&st->lock);
	n = st->pending;
	pthread_mutex_unlock(&st->lock);
	return n;
}

void kb_stream_stats(struct kb_stream *st, struct kb_stream_stats *out)
{
	pthread_mutex_lock(&st->lock);
	*out = st->stats;
	out->pending = st->pending;
	out->pending_bytes = st->bytes;
	pthread_mutex_unlock(&st->lock);
}
