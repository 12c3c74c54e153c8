/* mdns.h - LAN discovery through a running avahi-daemon (libavahi-client,
 * over D-Bus; no nss-mdns needed).
 *
 * keibifsd publishes a `_keibifs._tcp` service: its port, and in the TXT
 * record `v=1`, `share=NAME` (the shared directory's last component) and
 * `fp=SHA256:...` (its key's fingerprint). The fingerprint is a hint for a
 * person choosing what to trust: nothing here trusts it; the channel still
 * pins the key from peer= or known_peers.
 *
 * Errors: a negative errno, with one line in err; -ECONNREFUSED means no
 * avahi-daemon (or no D-Bus system bus) is running.
 */
#ifndef KB_MDNS_H
#define KB_MDNS_H

#include <stddef.h>
#include <stdint.h>

#define KB_MDNS_TYPE "_keibifs._tcp"
#define KB_MDNS_PREFIX "mdns:" /* keibifs mdns:NAME:/PATH MNT */

struct kb_mdns_peer {
	char name[64];  /* service instance name */
	char host[256]; /* its host's mDNS name (NAME.local) */
	char addr[64];  /* an address of it, IPv6 with %scope */
	uint16_t port;
	char share[128]; /* TXT share=, or "" */
	char fpr[64];    /* TXT fp=, or "" */
};

/* Announce a service until kb_mdns_announce_stop (a thread of avahi's).
 * name NULL: the host name. When avahi-daemon is not running, err gets one
 * line and the announcement is made once it starts (returns 0). A name
 * taken on the LAN is replaced by avahi's alternative ("NAME #2"). */
struct kb_mdns_announce;
typedef void (*kb_mdns_log_fn)(void *arg, const char *line);
int kb_mdns_announce_start(struct kb_mdns_announce **out, const char *name, uint16_t port,
			   const char *share, const char *fpr, kb_mdns_log_fn log, void *log_arg,
			   char *err, size_t errlen);
void kb_mdns_announce_stop(struct kb_mdns_announce *a); /* NULL-safe */

/* Every peer seen within timeout_ms (browse, then resolve each): cb once
 * per resolved service and address family. */
typedef void (*kb_mdns_peer_fn)(void *arg, const struct kb_mdns_peer *p);
int kb_mdns_browse(int timeout_ms, kb_mdns_peer_fn cb, void *arg, char *err, size_t errlen);

/* Resolve the service instance `name` (an IPv4 address preferred). */
int kb_mdns_resolve(const char *name, int timeout_ms, struct kb_mdns_peer *out, char *err,
		    size_t errlen);

#endif
