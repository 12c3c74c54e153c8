/* rpc.c - the protocol client: pipelined requests over a pool of channels.
 *
 * Design
 * ------
 * Session. kb_rpc_new (rpc_conn.c) resolves the host (getaddrinfo: name,
 * IPv4, IPv6), connects `conns` TCP connections with a deadline (net.c) and
 * runs kb_chan_handshake on each as initiator; the verify callback accepts
 * the server's static key only when it is in cfg->trust (kb_keyset_match).
 * Connection 0 sends HELLO{version, path} and gets the session token, the
 * root entry and read_only; the others send ATTACH{token}. Failures become
 * one clear line in err (refused connection, unknown server key with its
 * fingerprint and how to trust it, our key refused, missing directory,
 * timeouts). Each connection is a slot that can be re-established and
 * ATTACHed again by its keeper thread (rpc_keep.c).
 *
 * Requests. Each connection owns a fixed table of KB_RPC_SLOTS pending
 * request slots (no malloc per request). A request id is
 * (sequence << SLOT_BITS | slot index): unique per connection, looked up in
 * O(1), and a late reply to a timed-out request never matches the slot's
 * next user. The header is encoded on the caller's stack and sent with the
 * bulk bytes (WRITE data) by kb_chan_sendv, which encrypts out of place into
 * the channel's own buffer: the data is not copied here.
 *
 * Receiving. One receiver thread per connection: kb_chan_recv_len, a kb_buf
 * from the smallest receive pool that fits (size classes, so a small reply
 * never pins a 4 MiB buffer and a 1 MiB block sits in a ~1 MiB buffer),
 * kb_chan_recv_body decrypts in place there, the id is peeked from the
 * protobuf header, the slot is claimed, and the reply is decoded: straight
 * into the sync caller's kb_rpc_result, or into the connection's scratch
 * Response (receiver-owned, never on a small stack) for async callbacks and
 * result-less calls. The kb_buf reference goes to the caller
 * (kb_rpc_result.frame, bulk points into it): a READ reply's bytes stay
 * where they were decrypted and the block cache replies from them.
 *
 * Completion. A slot is INFLIGHT while in the table; exactly one completer
 * (reply, timeout, connection failure) moves it to CLAIMED under the
 * connection lock and finishes it outside the lock: a sync waiter is woken
 * (DONE; the waiter frees the slot), an async callback runs and the slot is
 * freed after it.
 *
 * Choice and backpressure. conn_hint % conns, or round robin; a connection
 * that is down is skipped. At most KB_RPC_SLOTS requests and
 * KB_RPC_MAX_BYTES bytes (bulk + expected READ data) in flight per
 * connection; callers block until room frees, bounded by the deadline.
 *
 * Timeouts and keepalive. Every request has a deadline (cfg->timeout_ms).
 * A timer thread ticks every KB_RPC_TICK_MS: expired requests fail with
 * -ETIMEDOUT; a connection idle for KB_RPC_KEEPALIVE_MS gets a PING whose
 * round trip lands in kb_rpc_stats.rtt_us. Sends are bounded by
 * SO_SNDTIMEO so a stuck peer cannot hold a sender past its deadline, and
 * TCP_USER_TIMEOUT (2 x timeout) turns a vanished host into a dead
 * connection. A timeout alone does not take a connection down (a slow or
 * stopped server may come back; its late replies are dropped by id).
 *
 * Threads and locks: one receiver per connection, one timer per session,
 * any number of callers. Per-connection lock: slot table, counters, up /
 * ready; session lock: notify callback, timer sleep; never both held. No
 * lock is held while sending, receiving or running a callback. Callbacks
 * run on a receiver (or the timer, or a failing sender) and must not block
 * or make synchronous calls.
 *
 * Failure. A channel error marks the connection down; its pending requests
 * keep their ids and are re-sent once the keeper has reconnected
 * (rpc_keep.c), and callers wait at most until their deadline. Server
 * pushes (id 0, NOTIFY) go to the notify callback. kb_rpc_free shuts every channel down,
 * which fails what is pending with -ENOTCONN, joins the threads and frees
 * the pools (buffers still held by callers outlive it).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "op.h"
#include "rpc_int.h"
#include "util.h"
#include "wire.h"

static struct timespec abs_ts(uint64_t ns)
{
	return (struct timespec){.tv_sec = (time_t)(ns / 1000000000u),
				 .tv_nsec = (long)(ns % 1000000000u)};
}

static int cond_init_mono(pthread_cond_t *cv)
{
	pthread_condattr_t a;
	int rc;

	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	rc = pthread_cond_init(cv, &a);
	pthread_condattr_destroy(&a);
	return -rc;
}

/* ---- results ---------------------------------------------------------- */

struct kb_rpc_result *kb_rpc_result_new(void)
{
	return calloc(1, sizeof(struct kb_rpc_result));
}

void kb_rpc_result_reset(struct kb_rpc_result *res)
{
	if (!res)
		return;
	kb_buf_put(res->frame);
	res->frame = NULL;
	res->bulk = NULL;
	res->bulk_len = 0;
}

void kb_rpc_result_free(struct kb_rpc_result *res)
{
	kb_rpc_result_reset(res);
	free(res);
}

/* ---- receive pools ---------------------------------------------------- */

int kb_rpc_pools_init(struct kb_rpc *r, size_t max_frame)
{
	static const size_t base[] = {4u << 10, 64u << 10, 256u << 10, 1u << 20};
	static const unsigned keep[] = {256, 64, 16, 16};
	int rc;

	for (size_t i = 0; i < KB_ARRAY_SIZE(base); i++) {
		size_t cap = base[i] + KB_WIRE_HEADROOM + KB_FRAME_TAG;

		if (cap >= max_frame + KB_FRAME_TAG)
			break;
		rc = kb_bufpool_new(&r->pools[r->npools], cap, keep[i], KB_BUFPOOL_ARENA);
		if (rc)
			return rc;
		r->npools++;
	}
	rc = kb_bufpool_new(&r->pools[r->npools], max_frame + KB_FRAME_TAG, 2, KB_BUFPOOL_ARENA);
	if (!rc)
		r->npools++;
	return rc;
}

struct kb_bufpool *kb_rpc_pool_for(struct kb_rpc *r, size_t need)
{
	for (unsigned i = 0; i + 1 < r->npools; i++)
		if (kb_bufpool_cap(r->pools[i]) >= need)
			return r->pools[i];
	return r->pools[r->npools - 1];
}

/* ---- slots ------------------------------------------------------------ */

int kb_rpc_conn_init(struct kb_rpc_conn *c, struct kb_rpc *r, unsigned idx)
{
	int rc;

	c->r = r;
	c->idx = idx;
	c->scratch = kb_rpc_result_new();
	if (!c->scratch)
		return -ENOMEM;
	pthread_mutex_init(&c->lock, NULL);
	rc = cond_init_mono(&c->space);
	if (!rc)
		rc = cond_init_mono(&c->kcond);
	for (unsigned i = 0; !rc && i < KB_RPC_SLOTS; i++) {
		pthread_cond_init(&c->slots[i].done, NULL);
		c->slots[i].next_free = i + 1;
		c->slots[i].hdr = c->slots[i].hdr_inline;
	}
	c->free_head = 0;
	c->nfree = KB_RPC_SLOTS;
	c->down_err = -ENOTCONN;
	return rc;
}

void kb_rpc_conn_destroy(struct kb_rpc_conn *c)
{
	if (!c->r)
		return;
	kb_chan_free(c->chan);
	c->chan = NULL;
	kb_proxy_stop(c->proxy); /* after the channel: it sees EOF first */
	c->proxy = NULL;
	for (unsigned i = 0; i < KB_RPC_SLOTS; i++) {
		pthread_cond_destroy(&c->slots[i].done);
		if (c->slots[i].hdr != c->slots[i].hdr_inline)
			free(c->slots[i].hdr);
	}
	pthread_cond_destroy(&c->kcond);
	pthread_cond_destroy(&c->space);
	pthread_mutex_destroy(&c->lock);
	kb_rpc_result_free(c->scratch);
	c->r = NULL;
}

/* Lock held. Wait (until wait_ns) for room for `bytes`, take a slot. With
 * wait_down, a connection that is down (being re-established) is waited
 * for too. Requests (need_ready) leave one slot and the byte budget to the
 * keeper (need_ready false: its ATTACH or HELLO), so a connection cut with
 * every slot in flight can be attached again to re-send them. */
static int slot_get(struct kb_rpc_conn *c, bool need_ready, bool wait_down, size_t bytes,
		    uint64_t wait_ns, struct kb_rpc_slot **out)
{
	struct timespec ts = abs_ts(wait_ns);
	struct kb_rpc_slot *s;

	for (;;) {
		if (need_ready && atomic_load(&c->r->closing))
			return -ENOTCONN;
		if (!c->up || (need_ready && !c->ready)) {
			if (!wait_down)
				return -ENOTCONN;
		} else if (!need_ready ? c->nfree > 0 /* the keeper's ATTACH/HELLO: one slot kept */
				       : c->nfree > 1 &&
						 (c->inflight_bytes + bytes <= KB_RPC_MAX_BYTES ||
						  c->nfree == KB_RPC_SLOTS)) {
			break;
		}
		if (pthread_cond_timedwait(&c->space, &c->lock, &ts) == ETIMEDOUT)
			return -ETIMEDOUT;
	}
	s = &c->slots[c->free_head];
	c->free_head = s->next_free;
	c->nfree--;
	/* Unique in the session (the server's reply cache is keyed by it). */
	s->id = ++c->seq << (KB_RPC_SLOT_BITS + KB_RPC_CONN_BITS) |
		(uint64_t)c->idx << KB_RPC_SLOT_BITS | (uint64_t)(s - c->slots);
	s->hlen = 0;
	s->bulk = NULL;
	s->bulk_len = 0;
	s->state = KB_SLOT_INFLIGHT;
	s->bytes = bytes;
	s->cb = NULL;
	s->res = NULL;
	s->take = NULL;
	c->inflight_bytes += bytes;
	atomic_fetch_add_explicit(&c->r->inflight, 1, memory_order_relaxed);
	*out = s;
	return 0;
}

/* Lock held. */
void kb_rpc_slot_put(struct kb_rpc_conn *c, struct kb_rpc_slot *s)
{
	if (s->hdr != s->hdr_inline)
		free(s->hdr);
	s->hdr = s->hdr_inline;
	s->hlen = 0;
	s->state = KB_SLOT_FREE;
	c->inflight_bytes -= s->bytes;
	atomic_fetch_sub_explicit(&c->r->inflight, 1, memory_order_relaxed);
	s->next_free = c->free_head;
	c->free_head = (unsigned)(s - c->slots);
	c->nfree++;
	pthread_cond_broadcast(&c->space);
}

/* Latency by op, and the last error a user would want to see (not the
 * everyday answers: a missing name, no such xattr, a file that exists). */
static void account(struct kb_rpc *r, const struct kb_rpc_slot *s, int status)
{
	uint64_t us = (kb_now_ns() - s->sent_ns) / 1000, max;
	unsigned op = s->op;

	if (op < KB_RPC_NOPS && s->sent_ns) {
		atomic_fetch_add_explicit(&r->lat_n[op], 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&r->lat_sum_us[op], us, memory_order_relaxed);
		max = atomic_load_explicit(&r->lat_max_us[op], memory_order_relaxed);
		while (us > max && !atomic_compare_exchange_weak(&r->lat_max_us[op], &max, us))
			;
	}
	if (status < 0 && status != -ENOENT && status != -ENODATA && status != -EEXIST &&
	    status != -ENOTEMPTY && status != -ENOTSUP) {
		pthread_mutex_lock(&r->lock);
		r->last_err = status;
		r->last_err_op = s->op;
		r->last_err_time = (int64_t)time(NULL);
		pthread_mutex_unlock(&r->lock);
	}
}

/* Finish a CLAIMED slot (no lock held). */
void kb_rpc_complete(struct kb_rpc_conn *c, struct kb_rpc_slot *s, int status,
		     struct kb_rpc_result *res)
{
	account(c->r, s, status);
	if (status < 0)
		atomic_fetch_add(&c->r->errors, 1);
	if (s->cb) {
		s->cb(s->arg, status, res);
		pthread_mutex_lock(&c->lock);
		kb_rpc_slot_put(c, s);
		pthread_mutex_unlock(&c->lock);
		return;
	}
	pthread_mutex_lock(&c->lock);
	s->status = status;
	s->state = KB_SLOT_DONE;
	pthread_cond_signal(&s->done);
	pthread_mutex_unlock(&c->lock);
}

static bool fail_match(const struct kb_rpc_slot *s, enum kb_rpc_fail which, uint64_t now)
{
	switch (which) {
	case KB_FAIL_ALL: return true;
	case KB_FAIL_EXPIRED: return s->deadline_ns <= now;
	case KB_FAIL_NORETRY: return !s->retry;
	/* a stream request's position means nothing in a new session */
	case KB_FAIL_UNSAFE: return !kb_op_is(s->op, KB_OP_IDEMPOTENT) || s->stream;
	}
	return false;
}

/* Fail the in-flight requests `which` selects: claim them in one pass
 * under the lock, complete them outside it. Slots being re-sent are left
 * to the re-sender. */
_Static_assert(KB_RPC_SLOTS <= 64, "claimed slots are a 64-bit mask");
void kb_rpc_fail_pending(struct kb_rpc_conn *c, int status, enum kb_rpc_fail which, uint64_t now)
{
	uint64_t mine = 0, stale = 0;

	pthread_mutex_lock(&c->lock);
	for (unsigned i = 0; c->nfree < KB_RPC_SLOTS && i < KB_RPC_SLOTS; i++) {
		struct kb_rpc_slot *s = &c->slots[i];

		if (s->state == KB_SLOT_INFLIGHT && fail_match(s, which, now)) {
			s->state = KB_SLOT_CLAIMED;
			mine |= 1ull << i;
			/* a stream request safe to repeat did not run in the new
			 * session: as an old id there would say (ESTALE), so its
			 * caller sends it again (a WRITE on its reopened file) */
			if (which == KB_FAIL_UNSAFE && s->stream &&
			    kb_op_is(s->op, KB_OP_IDEMPOTENT))
				stale |= 1ull << i;
		}
	}
	pthread_mutex_unlock(&c->lock);
	for (unsigned i = 0; mine; i++, mine >>= 1, stale >>= 1)
		if (mine & 1)
			kb_rpc_complete(c, &c->slots[i], (stale & 1) ? -ESTALE : status, NULL);
}

void kb_rpc_conn_down(struct kb_rpc_conn *c, int err)
{
	struct kb_rpc *r = c->r;
	bool keep = r->reconnect && !atomic_load(&r->closing);
	bool was_up;

	pthread_mutex_lock(&c->lock);
	was_up = c->up;
	if (c->up) {
		c->down_err = err;
		if (keep) {
			c->want_reconnect = true;
			pthread_cond_signal(&c->kcond);
		}
	}
	c->up = false;
	c->ready = false;
	pthread_cond_broadcast(&c->space);
	kb_chan_shutdown(c->chan); /* under the lock: the keeper replaces chan under it */
	pthread_mutex_unlock(&c->lock);
	if (was_up) /* pushes sent on it may be lost: what they backed is not */
		kb_rpc_lease_lapse(r);
	/* While kb_rpc_new runs, its error line says what went wrong. */
	if (was_up && !atomic_load(&r->closing) && atomic_load(&r->opened))
		kb_rpc_logf(r, "lost connection %u to %s (%s): %s%s", c->idx, r->host_disp,
			    r->peer_fpr, kb_strerror(err), keep ? "; reconnecting" : "");
	kb_rpc_fail_pending(c, -ENOTCONN, keep ? KB_FAIL_NORETRY : KB_FAIL_ALL, 0);
}

/* ---- sending ---------------------------------------------------------- */

struct call {
	kb_Request *req;
	const void *bulk;
	size_t bulk_len;
	kb_rpc_cb cb; /* async */
	void *arg;
	struct kb_rpc_result *res; /* sync */
	kb_rpc_take_fn take;       /* sync */
	void *take_arg;
	bool noretry;  /* fail, do not re-send, if the connection dies */
	bool want_gen; /* only on a connection of session generation `gen` */
	uint64_t gen;
};

static size_t call_bytes(const struct call *cl)
{
	size_t n = cl->bulk_len + KB_WIRE_HEADROOM;

	if (cl->req->op == kb_Op_READ)
		n += (size_t)KB_MIN(cl->req->length, (uint64_t)KB_FRAME_MAX_LIMIT);
	return n;
}

/* Pick a connection (pinned, hinted or round robin) and take a slot in it.
 * Returns with that connection's lock held. */
static int acquire(struct kb_rpc *r, struct kb_rpc_conn *pin, int hint, bool stick, size_t bytes,
		   uint64_t wait_ns, struct kb_rpc_conn **cout, struct kb_rpc_slot **sout)
{
	unsigned n = r->nconns, start;
	struct kb_rpc_conn *c0;
	int rc = -ENOTCONN;

	if (pin) {
		pthread_mutex_lock(&pin->lock);
		rc = slot_get(pin, false, false, bytes, wait_ns, sout);
		if (rc)
			pthread_mutex_unlock(&pin->lock);
		*cout = pin;
		return rc;
	}
	start = hint >= 0 ? (unsigned)hint % n : atomic_fetch_add(&r->rr, 1) % n;
	for (unsigned i = 0; i < n && !stick; i++) {
		struct kb_rpc_conn *c = &r->conns[(start + i) % n];

		pthread_mutex_lock(&c->lock);
		rc = slot_get(c, true, false, bytes, wait_ns, sout);
		if (!rc) {
			*cout = c;
			return 0;
		}
		pthread_mutex_unlock(&c->lock);
		if (rc != -ENOTCONN)
			return rc;
	}
	if (!r->reconnect || !wait_ns)
		return rc;
	/* Every connection is down and being re-established, or the caller
	 * wants this one (`stick`): stall (until the deadline) on it. */
	c0 = &r->conns[start];
	pthread_mutex_lock(&c0->lock);
	rc = slot_get(c0, true, true, bytes, wait_ns, sout);
	if (rc)
		pthread_mutex_unlock(&c0->lock);
	*cout = c0;
	return rc;
}

/* Encode the header on this stack (~9 KB, never a FUSE-sized concern) and
 * send it with the bulk; the channel encrypts both into its own buffer. */
/* Compress this WRITE's data? Negotiated, and on, or auto on a slow link. */
static bool want_deflate(struct kb_rpc_conn *c, struct kb_chan *chan, uint32_t op, size_t bulk_len)
{
	int mode = c->r->cfg.compress;

	if (op != kb_Op_WRITE || bulk_len < KB_Z_MIN || !(c->info.caps & KB_CAP_ZSTD))
		return false;
	return mode == KB_Z_ON ||
	       (mode == KB_Z_AUTO && kb_z_link_slow(kb_chan_fd(chan), &c->zlink));
}

/* header + bulk; a WRITE's data compressed when it pays (compress.h): into
 * this thread's scratch buffer, which is sent in place of the caller's. */
static int send_raw(struct kb_rpc_conn *c, struct kb_chan *chan, uint32_t op, const uint8_t *hdr,
		    size_t hlen, const void *bulk, size_t bulk_len)
{
	struct iovec iov[3];
	uint8_t h0[KB_WIRE_LEN], *z;
	ssize_t zn;

	if (want_deflate(c, chan, op, bulk_len) && hlen > KB_WIRE_LEN &&
	    (z = kb_z_scratch(KB_Z_DST_CAP(bulk_len))) &&
	    (zn = kb_z_deflate(z, KB_Z_DST_CAP(bulk_len), bulk, bulk_len)) > 0) {
		memcpy(h0, hdr, KB_WIRE_LEN);
		kb_z_mark(h0);
		iov[0] = (struct iovec){.iov_base = h0, .iov_len = KB_WIRE_LEN};
		iov[1] = (struct iovec){.iov_base = (void *)(hdr + KB_WIRE_LEN),
					.iov_len = hlen - KB_WIRE_LEN};
		iov[2] = (struct iovec){.iov_base = z, .iov_len = (size_t)zn};
		return kb_chan_sendv(chan, iov, 3);
	}

	iov[0] = (struct iovec){.iov_base = (void *)hdr, .iov_len = hlen};
	iov[1] = (struct iovec){.iov_base = (void *)bulk, .iov_len = bulk_len};
	return kb_chan_sendv(chan, iov, bulk_len ? 2 : 1);
}

/* Encode the header on this stack and keep a copy in the slot (for a
 * re-send after a reconnect). Lock held: the caller counts as a sender, so
 * the keeper does not re-send the slot before this is done. */
static int keep_header(struct kb_rpc_conn *c, struct kb_rpc_slot *s, const kb_Request *req)
{
	uint8_t hdr[KB_WIRE_LEN + kb_Request_size]; /* encoded header; copied out */
	size_t hlen;
	int rc = kb_wire_encode_req(hdr, sizeof(hdr), req, &hlen);

	(void)c;
	if (rc)
		return rc;
	if (hlen > sizeof(s->hdr_inline)) {
		s->hdr = malloc(hlen);
		if (!s->hdr) {
			s->hdr = s->hdr_inline;
			return -ENOMEM;
		}
	}
	memcpy(s->hdr, hdr, hlen);
	s->hlen = hlen;
	return 0;
}

int kb_rpc_send_slot(struct kb_rpc_conn *c, struct kb_rpc_slot *s)
{
	return send_raw(c, c->chan, s->op, s->hdr, s->hlen, s->bulk, s->bulk_len);
}

static void sender_done(struct kb_rpc_conn *c)
{
	pthread_mutex_lock(&c->lock);
	c->senders--;
	pthread_cond_broadcast(&c->space);
	pthread_mutex_unlock(&c->lock);
}

/* Errors after which nothing was sent and the channel is intact. */
static bool send_err_benign(int rc)
{
	return rc == -KB_ETOOBIG || rc == -ENOSPC || rc == -KB_EPROTO || rc == -EINVAL;
}

/* Start a request: slot, id, send. 0: in flight (or already failed by a
 * connection failure, so its completion is under way); <0: not accepted,
 * no completion will run. */
static int start(struct kb_rpc *r, struct kb_rpc_conn *pin, int hint, struct call *cl,
		 uint64_t wait_ns, struct kb_rpc_conn **cout, struct kb_rpc_slot **sout)
{
	struct kb_rpc_conn *c;
	struct kb_rpc_slot *s;
	uint64_t id;
	int rc;

	struct kb_chan *chan;

	rc = acquire(r, pin, hint, cl->want_gen, call_bytes(cl), wait_ns, &c, &s);
	if (rc)
		return rc;
	if (cl->want_gen && c->gen != cl->gen) { /* another session began */
		kb_rpc_slot_put(c, s);
		pthread_mutex_unlock(&c->lock);
		return -ESTALE;
	}
	s->sent_ns = kb_now_ns();
	s->deadline_ns = s->sent_ns + (uint64_t)r->timeout_ms * 1000000u;
	s->cb = cl->cb;
	s->arg = cl->arg;
	s->res = cl->res;
	s->take = cl->take;
	s->take_arg = cl->take_arg;
	s->op = cl->req->op;
	s->stream = cl->req->seq != 0 || cl->req->op == kb_Op_COMPOUND;
	s->retry = r->reconnect && !pin && !cl->noretry;
	s->bulk = cl->bulk;
	s->bulk_len = cl->bulk_len;
	id = cl->req->id = s->id;
	c->senders++;
	chan = c->chan;
	if (cl->req->op == kb_Op_READ) /* 0 (off) is not even encoded */
		cl->req->compress = (uint32_t)r->cfg.compress;
	rc = keep_header(c, s, cl->req);
	pthread_mutex_unlock(&c->lock);
	atomic_fetch_add(&r->requests, 1);
	kb_rpc_count_op(r, cl->req->op);

	if (!rc)
		rc = send_raw(c, chan, s->op, s->hdr, s->hlen, cl->bulk, cl->bulk_len);
	sender_done(c);
	*cout = c;
	*sout = s;
	if (!rc)
		return 0;
	if (!send_err_benign(rc)) {
		kb_rpc_conn_down(c, rc);
		return 0;
	}
	pthread_mutex_lock(&c->lock);
	if (s->state == KB_SLOT_INFLIGHT && s->id == id)
		kb_rpc_slot_put(c, s);
	else
		rc = 0; /* a failure claimed it first: its completion runs */
	pthread_mutex_unlock(&c->lock);
	return rc;
}

void kb_rpc_count_op(struct kb_rpc *r, uint32_t op)
{
	if (op < KB_RPC_NOPS)
		atomic_fetch_add_explicit(&r->by_op[op], 1, memory_order_relaxed);
}

static int call_sync(struct kb_rpc *r, struct kb_rpc_conn *pin, struct call *cl)
{
	struct kb_rpc_conn *c;
	struct kb_rpc_slot *s;
	uint64_t wait = kb_now_ns() + (uint64_t)r->timeout_ms * 1000000u;
	int rc;

	kb_rpc_result_reset(cl->res);
	rc = start(r, pin, -1, cl, wait, &c, &s);
	if (rc) {
		atomic_fetch_add(&r->errors, 1);
		return rc;
	}
	pthread_mutex_lock(&c->lock);
	while (s->state != KB_SLOT_DONE)
		pthread_cond_wait(&s->done, &c->lock);
	rc = s->status;
	kb_rpc_slot_put(c, s);
	pthread_mutex_unlock(&c->lock);
	return rc;
}

int kb_rpc_call(struct kb_rpc *r, kb_Request *req, const void *bulk, size_t bulk_len,
		struct kb_rpc_result *res)
{
	struct call cl = {.req = req, .bulk = bulk, .bulk_len = bulk_len, .res = res};

	return call_sync(r, NULL, &cl);
}

int kb_rpc_call_take(struct kb_rpc *r, kb_Request *req, const void *bulk, size_t bulk_len,
		     kb_rpc_take_fn take, void *arg)
{
	struct call cl = {
		.req = req, .bulk = bulk, .bulk_len = bulk_len, .take = take, .take_arg = arg};

	return call_sync(r, NULL, &cl);
}

int kb_rpc_call_on(struct kb_rpc_conn *c, kb_Request *req, kb_rpc_take_fn take, void *arg)
{
	struct call cl = {.req = req, .take = take, .take_arg = arg};

	return call_sync(c->r, c, &cl);
}

int kb_rpc_submit(struct kb_rpc *r, kb_Request *req, const void *bulk, size_t bulk_len,
		  int conn_hint, kb_rpc_cb cb, void *arg)
{
	struct call cl = {.req = req, .bulk = bulk, .bulk_len = bulk_len, .cb = cb, .arg = arg};
	uint64_t wait = kb_now_ns() + (uint64_t)r->timeout_ms * 1000000u;
	struct kb_rpc_conn *c;
	struct kb_rpc_slot *s;
	int rc;

	if (!cb)
		return -EINVAL;
	rc = start(r, NULL, conn_hint, &cl, wait, &c, &s);
	if (rc)
		atomic_fetch_add(&r->errors, 1);
	return rc;
}

static int submit_gen(struct kb_rpc *r, uint64_t gen, kb_Request *req, const void *bulk,
		      size_t bulk_len, int conn_hint, kb_rpc_cb cb, void *arg, uint64_t wait)
{
	struct call cl = {.req = req,
			  .bulk = bulk,
			  .bulk_len = bulk_len,
			  .cb = cb,
			  .arg = arg,
			  .want_gen = true,
			  .gen = gen};
	struct kb_rpc_conn *c;
	struct kb_rpc_slot *s;

	if (!cb)
		return -EINVAL;
	return start(r, NULL, conn_hint, &cl, wait, &c, &s);
}

int kb_rpc_submit_gen(struct kb_rpc *r, uint64_t gen, kb_Request *req, const void *bulk,
		      size_t bulk_len, int conn_hint, kb_rpc_cb cb, void *arg)
{
	uint64_t wait = kb_now_ns() + (uint64_t)r->timeout_ms * 1000000u;
	int rc = submit_gen(r, gen, req, bulk, bulk_len, conn_hint, cb, arg, wait);

	if (rc && rc != -ESTALE)
		atomic_fetch_add(&r->errors, 1);
	return rc;
}

int kb_rpc_submit_gen_until(struct kb_rpc *r, uint64_t gen, kb_Request *req, const void *bulk,
			    size_t bulk_len, int conn_hint, kb_rpc_cb cb, void *arg,
			    uint64_t until_ns)
{
	return submit_gen(r, gen, req, bulk, bulk_len, conn_hint, cb, arg, until_ns);
}

/* ---- timer: deadlines and keepalive ----------------------------------- */

static void ping_done(void *arg, int status, struct kb_rpc_result *res)
{
	struct kb_rpc_conn *c = arg;
	uint64_t sent = atomic_exchange(&c->ping_sent_ns, 0);

	(void)res;
	if (!status && sent)
		atomic_store(&c->r->rtt_us, (kb_now_ns() - sent) / 1000u);
}

/* Keepalive and liveness. PING a connection idle (nothing in flight,
 * nothing received) for keepalive_ns; with reconnection on, also probe one
 * that has requests in flight but received nothing for a third of the
 * timeout, and declare it dead (down: the keeper re-establishes it and
 * re-sends) when a PING stays unanswered that long, or nothing at all
 * arrived for the whole timeout. Never blocks the timer. */
static void keepalive(struct kb_rpc_conn *c, uint64_t now)
{
	struct kb_rpc *r = c->r;
	kb_Request req = {.op = kb_Op_PING};
	struct call cl = {.req = &req, .cb = ping_done, .arg = c, .noretry = true};
	uint64_t last = atomic_load(&c->last_rx_ns); /* may be later than now */
	uint64_t sent = atomic_load(&c->ping_sent_ns);
	uint64_t quiet = last >= now ? 0 : now - last;
	uint64_t probe = (uint64_t)r->timeout_ms * 1000000u / 3;
	struct kb_rpc_conn *used;
	struct kb_rpc_slot *s;
	bool ready, idle;

	pthread_mutex_lock(&c->lock);
	ready = c->ready;
	idle = c->nfree == KB_RPC_SLOTS;
	pthread_mutex_unlock(&c->lock);
	if (!ready)
		return;
	if (r->reconnect && ((sent && now - sent > probe) ||
			     (!idle && quiet > (uint64_t)r->timeout_ms * 1000000u))) {
		kb_rpc_logf(r, "no answer from %s for %llu ms: reconnecting", r->host_disp,
			    (unsigned long long)(quiet / 1000000u));
		kb_rpc_conn_down(c, -ETIMEDOUT);
		return;
	}
	if (sent)
		return;
	if (idle ? !r->keepalive_ns || quiet < r->keepalive_ns : !r->reconnect || quiet < probe)
		return;
	atomic_store(&c->ping_sent_ns, now);
	if (start(r, c, -1, &cl, 0, &used, &s))
		atomic_store(&c->ping_sent_ns, 0);
}

/* Bytes sent and received on the connections up now (their channels'
 * counters). Takes each connection's lock in turn. */
static void bytes_moved(struct kb_rpc *r, uint64_t *sent, uint64_t *recv)
{
	*sent = *recv = 0;
	for (unsigned i = 0; i < r->nconns; i++) {
		struct kb_rpc_conn *c = &r->conns[i];
		struct kb_chan_stats cs;

		pthread_mutex_lock(&c->lock);
		if (c->chan) {
			kb_chan_stats(c->chan, &cs);
			*sent += cs.bytes_sent;
			*recv += cs.bytes_recv;
		}
		pthread_mutex_unlock(&c->lock);
	}
}

/* Timer: one throughput sample a second (kb_rpc_stats' rates). */
static void rate_sample(struct kb_rpc *r, uint64_t now)
{
	unsigned last;
	uint64_t sent, recv;

	pthread_mutex_lock(&r->lock);
	last = (r->rate_head + KB_RPC_RATE_SAMPLES - 1) % KB_RPC_RATE_SAMPLES;
	if (r->rate_n && now - r->rate[last].ns < 1000000000ull) {
		pthread_mutex_unlock(&r->lock);
		return;
	}
	pthread_mutex_unlock(&r->lock);
	bytes_moved(r, &sent, &recv); /* r->lock is a leaf: not held here */
	pthread_mutex_lock(&r->lock);
	r->rate[r->rate_head].ns = now;
	r->rate[r->rate_head].sent = sent;
	r->rate[r->rate_head].recv = recv;
	r->rate_head = (r->rate_head + 1) % KB_RPC_RATE_SAMPLES;
	if (r->rate_n < KB_RPC_RATE_SAMPLES)
		r->rate_n++;
	pthread_mutex_unlock(&r->lock);
}

/* Rates since the oldest sample; r->lock held. A counter that went back
 * (a connection replaced) gives no rate for that window. */
static void rates_locked(struct kb_rpc *r, struct kb_rpc_stats *st, uint64_t now)
{
	unsigned oldest;
	double dt;

	if (!r->rate_n)
		return;
	oldest = (r->rate_head + KB_RPC_RATE_SAMPLES - r->rate_n) % KB_RPC_RATE_SAMPLES;
	dt = (double)(now - r->rate[oldest].ns) / 1e9;
	if (dt <= 0 || st->bytes_sent < r->rate[oldest].sent ||
	    st->bytes_recv < r->rate[oldest].recv)
		return;
	st->tx_rate = (double)(st->bytes_sent - r->rate[oldest].sent) / dt;
	st->rx_rate = (double)(st->bytes_recv - r->rate[oldest].recv) / dt;
	st->rate_secs = dt;
}

static void *timer_main(void *arg)
{
	struct kb_rpc *r = arg;

	pthread_mutex_lock(&r->lock);
	while (!r->stopping) {
		struct timespec ts = abs_ts(kb_now_ns() + KB_RPC_TICK_MS * 1000000ull);
		uint64_t now;

		pthread_cond_timedwait(&r->tick, &r->lock, &ts);
		if (r->stopping)
			break;
		pthread_mutex_unlock(&r->lock);
		now = kb_now_ns();
		for (unsigned i = 0; i < r->nconns; i++) {
			kb_rpc_fail_pending(&r->conns[i], -ETIMEDOUT, KB_FAIL_EXPIRED, now);
			keepalive(&r->conns[i], now);
		}
		rate_sample(r, now);
		pthread_mutex_lock(&r->lock);
	}
	pthread_mutex_unlock(&r->lock);
	return NULL;
}

int kb_rpc_timer_start(struct kb_rpc *r)
{
	int rc = -pthread_create(&r->timer, NULL, timer_main, r);

	r->timer_started = !rc;
	return rc;
}

void kb_rpc_timer_stop(struct kb_rpc *r)
{
	if (!r->timer_started)
		return;
	pthread_mutex_lock(&r->lock);
	r->stopping = true;
	pthread_cond_broadcast(&r->tick);
	pthread_mutex_unlock(&r->lock);
	pthread_join(r->timer, NULL);
	r->timer_started = false;
}

/* ---- small accessors -------------------------------------------------- */

void kb_rpc_set_notify(struct kb_rpc *r, void (*cb)(void *arg, const kb_Response *n), void *arg)
{
	pthread_mutex_lock(&r->lock);
	r->notify = cb;
	r->notify_arg = arg;
	pthread_mutex_unlock(&r->lock);
}

void kb_rpc_set_session_cb(struct kb_rpc *r, kb_rpc_session_fn cb, void *arg)
{
	pthread_mutex_lock(&r->lock);
	r->session_cb = cb;
	r->session_arg = arg;
	pthread_mutex_unlock(&r->lock);
}

void kb_rpc_set_log(struct kb_rpc *r, kb_rpc_log_fn cb, void *arg)
{
	pthread_mutex_lock(&r->lock);
	r->log = cb;
	r->log_arg = arg;
	pthread_mutex_unlock(&r->lock);
}

void kb_rpc_logf(struct kb_rpc *r, const char *fmt, ...)
{
	char line[512];
	kb_rpc_log_fn cb;
	void *arg;
	va_list ap;
	int n = snprintf(line, sizeof(line), "keibifs: ");

	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&r->lock);
	cb = r->log;
	arg = r->log_arg;
	pthread_mutex_unlock(&r->lock);
	if (cb)
		cb(arg, line);
	else
		fprintf(stderr, "%s\n", line);
}

uint64_t kb_rpc_session(struct kb_rpc *r, kb_Entry *root)
{
	uint64_t gen;

	pthread_mutex_lock(&r->sess_lock);
	gen = r->gen;
	if (root)
		*root = r->root;
	pthread_mutex_unlock(&r->sess_lock);
	return gen;
}

bool kb_rpc_owners(const struct kb_rpc *r)
{
	return r->owners;
}

uint64_t kb_rpc_gen(struct kb_rpc *r)
{
	return atomic_load(&r->session_gen);
}

void kb_rpc_stats(struct kb_rpc *r, struct kb_rpc_stats *st)
{
	memset(st, 0, sizeof(*st));
	for (unsigned i = 0; i < r->nconns; i++) {
		struct kb_rpc_conn *c = &r->conns[i];
		struct kb_chan_stats cs;

		pthread_mutex_lock(&c->lock);
		if (c->chan) {
			kb_chan_stats(c->chan, &cs);
			st->bytes_sent += cs.bytes_sent;
			st->bytes_recv += cs.bytes_recv;
			st->rekeys += cs.rekeys;
			st->rekeys_time += cs.rekeys_time;
		}
		st->conns_up += c->up;
		st->zstd |= c->up && (c->info.caps & KB_CAP_ZSTD);
		pthread_mutex_unlock(&c->lock);
	}
	st->requests = atomic_load(&r->requests);
	for (unsigned i = 0; i < KB_RPC_NOPS; i++)
		st->by_op[i] = atomic_load_explicit(&r->by_op[i], memory_order_relaxed);
	st->errors = atomic_load(&r->errors);
	st->rtt_us = atomic_load(&r->rtt_us);
	st->reconnects = atomic_load(&r->reconnects);
	st->session_gen = atomic_load(&r->session_gen);
	st->inflight = atomic_load(&r->inflight);
	for (unsigned i = 0; i < KB_RPC_NOPS; i++) {
		st->lat_n[i] = atomic_load_explicit(&r->lat_n[i], memory_order_relaxed);
		st->lat_sum_us[i] = atomic_load_explicit(&r->lat_sum_us[i], memory_order_relaxed);
		st->lat_max_us[i] = atomic_load_explicit(&r->lat_max_us[i], memory_order_relaxed);
	}
	pthread_mutex_lock(&r->lock);
	st->last_err = r->last_err;
	st->last_err_op = r->last_err_op;
	st->last_err_time = r->last_err_time;
	rates_locked(r, st, kb_now_ns());
	pthread_mutex_unlock(&r->lock);
	snprintf(st->peer_fpr, sizeof(st->peer_fpr), "%s", r->peer_fpr);
}

size_t kb_rpc_max_read(const struct kb_rpc *r)
{
	return r->max_read;
}

size_t kb_rpc_max_write(const struct kb_rpc *r)
{
	return r->max_write;
}

unsigned kb_rpc_conns(const struct kb_rpc *r)
{
	return r->nconns;
}
