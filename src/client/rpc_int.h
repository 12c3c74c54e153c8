/* rpc_int.h - private structures of the rpc client (rpc.c, rpc_conn.c).
 *
 * Locks: each connection's `lock` guards its slot table, counters and state
 * flags; r->lock guards the notify callback and the timer's sleep. Order:
 * r->lock is never held while taking a conn->lock. No lock is held while a
 * callback runs or while a frame is sent/received.
 */
#ifndef KB_RPC_INT_H
#define KB_RPC_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "chan.h"
#include "compress.h"
#include "keys.h"
#include "proxy.h"
#include "rpc.h"

#define KB_RPC_SLOT_BITS 6
#define KB_RPC_SLOTS (1u << KB_RPC_SLOT_BITS) /* requests in flight per conn */
#define KB_RPC_MAX_BYTES (16u << 20)          /* bytes in flight per conn */
#define KB_RPC_NCLASS 5                       /* receive buffer size classes */
#define KB_RPC_DEFAULT_TIMEOUT_MS 30000
#define KB_RPC_TICK_MS 50         /* timer granularity */
#define KB_RPC_KEEPALIVE_MS 15000 /* PING after this long idle */
#define KB_RPC_CONN_BITS 6        /* conn index in ids: unique per session */
#define KB_RPC_HDR_INLINE 192     /* encoded headers kept in the slot */
#define KB_RPC_RATE_SAMPLES 6     /* throughput over the last 5 s */
#define KB_RPC_FIRST_TRIES 4      /* handshakes cut before the mount is up */
#define KB_RPC_FIRST_RETRY_MS 100 /* ... retried after 100, 200, 400 ms */
#define KB_RPC_BACKOFF_MIN_MS 100
#define KB_RPC_BACKOFF_MAX_MS 2000

enum kb_rpc_slot_state {
	KB_SLOT_FREE,
	KB_SLOT_INFLIGHT, /* in the table: a reply, timeout or failure may claim it */
	KB_SLOT_CLAIMED,  /* one completer owns it (outside the lock) */
	KB_SLOT_DONE,     /* sync only: result ready, waiter frees the slot */
	KB_SLOT_SENDING,  /* being re-sent after a reconnect: a reply may claim it,
			   * timeouts and failures leave it to the re-sender */
};

/* Which in-flight requests fail_pending fails. */
enum kb_rpc_fail {
	KB_FAIL_ALL,     /* every request (connection closed for good) */
	KB_FAIL_EXPIRED, /* past their deadline */
	KB_FAIL_NORETRY, /* those that are not re-sent after a reconnect */
	KB_FAIL_UNSAFE,  /* those not safe to re-send on a new session */
};

/* One request in flight. Pooled: preallocated per connection. */
struct kb_rpc_slot {
	uint64_t id; /* seq << SLOT_BITS | index; never 0 */
	enum kb_rpc_slot_state state;
	int status; /* sync: final status once DONE */
	uint64_t deadline_ns;
	uint64_t sent_ns; /* first sent: the latency kb_rpc_stats shows */
	size_t bytes;     /* accounted against KB_RPC_MAX_BYTES */
	kb_rpc_cb cb;     /* async: callback; NULL for sync */
	void *arg;
	struct kb_rpc_result *res; /* sync: caller's result or NULL (not owned) */
	kb_rpc_take_fn take;       /* sync without result: copy-out hook */
	void *take_arg;
	pthread_cond_t done; /* sync waiter sleeps here (conn lock) */
	unsigned next_free;  /* free stack link */
	/* Kept for a re-send after a reconnect (same id, same bytes): */
	uint32_t op;
	bool stream; /* carries Request.seq: failed, not re-sent, in a new session */
	bool retry;  /* false: fail it when the connection dies */
	uint8_t hdr_inline[KB_RPC_HDR_INLINE];
	uint8_t *hdr; /* encoded header: hdr_inline or owned heap copy */
	size_t hlen;
	const void *bulk; /* caller's; valid until the request completes */
	size_t bulk_len;
};

struct kb_rpc_conn {
	struct kb_rpc *r;
	unsigned idx;
	pthread_mutex_t lock;
	pthread_cond_t space; /* a slot/bytes freed or state change */
	struct kb_chan *chan; /* owned; kept until free (senders may hold it) */
	struct kb_chan_info info;
	pthread_t rx;
	bool rx_started;
	bool up;                                /* channel alive (lock) */
	bool ready;                             /* attached: eligible for general calls (lock) */
	int down_err;                           /* why it went down (lock) */
	struct kb_rpc_slot slots[KB_RPC_SLOTS]; /* lock */
	unsigned free_head, nfree;              /* free stack of slot indices (lock) */
	uint64_t seq;                           /* id sequence (lock) */
	size_t inflight_bytes;                  /* lock */
	_Atomic uint64_t last_rx_ns;            /* last frame received */
	_Atomic uint64_t ping_sent_ns;          /* 0: no keepalive PING outstanding */
	struct kb_rpc_result *scratch;          /* owned by the receiver thread */
	unsigned senders;                       /* lock: threads sending on chan right now */
	bool want_reconnect;                    /* lock: the keeper should re-establish us */
	pthread_cond_t kcond;                   /* keeper sleeps here (lock) */
	pthread_t keeper;                       /* reconnects this slot (rpc_keep.c) */
	bool keeper_started;
	uint64_t gen;           /* session generation we are attached to (sess_lock) */
	struct kb_z_link zlink; /* compress=auto's measure (senders) */
	struct kb_proxy *proxy; /* owned; the proxy_command behind chan, or NULL.
				      * Started with the channel, stopped after it
				      * is freed, by the thread that (re)connects
				      * this slot (opener, then keeper) */
};

struct kb_rpc {
	struct kb_rpc_cfg cfg;    /* strings point into the copies below */
	char *host, *port, *path; /* owned copies */
	char host_disp[260];      /* host for messages: "[::1]" for IPv6 */
	char *proxy_command;      /* owned copy or NULL */
	int timeout_ms;           /* effective request timeout */
	uint64_t keepalive_ns;    /* idle time before a PING; 0: never */
	uint8_t our_pub[KB_KEY_LEN];
	struct kb_noise_rng *rng;                /* owned */
	struct kb_bufpool *pools[KB_RPC_NCLASS]; /* owned; ascending capacity */
	unsigned npools;
	struct kb_rpc_conn *conns; /* owned array of cfg.conns */
	unsigned nconns;
	atomic_uint rr;    /* round robin cursor */
	uint8_t token[32]; /* session token from HELLO */
	size_t token_len;
	uint8_t server_key[KB_KEY_LEN];
	char peer_fpr[KB_FPR_LEN];
	char trust_why[640];        /* lock: why the last server key was refused */
	size_t max_read, max_write; /* fixed once connected */
	bool owners;                /* HELLO: the server honours creds (set before
				      * kb_rpc_new returns; later HELLOs rewrite it) */

	pthread_mutex_t lock;
	pthread_cond_t tick; /* timer sleeps here; signalled at free */
	/* Throughput: bytes moved, sampled once a second by the timer. */
	struct {
		uint64_t ns, sent, recv;
	} rate[KB_RPC_RATE_SAMPLES]; /* ring (lock) */
	unsigned rate_n, rate_head;  /* samples held / next slot (lock) */
	bool stopping;               /* lock */
	pthread_t timer;
	bool timer_started;
	void (*notify)(void *arg, const kb_Response *n); /* lock */
	void *notify_arg;                                /* lock */
	/* Write-behind routing (kb_rpc_set_route): set once before use. */
	void *route_stream;
	kb_rpc_route_fn route_fn;
	void *route_arg;
	kb_rpc_session_fn session_cb; /* lock */
	void *session_arg;            /* lock */
	kb_rpc_log_fn log;            /* lock; NULL: stderr */
	void *log_arg;                /* lock */

	/* Reconnection (rpc_keep.c). */
	bool reconnect;               /* immutable after kb_rpc_new */
	atomic_bool closing;          /* kb_rpc_free started: no more reconnects */
	atomic_bool opened;           /* kb_rpc_new succeeded: a lost connection is news */
	uint8_t identity[KB_KEY_LEN]; /* our static private key (wiped at free) */
	uint8_t psk[32];              /* wiped at free */
	pthread_mutex_t sess_lock;    /* one HELLO/ATTACH at a time; token, gen, root */
	uint64_t gen;                 /* session generation: +1 per new HELLO (sess_lock) */
	kb_Entry root;                /* entry of path in the current session (sess_lock) */

	/* The server's promise (rpc_lease.c): from HELLO (lock) */
	kb_Creds server_ids;          /* lock */
	bool have_server_ids;         /* lock */
	uint32_t lease_ms;            /* lock; 0: none */
	uint32_t features;            /* lock: HELLO's FEATURE_* bits */
	bool lease_off;               /* lock: NOTIFY_LEASE_OFF, until LEASE_ON */
	_Atomic uint64_t lease_epoch; /* +1 whenever the promise lapses; starts at 1 */

	_Atomic uint64_t requests, errors, rtt_us, reconnects, session_gen;
	_Atomic uint64_t by_op[KB_RPC_NOPS]; /* requests sent, by op */
	/* Completed requests by op: count, summed and largest latency (us). */
	_Atomic uint64_t lat_n[KB_RPC_NOPS], lat_sum_us[KB_RPC_NOPS], lat_max_us[KB_RPC_NOPS];
	_Atomic uint64_t inflight; /* slots taken, all connections */
	int last_err;              /* lock: last failure worth showing (0: none) */
	uint32_t last_err_op;      /* lock */
	int64_t last_err_time;     /* lock: CLOCK_REALTIME seconds */
};

/* rpc_lease.c: the HELLO reply's ids and lease; a lapse of the promise;
 * a NOTIFY carrying lease flags (true: consumed). */
void kb_rpc_lease_hello(struct kb_rpc *r, const kb_Response *resp);
void kb_rpc_lease_lapse(struct kb_rpc *r);
bool kb_rpc_lease_notify(struct kb_rpc *r, const kb_Response *n);

/* rpc.c: connection slots (init/destroy), receive pools, the timer. */
int kb_rpc_conn_init(struct kb_rpc_conn *c, struct kb_rpc *r, unsigned idx);
void kb_rpc_conn_destroy(struct kb_rpc_conn *c);  /* after its receiver ended */
void kb_rpc_conn_shutdown(struct kb_rpc_conn *c); /* wake + join the receiver */
int kb_rpc_pools_init(struct kb_rpc *r, size_t max_frame);
int kb_rpc_timer_start(struct kb_rpc *r);
void kb_rpc_timer_stop(struct kb_rpc *r);
/* rpc.c, shared with rpc_rx.c. Lock held: */
void kb_rpc_slot_put(struct kb_rpc_conn *c, struct kb_rpc_slot *s);
/* No lock held: finish a CLAIMED slot (wake the waiter or run the cb). */
void kb_rpc_complete(struct kb_rpc_conn *c, struct kb_rpc_slot *s, int status,
		     struct kb_rpc_result *res);
/* Mark down, shut the channel; fail what is pending with -ENOTCONN (with
 * reconnection on: only what is not re-sent, and wake the keeper). */
void kb_rpc_conn_down(struct kb_rpc_conn *c, int err);
void kb_rpc_fail_pending(struct kb_rpc_conn *c, int status, enum kb_rpc_fail which, uint64_t now);
/* Send a slot's kept header + bulk on the connection's channel. */
int kb_rpc_send_slot(struct kb_rpc_conn *c, struct kb_rpc_slot *s);
/* One log line (prefixed "keibifs: ") to the log callback or stderr. */
void kb_rpc_logf(struct kb_rpc *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
struct kb_bufpool *kb_rpc_pool_for(struct kb_rpc *r, size_t need);

/* rpc_rx.c: the id of a reply frame's plaintext ([u32 H][protobuf][bulk]),
 * protobuf field 1, last one wins, 0 when absent; -KB_EPROTO when the
 * header is not well-formed protobuf. */
int kb_rpc_peek_id(const uint8_t *frame, size_t len, uint64_t *id);

/* rpc_rx.c: start one connection's receiver over an established channel (takes it). */
int kb_rpc_conn_start(struct kb_rpc_conn *c, struct kb_chan *chan, const struct kb_chan_info *info);
/* Sync call pinned to one connection that is up but maybe not ready yet
 * (HELLO/ATTACH). */
int kb_rpc_call_on(struct kb_rpc_conn *c, kb_Request *req, kb_rpc_take_fn take, void *arg);
void kb_rpc_conn_set_ready(struct kb_rpc_conn *c);

/* rpc_conn.c: connect, handshake, HELLO/ATTACH for slot i; err on failure. */
int kb_rpc_conn_open(struct kb_rpc *r, unsigned i, kb_Entry *root, bool *read_only, char *err,
		     size_t errlen);
/* rpc_conn.c: TCP + Noise for slot i (the server key must be the one pinned
 * at the first connection); starts the receiver. */
int kb_rpc_conn_connect(struct kb_rpc *r, unsigned i, char *err, size_t errlen);
/* rpc_conn.c: HELLO (new session: token, root) or ATTACH on slot i. */
int kb_rpc_conn_hello(struct kb_rpc *r, unsigned i, kb_Entry *root, bool *read_only);
int kb_rpc_conn_attach(struct kb_rpc *r, unsigned i);

/* rpc_keep.c: the keeper threads (one per connection when reconnecting). */
int kb_rpc_keepers_start(struct kb_rpc *r);
void kb_rpc_keepers_stop(struct kb_rpc *r);

/* Tests: a session over already established channels (no handshake, no
 * HELLO; zstd taken as negotiated when cfg->compress is not off). Takes
 * every chans[i] (cfg->conns of them), even on failure. */
int kb_rpc_new_raw(struct kb_rpc **out, const struct kb_rpc_cfg *cfg, struct kb_chan **chans);

#endif
