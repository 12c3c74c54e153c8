/* server.h - keibifsd's core: share a directory over encrypted channels.
 *
 * kb_srv_new() opens the share and binds the listening sockets (so every
 * configuration error is reported before a daemon forks); kb_srv_run()
 * starts the accept loop in the calling thread and returns after
 * kb_srv_stop() or when `stop_fd` (e.g. a signalfd) becomes readable, once
 * every in-flight request has been answered. Threads, locks and the request
 * path are described at the top of server.c.
 */
#ifndef KB_SERVER_H
#define KB_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aead.h"

struct kb_keyset;
struct kb_srv;

/* Log priorities (syslog's values). */
#define KB_SRV_LOG_ERR 3
#define KB_SRV_LOG_INFO 6

struct kb_srv_cfg {
	const char *share;                  /* directory to export */
	const char *listen;                 /* "ADDR[:PORT]", "[V6]:PORT", NULL: 0.0.0.0 */
	const uint8_t *priv;                /* server static private key, 32 bytes */
	const struct kb_keyset *authorized; /* client keys (KB_KEYF_RO honoured) */
	const uint8_t *psk;                 /* NULL or 32 bytes */
	bool read_only;                     /* EROFS for every mutating operation */
	enum kb_aead_backend backend;
	unsigned workers;   /* worker threads per connection (0: 4) */
	unsigned max_conns; /* simultaneous connections (0: 256) */
	bool no_listen;     /* fuzzer / unit tests: bind nothing */
	/* A session outlives its last connection this long, so that a client
	 * can ATTACH again after a network cut (0: 60 s, <0: end at once). */
	int session_grace_s;
	unsigned max_sessions;         /* all sessions (0: 1024) */
	unsigned max_sessions_per_key; /* per client key (0: 64) */
	bool no_notify;                /* no inotify change notifications */
	bool no_compress;              /* refuse zstd: KB_CAP_ZSTD is not offered */
	/* Serve requests that carry Request.creds as that uid/gid/groups
	 * (owners=preserve), for every client key; without it, only keys with
	 * the `owners` option. Needs root (kb_srv_new fails otherwise). */
	bool allow_owners;
	/* Denial-of-service limits (0: the default in parentheses; see
	 * keibifsd(8), LIMITS). */
	unsigned max_handshakes;          /* connections not yet authenticated (64) */
	unsigned max_handshakes_per_addr; /* of those, per source address (8) */
	int handshake_timeout_s;          /* Noise handshake deadline (5) */
	unsigned max_conns_per_key;       /* authenticated connections per key (64) */
	int hello_timeout_s;              /* first request after the handshake (10) */
	int frame_timeout_s;              /* a frame begun must be read / taken (30) */
	int idle_timeout_s;               /* nothing in flight, nothing received (900) */
	size_t max_queued;                /* bytes of frames queued or being sent (64 MiB) */
	long max_fds_per_key;             /* node and handle fds (3/4 of the budget) */
	long max_fds_per_session;         /* (the per-key value) */
	/* Where log lines go (NULL: stderr). One line each, no newline. */
	void (*log)(void *arg, int prio, const char *line);
	void *log_arg;
};

#define KB_SRV_DEFAULT_PORT "26431"
#define KB_SRV_MAX_HANDLES 4096     /* open files/dirs per session */
#define KB_SRV_MAX_INFLIGHT 64      /* requests per connection */
#define KB_SRV_MAX_NODES (1u << 20) /* nodes per session */
#define KB_SRV_DEFAULT_GRACE_S 60
#define KB_SRV_MAX_WATCHES 4096 /* inotify watches per session */
#define KB_SRV_MAX_HANDSHAKES 64
#define KB_SRV_MAX_HANDSHAKES_ADDR 8
#define KB_SRV_HANDSHAKE_S 5
#define KB_SRV_MAX_CONNS_KEY 64
#define KB_SRV_HELLO_S 10
#define KB_SRV_FRAME_S 30
#define KB_SRV_IDLE_S 900 /* clients PING an idle connection every 15 s */
#define KB_SRV_MAX_QUEUED (64u << 20)
#define KB_SRV_LEASE_MS 30000 /* HELLO lease_ms: pushes promised (PROTOCOL.md) */

/* Opens the share, binds the socket. On failure err holds one clear line. */
int kb_srv_new(struct kb_srv **out, const struct kb_srv_cfg *cfg, char *err, size_t errlen);
/* Change where log lines go (e.g. syslog after daemonizing). */
void kb_srv_set_log(struct kb_srv *s, void (*log)(void *arg, int prio, const char *line),
		    void *arg);
/* "127.0.0.1:26431" or "[::1]:26431": the bound address (port resolved). */
const char *kb_srv_address(const struct kb_srv *s);
/* Start the shared state (RNG, threads). Call after any fork. */
int kb_srv_start(struct kb_srv *s, char *err, size_t errlen);
/* Accept until stopped; then stop reading, finish in-flight requests,
 * close every connection. stop_fd: -1 or an fd whose readability stops. */
int kb_srv_run(struct kb_srv *s, int stop_fd);
/* Ask kb_srv_run to return (any thread; async-signal-safe). */
void kb_srv_stop(struct kb_srv *s);
void kb_srv_free(struct kb_srv *s); /* NULL-safe; closes sockets */
/* New authorized keys, and a new pre-shared key (NULL: keep the one in
 * use), for the handshakes from now on (keibifsd's SIGHUP). Sessions and
 * connections of keys no longer listed, or listed with other options, end
 * now; the others carry on. Returns the previous set, which no handshake
 * uses any more: the caller may free it. Any thread, after kb_srv_start. */
const struct kb_keyset *kb_srv_set_keys(struct kb_srv *s, const struct kb_keyset *authorized,
					const uint8_t *psk);

/* ---- Socket-less entry for the fuzzer and unit tests ---------------- */
struct kb_srv_conn;
struct kb_srv_worker;
/* A connection without a channel (replies are built but not sent); `flags`
 * as from the key check (KB_KEYF_RO). */
int kb_srv_conn_detached(struct kb_srv_conn **out, struct kb_srv *s, unsigned flags);
void kb_srv_conn_detached_free(struct kb_srv_conn *c);
int kb_srv_worker_new(struct kb_srv_worker **out, size_t max_frame);
void kb_srv_worker_free(struct kb_srv_worker *w);
/* Handle one decrypted frame plaintext (pt[0..len) = [u32 H][Request][bulk]).
 * On success *reply points at the reply frame (KB_FRAME_HEAD bytes, then
 * *rlen bytes of plaintext) inside the worker's buffer. Returns a negative
 * value when the connection must be closed (malformed, or not HELLO/ATTACH
 * first); *reply may still hold a reply to send before closing. */
int kb_srv_handle_frame(struct kb_srv_conn *c, struct kb_srv_worker *w, const uint8_t *pt,
			size_t len, uint8_t **reply, size_t *rlen);

#endif
