/* srv_conn.c - one client connection: handshake, a receiver thread and its
 * own worker threads.
 *
 * The receiver reads each frame (kb_chan_recv_len, then recv_body into a
 * pooled kb_buf sized for it) and queues it; the connection's workers take
 * frames from the queue, serve them and send the replies themselves
 * (kb_chan_send serialises senders), so replies leave in completion order.
 * Backpressure: at most KB_SRV_MAX_INFLIGHT frames and
 * KB_SRV_INFLIGHT_BYTES bytes are queued or being served per connection;
 * beyond that the receiver stops reading (TCP flow control does the rest).
 * The first frame (HELLO/ATTACH) is served before the next is read; quick
 * operations (kb_srv_quick_op) are served by the receiver itself.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "chan.h"
#include "compress.h"
#include "err.h"
#include "srv_impl.h"
#include "util.h"

static int verify_peer(void *arg, const uint8_t rs[static 32], unsigned *flags)
{
	struct kb_srv *s = arg;
	int ret;

	pthread_mutex_lock(&s->auth_lock); /* keys may be reloaded (srv_reload.c) */
	ret = kb_keyset_match(s->authorized, rs, flags) ? -KB_EUNTRUSTED : 0;
	pthread_mutex_unlock(&s->auth_lock);
	return ret;
}

/* Worker: serve queued frames until the connection closes and the queue is
 * empty (so requests already received are answered on a graceful stop). */
static void *worker_main(void *arg)
{
	struct kb_srv_worker *w = arg;
	struct kb_srv_conn *c = w->conn;

	pthread_mutex_lock(&c->lock);
	for (;;) {
		struct kb_srv_job *j;
		uint8_t *reply = NULL;
		size_t rlen = 0;
		int rc;

		while (!c->head && !c->closing)
			pthread_cond_wait(&c->cond, &c->lock);
		j = c->head;
		if (!j)
			break;
		c->head = j->next;
		if (!c->head)
			c->tail = NULL;
		pthread_mutex_unlock(&c->lock);

		rc = kb_srv_handle_frame(c, w, j->frame->mem, j->len, &reply, &rlen);
		if (reply && kb_chan_send(c->chan, reply, rlen) < 0)
			kb_chan_shutdown(c->chan);
		if (rc < 0) {
			kb_srv_logf(c->srv, KB_SRV_LOG_INFO, "closing %s: %s", c->peer,
				    kb_strerror(rc));
			kb_chan_shutdown(c->chan);
		}
		kb_buf_put(j->frame);

		pthread_mutex_lock(&c->lock);
		c->inflight--;
		c->inflight_bytes -= j->len;
		j->frame = NULL;
		j->next = c->free;
		c->free = j;
		pthread_cond_broadcast(&c->cond);
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

static int start_workers(struct kb_srv_conn *c)
{
	int ret = kb_srv_worker_new(&c->inl, KB_SRV_SMALL_FRAME);

	if (ret)
		return ret;
	c->w = calloc(c->srv->nworkers, sizeof(*c->w));
	if (!c->w)
		return -ENOMEM;
	for (unsigned i = 0; i < c->srv->nworkers; i++) {
		int rc = kb_srv_worker_new(&c->w[i], KB_FRAME_MAX_DEFAULT);

		if (!rc) {
			c->w[i]->conn = c;
			rc = -pthread_create(&c->w[i]->th, NULL, worker_main, c->w[i]);
			if (!rc)
				pthread_setname_np(c->w[i]->th, "kbsrv-work");
		}
		if (rc) {
			kb_srv_worker_free(c->w[i]);
			c->w[i] = NULL;
			return rc;
		}
		c->nworkers++;
	}
	return 0;
}

static void stop_workers(struct kb_srv_conn *c)
{
	pthread_mutex_lock(&c->lock);
	c->closing = true;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
	for (unsigned i = 0; i < c->nworkers; i++) {
		pthread_join(c->w[i]->th, NULL);
		kb_srv_worker_free(c->w[i]);
	}
	free(c->w);
	c->w = NULL;
	c->nworkers = 0;
	kb_srv_worker_free(c->inl);
	c->inl = NULL;
}

/* Wait for room (and, before a session exists, for the first frame to be
 * served); false when the connection should end. */
static bool wait_room(struct kb_srv_conn *c, bool first_sent)
{
	bool ok;

	pthread_mutex_lock(&c->lock);
	while (!c->closing && (c->inflight >= KB_SRV_MAX_INFLIGHT ||
			       c->inflight_bytes >= KB_SRV_INFLIGHT_BYTES ||
			       (first_sent && !c->sess && c->inflight > 0)))
		pthread_cond_wait(&c->cond, &c->lock);
	ok = !c->closing && (!first_sent || c->sess);
	pthread_mutex_unlock(&c->lock);
	return ok;
}

/* Wait for the next frame, or for the server to stop (its stop pipe stays
 * readable once written): a graceful stop ends reading at a frame boundary
 * and leaves the channel usable for the replies still to be sent. */
static int wait_frame(struct kb_srv_conn *c)
{
	struct pollfd pf[2] = {
		{.fd = kb_chan_fd(c->chan), .events = POLLIN},
		{.fd = c->srv->stop_pipe[0], .events = POLLIN},
	};

	while (poll(pf, 2, -1) < 0)
		if (errno != EINTR)
			return -errno;
	return pf[1].revents ? -KB_ECLOSED : 0;
}

/* Serve a quick operation on the receiver thread itself: one thread
 * handoff less on the round trip that matters most for metadata latency.
 * Only single-syscall name and attribute ops qualify (kb_srv_quick_op);
 * while one runs, this connection reads no further frame (the others do). */
static int serve_inline(struct kb_srv_conn *c, struct kb_buf *b, size_t plen)
{
	uint8_t *reply = NULL;
	size_t rlen = 0;
	int rc = kb_srv_handle_frame(c, c->inl, b->mem, plen, &reply, &rlen);

	if (reply && kb_chan_send(c->chan, reply, rlen) < 0)
		kb_chan_shutdown(c->chan);
	kb_buf_put(b);
	return rc < 0 ? rc : 0;
}

/* A compressed bulk (a WRITE's data): inflated into a buffer of the large
 * pool, which then replaces the received one. Only when negotiated, and
 * never beyond the largest frame we accept. */
static int inflate(struct kb_srv_conn *c, struct kb_buf **b, size_t *plen)
{
	struct kb_buf *nb;
	size_t need;
	ssize_t n;

	if (!c->zstd || kb_z_inflated_len((*b)->mem, *plen, KB_FRAME_MAX_DEFAULT, &need))
		return -KB_EPROTO;
	nb = kb_buf_get(c->srv->large);
	if (!nb)
		return -ENOMEM;
	n = kb_z_inflate(nb->mem, nb->cap, (*b)->mem, *plen);
	if (n < 0) {
		kb_buf_put(nb);
		return (int)n;
	}
	kb_buf_put(*b);
	*b = nb;
	*plen = (size_t)n;
	return 0;
}

static int recv_one(struct kb_srv_conn *c)
{
	struct kb_srv_job *j;
	struct kb_buf *b;
	size_t plen;
	int rc = wait_frame(c);

	if (!rc)
		rc = kb_chan_recv_len(c->chan, &plen);
	if (rc)
		return rc;
	b = kb_buf_get(plen <= KB_SRV_SMALL_FRAME ? c->srv->small : c->srv->large);
	if (!b)
		return -ENOMEM;
	rc = kb_chan_recv_body(c->chan, b->mem, plen);
	if (!rc && kb_z_flagged(b->mem, plen))
		rc = inflate(c, &b, &plen);
	if (rc) {
		kb_buf_put(b);
		return rc;
	}
	if (c->sess && c->inl && kb_srv_quick_op(b->mem, plen))
		return serve_inline(c, b, plen);
	pthread_mutex_lock(&c->lock);
	j = c->free; /* wait_room guaranteed a free slot */
	c->free = j->next;
	j->frame = b;
	j->len = plen;
	j->next = NULL;
	if (c->tail)
		c->tail->next = j;
	else
		c->head = j;
	c->tail = j;
	c->inflight++;
	c->inflight_bytes += plen;
	pthread_cond_signal(&c->cond);
	pthread_mutex_unlock(&c->lock);
	return 0;
}

static void serve(struct kb_srv_conn *c)
{
	bool first_sent = false;
	int rc = 0;

	while (wait_room(c, first_sent)) {
		rc = recv_one(c);
		if (rc)
			break;
		first_sent = true;
	}
	if (rc && rc != -KB_ECLOSED)
		kb_srv_logf(c->srv, KB_SRV_LOG_INFO, "connection %s: %s", c->peer,
			    kb_strerror(rc));
}

static int handshake(struct kb_srv_conn *c, int fd)
{
	struct kb_srv *s = c->srv;
	struct kb_chan_cfg cfg = {
		.initiator = false, .s = s->priv,
		.backend = s->backend, .max_frame = KB_FRAME_MAX_DEFAULT, .rng = s->rng,
		.verify = verify_peer, .verify_arg = s,
		.caps = s->no_compress ? 0 : KB_CAP_ZSTD,
	};
	struct kb_chan_info info;
	struct kb_chan *ch;
	uint8_t psk[32]; /* this handshake's copy (a reload may change it); wiped */
	int rc;

	pthread_mutex_lock(&s->auth_lock);
	memcpy(psk, s->psk, sizeof(psk));
	cfg.psk = s->have_psk ? psk : NULL;
	pthread_mutex_unlock(&s->auth_lock);
	memset(&info, 0, sizeof(info));
	rc = kb_chan_handshake(&ch, fd, &cfg, &info);
	kb_memzero(psk, sizeof(psk));
	if (info.have_remote_static)
		kb_key_fingerprint(info.remote_static, c->fpr);
	if (rc) {
		if (rc == -KB_EUNTRUSTED)
			kb_srv_logf(s, KB_SRV_LOG_INFO, "refused %s: key %s is not authorized",
				    c->peer, c->fpr);
		else if (s->have_psk && (rc == -KB_EHANDSHAKE || rc == -KB_ECLOSED ||
					 rc == -KB_ETRUNC))
			kb_srv_logf(s, KB_SRV_LOG_INFO, "handshake with %s failed: pre-shared key "
				    "mismatch (or the client uses none)", c->peer);
		else
			kb_srv_logf(s, KB_SRV_LOG_INFO, "handshake with %s failed: %s", c->peer,
				    kb_strerror(rc));
		return rc;
	}
	memcpy(c->key, info.remote_static, KB_KEY_LEN);
	c->flags = info.flags;
	c->zstd = info.caps & KB_CAP_ZSTD;
	c->max_send = info.max_frame ? info.max_frame : KB_FRAME_MAX_DEFAULT;
	pthread_mutex_lock(&c->lock);
	c->chan = ch;
	pthread_mutex_unlock(&c->lock);
	/* A reload between verify_peer and here did not see this channel:
	 * check again now that it would (srv_reload.c). */
	if (!kb_srv_key_ok(s, c->key, c->flags)) {
		kb_srv_logf(s, KB_SRV_LOG_INFO, "refused %s: key %s no longer authorized",
			    c->peer, c->fpr);
		return -KB_EUNTRUSTED;
	}
	kb_srv_logf(s, KB_SRV_LOG_INFO, "connect from %s key %s%s", c->peer, c->fpr,
		    (c->flags & KB_KEYF_RO) ? " (ro)" : "");
	return 0;
}

/* Move c to the server's list of exited receivers; kb_srv_reap() joins the
 * thread (so its thread-local state is gone too) and frees c. */
static void conn_unlist(struct kb_srv_conn *c)
{
	struct kb_srv *s = c->srv;
	struct kb_srv_conn **pp;

	pthread_mutex_lock(&s->lock);
	for (pp = &s->conns; *pp; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	c->next = s->dead;
	s->dead = c;
	s->nconns--;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

static void *conn_main(void *arg)
{
	struct kb_srv_conn *c = arg;
	int hs = handshake(c, c->fd_pending);

	pthread_mutex_lock(&c->lock);
	c->fd_pending = -1; /* owned by the channel now, or closed */
	pthread_mutex_unlock(&c->lock);
	if (!hs) {
		int rc = start_workers(c);

		if (!rc)
			serve(c);
		else
			kb_srv_logf(c->srv, KB_SRV_LOG_ERR, "connection %s: %s", c->peer,
				    kb_strerror(rc));
		stop_workers(c);
		kb_srv_sess_detach(c);
		kb_srv_logf(c->srv, KB_SRV_LOG_INFO, "disconnect %s key %s", c->peer, c->fpr);
	}
	pthread_mutex_lock(&c->lock);
	c->closing = true;
	while (c->notify_busy) /* a push being sent on this channel */
		pthread_cond_wait(&c->cond, &c->lock);
	kb_chan_free(c->chan);
	c->chan = NULL;
	pthread_mutex_unlock(&c->lock);
	conn_unlist(c); /* the last touch of c and the server */
	return NULL;
}

static void conn_destroy(struct kb_srv_conn *c)
{
	pthread_cond_destroy(&c->cond);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

void kb_srv_reap(struct kb_srv *s)
{
	struct kb_srv_conn *c, *next;

	pthread_mutex_lock(&s->lock);
	c = s->dead;
	s->dead = NULL;
	pthread_mutex_unlock(&s->lock);
	for (; c; c = next) {
		next = c->next;
		pthread_join(c->rx, NULL);
		conn_destroy(c);
	}
}

static struct kb_srv_conn *conn_alloc(struct kb_srv *s)
{
	struct kb_srv_conn *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->srv = s;
	c->fd_pending = -1;
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->cond, NULL);
	for (unsigned i = 0; i < KB_SRV_MAX_INFLIGHT; i++) {
		c->slots[i].next = c->free;
		c->free = &c->slots[i];
	}
	return c;
}

int kb_srv_conn_spawn(struct kb_srv *s, int fd, const char *peer)
{
	struct kb_srv_conn *c = conn_alloc(s);
	int rc = -ENOMEM;

	if (!c)
		goto out;
	snprintf(c->peer, sizeof(c->peer), "%s", peer);
	snprintf(c->fpr, sizeof(c->fpr), "(none)");
	c->fd_pending = fd;
	pthread_mutex_lock(&s->lock);
	if (s->stopping || s->nconns >= s->max_conns) {
		pthread_mutex_unlock(&s->lock);
		rc = -EMFILE;
		goto out;
	}
	c->next = s->conns;
	s->conns = c;
	s->nconns++;
	rc = -pthread_create(&c->rx, NULL, conn_main, c); /* joined by kb_srv_reap */
	if (!rc)
		pthread_setname_np(c->rx, "kbsrv-recv");
	if (rc) {
		s->conns = c->next;
		s->nconns--;
	}
	pthread_mutex_unlock(&s->lock);
out:
	if (rc) {
		close(fd);
		if (c)
			conn_destroy(c);
	}
	return rc;
}

/* Receivers stop by themselves once the stop pipe is readable; here we end
 * handshakes in progress and, with `force`, break sends that a peer that
 * does not read keeps blocked. Caller holds s->lock. */
void kb_srv_conns_shutdown(struct kb_srv *s, bool force)
{
	for (struct kb_srv_conn *c = s->conns; c; c = c->next) {
		pthread_mutex_lock(&c->lock);
		if (c->chan && force)
			kb_chan_shutdown(c->chan);
		else if (!c->chan && c->fd_pending >= 0)
			shutdown(c->fd_pending, SHUT_RDWR); /* still in the handshake */
		pthread_mutex_unlock(&c->lock);
	}
}

int kb_srv_conn_detached(struct kb_srv_conn **out, struct kb_srv *s, unsigned flags)
{
	struct kb_srv_conn *c = conn_alloc(s);

	if (!c)
		return -ENOMEM;
	c->flags = flags;
	c->max_send = KB_FRAME_MAX_DEFAULT;
	snprintf(c->peer, sizeof(c->peer), "detached");
	*out = c;
	return 0;
}

void kb_srv_conn_detached_free(struct kb_srv_conn *c)
{
	if (!c)
		return;
	kb_srv_sess_detach(c);
	conn_destroy(c);
}
