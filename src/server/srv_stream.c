/* srv_stream.c - the session's ordered write-behind stream (PROTOCOL.md,
 * "Write-behind").
 *
 * A client that answers namespace and attribute changes itself sends them
 * with Request.seq = 1, 2, 3, ... and does not wait for the replies. The
 * server runs them in that order, whatever connection or thread each
 * arrives on: a request whose turn has not come waits (a re-sent request
 * after a reconnect may overtake the one before it), bounded by
 * KB_SRV_STREAM_WAIT_MS; past that the missing positions are given up
 * (answered ETIMEDOUT when they arrive) so the stream moves on and is
 * never reordered. A position already run is a duplicate: one that only
 * reads runs again; any other is answered with the status and the
 * Response.value it had (a WRITE's count: without it the copy would read
 * as a short write); the reply cache answers first while it still holds
 * the whole reply.
 */
#include <errno.h>
#include <stdlib.h>

#include "op.h"
#include "srv_impl.h"
#include "util.h"

void kb_srv_stream_init(struct kb_srv_stream *st)
{
	pthread_condattr_t ca;

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_mutex_init(&st->lock, NULL);
	pthread_cond_init(&st->cond, &ca);
	pthread_condattr_destroy(&ca);
	st->next = 1;
	st->busy = false;
	st->ring = NULL;
}

void kb_srv_stream_destroy(struct kb_srv_stream *st)
{
	free(st->ring);
	st->ring = NULL;
	pthread_cond_destroy(&st->cond);
	pthread_mutex_destroy(&st->lock);
}

/* Lock held: the status (and value) position seq had, -EIO when no
 * longer known. */
static int ring_get(const struct kb_srv_stream *st, uint64_t seq, uint64_t *value)
{
	const struct kb_srv_stream_ent *e;

	*value = 0;
	if (!st->ring)
		return -EIO;
	e = &st->ring[seq % KB_SRV_STREAM_RING];
	if (e->seq != seq)
		return -EIO;
	*value = e->value;
	return e->err;
}

/* Lock held. */
static void ring_put(struct kb_srv_stream *st, uint64_t seq, int err, uint64_t value)
{
	if (!st->ring)
		st->ring = calloc(KB_SRV_STREAM_RING, sizeof(*st->ring));
	if (st->ring)
		st->ring[seq % KB_SRV_STREAM_RING] = (struct kb_srv_stream_ent){seq, err, value};
}

/* Lock held: give up the positions before seq (they never came). */
static void skip_to(struct kb_srv_stream *st, uint64_t seq)
{
	for (uint64_t s = st->next; s < seq; s++)
		ring_put(st, s, -ETIMEDOUT, 0);
	st->next = seq;
}

/* A duplicate runs again only when its reply carries what it read (a
 * GETATTR, a READ): running it twice changes nothing. Others (a WRITE, a
 * RELEASE whose handle is gone by now) get the status they had. */
static bool run_again(uint32_t op)
{
	switch (op) {
	case kb_Op_RELEASE:
	case kb_Op_RELEASEDIR:
	case kb_Op_FLUSH:
	case kb_Op_FSYNC:
	case kb_Op_FSYNCDIR:
	case kb_Op_LEASE_RETURN:
	case kb_Op_SYNCFS: return false;
	default: return kb_op_is(op, KB_OP_IDEMPOTENT) && !kb_op_is(op, KB_OP_MUTATING);
	}
}

int kb_srv_stream_begin(struct kb_srv_stream *st, uint64_t seq, uint32_t op, int *status,
			uint64_t *value)
{
	uint64_t deadline = kb_now_ns() + KB_SRV_STREAM_WAIT_MS * 1000000ull;
	bool skipped = false;
	int ret = 0;

	pthread_mutex_lock(&st->lock);
	if (seq >= st->next + KB_SRV_STREAM_RING) {
		ret = -EINVAL; /* further ahead than any client may be */
		goto out;
	}
	while (seq > st->next || (seq == st->next && st->busy)) {
		struct timespec ts = kb_srv_ts(deadline);

		if (pthread_cond_timedwait(&st->cond, &st->lock, &ts) != ETIMEDOUT)
			continue;
		if (st->busy) /* the one before runs (a slow fsync): it ends */
			deadline = kb_now_ns() + KB_SRV_STREAM_WAIT_MS * 1000000ull;
		else if (seq > st->next) {
			skip_to(st, seq);
			skipped = true;
		}
	}
	if (seq < st->next) {
		ret = run_again(op) ? 2 : 1; /* 2: run it again, out of the order */
		*value = 0;
		*status = ret == 1 ? ring_get(st, seq, value) : 0;
		goto out;
	}
	st->busy = true; /* its turn */
	ret = skipped ? 3 : 0;
out:
	pthread_mutex_unlock(&st->lock);
	return ret;
}

void kb_srv_stream_done(struct kb_srv_stream *st, uint64_t seq, int status, uint64_t value)
{
	pthread_mutex_lock(&st->lock);
	ring_put(st, seq, status, value);
	if (seq == st->next) {
		st->next++;
		st->busy = false;
	}
	pthread_cond_broadcast(&st->cond);
	pthread_mutex_unlock(&st->lock);
}
