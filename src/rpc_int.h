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
#include "keys.h"
#include "rpc.h"

#define KB_RPC_SLOT_BITS 6
#define KB_RPC_SLOTS (1u << KB_RPC_SLOT_BITS) /* requests in flight per conn */
#define KB_RPC_MAX_BYTES (16u << 20)          /* bytes in flight per conn */
#define KB_RPC_NCLASS 5                       /* receive buffer size classes */
#define KB_RPC_DEFAULT_TIMEOUT_MS 30000
#define KB_RPC_TICK_MS 50                     /* timer granularity */
#define KB_RPC_KEEPALIVE_MS 15000             /* PING after this long idle */

enum kb_rpc_slot_state {
	KB_SLOT_FREE,
	KB_SLOT_INFLIGHT, /* in the table: a reply, timeout or failure may claim it */
	KB_SLOT_CLAIMED,  /* one completer owns it (outside the lock) */
	KB_SLOT_DONE,     /* sync only: result ready, waiter frees the slot */
};

/* One request in flight. Pooled: preallocated per connection. */
struct kb_rpc_slot {
	uint64_t id;                 /* seq << SLOT_BITS | index; never 0 */
	enum kb_rpc_slot_state state;
	int status;                  /* sync: final status once DONE */
	uint64_t deadline_ns;
	size_t bytes;                /* accounted against KB_RPC_MAX_BYTES */
	kb_rpc_cb cb;                /* async: callback; NULL for sync */
	void *arg;
	struct kb_rpc_result *res;   /* sync: caller's result or NULL (not owned) */
	kb_rpc_take_fn take;         /* sync without result: copy-out hook */
	void *take_arg;
	pthread_cond_t done;         /* sync waiter sleeps here (conn lock) */
	unsigned next_free;          /* free stack link */
};

struct kb_rpc_conn {
	struct kb_rpc *r;
	unsigned idx;
	pthread_mutex_t lock;
	pthread_cond_t space;        /* a slot/bytes freed or state change */
	struct kb_chan *chan;        /* owned; kept until free (senders may hold it) */
	struct kb_chan_info info;
	pthread_t rx;
	bool rx_started;
	bool up;                     /* channel alive (lock) */
	bool ready;                  /* attached: eligible for general calls (lock) */
	int down_err;                /* why it went down (lock) */
	struct kb_rpc_slot slots[KB_RPC_SLOTS]; /* lock */
	unsigned free_head, nfree;   /* free stack of slot indices (lock) */
	uint64_t seq;                /* id sequence (lock) */
	size_t inflight_bytes;       /* lock */
	_Atomic uint64_t last_rx_ns; /* last frame received */
	_Atomic uint64_t ping_sent_ns; /* 0: no keepalive PING outstanding */
	struct kb_rpc_result *scratch; /* owned by the receiver thread */
};

struct kb_rpc {
	struct kb_rpc_cfg cfg;       /* strings point into the copies below */
	char *host, *port, *path;    /* owned copies */
	int timeout_ms;              /* effective request timeout */
	uint64_t keepalive_ns;       /* idle time before a PING; 0: never */
	uint8_t our_pub[KB_KEY_LEN];
	struct kb_noise_rng *rng;    /* owned */
	struct kb_bufpool *pools[KB_RPC_NCLASS]; /* owned; ascending capacity */
	unsigned npools;
	struct kb_rpc_conn *conns;   /* owned array of cfg.conns */
	unsigned nconns;
	atomic_uint rr;              /* round robin cursor */
	uint8_t token[32];           /* session token from HELLO */
	size_t token_len;
	uint8_t server_key[KB_KEY_LEN];
	char peer_fpr[KB_FPR_LEN];
	size_t max_read, max_write;  /* fixed once connected */

	pthread_mutex_t lock;
	pthread_cond_t tick;         /* timer sleeps here; signalled at free */
	bool stopping;               /* lock */
	pthread_t timer;
	bool timer_started;
	void (*notify)(void *arg, const kb_Response *n); /* lock */
	void *notify_arg;            /* lock */

	_Atomic uint64_t requests, errors, rtt_us;
};

/* rpc.c: connection slots (init/destroy), receive pools, the timer. */
int kb_rpc_conn_init(struct kb_rpc_conn *c, struct kb_rpc *r, unsigned idx);
void kb_rpc_conn_destroy(struct kb_rpc_conn *c); /* after its receiver ended */
void kb_rpc_conn_shutdown(struct kb_rpc_conn *c); /* wake + join the receiver */
int kb_rpc_pools_init(struct kb_rpc *r, size_t max_frame);
int kb_rpc_timer_start(struct kb_rpc *r);
void kb_rpc_timer_stop(struct kb_rpc *r);
/* rpc.c, shared with rpc_rx.c. Lock held: */
void kb_rpc_slot_put(struct kb_rpc_conn *c, struct kb_rpc_slot *s);
/* No lock held: finish a CLAIMED slot (wake the waiter or run the cb). */
void kb_rpc_complete(struct kb_rpc_conn *c, struct kb_rpc_slot *s, int status,
		     struct kb_rpc_result *res);
/* Mark down, shut the channel, fail everything pending with -ENOTCONN. */
void kb_rpc_conn_down(struct kb_rpc_conn *c, int err);
struct kb_bufpool *kb_rpc_pool_for(struct kb_rpc *r, size_t need);

/* rpc_rx.c: the id of a reply frame's plaintext ([u32 H][protobuf][bulk]),
 * protobuf field 1, last one wins, 0 when absent; -KB_EPROTO when the
 * header is not well-formed protobuf. */
int kb_rpc_peek_id(const uint8_t *frame, size_t len, uint64_t *id);

/* rpc_rx.c: start one connection's receiver over an established channel (takes it). */
int kb_rpc_conn_start(struct kb_rpc_conn *c, struct kb_chan *chan,
		      const struct kb_chan_info *info);
/* Sync call pinned to one connection that is up but maybe not ready yet
 * (HELLO/ATTACH). */
int kb_rpc_call_on(struct kb_rpc_conn *c, kb_Request *req, kb_rpc_take_fn take, void *arg);
void kb_rpc_conn_set_ready(struct kb_rpc_conn *c);

/* rpc_conn.c: connect, handshake, HELLO/ATTACH for slot i; err on failure. */
int kb_rpc_conn_open(struct kb_rpc *r, unsigned i, kb_Entry *root, bool *read_only,
		     char *err, size_t errlen);

/* Tests: a session over already established channels (no handshake, no
 * HELLO). Takes every chans[i] (cfg->conns of them), even on failure. */
int kb_rpc_new_raw(struct kb_rpc **out, const struct kb_rpc_cfg *cfg, struct kb_chan **chans);

#endif
