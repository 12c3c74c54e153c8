/* kbfs_browse.c - keibifs --browse: the keibifsd servers announced on the
 * LAN (mDNS through avahi-daemon), with what it takes to trust and mount
 * each. The fingerprint comes from the announcement and is only a hint:
 * trust still comes from peer= or known_peers, checked when connecting. */
#include <stdio.h>
#include <string.h>

#include "kbfs.h"
#include "keys.h"
#include "mdns.h"

#define BROWSE_MS 3000
#define BROWSE_MAX 64

struct seen {
	struct kb_mdns_peer p[BROWSE_MAX];
	unsigned n;
};

/* One line per service and address (avahi reports each family and
 * interface apart). */
static void collect(void *arg, const struct kb_mdns_peer *p)
{
	struct seen *s = arg;

	for (unsigned i = 0; i < s->n; i++)
		if (!strcmp(s->p[i].name, p->name) && !strcmp(s->p[i].addr, p->addr))
			return;
	if (s->n < BROWSE_MAX)
		s->p[s->n++] = *p;
}

static void print_peer(const struct kb_mdns_peer *p, const struct kb_keyset *trust, const char *kp)
{
	int m = p->fpr[0] ? kb_keyset_match_fingerprint(trust, p->fpr) : -1;

	printf("%s\n  host %s, address %s, port %u, share %s\n", p->name, p->host, p->addr, p->port,
	       p->share[0] ? p->share : "-");
	if (!p->fpr[0])
		printf("  key: not announced\n");
	else if (!m)
		printf("  key %s: trusted (%s)\n", p->fpr, kp ? kp : "known_peers");
	else
		printf("  key %s: not trusted yet; if it is the server's, mount with "
		       "-o peer=%s\n",
		       p->fpr, p->fpr);
	printf("  mount: keibifs mdns:%s:/ MOUNTPOINT\n", p->name);
}

int kbfs_browse_print(const char *known_peers)
{
	static struct seen s; /* ~30 KB: not on the stack */
	struct kb_keyset *trust = NULL;
	char err[512] = "", path[4096];
	const char *kp = known_peers ? known_peers
				     : kbfs_default_file(path, sizeof(path), "known_peers");
	int rc;

	rc = kp ? kb_keyset_load_peers(&trust, kp, err, sizeof(err)) : kb_keyset_new(&trust);
	if (rc < 0) {
		fprintf(stderr, "keibifs: known_peers %s: %s\n", kp, err[0] ? err : "cannot read");
		return 1;
	}
	rc = kb_mdns_browse(BROWSE_MS, collect, &s, err, sizeof(err));
	if (rc < 0) {
		fprintf(stderr, "keibifs: %s\n", err);
		kb_keyset_free(trust);
		return 1;
	}
	if (!s.n)
		printf("no keibifs server announced on the LAN (mDNS, %d s)\n", BROWSE_MS / 1000);
	for (unsigned i = 0; i < s.n; i++)
		print_peer(&s.p[i], trust, kp);
	kb_keyset_free(trust);
	return 0;
}
