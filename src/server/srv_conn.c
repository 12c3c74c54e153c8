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
 *
 * Limits against a peer that holds resources (keibifsd(8), LIMITS):
 * handshakes have their own budget (srv->max_hs, max_hs_addr per source
 * address; when full, the oldest handshake of the address with the most is
 * cut, so a flood from some addresses never locks out another), and a
 * deadline. Authenticated connections count against max_conns and
 * max_conns_key. Bytes of queued frames and of replies being sent count
 * against srv->max_queued: past it receivers take one frame at a time. The
 * receiver publishes its state (rx_state, rx_since_ns) and senders theirs
 * (tx_*), and the janitor (kb_srv_conns_deadlines) cuts a connection that
 * sends no HELLO, stalls mid-frame, idles, or does not take its replies.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "chan.h"
#include "compress.h"
#include "err.h"
#include "srv_impl.h"
#include "util.h"

#define HS_MSG1_MIN (2 + 32)     /* length and an ephemeral key */
#define HS_GRACE_NS 200000000ull /* time for a peer to speak (scheduling) */

/* A reply out on c, seen by the janitor while it is being sent. */
static int conn_send(struct kb_srv_conn *c, uint8_t *reply, size_t rlen)
{
	struct kb_srv *s = c->srv;
	int rc;

	if (atomic_fetch_add(&c->tx_pending, 1) == 0)
		atomic_store(&c->tx_since_ns, kb_now_ns());
	atomic_fetch_add(&c->tx_bytes, rlen);
	atomic_fetch_add(&s->queued, rlen);
	rc = kb_chan_send(c->chan, reply, rlen);
	atomic_fetch_sub(&s->queued, rlen);
	atomic_fetch_sub(&c->tx_bytes, rlen);
	atomic_store(&c->tx_since_ns, kb_now_ns()); /* progress */
	atomic_fetch_sub(&c->tx_pending, 1);
	return rc;
}

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
		if (reply && conn_send(c, reply, rlen) < 0)
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
		atomic_fetch_sub(&c->srv->queued, j->len);
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

/* Lock held: the server's queued bytes are over budget and c has a frame
 * in flight already (so every connection can still take one at a time). */
static bool over_budget(struct kb_srv_conn *c)
{
	struct kb_srv *s = c->srv;

	if (!c->inflight || atomic_load(&s->queued) < s->max_queued)
		return false;
	kb_srv_limit_log(s, KB_SRV_LIM_QUEUED,
			 "queued bytes over %zu MiB (--max-queued-mib): "
			 "connections take one request at a time",
			 s->max_queued >> 20);
	return true;
}

/* Wait for room (and, before a session exists, for the first frame to be
 * served); false when the connection should end. */
static bool wait_room(struct kb_srv_conn *c, bool first_sent)
{
	bool ok;

	atomic_store(&c->rx_state, KB_SRV_RX_BUSY);
	pthread_mutex_lock(&c->lock);
	for (;;) {
		if (c->closing)
			break;
		if (c->inflight >= KB_SRV_MAX_INFLIGHT ||
		    c->inflight_bytes >= KB_SRV_INFLIGHT_BYTES ||
		    (first_sent && !c->sess && c->inflight > 0)) {
			pthread_cond_wait(&c->cond, &c->lock);
		} else if (over_budget(c)) { /* others' frames free it: look again */
			struct timespec ts;

			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += 20000000;
			if (ts.tv_nsec >= 1000000000) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000;
			}
			pthread_cond_timedwait(&c->cond, &c->lock, &ts);
		} else {
			break;
		}
	}
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

	atomic_store(&c->rx_since_ns, kb_now_ns());
	atomic_store(&c->rx_state, KB_SRV_RX_WAIT);
	while (poll(pf, 2, -1) < 0)
		if (errno != EINTR)
			return -errno;
	atomic_store(&c->rx_since_ns, kb_now_ns());
	atomic_store(&c->rx_state, KB_SRV_RX_FRAME);
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

	if (reply && conn_send(c, reply, rlen) < 0)
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
	atomic_store(&c->rx_state, KB_SRV_RX_BUSY);
	if (!rc && kb_z_flagged(b->mem, plen))
		rc = inflate(c, &b, &plen);
	if (rc) {
		kb_buf_put(b);
		return rc;
	}
	atomic_fetch_add(&c->rx_frames, 1);
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
	atomic_fetch_add(&c->srv->queued, plen);
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
		kb_srv_logf(c->srv, KB_SRV_LOG_INFO, "connection %s: %s", c->peer, kb_strerror(rc));
}

/* Wait, within the handshake deadline, until the peer's whole first
 * handshake message ([2-byte length][message]) has arrived, only peeking:
 * until then the connection is 'silent', first to be cut (hs_room). */
static int wait_msg1(struct kb_srv_conn *c, int fd, uint64_t deadline)
{
	for (;;) {
		uint64_t now = kb_now_ns();
		struct pollfd pf = {.fd = fd, .events = POLLIN};
		uint8_t l[2];
		ssize_t r;
		int avail = 0;

		if (now >= deadline)
			return -KB_ETIMEOUT;
		if (poll(&pf, 1, (int)((deadline - now) / 1000000u) + 1) < 0 && errno != EINTR)
			return -errno;
		r = recv(fd, l, 2, MSG_PEEK | MSG_DONTWAIT);
		if (r == 0)
			return -KB_ECLOSED;
		if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			return -errno;
		if (r == 2 && !ioctl(fd, FIONREAD, &avail) && avail >= 2 + (l[0] << 8 | l[1])) {
			atomic_store(&c->hs_said, true);
			return 0;
		}
		if (r > 0)
			usleep(20000); /* part of it: readable until read, so no poll */
	}
}

static int handshake(struct kb_srv_conn *c, int fd)
{
	struct kb_srv *s = c->srv;
	uint64_t deadline = c->start_ns + (uint64_t)s->hs_timeout_ms * 1000000u;
	struct kb_chan_cfg cfg = {
		.initiator = false,
		.s = s->priv,
		.backend = s->backend,
		.max_frame = KB_FRAME_MAX_DEFAULT,
		.rng = s->rng,
		.verify = verify_peer,
		.verify_arg = s,
		.timeout_ms = s->hs_timeout_ms,
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
	rc = wait_msg1(c, fd, deadline);
	if (rc) {
		close(fd);
	} else {
		uint64_t now = kb_now_ns();

		cfg.timeout_ms = now < deadline ? (int)((deadline - now) / 1000000u) + 1 : 1;
		rc = kb_chan_handshake(&ch, fd, &cfg, &info);
	}
	kb_memzero(psk, sizeof(psk));
	if (info.have_remote_static)
		kb_key_fingerprint(info.remote_static, c->fpr);
	if (rc) {
		bool evicted;

		pthread_mutex_lock(&s->lock);
		evicted = c->evicted;
		pthread_mutex_unlock(&s->lock);
		if (evicted) /* logged when it was cut */
			;
		else if (rc == -KB_EUNTRUSTED)
			kb_srv_logf(s, KB_SRV_LOG_INFO, "refused %s: key %s is not authorized",
				    c->peer, c->fpr);
		else if (rc == -KB_ETIMEOUT)
			kb_srv_limit_log(s, KB_SRV_LIM_HS_TIME,
					 "handshake deadline: cut %s after "
					 "%d s (--handshake-timeout)",
					 c->peer, s->hs_timeout_ms / 1000);
		else if (s->have_psk &&
			 (rc == -KB_EHANDSHAKE || rc == -KB_ECLOSED || rc == -KB_ETRUNC))
			kb_srv_logf(s, KB_SRV_LOG_INFO,
				    "handshake with %s failed: pre-shared key "
				    "mismatch (or the client uses none)",
				    c->peer);
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
		kb_srv_logf(s, KB_SRV_LOG_INFO, "refused %s: key %s no longer authorized", c->peer,
			    c->fpr);
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
	s->nlisted--;
	if (c->authed) {
		s->nconns--;
		c->ku->conns--;
	}
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	kb_srv_keyuse_put(s, c->ku);
	c->ku = NULL;
}

/* The handshake ended (hs: its result): leave the handshake budget and,
 * on success, take an authenticated slot, within the per-key limit. */
static int conn_authed(struct kb_srv_conn *c, int hs)
{
	struct kb_srv *s = c->srv;
	struct kb_srv_keyuse *ku = hs ? NULL : kb_srv_keyuse_get(s, c->key);
	unsigned n = 0;
	int rc = hs;

	if (!hs && !ku)
		rc = -ENOMEM;
	pthread_mutex_lock(&s->lock);
	c->hs_done = true;
	if (c->evicted) {
		s->nevicted--;
		pthread_cond_broadcast(&s->cond); /* accept may be waiting */
	} else
		s->nunauth--;
	if (!rc && c->evicted)
		rc = -KB_ECLOSED;
	if (!rc && (s->stopping || s->nconns >= s->max_conns)) {
		rc = -EMFILE;
		n = s->nconns;
	} else if (!rc && ku->conns >= s->max_conns_key) {
		rc = -EUSERS;
		n = ku->conns;
	} else if (!rc) {
		c->authed = true;
		c->ku = ku;
		ku->conns++;
		s->nconns++;
		ku = NULL;
	}
	pthread_mutex_unlock(&s->lock);
	kb_srv_keyuse_put(s, ku);
	if (rc == -EMFILE)
		kb_srv_limit_log(s, KB_SRV_LIM_CONNS,
				 "connection limit: refused %s key %s: %u "
				 "connections (--max-conns)",
				 c->peer, c->fpr, n);
	else if (rc == -EUSERS)
		kb_srv_limit_log(s, KB_SRV_LIM_CONNS_KEY,
				 "connection limit: refused %s key %s: "
				 "%u connections of this key (--max-conns-per-key)",
				 c->peer, c->fpr, n);
	return rc;
}

static void *conn_main(void *arg)
{
	struct kb_srv_conn *c = arg;
	int hs = handshake(c, c->fd_pending);

	pthread_mutex_lock(&c->lock);
	c->fd_pending = -1; /* owned by the channel now, or closed */
	pthread_mutex_unlock(&c->lock);
	hs = conn_authed(c, hs);
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

/* srv lock held: c is in the handshake and still counted there. */
static bool in_hs(const struct kb_srv_conn *c)
{
	return !c->hs_done && !c->evicted;
}

/* srv lock held: how readily c's handshake is cut (lowest first): 0 its
 * peer has not sent its first message (its length and an ephemeral key)
 * in HS_GRACE_NS, 1 not yet but it is young, 2 it has (an honest client
 * does so at once). */
static int hs_tier(struct kb_srv_conn *c, uint64_t now)
{
	int n = 0;

	if (atomic_load(&c->hs_said))
		return 2;
	pthread_mutex_lock(&c->lock);
	if (c->fd_pending < 0 || ioctl(c->fd_pending, FIONREAD, &n))
		n = 0;
	pthread_mutex_unlock(&c->lock);
	if (n >= HS_MSG1_MIN)
		return 2;
	return now - c->start_ns < HS_GRACE_NS ? 1 : 0;
}

/* Which handshake to cut first: the lower tier, then the oldest. */
static bool hs_before(const struct kb_srv_conn *a, const struct kb_srv_conn *b)
{
	if (!b)
		return true;
	if (a->tier != b->tier)
		return a->tier < b->tier;
	return a->start_ns < b->start_ns;
}

struct hs_count {
	unsigned n, t0, t1;        /* handshakes; of tier 0, of tier 1 */
	struct kb_srv_conn *first; /* to cut first */
};

/* srv lock held: the handshakes of host. */
static void hs_of(struct kb_srv *s, const char *host, struct hs_count *k)
{
	memset(k, 0, sizeof(*k));
	for (struct kb_srv_conn *c = s->conns; c; c = c->next) {
		if (!in_hs(c) || strcmp(c->host, host))
			continue;
		k->n++;
		k->t0 += c->tier == 0;
		k->t1 += c->tier == 1;
		if (hs_before(c, k->first))
			k->first = c;
	}
}

/* a's address is to lose a handshake before b's: the one holding the most
 * silent handshakes; with none anywhere, the one holding the oldest young
 * one (a flood's, not the honest client's that has just arrived); else
 * the one holding the most. */
static bool hs_more(const struct hs_count *a, const struct hs_count *b)
{
	if (!b->first)
		return true;
	if (a->t0 != b->t0)
		return a->t0 > b->t0;
	if (!a->t0 && a->first->tier != b->first->tier)
		return a->first->tier < b->first->tier;
	if (!a->t0 && a->first->tier == 1)
		return a->first->start_ns < b->first->start_ns;
	if (a->n != b->n)
		return a->n > b->n;
	return hs_before(a->first, b->first);
}

/* srv lock held: make room in the handshake budget for one from host by
 * cutting a silent handshake of host (at its own limit: past it, only
 * peers that all spoke, such as several clients behind one address, may
 * have more) or, with the whole budget taken, one of the address chosen by
 * hs_more.
 * Within an address the silent go first, then the young, the oldest
 * first: a flood of connections that say nothing, or say it slowly, never
 * cuts an honest client's handshake once it has spoken. */
static void hs_room(struct kb_srv *s, const char *host)
{
	struct hs_count k, best = {0};
	struct kb_srv_conn *v;
	uint64_t now = kb_now_ns();
	bool own;

	for (struct kb_srv_conn *c = s->conns; c; c = c->next)
		if (in_hs(c))
			c->tier = (uint8_t)hs_tier(c, now);
	hs_of(s, host, &k);
	own = k.n >= s->max_hs_addr && k.first && k.first->tier < 2;
	if (!own && s->nunauth < s->max_hs)
		return;
	if (own) {
		best = k;
	} else {
		for (struct kb_srv_conn *c = s->conns; c; c = c->next) {
			if (!in_hs(c))
				continue;
			hs_of(s, c->host, &k);
			if (hs_more(&k, &best))
				best = k;
		}
	}
	v = best.first;
	if (!v)
		return;
	v->evicted = true;
	s->nunauth--;
	s->nevicted++;
	pthread_mutex_lock(&v->lock);
	if (v->chan)
		kb_chan_shutdown(v->chan);
	else if (v->fd_pending >= 0)
		shutdown(v->fd_pending, SHUT_RDWR);
	pthread_mutex_unlock(&v->lock);
	if (own)
		kb_srv_limit_log(s, KB_SRV_LIM_HS_ADDR,
				 "handshake limit: %u from %s "
				 "(--max-handshakes-per-addr): cut the oldest silent one",
				 s->max_hs_addr, host);
	else
		kb_srv_limit_log(s, KB_SRV_LIM_HS,
				 "handshake limit: %u in progress "
				 "(--max-handshakes): cut one from %s (%u open, %u silent, %u new)",
				 s->max_hs, v->host, best.n, best.t0, best.t1);
}

int kb_srv_conn_spawn(struct kb_srv *s, int fd, const char *peer, const char *host)
{
	struct kb_srv_conn *c = conn_alloc(s);
	int rc = -ENOMEM;

	if (!c)
		goto out;
	snprintf(c->peer, sizeof(c->peer), "%s", peer);
	snprintf(c->host, sizeof(c->host), "%s", host);
	snprintf(c->fpr, sizeof(c->fpr), "(none)");
	c->fd_pending = fd;
	c->start_ns = kb_now_ns();
	pthread_mutex_lock(&s->lock);
	/* Cut handshakes leave within moments; a flood faster than that waits
	 * in the listen backlog. */
	if (s->stopping || s->nevicted >= s->max_hs) {
		pthread_mutex_unlock(&s->lock);
		rc = -EMFILE;
		goto out;
	}
	hs_room(s, host);
	c->next = s->conns;
	s->conns = c;
	s->nlisted++;
	s->nunauth++;
	rc = -pthread_create(&c->rx, NULL, conn_main, c); /* joined by kb_srv_reap */
	if (!rc)
		pthread_setname_np(c->rx, "kbsrv-recv");
	if (rc) {
		s->conns = c->next;
		s->nlisted--;
		s->nunauth--;
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

/* srv lock held: cut c for a limit (once), with a line saying which. */
static void cut(struct kb_srv_conn *c, enum kb_srv_lim kind, const char *what, int secs)
{
	if (atomic_exchange(&c->cut, true))
		return;
	pthread_mutex_lock(&c->lock);
	if (c->chan)
		kb_chan_shutdown(c->chan);
	pthread_mutex_unlock(&c->lock);
	kb_srv_limit_log(c->srv, kind, "%s: cut %s key %s after %d s", what, c->peer, c->fpr, secs);
}

static uint64_t since(uint64_t now, uint64_t t)
{
	return now > t ? now - t : 0;
}

void kb_srv_conns_deadlines(struct kb_srv *s, uint64_t now)
{
	struct kb_srv_conn *big = NULL;
	size_t big_bytes = 0;

	for (struct kb_srv_conn *c = s->conns; c; c = c->next) {
		int st = atomic_load(&c->rx_state);
		uint64_t rx = since(now, atomic_load(&c->rx_since_ns));
		uint64_t tx = since(now, atomic_load(&c->tx_since_ns));
		unsigned inflight;
		size_t held;

		if (!c->authed || atomic_load(&c->cut))
			continue; /* the handshake has its own deadline */
		pthread_mutex_lock(&c->lock);
		inflight = c->inflight;
		held = c->inflight_bytes + atomic_load(&c->tx_bytes);
		pthread_mutex_unlock(&c->lock);
		if (st == KB_SRV_RX_WAIT && !atomic_load(&c->rx_frames) && rx > s->hello_ns)
			cut(c, KB_SRV_LIM_HELLO, "no HELLO (--hello-timeout)",
			    (int)(s->hello_ns / 1000000000u));
		else if (st == KB_SRV_RX_FRAME && rx > s->frame_ns)
			cut(c, KB_SRV_LIM_FRAME, "frame not received in time (--frame-timeout)",
			    (int)(s->frame_ns / 1000000000u));
		else if (atomic_load(&c->tx_pending) && tx > s->frame_ns)
			cut(c, KB_SRV_LIM_FRAME,
			    "reply not taken in time, peer not reading "
			    "(--frame-timeout)",
			    (int)(s->frame_ns / 1000000000u));
		else if (st == KB_SRV_RX_WAIT && !inflight && !atomic_load(&c->tx_pending) &&
			 s->idle_ns && rx > s->idle_ns)
			cut(c, KB_SRV_LIM_IDLE, "idle (--idle-timeout)",
			    (int)(s->idle_ns / 1000000000u));
		else if (atomic_load(&c->tx_pending) && tx > 5000000000ull && held > big_bytes) {
			big = c; /* stalled sender holding memory */
			big_bytes = held;
		}
	}
	/* Over the queued-bytes budget: the connection holding the most while
	 * its peer takes nothing goes first. */
	if (big && atomic_load(&s->queued) >= s->max_queued)
		cut(big, KB_SRV_LIM_QUEUED_CUT,
		    "queued bytes over budget (--max-queued-mib), peer "
		    "not reading",
		    5);
}
