/* mdns.c - announce, browse and resolve `_keibifs._tcp` through avahi.
 *
 * Announce: a threaded poll of avahi's, client made with NO_FAIL (it waits
 * for the daemon and follows its restarts); every field of the announcement
 * is touched only by that thread once it runs (avahi's callbacks), and by
 * the caller before it starts and after it stopped.
 * Browse / resolve: a simple poll run by the caller, bounded by a deadline.
 */
#include <errno.h>
#include <net/if.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <avahi-client/client.h>
#include <avahi-client/lookup.h>
#include <avahi-client/publish.h>
#include <avahi-common/alternative.h>
#include <avahi-common/error.h>
#include <avahi-common/malloc.h>
#include <avahi-common/simple-watch.h>
#include <avahi-common/thread-watch.h>

#include "mdns.h"
#include "util.h"

#define NODAEMON_LINE "avahi-daemon is not running (or no D-Bus system bus)"

struct kb_mdns_announce {
	AvahiThreadedPoll *tp; /* owned */
	AvahiClient *c;        /* owned */
	AvahiEntryGroup *g;    /* owned by c */
	char *name;            /* owned (avahi_malloc'd) */
	uint16_t port;
	char share_txt[160], fp_txt[96];
	bool said_waiting;
	kb_mdns_log_fn log;
	void *log_arg;
};

static void alogf(struct kb_mdns_announce *a, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void alogf(struct kb_mdns_announce *a, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	if (!a->log)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	a->log(a->log_arg, line);
}

static void publish(struct kb_mdns_announce *a, AvahiClient *c);

static void rename_service(struct kb_mdns_announce *a)
{
	char *n = avahi_alternative_service_name(a->name);

	if (!n)
		return;
	alogf(a, "mDNS name %s is taken on the LAN, announcing as %s", a->name, n);
	avahi_free(a->name);
	a->name = n;
}

static void group_cb(AvahiEntryGroup *g, AvahiEntryGroupState st, void *ud)
{
	struct kb_mdns_announce *a = ud;

	if (st == AVAHI_ENTRY_GROUP_ESTABLISHED) {
		alogf(a, "announced as %s (%s, port %u)", a->name, KB_MDNS_TYPE, a->port);
	} else if (st == AVAHI_ENTRY_GROUP_COLLISION) {
		rename_service(a);
		avahi_entry_group_reset(g);
		publish(a, avahi_entry_group_get_client(g));
	} else if (st == AVAHI_ENTRY_GROUP_FAILURE) {
		alogf(a, "mDNS announcement failed: %s",
		      avahi_strerror(avahi_client_errno(avahi_entry_group_get_client(g))));
	}
}

static void publish(struct kb_mdns_announce *a, AvahiClient *c)
{
	int r;

	if (!a->g && !(a->g = avahi_entry_group_new(c, group_cb, a))) {
		alogf(a, "mDNS: %s", avahi_strerror(avahi_client_errno(c)));
		return;
	}
	if (!avahi_entry_group_is_empty(a->g))
		return;
	for (int tries = 0; tries < 16; tries++) {
		r = avahi_entry_group_add_service(a->g, AVAHI_IF_UNSPEC, AVAHI_PROTO_UNSPEC, 0,
						  a->name, KB_MDNS_TYPE, NULL, NULL, a->port, "v=1",
						  a->share_txt, a->fp_txt, NULL);
		if (r != AVAHI_ERR_COLLISION)
			break;
		rename_service(a);
	}
	if (!r)
		r = avahi_entry_group_commit(a->g);
	if (r)
		alogf(a, "mDNS announcement of %s failed: %s", a->name, avahi_strerror(r));
}

static void client_cb(AvahiClient *c, AvahiClientState st, void *ud)
{
	struct kb_mdns_announce *a = ud;

	switch (st) {
	case AVAHI_CLIENT_S_RUNNING:
		a->said_waiting = false;
		publish(a, c);
		break;
	case AVAHI_CLIENT_S_COLLISION:
	case AVAHI_CLIENT_S_REGISTERING:
		if (a->g)
			avahi_entry_group_reset(a->g);
		break;
	case AVAHI_CLIENT_CONNECTING:
		a->g = NULL; /* the daemon went away: its groups went with it */
		if (!a->said_waiting)
			alogf(a, NODAEMON_LINE ": %s will be announced once it runs", a->name);
		a->said_waiting = true;
		break;
	case AVAHI_CLIENT_FAILURE:
		alogf(a, "mDNS: %s", avahi_strerror(avahi_client_errno(c)));
		break;
	}
}

int kb_mdns_announce_start(struct kb_mdns_announce **out, const char *name, uint16_t port,
			   const char *share, const char *fpr, kb_mdns_log_fn log, void *log_arg,
			   char *err, size_t errlen)
{
	struct kb_mdns_announce *a = calloc(1, sizeof(*a));
	char host[256];
	int e = 0;

	if (!a)
		return -ENOMEM;
	if (!name || !*name) {
		if (gethostname(host, sizeof(host)))
			snprintf(host, sizeof(host), "keibifs");
		host[sizeof(host) - 1] = '\0';
		name = host;
	}
	a->name = avahi_strndup(name, 63);
	a->port = port;
	a->log = log;
	a->log_arg = log_arg;
	snprintf(a->share_txt, sizeof(a->share_txt), "share=%s", share ? share : "");
	snprintf(a->fp_txt, sizeof(a->fp_txt), "fp=%s", fpr ? fpr : "");
	a->tp = avahi_threaded_poll_new();
	if (!a->name || !a->tp) {
		snprintf(err, errlen, "mDNS: out of memory");
		kb_mdns_announce_stop(a);
		return -ENOMEM;
	}
	a->c = avahi_client_new(avahi_threaded_poll_get(a->tp), AVAHI_CLIENT_NO_FAIL, client_cb, a,
				&e);
	if (!a->c || avahi_threaded_poll_start(a->tp) < 0) {
		snprintf(err, errlen, "mDNS: %s", avahi_strerror(e ? e : AVAHI_ERR_FAILURE));
		kb_mdns_announce_stop(a);
		return -EIO;
	}
	*out = a;
	return 0;
}

void kb_mdns_announce_stop(struct kb_mdns_announce *a)
{
	if (!a)
		return;
	if (a->tp)
		avahi_threaded_poll_stop(a->tp);
	if (a->c)
		avahi_client_free(a->c); /* frees its groups: the service goes */
	if (a->tp)
		avahi_threaded_poll_free(a->tp);
	avahi_free(a->name);
	free(a);
}

/* ---- browse and resolve ------------------------------------------------ */

struct look {
	AvahiSimplePoll *sp; /* owned by the caller of look_run */
	AvahiClient *c;
	int pending; /* resolvers running */
	bool all_for_now, failed;
	kb_mdns_peer_fn cb;
	void *arg;
	struct kb_mdns_peer *one; /* resolve: the answer */
	bool found;
};

static void txt_value(AvahiStringList *txt, const char *key, char *out, size_t cap)
{
	AvahiStringList *e = avahi_string_list_find(txt, key);
	char *k = NULL, *v = NULL;

	out[0] = '\0';
	if (e && !avahi_string_list_get_pair(e, &k, &v, NULL) && v)
		snprintf(out, cap, "%s", v);
	avahi_free(k);
	avahi_free(v);
}

static void fill_peer(struct kb_mdns_peer *p, AvahiIfIndex ifc, const char *name, const char *host,
		      const AvahiAddress *addr, uint16_t port, AvahiStringList *txt)
{
	char a[AVAHI_ADDRESS_STR_MAX], ifn[IF_NAMESIZE];

	memset(p, 0, sizeof(*p));
	snprintf(p->name, sizeof(p->name), "%s", name);
	snprintf(p->host, sizeof(p->host), "%s", host ? host : "");
	avahi_address_snprint(a, sizeof(a), addr);
	/* link-local IPv6 needs its interface to be reached */
	if (addr->proto == AVAHI_PROTO_INET6 && !strncasecmp(a, "fe80:", 5) &&
	    if_indextoname((unsigned)ifc, ifn))
		snprintf(p->addr, sizeof(p->addr), "%s%%%s", a, ifn);
	else
		snprintf(p->addr, sizeof(p->addr), "%s", a);
	p->port = port;
	txt_value(txt, "share", p->share, sizeof(p->share));
	txt_value(txt, "fp", p->fpr, sizeof(p->fpr));
}

static void resolve_cb(AvahiServiceResolver *r, AvahiIfIndex ifc, AvahiProtocol proto,
		       AvahiResolverEvent ev, const char *name, const char *type,
		       const char *domain, const char *host, const AvahiAddress *addr,
		       uint16_t port, AvahiStringList *txt, AvahiLookupResultFlags flags, void *ud)
{
	struct look *l = ud;
	struct kb_mdns_peer p;

	(void)proto;
	(void)type;
	(void)domain;
	(void)flags;
	if (ev == AVAHI_RESOLVER_FOUND && addr) {
		fill_peer(&p, ifc, name, host, addr, port, txt);
		if (l->one && !l->found) {
			*l->one = p;
			l->found = true;
		}
		if (l->cb)
			l->cb(l->arg, &p);
	}
	l->pending--;
	avahi_service_resolver_free(r);
}

static void browse_cb(AvahiServiceBrowser *b, AvahiIfIndex ifc, AvahiProtocol proto,
		      AvahiBrowserEvent ev, const char *name, const char *type, const char *domain,
		      AvahiLookupResultFlags flags, void *ud)
{
	struct look *l = ud;

	(void)b;
	(void)flags;
	if (ev == AVAHI_BROWSER_NEW) {
		/* an address of the family it was seen on (IPv4 on an IPv4 LAN) */
		if (avahi_service_resolver_new(l->c, ifc, proto, name, type, domain, proto, 0,
					       resolve_cb, l))
			l->pending++;
	} else if (ev == AVAHI_BROWSER_ALL_FOR_NOW) {
		l->all_for_now = true;
	} else if (ev == AVAHI_BROWSER_FAILURE) {
		l->failed = true;
	}
}

static void look_client_cb(AvahiClient *c, AvahiClientState st, void *ud)
{
	struct look *l = ud;

	(void)c;
	if (st == AVAHI_CLIENT_FAILURE)
		l->failed = true;
}

/* A client on a new simple poll; -ECONNREFUSED without a daemon. */
static int look_open(struct look *l, char *err, size_t errlen)
{
	int e = 0;

	l->sp = avahi_simple_poll_new();
	if (!l->sp) {
		snprintf(err, errlen, "mDNS: out of memory");
		return -ENOMEM;
	}
	l->c = avahi_client_new(avahi_simple_poll_get(l->sp), 0, look_client_cb, l, &e);
	if (!l->c) {
		if (e == AVAHI_ERR_NO_DAEMON)
			snprintf(err, errlen, NODAEMON_LINE ": start it to find peers by name");
		else
			snprintf(err, errlen, "mDNS: %s", avahi_strerror(e));
		avahi_simple_poll_free(l->sp);
		l->sp = NULL;
		return e == AVAHI_ERR_NO_DAEMON ? -ECONNREFUSED : -EIO;
	}
	return 0;
}

static void look_close(struct look *l)
{
	if (l->c)
		avahi_client_free(l->c); /* frees browsers and resolvers */
	if (l->sp)
		avahi_simple_poll_free(l->sp);
}

/* Run until done() or the deadline. */
static void look_run(struct look *l, int timeout_ms, bool (*done)(const struct look *))
{
	uint64_t end = kb_now_ns() + (uint64_t)timeout_ms * 1000000u;

	while (!l->failed && !done(l) && kb_now_ns() < end)
		if (avahi_simple_poll_iterate(l->sp, 50) != 0)
			break;
}

static bool browse_done(const struct look *l)
{
	return l->all_for_now && l->pending == 0;
}

int kb_mdns_browse(int timeout_ms, kb_mdns_peer_fn cb, void *arg, char *err, size_t errlen)
{
	struct look l = {.cb = cb, .arg = arg};
	int rc = look_open(&l, err, errlen);

	if (rc)
		return rc;
	if (!avahi_service_browser_new(l.c, AVAHI_IF_UNSPEC, AVAHI_PROTO_UNSPEC, KB_MDNS_TYPE, NULL,
				       0, browse_cb, &l)) {
		snprintf(err, errlen, "mDNS: %s", avahi_strerror(avahi_client_errno(l.c)));
		rc = -EIO;
	} else {
		look_run(&l, timeout_ms, browse_done);
		if (l.failed) {
			snprintf(err, errlen, "mDNS: %s", avahi_strerror(avahi_client_errno(l.c)));
			rc = -EIO;
		}
	}
	look_close(&l);
	return rc;
}

static bool resolve_done(const struct look *l)
{
	return l->found || l->pending == 0;
}

int kb_mdns_resolve(const char *name, int timeout_ms, struct kb_mdns_peer *out, char *err,
		    size_t errlen)
{
	static const AvahiProtocol fam[] = {AVAHI_PROTO_INET, AVAHI_PROTO_INET6};
	struct look l = {.one = out};
	uint64_t end = kb_now_ns() + (uint64_t)timeout_ms * 1000000u;
	int rc = look_open(&l, err, errlen);

	/* IPv4 first (no scope to carry), then IPv6, each within the time left */
	for (unsigned i = 0; !rc && !l.found && i < KB_ARRAY_SIZE(fam); i++) {
		uint64_t now = kb_now_ns();

		if (now >= end)
			break;
		if (!avahi_service_resolver_new(l.c, AVAHI_IF_UNSPEC, AVAHI_PROTO_UNSPEC, name,
						KB_MDNS_TYPE, NULL, fam[i], 0, resolve_cb, &l))
			continue;
		l.pending = 1;
		look_run(&l, (int)((end - now) / 1000000u) / (i ? 1 : 2), resolve_done);
	}
	if (!rc && !l.found) {
		snprintf(err, errlen,
			 "no keibifs service named \"%s\" answered on the LAN (mDNS, "
			 "keibifs --browse lists them)",
			 name);
		rc = -EHOSTUNREACH;
	}
	look_close(&l);
	return rc;
}
