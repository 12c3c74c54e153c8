/* srv_dlease.c - directory leases for write-behind (PROTOCOL.md,
 * "Write-behind").
 *
 * A session holding a lease on a directory may answer changes of names in
 * it itself and stream them to us; no other session uses the directory
 * meanwhile. Every directory some session holds a node of has a record
 * here (by dev, ino): how many sessions hold it and who has its lease. A
 * lease is granted (a MKDIR of the session, a READDIR asking for it) only
 * while the asking session is the directory's only user. Another session
 * about to hold the directory (LOOKUP, a listing's entry, HELLO) first
 * recalls the lease: NOTIFY_RECALL to the holder, which sends LEASE_RETURN
 * in its stream after everything it queued, so the newcomer sees all of
 * it. It waits at most KB_SRV_RECALL_MS; a holder that did not give the
 * lease back by then loses it and its session (its connections are cut;
 * its queued changes fail and it says so).
 *
 * Lock order: dleases.lock before the notifier's lock and kb_srv.lock
 * (cutting a holder); taken with no other lock held.
 */
#include <errno.h>
#include <stdlib.h>

#include "srv_impl.h"
#include "util.h"

#define DL_BUCKETS 1024u

struct kb_srv_dlease {
	dev_t dev; /* immutable */
	ino_t ino;
	unsigned users;             /* session node tables holding it */
	struct kb_srv_sess *holder; /* NULL: no lease */
	uint64_t holder_node;       /* its id in the holder's table */
	bool recalling;             /* NOTIFY_RECALL sent */
	struct kb_srv_dlease *next; /* chain */
};

int kb_srv_dleases_init(struct kb_srv_dleases *d)
{
	pthread_condattr_t ca;

	d->b = calloc(DL_BUCKETS, sizeof(*d->b));
	if (!d->b)
		return -ENOMEM;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_mutex_init(&d->lock, NULL);
	pthread_cond_init(&d->cond, &ca);
	pthread_condattr_destroy(&ca);
	return 0;
}

void kb_srv_dleases_destroy(struct kb_srv_dleases *d)
{
	if (!d->b)
		return;
	for (unsigned i = 0; i < DL_BUCKETS; i++)
		for (struct kb_srv_dlease *e = d->b[i], *n; e; e = n) {
			n = e->next;
			free(e);
		}
	free(d->b);
	d->b = NULL;
	pthread_cond_destroy(&d->cond);
	pthread_mutex_destroy(&d->lock);
}

static struct kb_srv_dlease **slot(struct kb_srv_dleases *d, dev_t dev, ino_t ino)
{
	uint64_t h = ((uint64_t)ino ^ (uint64_t)dev << 40) * 0x9e3779b97f4a7c15ull;
	struct kb_srv_dlease **pp = &d->b[(h >> 40) & (DL_BUCKETS - 1)];

	while (*pp && !((*pp)->dev == dev && (*pp)->ino == ino))
		pp = &(*pp)->next;
	return pp;
}

/* Lock held: the holder did not give it back in time, or cannot hear. */
static void revoke(struct kb_srv *srv, struct kb_srv_dlease *e, const char *why)
{
	struct kb_srv_sess *h = e->holder;

	e->holder = NULL;
	e->recalling = false;
	srv->dleases.revoked++;
	kb_srv_logf(srv, KB_SRV_LOG_INFO, "directory lease taken back (%s): its session is cut",
		    why);
	kb_srv_sess_cut(h);
}

/* Lock held: has the holder a connection to hear a recall on? */
static bool holder_reachable(struct kb_srv *srv, struct kb_srv_sess *h)
{
	bool up;

	pthread_mutex_lock(&srv->lock);
	up = h->conns > 0 && !h->bye;
	pthread_mutex_unlock(&srv->lock);
	return up;
}

/* Lock held: recall e's lease for `s` and wait until it is back. */
static void recall(struct kb_srv *srv, struct kb_srv_sess *s, struct kb_srv_dlease *e)
{
	struct kb_srv_dleases *d = &srv->dleases;
	uint64_t deadline = kb_now_ns() + KB_SRV_RECALL_MS * 1000000ull;

	while (e->holder && e->holder != s) {
		struct timespec ts = kb_srv_ts(deadline);

		if (!holder_reachable(srv, e->holder)) {
			/* no connection to hear the recall (a mount gone without
			 * BYE, in its grace period): waiting would only stall the
			 * asker (its receiver, its keepalives) */
			revoke(srv, e, "its client is not connected");
			break;
		}
		if (!e->recalling) {
			e->recalling = true;
			d->recalls++;
			kb_srv_notify_recall(srv->notifier, e->holder, e->holder_node);
		}
		if (pthread_cond_timedwait(&d->cond, &d->lock, &ts) == ETIMEDOUT &&
		    kb_now_ns() >= deadline && e->holder && e->holder != s)
			revoke(srv, e, "not given back within 5 s");
	}
}

int kb_srv_dlease_enter(struct kb_srv_sess *s, dev_t dev, ino_t ino)
{
	struct kb_srv *srv = s->srv;
	struct kb_srv_dleases *d = &srv->dleases;
	struct kb_srv_dlease **pp, *e;
	int ret = 0;

	pthread_mutex_lock(&d->lock);
	pp = slot(d, dev, ino);
	e = *pp;
	if (!e && (e = calloc(1, sizeof(*e)))) {
		e->dev = dev;
		e->ino = ino;
		*pp = e;
	}
	if (!e) {
		ret = -ENOMEM;
		goto out;
	}
	e->users++; /* first: no lease is granted to another meanwhile */
	if (e->holder && e->holder != s)
		recall(srv, s, e);
out:
	pthread_mutex_unlock(&d->lock);
	return ret;
}

void kb_srv_dlease_leave(struct kb_srv_sess *s, dev_t dev, ino_t ino, bool dropped)
{
	struct kb_srv_dleases *d = &s->srv->dleases;
	struct kb_srv_dlease **pp, *e;

	pthread_mutex_lock(&d->lock);
	pp = slot(d, dev, ino);
	e = *pp;
	if (e) {
		if (dropped && e->holder == s) { /* it forgot the directory: no lease left */
			e->holder = NULL;
			e->recalling = false;
			pthread_cond_broadcast(&d->cond);
		}
		if (e->users && --e->users == 0 && !e->holder) {
			*pp = e->next;
			free(e);
		}
	}
	pthread_mutex_unlock(&d->lock);
}

bool kb_srv_dlease_grant(struct kb_srv_sess *s, const struct kb_srv_node *n)
{
	struct kb_srv_dleases *d = &s->srv->dleases;
	struct kb_srv_dlease *e;
	bool ok = false;

	/* on another filesystem mounted beneath the share: its changes are
	 * not promised to be pushed (Entry.no_lease), nor its free space known */
	if (n->fmt != S_IFDIR || !s->srv->notifier || s->ro || n->dev != s->srv->root_dev)
		return false;
	pthread_mutex_lock(&d->lock);
	e = *slot(d, n->dev, n->ino);
	if (e && e->users == 1 && (!e->holder || e->holder == s) && !e->recalling) {
		e->holder = s;
		e->holder_node = n->id;
		ok = true;
	}
	pthread_mutex_unlock(&d->lock);
	return ok;
}

void kb_srv_dlease_return(struct kb_srv_sess *s, const struct kb_srv_node *n)
{
	struct kb_srv_dleases *d = &s->srv->dleases;
	struct kb_srv_dlease *e;

	pthread_mutex_lock(&d->lock);
	e = *slot(d, n->dev, n->ino);
	if (e && e->holder == s) {
		e->holder = NULL;
		e->recalling = false;
		pthread_cond_broadcast(&d->cond);
	}
	pthread_mutex_unlock(&d->lock);
}
