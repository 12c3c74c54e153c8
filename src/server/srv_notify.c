/* srv_notify.c - change notifications: inotify watches on what clients
 * looked up, pushed to them as NOTIFY frames (id 0).
 *
 * One inotify descriptor and one thread per server. A session registers
 * (wd, session, node) for every directory or regular file it looks up (at
 * most KB_SRV_MAX_WATCHES per session, NOTIFY_MAX_TOTAL per server; beyond
 * that nothing is watched and the client relies on its attribute timeout).
 * An event on a watched directory that names an entry becomes
 * {notify_node = dir, notify_name = entry}; an event on the watched inode
 * itself becomes {notify_node = node, name empty}. Events are coalesced:
 * pending pushes are deduplicated and sent NOTIFY_DELAY_MS after the first
 * of a burst, each on one of the session's connections. A pending push
 * that a request of the same session marked as its own change within
 * KB_SRV_MINE_MS (kb_srv_notify_mine, before it ran) is not sent; what no
 * request marked is not attributed: a client also hears of its own changes (it only
 * invalidates caches, which is harmless).
 *
 * Locks: nf->lock guards the watch table, the pending list and every
 * session's nwatches (a leaf, like the table locks). nf->send_lock is held
 * while pending pushes are sent, and by kb_srv_notify_forget, so a session
 * is never freed while a push for it is being sent; pushes never wait on a
 * peer (kb_chan_send_nowait: dropped, counted and logged when the client
 * does not take them), so neither lock is ever held long. Order: send_lock ->
 * srv.lock -> conn.lock; nf->lock is never held with another lock.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "chan.h"
#include "srv_impl.h"
#include "util.h"
#include "wire.h"

#define NOTIFY_BUCKETS 1024
#define NOTIFY_MAX_TOTAL 65536
#define NOTIFY_PEND_MAX 1024
#define NOTIFY_DELAY_MS 50
/* A push waits this long for a reply being sent on its connection (never
 * for the peer); one that could not be sent drops the connection's pushes
 * for PUSH_STALL_NS without waiting. */
#define PUSH_LOCK_MS 20
#define PUSH_STALL_NS 1000000000ull
#define NOTIFY_MASK (IN_MODIFY | IN_ATTRIB | IN_CREATE | IN_DELETE | IN_MOVED_FROM | \
		     IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF)

struct watch {
	int wd;
	struct kb_srv_sess *sess;    /* not owned: forget removes us first */
	uint64_t node;
	struct watch *next;          /* bucket chain (lock) */
};

/* A session's own recent changes: 64-bit hashes of (node, name) and when
 * they stop counting, 4-way set-associative (a full set forgets the entry
 * that expires first; a forgotten mark only means a push the client
 * recognises and drops itself, as it did before these marks). */
#define MINE_SETS 1024
#define MINE_WAYS 4
struct kb_srv_mine {
	struct { uint64_t key, expiry_ns; } e[MINE_SETS * MINE_WAYS];
};

struct pend {
	struct kb_srv_sess *sess;
	uint64_t node;
	char name[256];
};

struct kb_srv_notifier {
	struct kb_srv *srv;
	int ifd;                     /* inotify, owned */
	int wake[2];                 /* owned pipe: stop */
	pthread_t th;
	pthread_mutex_t lock;
	pthread_mutex_t send_lock;
	struct watch *b[NOTIFY_BUCKETS]; /* owned chains by wd (lock) */
	unsigned total;              /* (lock) */
	struct pend *pend;           /* owned, NOTIFY_PEND_MAX (lock) */
	unsigned npend;              /* (lock) */
	uint64_t first_ns;           /* arrival of the oldest pending (lock) */
	struct pend *out;            /* owned copy being sent (send_lock) */
	kb_Response resp;            /* being encoded (send_lock) */
	uint8_t frame[KB_FRAME_HEAD + 512 + KB_FRAME_TAG]; /* (send_lock) */
};

void kb_srv_notify_watch(struct kb_srv_notifier *nf, struct kb_srv_sess *s,
			 const struct kb_srv_node *n)
{
	char path[64];
	struct watch *w;
	int wd;

	if (!nf || (n->fmt != S_IFDIR && n->fmt != S_IFREG))
		return;
	pthread_mutex_lock(&nf->lock);
	wd = s->nwatches < KB_SRV_MAX_WATCHES && nf->total < NOTIFY_MAX_TOTAL;
	pthread_mutex_unlock(&nf->lock);
	if (!wd || kb_srv_proc_path(n, path, sizeof(path)))
		return;
	wd = inotify_add_watch(nf->ifd, path, NOTIFY_MASK);
	if (wd < 0)
		return;
	pthread_mutex_lock(&nf->lock);
	for (w = nf->b[wd % NOTIFY_BUCKETS]; w; w = w->next)
		if (w->wd == wd && w->sess == s && w->node == n->id)
			break;
	if (!w && (w = malloc(sizeof(*w)))) {
		*w = (struct watch){.wd = wd, .sess = s, .node = n->id,
				    .next = nf->b[wd % NOTIFY_BUCKETS]};
		nf->b[wd % NOTIFY_BUCKETS] = w;
		nf->total++;
		s->nwatches++;
	}
	pthread_mutex_unlock(&nf->lock);
}

static uint64_t mine_key(uint64_t node, const char *name)
{
	return kb_hash_key_name(node, name) | 1; /* 0: an empty entry */
}

/* The first way of key's set. */
static unsigned mine_set(uint64_t key)
{
	return (unsigned)(key >> 32) % MINE_SETS * MINE_WAYS;
}

void kb_srv_notify_mine(struct kb_srv_notifier *nf, struct kb_srv_sess *s, uint64_t node,
			const char *name)
{
	uint64_t key = mine_key(node, name), exp = kb_now_ns() + KB_SRV_MINE_MS * 1000000ull;
	unsigned set = mine_set(key), v;

	if (!nf)
		return;
	pthread_mutex_lock(&nf->lock);
	if (!s->mine)
		s->mine = calloc(1, sizeof(*s->mine)); /* NULL: no marks, pushes as before */
	if (s->mine) {
		for (v = 0; v < MINE_WAYS && s->mine->e[set + v].key != key; v++)
			;
		if (v == MINE_WAYS) { /* not there: the way that expires first */
			v = 0;
			for (unsigned i = 1; i < MINE_WAYS; i++)
				if (s->mine->e[set + i].expiry_ns < s->mine->e[set + v].expiry_ns)
					v = i;
		}
		s->mine->e[set + v].key = key;
		s->mine->e[set + v].expiry_ns = exp;
	}
	pthread_mutex_unlock(&nf->lock);
}

/* Lock held: s made this change itself within KB_SRV_MINE_MS. */
static bool is_mine(const struct kb_srv_sess *s, uint64_t node, const char *name, uint64_t now)
{
	uint64_t key;
	unsigned set;

	if (!s->mine)
		return false;
	key = mine_key(node, name);
	set = mine_set(key);
	for (unsigned v = 0; v < MINE_WAYS; v++)
		if (s->mine->e[set + v].key == key)
			return s->mine->e[set + v].expiry_ns > now;
	return false;
}

/* Lock held: queue one push unless the same one is already pending. */
static void pend_add(struct kb_srv_notifier *nf, struct kb_srv_sess *s, uint64_t node,
		     const char *name)
{
	for (unsigned i = 0; i < nf->npend; i++)
		if (nf->pend[i].sess == s && nf->pend[i].node == node &&
		    !strcmp(nf->pend[i].name, name))
			return;
	if (nf->npend >= NOTIFY_PEND_MAX)
		return;
	if (!nf->npend)
		nf->first_ns = kb_now_ns();
	nf->pend[nf->npend].sess = s;
	nf->pend[nf->npend].node = node;
	snprintf(nf->pend[nf->npend].name, sizeof(nf->pend[0].name), "%s", name);
	nf->npend++;
}

/* Lock held: remove the registrations matching wd (and s when not NULL);
 * true when wd has none left. */
static bool drop_watches(struct kb_srv_notifier *nf, int wd, const struct kb_srv_sess *s)
{
	struct watch **pp = &nf->b[wd % NOTIFY_BUCKETS], *w;
	bool left = false;

	while ((w = *pp)) {
		if (w->wd == wd && (!s || w->sess == s)) {
			*pp = w->next;
			w->sess->nwatches--;
			nf->total--;
			free(w);
		} else {
			left |= w->wd == wd;
			pp = &w->next;
		}
	}
	return !left;
}

static void on_event(struct kb_srv_notifier *nf, const struct inotify_event *ev)
{
	pthread_mutex_lock(&nf->lock);
	if (ev->mask & IN_IGNORED) {
		drop_watches(nf, ev->wd, NULL);
	} else if (ev->wd >= 0) {
		for (struct watch *w = nf->b[ev->wd % NOTIFY_BUCKETS]; w; w = w->next)
			if (w->wd == ev->wd)
				pend_add(nf, w->sess, w->node, ev->len ? ev->name : "");
	}
	pthread_mutex_unlock(&nf->lock);
}

/* srv lock held: a connection of s that can carry a push, marked busy. */
static struct kb_srv_conn *pick_conn(struct kb_srv *srv, const struct kb_srv_sess *s)
{
	for (struct kb_srv_conn *c = srv->conns; c; c = c->next) {
		pthread_mutex_lock(&c->lock);
		if (c->sess == s && c->chan && !c->closing) {
			c->notify_busy++;
			pthread_mutex_unlock(&c->lock);
			return c;
		}
		pthread_mutex_unlock(&c->lock);
	}
	return NULL;
}

/* send_lock held. */
static void push_one(struct kb_srv_notifier *nf, const struct pend *p)
{
	struct kb_srv *srv = nf->srv;
	struct kb_srv_conn *c;
	size_t len;

	memset(&nf->resp, 0, sizeof(nf->resp));
	nf->resp.notify_node = p->node;
	snprintf(nf->resp.notify_name, sizeof(nf->resp.notify_name), "%s", p->name);
	if (kb_wire_encode_resp(nf->frame + KB_FRAME_HEAD, 512, &nf->resp, &len))
		return;
	pthread_mutex_lock(&srv->lock);
	c = pick_conn(srv, p->sess);
	pthread_mutex_unlock(&srv->lock);
	if (!c)
		return; /* no connection now: the client revalidates on its own */
	if (len <= c->max_send) {
		/* Never wait on the peer here: the notifier's locks are on every
		 * session's teardown path. A client not taking its data loses the
		 * push (its attribute timeout covers it). */
		uint64_t now = kb_now_ns();
		bool stalled = now - atomic_load(&c->push_stalled_ns) < PUSH_STALL_NS;
		int rc = stalled ? -EAGAIN /* it just would not: do not wait again */
				 : kb_chan_send_nowait(c->chan, nf->frame, len, PUSH_LOCK_MS);

		if (rc == -EAGAIN) {
			uint64_t n = atomic_fetch_add(&srv->pushes_dropped, 1) + 1;

			if (!stalled)
				atomic_store(&c->push_stalled_ns, now);
			kb_srv_limit_log(srv, KB_SRV_LIM_PUSH, "push to %s key %s dropped: busy or not "
					 "reading (%llu dropped in all)", c->peer, c->fpr,
					 (unsigned long long)n);
		} else if (rc < 0) {
			kb_chan_shutdown(c->chan);
		}
	}
	pthread_mutex_lock(&c->lock);
	c->notify_busy--;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
}

static void flush(struct kb_srv_notifier *nf)
{
	uint64_t now;
	unsigned n;

	pthread_mutex_lock(&nf->send_lock);
	pthread_mutex_lock(&nf->lock);
	/* Checked now, a burst after the event: the request that made the
	 * change has marked it by then even if its event came first. */
	now = kb_now_ns();
	n = 0;
	for (unsigned i = 0; i < nf->npend; i++) {
		const struct pend *p = &nf->pend[i];

		if (!is_mine(p->sess, p->node, p->name, now))
			nf->out[n++] = *p;
	}
	nf->npend = 0;
	pthread_mutex_unlock(&nf->lock);
	for (unsigned i = 0; i < n; i++)
		push_one(nf, &nf->out[i]);
	pthread_mutex_unlock(&nf->send_lock);
}

/* Milliseconds until the pending burst is due; -1 when none pending. */
static int due_ms(struct kb_srv_notifier *nf)
{
	uint64_t now = kb_now_ns(), due;
	int ms = -1;

	pthread_mutex_lock(&nf->lock);
	if (nf->npend) {
		due = nf->first_ns + NOTIFY_DELAY_MS * 1000000ull;
		ms = due > now ? (int)((due - now) / 1000000u) + 1 : 0;
	}
	pthread_mutex_unlock(&nf->lock);
	return ms;
}

static void *notify_main(void *arg)
{
	struct kb_srv_notifier *nf = arg;
	char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));

	for (;;) {
		struct pollfd pf[2] = {{.fd = nf->ifd, .events = POLLIN},
				       {.fd = nf->wake[0], .events = POLLIN}};
		int ms = due_ms(nf), rc = poll(pf, 2, ms);
		ssize_t len;

		if (rc < 0 && errno != EINTR)
			break;
		if (rc > 0 && pf[1].revents)
			break;
		if (rc > 0 && (pf[0].revents & POLLIN)) {
			len = read(nf->ifd, buf, sizeof(buf));
			for (ssize_t off = 0; len > 0 && off < len;) {
				const struct inotify_event *ev = (const void *)(buf + off);

				on_event(nf, ev);
				off += (ssize_t)(sizeof(*ev) + ev->len);
			}
		}
		if (due_ms(nf) == 0)
			flush(nf);
	}
	return NULL;
}

void kb_srv_notify_forget(struct kb_srv_notifier *nf, struct kb_srv_sess *s)
{
	unsigned j = 0;

	if (!nf)
		return;
	pthread_mutex_lock(&nf->send_lock);
	pthread_mutex_lock(&nf->lock);
	for (unsigned i = 0; i < nf->npend; i++)
		if (nf->pend[i].sess != s)
			nf->pend[j++] = nf->pend[i];
	nf->npend = j;
	free(s->mine);
	s->mine = NULL;
	for (unsigned i = 0; i < NOTIFY_BUCKETS && s->nwatches; i++) {
		struct watch *w = nf->b[i];

		while (w && s->nwatches) {
			int wd = w->wd;

			if (w->sess != s) {
				w = w->next;
				continue;
			}
			if (drop_watches(nf, wd, s)) /* frees w */
				inotify_rm_watch(nf->ifd, wd);
			w = nf->b[i]; /* chain changed: rescan it */
		}
	}
	pthread_mutex_unlock(&nf->lock);
	pthread_mutex_unlock(&nf->send_lock);
}

static void nf_free(struct kb_srv_notifier *nf)
{
	for (unsigned i = 0; i < NOTIFY_BUCKETS; i++)
		while (nf->b[i]) {
			struct watch *w = nf->b[i];

			nf->b[i] = w->next;
			free(w);
		}
	for (int i = 0; i < 2; i++)
		if (nf->wake[i] >= 0)
			close(nf->wake[i]);
	if (nf->ifd >= 0)
		close(nf->ifd);
	pthread_mutex_destroy(&nf->lock);
	pthread_mutex_destroy(&nf->send_lock);
	free(nf->pend);
	free(nf->out);
	free(nf);
}

int kb_srv_notify_start(struct kb_srv *srv, struct kb_srv_notifier **out)
{
	struct kb_srv_notifier *nf = calloc(1, sizeof(*nf));
	int ret;

	if (!nf)
		return -ENOMEM;
	nf->srv = srv;
	nf->wake[0] = nf->wake[1] = -1;
	pthread_mutex_init(&nf->lock, NULL);
	pthread_mutex_init(&nf->send_lock, NULL);
	nf->pend = calloc(NOTIFY_PEND_MAX, sizeof(*nf->pend));
	nf->out = calloc(NOTIFY_PEND_MAX, sizeof(*nf->out));
	nf->ifd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
	if (!nf->pend || !nf->out || nf->ifd < 0 || pipe2(nf->wake, O_CLOEXEC)) {
		ret = nf->ifd < 0 || nf->wake[0] < 0 ? -errno : -ENOMEM;
		nf_free(nf);
		return ret;
	}
	ret = -pthread_create(&nf->th, NULL, notify_main, nf);
	if (ret) {
		nf_free(nf);
		return ret;
	}
	pthread_setname_np(nf->th, "kbsrv-notify");
	*out = nf;
	return 0;
}

void kb_srv_notify_stop(struct kb_srv_notifier *nf)
{
	ssize_t r;

	if (!nf)
		return;
	r = write(nf->wake[1], "x", 1);
	(void)r;
	pthread_join(nf->th, NULL);
	nf_free(nf);
}
