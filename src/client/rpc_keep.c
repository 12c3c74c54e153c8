/* rpc_keep.c - transparent reconnection: one keeper thread per connection.
 *
 * A connection goes down (kb_rpc_conn_down: receive error such as a reset
 * or an AEAD failure, send error, or the timer's liveness check); with
 * reconnection on, its requests that may be re-sent stay in the slot table
 * (their deadlines keep running) and its keeper wakes:
 *
 *   1. retire: join the old receiver, wait until no sender holds the old
 *      channel, free it;
 *   2. connect + handshake (the server key must be the one pinned at the
 *      first connection), start a receiver;
 *   3. under r->sess_lock: ATTACH with the token; when the server no longer
 *      knows the session (-EACCES: it restarted, or the grace period
 *      passed) HELLO instead: new token and root, generation + 1;
 *   4. a new session makes the old node ids and handles meaningless: the
 *      session callback runs (under r->sess_lock, before any connection
 *      of the new session is ready), what was not safe to repeat fails
 *      with -EIO;
 *   5. re-send every kept request (same id: on the same session the
 *      server's reply cache answers duplicates), mark the slot ready, log
 *      one line.
 * Failures retry after a backoff of 100 ms doubling to 2 s, until the rpc
 * is freed. Callers meanwhile stall in acquire() until a connection is
 * ready or their deadline passes.
 *
 * Locks: the keeper takes c->lock for state, and r->sess_lock around
 * HELLO/ATTACH (so one HELLO per generation; held across that round trip,
 * bounded by the timeout). r->lock only for the callbacks.
 */
#include <errno.h>
#include <string.h>

#include "err.h"
#include "rpc_int.h"
#include "util.h"

/* Join the old receiver, free the old channel once no sender holds it. */
static void retire(struct kb_rpc_conn *c)
{
	pthread_mutex_lock(&c->lock);
	kb_chan_shutdown(c->chan);
	pthread_mutex_unlock(&c->lock);
	if (c->rx_started)
		pthread_join(c->rx, NULL);
	c->rx_started = false;
	pthread_mutex_lock(&c->lock);
	c->up = false;
	c->ready = false;
	while (c->senders)
		pthread_cond_wait(&c->space, &c->lock);
	kb_chan_free(c->chan);
	c->chan = NULL;
	c->want_reconnect = false;
	pthread_mutex_unlock(&c->lock);
	kb_proxy_stop(c->proxy); /* a new one runs with the next connection */
	c->proxy = NULL;
}

/* Step 4's callback, under r->sess_lock right after the HELLO: no
 * connection of the new session carries a request before the FUSE layer
 * knows the new root (else a request could re-resolve up to a root still
 * named by its old id and find it stale). */
static void session_changed_locked(struct kb_rpc *r)
{
	kb_rpc_session_fn cb;
	void *arg;

	pthread_mutex_lock(&r->lock);
	cb = r->session_cb;
	arg = r->session_arg;
	pthread_mutex_unlock(&r->lock);
	if (cb)
		cb(arg, r->gen, &r->root);
}

/* Step 3: ATTACH, or HELLO when the session is gone (the server closes a
 * connection whose ATTACH it refused, so HELLO goes on the next one:
 * `hello_first`, unless another connection made a new session meanwhile).
 * *fresh: the slot is now on another session than its requests were made
 * for. */
static int reattach(struct kb_rpc_conn *c, bool hello_first, bool *fresh, bool *hello)
{
	struct kb_rpc *r = c->r;
	int rc;

	pthread_mutex_lock(&r->sess_lock);
	if (hello_first && c->gen == r->gen) {
		rc = kb_rpc_conn_hello(r, c->idx, NULL, NULL);
		if (!rc) {
			r->gen++;
			*hello = true;
			session_changed_locked(r);
			atomic_fetch_add(&r->session_gen, 1);
		}
	} else {
		rc = kb_rpc_conn_attach(r, c->idx);
	}
	if (!rc) {
		*fresh = c->gen != r->gen;
		c->gen = r->gen;
	}
	pthread_mutex_unlock(&r->sess_lock);
	return rc;
}

/* Step 5: re-send what is kept, on the new channel. */
static int resend(struct kb_rpc_conn *c)
{
	uint64_t mine = 0;
	int rc = 0;

	pthread_mutex_lock(&c->lock);
	for (unsigned i = 0; i < KB_RPC_SLOTS; i++) {
		struct kb_rpc_slot *s = &c->slots[i];

		if (s->state == KB_SLOT_INFLIGHT && s->retry && s->hlen) {
			s->state = KB_SLOT_SENDING;
			mine |= 1ull << i;
		}
	}
	c->senders++;
	pthread_mutex_unlock(&c->lock);
	/* in the order they were first sent (ids grow): the server runs a
	 * stream's requests in order and would wait for one sent behind */
	for (uint64_t left = mine; left;) {
		struct kb_rpc_slot *s = NULL;
		unsigned i = 0;

		for (unsigned j = 0; j < KB_RPC_SLOTS; j++)
			if ((left >> j & 1) && (!s || c->slots[j].id < s->id)) {
				s = &c->slots[j];
				i = j;
			}
		left &= ~(1ull << i);
		if (!rc)
			rc = kb_rpc_send_slot(c, s);
		pthread_mutex_lock(&c->lock);
		if (s->state == KB_SLOT_SENDING) /* else a reply claimed it already */
			s->state = KB_SLOT_INFLIGHT;
		pthread_mutex_unlock(&c->lock);
	}
	pthread_mutex_lock(&c->lock);
	c->senders--;
	pthread_cond_broadcast(&c->space);
	pthread_mutex_unlock(&c->lock);
	return rc;
}

/* Steps 2-5 once. */
static int reopen(struct kb_rpc_conn *c, bool hello_first)
{
	struct kb_rpc *r = c->r;
	bool fresh = false, hello = false;
	char err[512];
	int rc = kb_rpc_conn_connect(r, c->idx, err, sizeof(err));

	if (rc == -KB_EUNTRUSTED || rc == -KB_EREFUSED)
		kb_rpc_logf(r, "reconnect to %s refused: %s", r->host_disp, err);
	if (rc)
		return rc;
	rc = reattach(c, hello_first, &fresh, &hello);
	if (!rc && fresh)
		kb_rpc_fail_pending(c, -EIO, KB_FAIL_UNSAFE, 0);
	if (!rc && hello)
		kb_rpc_logf(r, "new session on %s (the server restarted or expired ours)",
			    r->host_disp);
	if (!rc)
		rc = resend(c);
	if (rc) {
		kb_rpc_conn_down(c, rc);
		return rc;
	}
	kb_rpc_conn_set_ready(c);
	atomic_fetch_add(&r->reconnects, 1);
	kb_rpc_logf(r, "reconnected to %s (%s)", r->host_disp, r->peer_fpr);
	return 0;
}

/* Sleep ms unless the rpc is being freed; false when it is. */
static bool nap(struct kb_rpc_conn *c, unsigned ms)
{
	struct timespec ts;
	uint64_t until = kb_now_ns() + (uint64_t)ms * 1000000u;

	ts.tv_sec = (time_t)(until / 1000000000u);
	ts.tv_nsec = (long)(until % 1000000000u);
	pthread_mutex_lock(&c->lock);
	while (!atomic_load(&c->r->closing) &&
	       pthread_cond_timedwait(&c->kcond, &c->lock, &ts) != ETIMEDOUT)
		;
	pthread_mutex_unlock(&c->lock);
	return !atomic_load(&c->r->closing);
}

static void *keeper_main(void *arg)
{
	struct kb_rpc_conn *c = arg;
	struct kb_rpc *r = c->r;

	for (;;) {
		unsigned backoff = KB_RPC_BACKOFF_MIN_MS;
		bool hello_first = false;
		int rc;

		pthread_mutex_lock(&c->lock);
		while (!c->want_reconnect && !atomic_load(&r->closing))
			pthread_cond_wait(&c->kcond, &c->lock);
		pthread_mutex_unlock(&c->lock);
		if (atomic_load(&r->closing))
			break;
		for (;;) {
			retire(c);
			if (atomic_load(&r->closing) || !(rc = reopen(c, hello_first)))
				break;
			hello_first = rc == -EACCES; /* session gone: HELLO at once */
			if (!hello_first && !nap(c, backoff))
				break;
			backoff = KB_MIN(backoff * 2, KB_RPC_BACKOFF_MAX_MS);
		}
	}
	return NULL;
}

int kb_rpc_keepers_start(struct kb_rpc *r)
{
	for (unsigned i = 0; i < r->nconns; i++) {
		int rc = -pthread_create(&r->conns[i].keeper, NULL, keeper_main, &r->conns[i]);

		if (rc)
			return rc;
		r->conns[i].keeper_started = true;
		pthread_setname_np(r->conns[i].keeper, "kbrpc-keep");
	}
	return 0;
}

void kb_rpc_keepers_stop(struct kb_rpc *r)
{
	for (unsigned i = 0; i < r->nconns; i++) {
		struct kb_rpc_conn *c = &r->conns[i];

		pthread_mutex_lock(&c->lock);
		pthread_cond_broadcast(&c->kcond);
		pthread_cond_broadcast(&c->space); /* stalled callers: -ENOTCONN */
		kb_chan_shutdown(c->chan);         /* a keeper mid-ATTACH gives up */
		pthread_mutex_unlock(&c->lock);
	}
	for (unsigned i = 0; i < r->nconns; i++) {
		if (r->conns[i].keeper_started)
			pthread_join(r->conns[i].keeper, NULL);
		r->conns[i].keeper_started = false;
	}
}
