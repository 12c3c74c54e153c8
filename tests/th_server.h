/* th_server.h - start and stop a real build/keibifsd for tests.
 *
 * th_server_start() makes a temp dir holding share/ (the exported
 * directory), server and client keys, an authorized file (the client key,
 * "ro "-prefixed with TH_SRV_RO_KEY) and a known_peers file (the server
 * key), picks a free port on 127.0.0.1, spawns keibifsd --foreground and
 * waits for its "keibifsd: ready" line. th_server_stop() stops it by PID
 * (SIGTERM) and returns its wait status; th_server_cleanup() also removes
 * the directory.
 */
#ifndef KB_TH_SERVER_H
#define KB_TH_SERVER_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "keibifs.pb.h"

#define TH_SRV_RO 1u     /* --read-only */
#define TH_SRV_RO_KEY 2u /* the client key is marked `ro` */
#define TH_SRV_NOWAIT 4u /* do not wait for "ready" (expecting a failure) */

struct kb_rpc;
struct kb_rpc_result;
struct kb_keyset;

struct th_server {
	char *dir;                  /* owned temp dir */
	char share[PATH_MAX];       /* dir/share */
	char log[PATH_MAX];         /* dir/server.log: the server's stdout+stderr */
	char server_key[PATH_MAX];  /* dir/server.key (+ .pub) */
	char client_key[PATH_MAX];  /* dir/client.key (+ .pub) */
	char authorized[PATH_MAX];  /* dir/authorized */
	char known_peers[PATH_MAX]; /* dir/known_peers: the server's key */
	uint8_t server_pub[32];
	uint8_t client_priv[32]; /* for kb_rpc_cfg.identity */
	uint8_t client_pub[32];
	int port;
	char port_str[16];
	pid_t pid; /* 0 when not running */
};

/* Prepare dir + keys and start the server; `extra` is NULL or a
 * NULL-terminated list of more keibifsd arguments. 0 or -1. */
int th_server_start(struct th_server *ts, unsigned flags, const char *const *extra);
/* Only prepare the directory and keys (for tests that change them or spawn
 * keibifsd with their own arguments). */
int th_server_prepare(struct th_server *ts, unsigned flags);
/* Start keibifsd on a prepared ts (th_server_start's second half). */
int th_server_spawn(struct th_server *ts, unsigned flags, const char *const *extra);
/* SIGTERM, wait (10 s, then SIGKILL); the wait status, or -1. */
int th_server_stop(struct th_server *ts);
/* Stop if running, remove the directory. */
void th_server_cleanup(struct th_server *ts);
/* Free a session and its result buffer (both set to NULL; either may be
 * NULL). */
void th_session_free(struct kb_rpc **r, struct kb_rpc_result **res);
/* th_session_free, then stop ts (if running) and remove its directory:
 * the server's wait status (0 if it was not running) for the caller to
 * assert a clean exit (no crash, no sanitizer report). */
int th_server_end(struct th_server *ts, struct kb_rpc **r, struct kb_rpc_result **res);
/* A session over `conns` connections with the test client key. */
int th_server_connect(struct th_server *ts, unsigned conns, struct kb_rpc **out, kb_Entry *root,
		      bool *read_only);
/* The same with another identity (e.g. an unknown key); err gets the
 * client's message. */
int th_server_connect_as(struct th_server *ts, const uint8_t priv[32], unsigned conns,
			 struct kb_rpc **out, kb_Entry *root, char *err, size_t errlen);
/* The same through another port (e.g. a kbproxy's) with a timeout;
 * read_only may be NULL. */
int th_server_connect_via(struct th_server *ts, const char *port, const uint8_t priv[32],
			  unsigned conns, int timeout_ms, struct kb_rpc **out, kb_Entry *root,
			  bool *read_only, char *err, size_t errlen);
/* A request var of operation o (kb_Op_o), all else zero. */
#define TH_REQ(var, o)                         \
	kb_Request var = kb_Request_init_zero; \
	var.op = kb_Op_##o

/* kb_rpc_call after resetting res (res may be NULL). */
int th_call(struct kb_rpc *r, kb_Request *q, const void *bulk, size_t blen,
	    struct kb_rpc_result *res);
/* LOOKUP parent/name -> *node (may be NULL). */
int th_lookup(struct kb_rpc *r, uint64_t parent, const char *name, uint64_t *node);

/* A raw encrypted channel to the server (handshake done, no HELLO): for
 * tests that send hand-made frames. priv NULL: the test client key. */
struct kb_chan;
int th_raw_connect(struct th_server *ts, const uint8_t *priv, struct kb_chan **out);
/* Send one plaintext frame (pt[0..len)) and decode the next reply into
 * resp; returns 0, or the channel error (e.g. -KB_ECLOSED). */
int th_raw_call(struct kb_chan *c, const uint8_t *pt, size_t len, kb_Response *resp);

/* tests/kbproxy in front of ts on a free port, logging to ts->dir/proxy.log
 * (its path in plog), with extra: NULL or a NULL-terminated list of more
 * kbproxy arguments. *via becomes ts as seen through the proxy (its port),
 * for th_mount_start or th_server_connect_via; *pid the proxy (stop it with
 * th_stop; 0 if it did not start). 0 once it is ready, or -1. */
int th_proxy_start(const struct th_server *ts, const char *const *extra, struct th_server *via,
		   pid_t *pid, char plog[PATH_MAX]);

/* A path inside the share: th_server_path(ts, "a/b"). Thread-local buffer. */
const char *th_server_path(const struct th_server *ts, const char *rel);

#endif
