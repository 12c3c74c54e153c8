/* stream.c - the write-behind stream (stream.h). */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "stream.h"
#include "util.h"

/* One request in the stream, until its callback ran. */
struct sreq {
	struct kb_stream *st;
	uint64_t ticket; /* order of submission (never reset) */
	uint64_t gen;    /* session generation it was sent in */
	uint64_t basis;  /* session generation its ids belong to */
	size_t bytes;
	uint32_t op;
	kb_rpc_cb cb;
	void *arg;
	/* kb_stream_call: the caller waits and owns this */
	bool sync;
	kb_rpc_take_fn take;
	void *take_arg;
	struct kb_rpc_result *res; /* kb_stream_call_res: gets the frame */
	bool sync_done;            /* lock */
	int sync_status;
};

struct kb_stream {
	struct kb_rpc *r; /* not owned */
	unsigned max_ops;
	size_t max_bytes;
	int timeout_ms;
	/* send_lock: held across numbering and sending one request, so that
	 * positions go out in order; it may wait for a free rpc slot, so the
	 * completions never take it. Order: send_lock, then lock. */
	pthread_mutex_t send_lock;
	uint64_t gen;         /* send_lock: session generation the positions belong to */
	uint64_t seq;         /* send_lock: last position given in gen */
	pthread_mutex_t lock; /* the fields below */
	pthread_cond_t cond;  /* monotonic: a request was answered */
	uint64_t ticket;      /* last ticket given */
	uint8_t *done;        /* owned ring of KB_STREAM_MAX_OPS: ticket answered */
	uint64_t low;         /* every ticket <= low is answered */
	unsigned pending;
	size_t bytes;
	int first_err; /* since the last drain */
	struct kb_stream_stats stats;
};

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
	st->gen = UINT64_MAX; /* numbering starts at the first submit */
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_mutex_init(&st->send_lock, NULL);
	pthread_mutex_init(&st->lock, NULL);
	pthread_cond_init(&st->cond, &ca);
	pthread_condattr_destroy(&ca);
	*out = st;
	return 0;
}

void kb_stream_free(struct kb_stream *st)
{
	if (!st)
		return;
	pthread_cond_destroy(&st->cond);
	pthread_mutex_destroy(&st->lock);
	pthread_mutex_destroy(&st->send_lock);
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

/* send_lock held: number req in the current session and send it. The
 * rpc refuses it (-ESTALE) while connection 0 is not yet in the session
 * kb_rpc_gen names: a new session is being made (the mount learns of it
 * before kb_rpc_gen moves), or connection 0 has yet to find the old one
 * gone. Both end within the timeout: wait for that. */
static int send_locked(struct kb_stream *st, kb_Request *req, const void *bulk, size_t len,
		       struct sreq *q)
{
	uint64_t deadline = kb_now_ns() + (uint64_t)st->timeout_ms * 1000000u;
	unsigned nap_us = 500;
	int ret = -ESTALE;

	for (;;) {
		uint64_t gen = kb_rpc_gen(st->r);

		if (gen != st->gen) { /* a new session: its stream starts at 1 */
			st->gen = gen;
			st->seq = 0;
		}
		req->seq = st->seq + 1;
		q->gen = gen;
		if (q->basis == KB_STREAM_NOW)
			q->basis = gen;
		ret = kb_rpc_submit_gen(st->r, gen, req, bulk, len, 0, on_reply, q);
		if (!ret)
			st->seq++;
		if (ret != -ESTALE || kb_now_ns() > deadline)
			return ret;
		if (kb_rpc_gen(st->r) == gen) {
			usleep(nap_us);
			nap_us = KB_MIN(nap_us * 2, 50000u);
		}
	}
}

static int submit(struct kb_stream *st, kb_Request *req, const void *bulk, size_t len,
		  struct sreq *q)
{
	int ret;

	q->st = st;
	q->bytes = len;
	q->op = req->op;
	pthread_mutex_lock(&st->send_lock);
	pthread_mutex_lock(&st->lock);
	ret = wait_room(st, len);
	if (!ret) { /* counted before it is sent: its reply may come at once */
		q->ticket = ++st->ticket;
		st->pending++;
		st->bytes += len;
		st->stats.sent++;
		if (st->pending > st->stats.max_pending)
			st->stats.max_pending = st->pending;
	}
	pthread_mutex_unlock(&st->lock);
	if (!ret)
		ret = send_locked(st, req, bulk, len, q);
	pthread_mutex_unlock(&st->send_lock);
	if (ret && q->ticket) { /* never sent: out of the count, not an error of the stream */
		pthread_mutex_lock(&st->lock);
		st->stats.sent--;
		mark_done(st, q, 0);
		pthread_mutex_unlock(&st->lock);
	}
	return ret;
}

int kb_stream_submit_basis(struct kb_stream *st, uint64_t basis, kb_Request *req, const void *bulk,
			   size_t bulk_len, kb_rpc_cb cb, void *arg)
{
	struct sreq *q = calloc(1, sizeof(*q));
	int ret;

	if (!q)
		return -ENOMEM;
	q->basis = basis;
	q->cb = cb;
	q->arg = arg;
	ret = submit(st, req, bulk, bulk_len, q);
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

int kb_stream_call(struct kb_stream *st, kb_Request *req, const void *bulk, size_t bulk_len,
		   kb_rpc_take_fn take, void *arg)
{
	struct sreq q = {.sync = true, .take = take ? take : take_none, .take_arg = arg};
	int ret = submit(st, req, bulk, bulk_len, &q);

	if (ret)
		return ret;
	pthread_mutex_lock(&st->lock);
	while (!q.sync_done) /* the rpc's deadline bounds this */
		pthread_cond_wait(&st->cond, &st->lock);
	pthread_mutex_unlock(&st->lock);
	return q.sync_status;
}

int kb_stream_call_res(struct kb_stream *st, kb_Request *req, const void *bulk, size_t bulk_len,
		       struct kb_rpc_result *res)
{
	struct sreq q = {.sync = true, .take = take_none, .res = res};
	int ret;

	kb_rpc_result_reset(res);
	ret = submit(st, req, bulk, bulk_len, &q);
	if (ret)
		return ret;
	pthread_mutex_lock(&st->lock);
	while (!q.sync_done)
		pthread_cond_wait(&st->cond, &st->lock);
	pthread_mutex_unlock(&st->lock);
	return q.sync_status;
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
