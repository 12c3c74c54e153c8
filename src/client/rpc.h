/* rpc.h - the client side of the keibifs protocol: one session with a server
 * over a pool of `conns` encrypted connections (parallel block pulls).
 *
 * Requests carry ids and are pipelined; a receiver thread per connection
 * matches replies by id (they may come back out of order). A reply frame is
 * received into a pooled kb_buf and handed over whole: the caller (or the
 * block cache) keeps the buffer, so file data is never copied in user space.
 *
 * Reconnection (on by default; cfg.noreconnect turns it off). When a
 * connection dies (reset, AEAD failure, or a peer silent past the liveness
 * limit) its slot is re-established in the background: reconnect with
 * backoff (100 ms doubling to 2 s), handshake against the server key pinned
 * at the first connection, ATTACH with the session token. Requests in
 * flight on it are kept and re-sent with the same id on the new connection
 * (the server answers a re-sent non-idempotent request from its reply
 * cache instead of running it twice). Callers see a stall, never an error,
 * as long as the server is back before their deadline (cfg.timeout_ms);
 * after it they get -ETIMEDOUT (or -ENOTCONN), never a hang. One log line
 * per reconnect ("keibifs: reconnected to HOST (SHA256:...)") goes to the
 * log callback (kb_rpc_set_log).
 *
 * Server restart (or a session expired after its grace period): ATTACH is
 * refused, so the rpc sends HELLO again, bumps the session generation and
 * calls the session callback (kb_rpc_set_session_cb) with the new root.
 * Node ids and handles of the old session are then invalid: the server
 * answers ESTALE (nodes) / EBADF (handles) for them; it starts ids at a
 * random point per session so an old id never names another file.
 * Requests in flight that were not safe to repeat (CREATE, MKDIR, UNLINK,
 * RENAME, SETATTR, OPEN, ...) fail with -EIO (their outcome is unknown);
 * reads and lookups are re-sent (and typically get ESTALE).
 *
 * The FUSE layer's side of that contract:
 *  - keep parent node + name for every node; on -ESTALE for a node, LOOKUP
 *    it again from its parent (recursively up to the root, whose new entry
 *    the session callback gave), check attr.ino/type still match (else
 *    keep ESTALE), remap, and retry the operation once;
 *  - on -EBADF for a handle after a generation change, OPEN the node again
 *    with the file's flags and retry (a WRITE answered so is sent again on
 *    the new handle); data acknowledged by the server is durable there
 *    once FSYNC on the new handle returns; a WRITE that failed must be
 *    reported at the next flush/fsync/close of that file;
 *  - keep a WRITE's bytes until it completes: they are re-sent from the
 *    `bulk` pointer after a reconnect;
 *  - route kb_rpc_set_log lines to syslog/stderr, and pass NOTIFY pushes
 *    (kb_rpc_set_notify) to fuse_lowlevel_notify_inval_inode/_entry.
 */
#ifndef KB_RPC_H
#define KB_RPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aead.h"
#include "buf.h"
#include "keibifs.pb.h"

struct kb_keyset;
struct kb_rpc; /* opaque; thread-safe */

struct kb_rpc_cfg {
	const char *host;              /* name, IPv4, or IPv6 (no brackets) */
	const char *port;              /* "26431" */
	const char *path;              /* directory inside the share, "/" = root */
	unsigned conns;                /* parallel connections (>= 1) */
	const uint8_t *identity;       /* client static private key, 32 bytes */
	const struct kb_keyset *trust; /* pinned server keys */
	const uint8_t *psk;            /* NULL or 32 bytes */
	enum kb_aead_backend backend;
	int timeout_ms;            /* connect/handshake/request timeout */
	size_t max_frame;          /* largest frame we accept (>= block + headroom) */
	int keepalive_ms;          /* PING a connection idle this long (0: 15 s, <0: off) */
	bool noreconnect;          /* a dead connection stays dead (pending: -ENOTCONN) */
	int compress;              /* enum kb_z_mode (compress.h): offer zstd;
				      * WRITE data compressed (auto: while the
				      * link is slow), READs ask for it too */
	const char *proxy_command; /* NULL: TCP; else each connection runs this
				      * (sh -c, %h %p %% expanded) and speaks over
				      * its stdin/stdout (proxy.h); its stderr goes
				      * to the log */
};

/* cfg and what it points to (identity, trust, psk) are only used during
 * kb_rpc_new: the caller may free them when it returns.
 * Connect every connection, authenticate, HELLO (the path must exist and be
 * a directory). On failure, err gets a clear one-line message (unknown peer
 * with its fingerprint and how to trust it, refused key, connection refused,
 * missing path...). root gets the entry of `path`. */
int kb_rpc_new(struct kb_rpc **out, const struct kb_rpc_cfg *cfg, kb_Entry *root, bool *read_only,
	       char *err, size_t errlen);
/* Tell the server the session is over (a clean unmount), so it frees the
 * session, its nodes and handles at once instead of keeping them for the
 * reconnect grace period. Best effort: waits at most wait_ms and only when
 * a connection is up. NULL-safe. */
void kb_rpc_bye(struct kb_rpc *r, int wait_ms);
/* Fails pending requests with -ENOTCONN, joins threads, closes. NULL-safe. */
void kb_rpc_free(struct kb_rpc *r);

/* The reply to one request: its decoded header and its frame, which holds
 * the bulk (READ data, READDIR entries). kb_rpc_result_new / _free. */
struct kb_rpc_result {
	kb_Response resp;     /* decoded header */
	struct kb_buf *frame; /* the reply's frame; caller must kb_buf_put */
	const uint8_t *bulk;  /* points into frame */
	size_t bulk_len;
};
struct kb_rpc_result *kb_rpc_result_new(void);
void kb_rpc_result_free(struct kb_rpc_result *res); /* puts frame; NULL-safe */
/* Drop the frame reference (and bulk) but keep the struct for reuse. */
void kb_rpc_result_reset(struct kb_rpc_result *res);

/* Synchronous call: send req (+ bulk), wait for the reply. Returns 0 when the
 * server answered OK, the server's -errno when it answered an error, or a
 * transport error (-ENOTCONN, -ETIMEDOUT, -KB_E*). req->id is assigned here.
 * `res` may be NULL when the caller needs only the status. */
int kb_rpc_call(struct kb_rpc *r, kb_Request *req, const void *bulk, size_t bulk_len,
		struct kb_rpc_result *res);

/* Asynchronous call: cb runs once, on a receiver thread (or the caller's
 * thread on a send failure, or the timer thread on a timeout), with status
 * as for kb_rpc_call. The callback may take its own reference to res->frame
 * (kb_buf_ref); res itself is only valid during the callback, and is NULL
 * when no reply arrived (transport error or timeout). `conn_hint` picks the
 * connection (e.g. block index), -1 for round robin.
 * Returns 0 when cb has run or will run exactly once; a negative error
 * (-ENOTCONN: every connection is down, -ETIMEDOUT: no room in flight
 * before the deadline, -KB_ETOOBIG, -ENOSPC) when the request was not
 * accepted and cb will NOT run. May block while the connection has too
 * many requests/bytes in flight (backpressure). Callbacks must not block
 * and must not make synchronous calls (they run on the receiver thread).
 * `req` is encoded before this returns; `bulk` must stay valid until cb
 * runs (it is re-sent if the connection is re-established). */
typedef void (*kb_rpc_cb)(void *arg, int status, struct kb_rpc_result *res);
int kb_rpc_submit(struct kb_rpc *r, kb_Request *req, const void *bulk, size_t bulk_len,
		  int conn_hint, kb_rpc_cb cb, void *arg);

/* kb_rpc_submit, but only on connection conn_hint (waiting while it is
 * re-established: the stream's requests stay in one ordered lane) and
 * only in session generation `gen` (kb_rpc_gen): -ESTALE, and cb will not
 * run, when another session began (the write-behind stream's positions
 * are per session, stream.h). */
int kb_rpc_submit_gen(struct kb_rpc *r, uint64_t gen, kb_Request *req, const void *bulk,
		      size_t bulk_len, int conn_hint, kb_rpc_cb cb, void *arg);
/* The same, waiting for a slot (or the connection) only until until_ns
 * (kb_now_ns clock; now: not at all): -ETIMEDOUT, or -ENOTCONN while it
 * is down, and cb will not run. */
int kb_rpc_submit_gen_until(struct kb_rpc *r, uint64_t gen, kb_Request *req, const void *bulk,
			    size_t bulk_len, int conn_hint, kb_rpc_cb cb, void *arg,
			    uint64_t until_ns);

/* Synchronous call without a kb_rpc_result: `take` (may be NULL) runs on the
 * receiver thread with the decoded reply and its bulk when the server
 * answered, before this returns; copy what you need there (no result to
 * allocate or free). Returns as kb_rpc_call. */
typedef void (*kb_rpc_take_fn)(void *arg, const kb_Response *resp, const uint8_t *bulk,
			       size_t bulk_len);
int kb_rpc_call_take(struct kb_rpc *r, kb_Request *req, const void *bulk, size_t bulk_len,
		     kb_rpc_take_fn take, void *arg);

/* Write-behind routing: a request naming (node, node2) a node for which
 * fn says true goes through `stream` (a struct kb_stream, stream.h)
 * instead, so it is ordered after the changes queued there. Set once,
 * before requests are made; fn runs on the caller's thread, with no rpc
 * lock held. kb_rpc_route returns the stream for req, or NULL. The typed
 * calls (rpc_send.h) consult it; kb_rpc_call etc. do not. */
typedef bool (*kb_rpc_route_fn)(void *arg, uint64_t node);
void kb_rpc_set_route(struct kb_rpc *r, void *stream, kb_rpc_route_fn fn, void *arg);
void *kb_rpc_route(struct kb_rpc *r, const kb_Request *req);
void *kb_rpc_route_stream(struct kb_rpc *r); /* the stream routed to, or NULL */

/* Server pushes (NOTIFY) are handed to this callback (receiver thread):
 * notify_name empty: node notify_node changed (inval inode); else the entry
 * notify_name of directory notify_node changed (inval entry). Node ids the
 * client does not know (forgotten, or of an old session) are to be ignored. */
void kb_rpc_set_notify(struct kb_rpc *r, void (*cb)(void *arg, const kb_Response *n), void *arg);

/* After a new session (server restart / expired session): gen is the new
 * generation (the first session is 0), root the entry of cfg.path in it.
 * Runs on a keeper thread, with the session lock held, before any
 * connection of the new session carries requests; must not block, make
 * synchronous calls or call kb_rpc_session (note the change, remap lazily
 * on ESTALE). */
typedef void (*kb_rpc_session_fn)(void *arg, uint64_t gen, const kb_Entry *root);
void kb_rpc_set_session_cb(struct kb_rpc *r, kb_rpc_session_fn cb, void *arg);
/* Log lines (no newline) from background threads, e.g. "keibifs:
 * reconnected to HOST (SHA256:...)". NULL: stderr. */
typedef void (*kb_rpc_log_fn)(void *arg, const char *line);
void kb_rpc_set_log(struct kb_rpc *r, kb_rpc_log_fn cb, void *arg);
/* Current session generation and its root entry. */
uint64_t kb_rpc_session(struct kb_rpc *r, kb_Entry *root);
/* The server said (HELLO) it serves our requests as the caller named in
 * their creds (keibifsd --allow-owners or the key's `owners` option, and
 * running as root). */
bool kb_rpc_owners(const struct kb_rpc *r);
/* The same generation without the lock (an atomic read): moves on once the
 * session callback has run. */
uint64_t kb_rpc_gen(struct kb_rpc *r);

/* The current session's HELLO told the ids the server checks permissions
 * as: true and *ids (rpc_lease.c). */
bool kb_rpc_server_ids(struct kb_rpc *r, kb_Creds *ids);
/* The server's promise (HELLO lease_ms, PROTOCOL.md): every change to what
 * this session looked up is pushed. It holds now when the server gave one,
 * has not taken it back (NOTIFY_LEASE_OFF), every connection is up, and
 * each has heard from the server within lease_ms (keepalive PINGs renew
 * it). Returns the lease's epoch, or 0 when it does not hold. The epoch
 * moves on whenever the promise lapses (a connection lost, a new session,
 * LEASE_OFF), so something cached under epoch E is backed only while
 * kb_rpc_lease still returns E. */
uint64_t kb_rpc_lease(struct kb_rpc *r, uint64_t now_ns);
/* The current session's HELLO FEATURE_* bits. */
uint32_t kb_rpc_features(struct kb_rpc *r);
/* Lease length the server promised, ms (0: none). */
uint32_t kb_rpc_lease_ms(struct kb_rpc *r);

/* Count one request of op in kb_rpc_stats.by_op (each one the rpc sends,
 * and each part of a COMPOUND, stream.c). */
void kb_rpc_count_op(struct kb_rpc *r, uint32_t op);
/* Ops counted one by one in kb_rpc_stats.by_op (kb_Op values below this). */
#define KB_RPC_NOPS 40

struct kb_rpc_stats {
	uint64_t bytes_sent, bytes_recv, requests, errors;
	uint64_t rtt_us; /* last PING round trip */
	unsigned conns_up;
	char peer_fpr[64];
	uint64_t reconnects;         /* connections re-established */
	uint64_t session_gen;        /* new sessions after the first */
	uint64_t by_op[KB_RPC_NOPS]; /* requests sent, by kb_Op (a COMPOUND's parts too) */
	uint64_t inflight;           /* requests sent and not answered yet */
	/* Answered (or failed) requests by kb_Op: count, total and largest
	 * latency in microseconds, from the first send to the completion. */
	uint64_t lat_n[KB_RPC_NOPS], lat_sum_us[KB_RPC_NOPS], lat_max_us[KB_RPC_NOPS];
	int last_err;                 /* last failure other than ENOENT-like answers */
	uint32_t last_err_op;         /* its kb_Op */
	int64_t last_err_time;        /* when (seconds since the epoch); 0: none */
	uint64_t rekeys, rekeys_time; /* of the connections up now (kb_chan_stats) */
	bool zstd;                    /* compression negotiated (a connection up) */
	double tx_rate, rx_rate;      /* bytes/s over the last rate_secs seconds */
	double rate_secs;             /* 0: no sample yet */
};
void kb_rpc_stats(struct kb_rpc *r, struct kb_rpc_stats *st);

/* Limits fixed at connect time. max_read: the largest READ length whose
 * reply fits in a frame we accept; max_write: the largest WRITE bulk the
 * server accepts in one request. */
size_t kb_rpc_max_read(const struct kb_rpc *r);
size_t kb_rpc_max_write(const struct kb_rpc *r);
unsigned kb_rpc_conns(const struct kb_rpc *r);

/* Thin wrappers (rpc_ops.c). Each returns as kb_rpc_call. The typed calls
 * for the other operations are in rpc_api.h. */
int kb_rpc_ping(struct kb_rpc *r, uint64_t *rtt_us);
int kb_rpc_lookup(struct kb_rpc *r, uint64_t parent, const char *name, kb_Entry *out);
int kb_rpc_getattr(struct kb_rpc *r, uint64_t node, kb_Attr *out);
/* Fire and forget (async, status ignored). */
int kb_rpc_forget(struct kb_rpc *r, uint64_t node, uint64_t count);
/* The same behind everything queued in the write-behind stream (when one
 * is routed to, kb_rpc_set_route): for a node that queued requests may
 * still name, which the server must not forget before they ran. */
int kb_rpc_forget_behind(struct kb_rpc *r, uint64_t node, uint64_t count);
int kb_rpc_open(struct kb_rpc *r, uint64_t node, uint32_t flags, uint64_t *fh,
		uint32_t *open_flags);
/* ...with set_mask (kb_SetMask_SET_KILL_SUIDGID: O_TRUNC by a caller
 * without CAP_FSETID). */
int kb_rpc_open_mask(struct kb_rpc *r, uint64_t node, uint32_t flags, uint32_t set_mask,
		     uint64_t *fh, uint32_t *open_flags);
int kb_rpc_opendir(struct kb_rpc *r, uint64_t node, uint64_t *fh);
int kb_rpc_release(struct kb_rpc *r, uint64_t node, uint64_t fh, bool dir);
/* READ of len bytes at off (fh 0: the server's read-only descriptor); the
 * reply's bulk holds the data, res->resp.eof marks end of file. */
int kb_rpc_read_async(struct kb_rpc *r, uint64_t node, uint64_t fh, uint64_t off, uint32_t len,
		      int conn_hint, kb_rpc_cb cb, void *arg);
/* Synchronous READ into buf (one copy: tests and tools, not the cache). */
int kb_rpc_pread(struct kb_rpc *r, uint64_t node, uint64_t fh, void *buf, size_t len, uint64_t off,
		 size_t *got);
/* NUL-terminated target in buf; -ERANGE when it does not fit. */
int kb_rpc_readlink(struct kb_rpc *r, uint64_t node, char *buf, size_t cap);
int kb_rpc_statfs(struct kb_rpc *r, uint64_t node, kb_Statfs *out);

#endif
