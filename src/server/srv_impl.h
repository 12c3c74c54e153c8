/* srv_impl.h - keibifsd internals shared by server.c and the srv_*.c modules.
 * Not part of the library interface (see server.h). Lock order:
 *   kb_srv.lock  ->  kb_srv_conn.lock
 *   kb_srv_nodetab.lock and kb_srv_fhtab.lock are leaves (never nested);
 *   kb_srv_fh.lock (readdir position) is taken without any other lock.
 */
#ifndef KB_SRV_IMPL_H
#define KB_SRV_IMPL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>

#include "buf.h"
#include "compress.h"
#include "keibifs.pb.h"
#include "keys.h"
#include "server.h"

#define KB_SRV_TOKEN 16
#define KB_SRV_MAX_LISTEN 4
/* Per-connection bytes of received frames waiting or being served. */
#define KB_SRV_INFLIGHT_BYTES (48u << 20)
/* Frames up to this size come from the small buffer pool. */
#define KB_SRV_SMALL_FRAME (64u << 10)
#define KB_SRV_XATTR_MAX (64u << 10)

/* ---- fd budget (srv_node.c) ---------------------------------------- */

/* One client key's share of the server: what its sessions and connections
 * use. Kept while a session or an authenticated connection refers to it. */
struct kb_srv_keyuse {
	uint8_t key[KB_KEY_LEN];    /* immutable */
	unsigned refs;              /* srv lock: sessions + authenticated conns */
	unsigned conns;             /* srv lock: authenticated connections */
	atomic_long fds;            /* node and handle fds of its sessions */
	struct kb_srv_keyuse *next; /* srv lock */
};

/* A session's fds (every node is an O_PATH fd, every handle and a node's
 * read fd one more), charged to the session, its key and the server, each
 * against its limit (srv->fd_*_max), so one session or key cannot take the
 * fds that accept and other keys need. */
struct kb_srv_fdacct {
	struct kb_srv *srv;       /* immutable */
	struct kb_srv_keyuse *ku; /* referenced, immutable; NULL: not counted */
	atomic_long fds;
};
/* Take one fd from the budgets: 0 or -EMFILE (logged, rate-limited). */
int kb_srv_fd_charge(struct kb_srv_fdacct *a);
void kb_srv_fd_uncharge(struct kb_srv_fdacct *a); /* NULL-safe */
/* srv lock NOT held: the key's record, referenced (NULL: out of memory). */
struct kb_srv_keyuse *kb_srv_keyuse_get(struct kb_srv *s, const uint8_t *key);
void kb_srv_keyuse_put(struct kb_srv *s, struct kb_srv_keyuse *ku); /* NULL-safe */
/* Derive the fd budgets from RLIMIT_NOFILE (kb_srv_new). */
void kb_srv_fd_budget(struct kb_srv *s, long per_key, long per_sess);

/* A deadline on the monotonic clock (conds made with CLOCK_MONOTONIC). */
static inline struct timespec kb_srv_ts(uint64_t ns)
{
	return (struct timespec){.tv_sec = (time_t)(ns / 1000000000u),
				 .tv_nsec = (long)(ns % 1000000000u)};
}

/* ---- write-behind stream (srv_stream.c) ---------------------------- */

/* Positions whose status is remembered, and the most a client may be
 * ahead of the server's stream. */
#define KB_SRV_STREAM_RING 4096
/* A position that does not come within this is given up (ETIMEDOUT). */
#define KB_SRV_STREAM_WAIT_MS 10000
struct kb_srv_stream_ent {
	uint64_t seq;   /* 0: unused */
	int err;        /* its status: 0 or -errno */
	uint64_t value; /* its Response.value (a WRITE's count) */
};
struct kb_srv_stream {
	pthread_mutex_t lock;
	pthread_cond_t cond;            /* monotonic: next moved on */
	uint64_t next;                  /* lock: the position whose turn it is */
	bool busy;                      /* lock: `next` is running */
	struct kb_srv_stream_ent *ring; /* lock: owned, made at first use */
};
void kb_srv_stream_init(struct kb_srv_stream *st);
void kb_srv_stream_destroy(struct kb_srv_stream *st);
/* Before running request op at stream position seq: 0: its turn: run it,
 * then kb_srv_stream_done; 1: it ran before: answer *status (and, when
 * that is 0, Response.value *value) without running it; 2: one that only reads ran before: run it again (no
 * _done); 3: as 0, after giving up positions before it (log it);
 * -EINVAL: further ahead than KB_SRV_STREAM_RING. Waits for the
 * positions before it (KB_SRV_STREAM_WAIT_MS, then gives them up). */
int kb_srv_stream_begin(struct kb_srv_stream *st, uint64_t seq, uint32_t op, int *status,
			uint64_t *value);
void kb_srv_stream_done(struct kb_srv_stream *st, uint64_t seq, int status, uint64_t value);

/* ---- directory leases (srv_dlease.c) ------------------------------- */

/* How long a session about to use a leased directory waits for the
 * holder to give it back; then the holder loses it and its session. */
#define KB_SRV_RECALL_MS 5000
struct kb_srv_dlease;
struct kb_srv_dleases {
	pthread_mutex_t lock;
	pthread_cond_t cond;       /* monotonic: a lease came back */
	struct kb_srv_dlease **b;  /* owned buckets of chains (lock) */
	uint64_t recalls, revoked; /* (lock) counts, logged at stop */
};
struct kb_srv_sess;
struct kb_srv_node;
int kb_srv_dleases_init(struct kb_srv_dleases *d);
void kb_srv_dleases_destroy(struct kb_srv_dleases *d);
/* Session s is about to hold directory (dev, ino): recall another
 * session's lease on it first (waits). Pair with kb_srv_dlease_leave. */
int kb_srv_dlease_enter(struct kb_srv_sess *s, dev_t dev, ino_t ino);
/* dropped: s no longer holds a node of it (its lease ends); false: an
 * enter that found the node already held (only the count goes back). */
void kb_srv_dlease_leave(struct kb_srv_sess *s, dev_t dev, ino_t ino, bool dropped);
/* Grant s a lease on directory node n when nobody else uses it. */
bool kb_srv_dlease_grant(struct kb_srv_sess *s, const struct kb_srv_node *n);
/* LEASE_RETURN: s gives its lease on n back. */
void kb_srv_dlease_return(struct kb_srv_sess *s, const struct kb_srv_node *n);

/* ---- nodes and handles (srv_node.c) -------------------------------- */

struct kb_srv_node {
	uint64_t id;                  /* immutable */
	dev_t dev;                    /* immutable */
	ino_t ino;                    /* immutable */
	mode_t fmt;                   /* S_IFMT bits, immutable */
	int fd;                       /* O_PATH|O_NOFOLLOW, owned, immutable */
	atomic_int rdfd;              /* O_RDONLY for fh-0 reads, -1 until opened */
	struct kb_srv_fdacct *acct;   /* the session's, immutable; may be NULL */
	uint64_t nlookup;             /* tab lock */
	atomic_uint refs;             /* 1 for table membership + users */
	struct kb_srv_node *next_id;  /* tab lock: chain by id */
	struct kb_srv_node *next_ino; /* tab lock: chain by (dev, ino) */
};

struct kb_srv_nodetab {
	pthread_mutex_t lock;
	struct kb_srv_node **by_id;  /* owned array of chains (lock) */
	struct kb_srv_node **by_ino; /* owned array of chains (lock) */
	size_t nbuckets;             /* power of two (lock) */
	size_t count;                /* (lock) */
	size_t max;                  /* immutable */
	uint64_t next_id;            /* (lock) */
	struct kb_srv_fdacct *acct;  /* immutable; NULL: fds not counted */
	struct kb_srv_sess *sess;    /* immutable; NULL: no directory leases */
};

/* Node and handle ids a client chose (Request.new_id) have this bit; the
 * server's own never do. */
#define KB_SRV_CLIENT_ID (1ull << 63)

struct kb_srv_fh {
	uint64_t id;                /* immutable */
	struct kb_srv_node *node;   /* referenced, immutable */
	int fd;                     /* owned, immutable */
	struct kb_srv_fdacct *acct; /* the session's, immutable; may be NULL */
	bool dir;                   /* immutable */
	pthread_mutex_t lock;       /* readdir: serialises the dir offset */
	atomic_uint refs;           /* 1 for table membership + users */
	struct kb_srv_fh *next;     /* tab lock */
};

struct kb_srv_fhtab {
	pthread_mutex_t lock;
	struct kb_srv_fh **b;       /* owned array of chains (lock) */
	size_t nbuckets;            /* fixed */
	size_t count;               /* (lock) */
	size_t max;                 /* immutable */
	uint64_t next_id;           /* (lock) */
	struct kb_srv_fdacct *acct; /* immutable; NULL: fds not counted */
};

int kb_srv_nodetab_init(struct kb_srv_nodetab *t, size_t max);
void kb_srv_nodetab_destroy(struct kb_srv_nodetab *t);
/* Referenced node or NULL. */
struct kb_srv_node *kb_srv_node_get(struct kb_srv_nodetab *t, uint64_t id);
void kb_srv_node_put(struct kb_srv_node *n);
/* Adds one lookup for the inode behind fd (consumed: closed when the inode
 * already has a node). *out is referenced. */
int kb_srv_node_add(struct kb_srv_nodetab *t, int fd, const struct stat *st,
		    struct kb_srv_node **out);
/* The same with the id the client chose (want_id, KB_SRV_CLIENT_ID set):
 * -EEXIST when the id or the inode already has a node, -EINVAL for an id
 * without the bit. want_id 0: as kb_srv_node_add. */
int kb_srv_node_add_id(struct kb_srv_nodetab *t, int fd, const struct stat *st, uint64_t want_id,
		       struct kb_srv_node **out);
/* Subtract count lookups; drops the node at zero. */
int kb_srv_node_forget(struct kb_srv_nodetab *t, uint64_t id, uint64_t count); /* 1: dropped */
size_t kb_srv_node_count(struct kb_srv_nodetab *t);

int kb_srv_fhtab_init(struct kb_srv_fhtab *t, size_t max);
void kb_srv_fhtab_destroy(struct kb_srv_fhtab *t);
/* Takes fd and a node reference of its own; *id gets the handle. */
int kb_srv_fh_add(struct kb_srv_fhtab *t, struct kb_srv_node *n, int fd, bool dir, uint64_t *id);
/* The same with the id in *id when not 0 (a client's, KB_SRV_CLIENT_ID
 * set; -EEXIST when taken). */
int kb_srv_fh_add_id(struct kb_srv_fhtab *t, struct kb_srv_node *n, int fd, bool dir, uint64_t *id);
struct kb_srv_fh *kb_srv_fh_get(struct kb_srv_fhtab *t, uint64_t id);
void kb_srv_fh_put(struct kb_srv_fh *h);
int kb_srv_fh_remove(struct kb_srv_fhtab *t, uint64_t id);

/* ---- names and confinement (srv_path.c) ---------------------------- */

/* 0 for a valid single component, else -EINVAL / -ENAMETOOLONG. */
int kb_srv_name_ok(const char *name);
/* Rejects a request whose header has a string field with a NUL inside
 * (nanopb would silently truncate it). hdr = the protobuf bytes. */
int kb_srv_strings_ok(const uint8_t *hdr, size_t len);
/* Resolve "a/b/c" under dirfd component by component, no symlinks, no
 * "..": *out is an O_PATH fd of the final directory. */
int kb_srv_walk(int dirfd, const char *path, int *out);
/* Reopen a node for I/O via /proc/self/fd (regular files and dirs only:
 * ELOOP for symlinks, EPERM for others). */
int kb_srv_reopen(const struct kb_srv_node *n, int flags);
/* "/proc/self/fd/N" of a node that is not a symlink. */
int kb_srv_proc_path(const struct kb_srv_node *n, char *buf, size_t cap);
/* 0 when directory node n is still beneath the share root (walking ".."
 * at most KB_SRV_BENEATH_DEPTH levels), -ESTALE when it was moved out;
 * 0 for other nodes. Before every op that changes names through n. */
#define KB_SRV_BENEATH_DEPTH 4096
struct kb_srv;
int kb_srv_beneath(const struct kb_srv *srv, const struct kb_srv_node *n);

/* ---- owners=preserve: requests served as the caller (srv_creds.c) -- */

#define KB_SRV_MAX_GROUPS 64
struct kb_srv_ids {
	uid_t uid; /* fsuid to come back to */
	gid_t gid;
	gid_t groups[KB_SRV_MAX_GROUPS];
	int ngroups;
};
/* The calling thread's ids (the server's own): -EINVAL with too many groups. */
int kb_srv_ids_init(struct kb_srv_ids *ids);
/* Take the caller's groups, fsgid and fsuid for this thread only; on
 * failure the server's ids are back. */
int kb_srv_creds_enter(const struct kb_srv_ids *self, const kb_Creds *c);
/* Back to `self` (aborts if that fails: never serve as the wrong user). */
void kb_srv_creds_leave(const struct kb_srv_ids *self);
/* Outside owners mode (the session may not send creds; srv_creds.c):
 * true. New modes then lose S_ISUID/S_ISGID, data changes clear them
 * (kb_srv_kill_suidgid) and chown/chgrp go to the server's ids only. */
struct kb_srv_sess;
struct kb_srv_node;
bool kb_srv_squash(const struct kb_srv_sess *s);
/* Mode of a new file or directory: mode & 07777 & ~umask, squashed. */
mode_t kb_srv_mode_new(const struct kb_srv_sess *s, uint32_t mode, uint32_t umask);
/* Mode for a chmod of n, squashed (a directory keeps its own S_ISGID). */
mode_t kb_srv_mode_chmod(const struct kb_srv_sess *s, const struct kb_srv_node *n, uint32_t mode);
/* 0, or -EPERM when squashed and uid/gid ((id_t)-1: unchanged) would
 * change n's owner, or its group to another than a non-root server's own. */
int kb_srv_chown_ok(const struct kb_srv_sess *s, const struct kb_srv_node *n, uid_t uid, gid_t gid);
/* srv_creds.c: clear setuid, and setgid if group-executable, of the
 * regular file n (st: its attributes, updated when that worked), as a
 * write or truncation by a caller without CAP_FSETID does (the client's
 * kernel says when). Best effort: the change that asked for it is done
 * either way. */
void kb_srv_kill_suidgid(const struct kb_srv_node *n, struct stat *st);

/* ---- sessions, connections, workers -------------------------------- */

/* Replies remembered per session by request id (srv_replay.c), so that a
 * non-idempotent request re-sent after a reconnect is answered, not run
 * again. */
#define KB_SRV_REPLAY 128
#define KB_SRV_REPLAY_MAX 256 /* largest cached reply plaintext */
struct kb_srv_replay_ent {
	uint64_t id;  /* 0: unused */
	bool done;    /* reply stored (else: still executing) */
	uint64_t seq; /* age, for eviction */
	size_t len;   /* 0 with done: reply too large, not kept */
	uint8_t reply[KB_SRV_REPLAY_MAX];
};
struct kb_srv_replay {
	pthread_mutex_t lock;
	pthread_cond_t cond;            /* an entry became done */
	struct kb_srv_replay_ent *ents; /* owned, KB_SRV_REPLAY of them, lazily (lock) */
	uint64_t seq;                   /* (lock) */
};

struct kb_srv_sess {
	struct kb_srv *srv;
	struct kb_srv_sess *next; /* srv lock */
	unsigned conns;           /* srv lock: attached connections */
	uint64_t idle_since_ns;   /* srv lock: last detach (when conns == 0) */
	bool bye;                 /* srv lock: client said BYE: no grace period */
	struct kb_srv_replay replay;
	struct kb_srv_stream stream; /* write-behind order */
	unsigned nwatches;           /* notifier lock: inotify registrations */
	unsigned unwatched;          /* notifier lock: nodes it holds we could not watch */
	struct kb_srv_mine *mine;    /* notifier lock: owned, its own recent changes */
	uint8_t token[KB_SRV_TOKEN]; /* immutable */
	uint8_t key[KB_KEY_LEN];     /* client key that made it, immutable */
	bool ro;                     /* immutable */
	bool owners;                 /* immutable: Request.creds honoured */
	unsigned kflags;             /* immutable: the key's options at HELLO */
	uint64_t root;               /* node id of the HELLO path, immutable */
	struct kb_srv_fdacct fds;    /* its fd count; ku referenced */
	struct kb_srv_nodetab nodes;
	struct kb_srv_fhtab fhs;
};

struct kb_srv_job {
	struct kb_buf *frame; /* referenced; plaintext at mem[0..len) */
	size_t len;
	struct kb_srv_job *next; /* conn lock */
};

struct kb_srv_worker {
	uint8_t *tx;      /* owned: frame head + plaintext + tag */
	size_t max_plain; /* plaintext room in tx */
	uint8_t *dents;   /* owned getdents64 scratch */
	size_t dents_cap;
	kb_Request req;           /* decoded request (worker-private) */
	kb_Response resp;         /* reply being built (worker-private) */
	kb_Request *part_q;       /* owned, made at the first COMPOUND: */
	kb_Response *part_r;      /* the part being served (worker-private) */
	uint8_t *ztx;             /* owned, made at the first compressed reply:
				      * frame head + plaintext + tag, like tx */
	struct kb_srv_conn *conn; /* thread's connection */
	pthread_t th;
};

struct kb_srv_conn {
	struct kb_srv *srv;
	struct kb_chan *chan;     /* owned; NULL for a detached conn */
	struct kb_srv_sess *sess; /* set by the first request, before any other */
	unsigned flags;           /* KB_KEYF_* from the key check */
	uint8_t key[KB_KEY_LEN];  /* peer's static key */
	char peer[64];            /* "ADDR:PORT" */
	char fpr[KB_FPR_LEN];
	uint32_t max_send;      /* largest plaintext the peer accepts */
	bool zstd;              /* KB_CAP_ZSTD negotiated (set by the handshake) */
	struct kb_z_link zlink; /* compress=auto's measure (any worker) */
	int fd_pending;         /* lock: the socket during the handshake */

	pthread_mutex_t lock;
	pthread_cond_t cond;                          /* job queued / job done / closing */
	struct kb_srv_job slots[KB_SRV_MAX_INFLIGHT]; /* lock */
	struct kb_srv_job *free;                      /* lock */
	struct kb_srv_job *head, *tail;               /* queue (lock) */
	unsigned inflight;                            /* queued + being served (lock) */
	size_t inflight_bytes;                        /* (lock) */
	bool closing;                                 /* workers exit when queue drained (lock) */

	struct kb_srv_worker **w; /* owned array of nworkers */
	unsigned nworkers;
	struct kb_srv_worker *inl; /* owned: the receiver's, for quick ops */
	unsigned notify_busy;      /* lock: notifier sending on chan */
	/* Limits (server.c's janitor reads these to apply the deadlines). */
	char host[64];                    /* peer address without port, immutable */
	uint64_t start_ns;                /* accepted, immutable */
	bool authed;                      /* srv lock: counted in nconns (else nunauth) */
	bool evicted;                     /* srv lock: handshake cut to make room */
	bool hs_done;                     /* srv lock: out of the handshake budget */
	uint8_t tier;                     /* srv lock: scratch of hs_room */
	atomic_bool hs_said;              /* its first handshake message arrived */
	struct kb_srv_keyuse *ku;         /* srv lock: referenced once authenticated */
	atomic_int rx_state;              /* KB_SRV_RX_* */
	_Atomic uint64_t rx_since_ns;     /* when rx_state was entered */
	atomic_uint tx_pending;           /* replies being sent */
	_Atomic uint64_t tx_since_ns;     /* last send completed (or begun, from idle) */
	_Atomic size_t tx_bytes;          /* bytes of replies being sent */
	atomic_bool cut;                  /* a limit closed it (logged once) */
	atomic_uint rx_frames;            /* frames received (0: no HELLO yet) */
	_Atomic uint64_t push_stalled_ns; /* notifier: a push could not be sent */
	pthread_t rx;                     /* receiver, joined by kb_srv_reap */
	struct kb_srv_conn *next;         /* srv lock: conns or dead list */
};
#define KB_SRV_RX_BUSY 0  /* handshake, serving, or waiting for room */
#define KB_SRV_RX_WAIT 1  /* waiting for the next frame */
#define KB_SRV_RX_FRAME 2 /* reading a frame */

/* Kinds of limits, for kb_srv_limit_log's rate limiting. */
enum kb_srv_lim {
	KB_SRV_LIM_HS,
	KB_SRV_LIM_HS_ADDR,
	KB_SRV_LIM_HS_FULL,
	KB_SRV_LIM_HS_TIME,
	KB_SRV_LIM_CONNS,
	KB_SRV_LIM_CONNS_KEY,
	KB_SRV_LIM_HELLO,
	KB_SRV_LIM_FRAME,
	KB_SRV_LIM_IDLE,
	KB_SRV_LIM_QUEUED,
	KB_SRV_LIM_QUEUED_CUT,
	KB_SRV_LIM_FDS,
	KB_SRV_LIM_PUSH,
	KB_SRV_LIM_N
};

struct kb_srv {
	char *share;    /* owned copy */
	int rootfd;     /* O_PATH of the share, owned */
	dev_t root_dev; /* the share root's, immutable */
	ino_t root_ino;
	uint8_t priv[KB_KEY_LEN]; /* wiped on free */
	uint8_t pub[KB_KEY_LEN];
	uint8_t psk[32];                    /* wiped on free */
	bool have_psk, read_only;           /* have_psk: auth_lock */
	const struct kb_keyset *authorized; /* caller's; auth_lock (srv_reload.c) */
	pthread_mutex_t auth_lock;          /* leaf: authorized, psk, have_psk */
	enum kb_aead_backend backend;
	unsigned nworkers, max_conns;
	/* Limits, immutable after kb_srv_new (see kb_srv_cfg). */
	unsigned max_hs, max_hs_addr, max_conns_key;
	int hs_timeout_ms;
	uint64_t hello_ns, frame_ns, idle_ns;
	size_t max_queued;
	long fd_all_max, fd_key_max, fd_sess_max, nofile;
	_Atomic size_t queued;    /* bytes received and not yet served, or being sent */
	atomic_long fds;          /* node and handle fds of all sessions */
	pthread_mutex_t lim_lock; /* leaf: the two arrays below */
	uint64_t lim_last_ns[KB_SRV_LIM_N];
	unsigned lim_quiet[KB_SRV_LIM_N]; /* suppressed since the last line */
	uint64_t lim_count[KB_SRV_LIM_N]; /* since start (logged at stop) */
	_Atomic uint64_t pushes_dropped;  /* to clients not reading */
	uint64_t grace_ns;                /* session grace; 0: none */
	unsigned max_sess, max_sess_key;
	struct kb_srv_notifier *notifier; /* owned; NULL: no notifications */
	struct kb_srv_dleases dleases;    /* directory leases (own lock) */
	bool no_notify;
	bool no_compress;      /* --no-compress: KB_CAP_ZSTD not offered */
	bool allow_owners;     /* --allow-owners: every session may send creds */
	bool can_owners;       /* running as root with ids: creds possible */
	struct kb_srv_ids ids; /* the server's own, immutable */
	void (*log)(void *arg, int prio, const char *line);
	void *log_arg;

	int lfd[KB_SRV_MAX_LISTEN]; /* owned listening sockets */
	int nlfd;
	char addr[96];
	int stop_pipe[2];                 /* owned; kb_srv_stop writes */
	struct kb_noise_rng *rng;         /* owned, thread-safe */
	struct kb_bufpool *small, *large; /* owned receive pools */

	pthread_mutex_t lock;
	pthread_cond_t cond;          /* a connection went away */
	struct kb_srv_sess *sessions; /* lock */
	struct kb_srv_conn *conns;    /* lock */
	struct kb_srv_conn *dead;     /* lock: exited receivers to join */
	unsigned nconns;              /* lock: authenticated connections */
	unsigned nunauth;             /* lock: connections in the handshake */
	unsigned nevicted;            /* lock: handshakes cut, not yet gone */
	unsigned nlisted;             /* lock: every connection in conns */
	unsigned nsess;               /* lock */
	bool stopping;                /* lock */
	struct kb_srv_keyuse *keys;   /* lock */
	pthread_t janitor;            /* expiry and deadlines, off the accept thread */
	bool janitor_on;              /* lock */
	bool janitor_stop;            /* lock */
};

/* srv_log.c */
void kb_srv_logf(const struct kb_srv *s, int prio, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* One line for a limit that bit, at most one per 10 s per kind (the next
 * says how many were not logged). */
void kb_srv_limit_log(struct kb_srv *s, enum kb_srv_lim kind, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* One line at stop: how often each limit bit. */
void kb_srv_limit_totals(struct kb_srv *s);

/* server.c: sessions */
int kb_srv_sess_hello(struct kb_srv_conn *c, const char *path, struct kb_srv_node **root);
int kb_srv_sess_attach(struct kb_srv_conn *c, const uint8_t *token, size_t len);
void kb_srv_sess_detach(struct kb_srv_conn *c);
/* The client ended the session cleanly: free it with its last connection. */
void kb_srv_sess_bye(struct kb_srv_sess *s);
/* End s now: no grace, its connections cut (a lease not given back). */
void kb_srv_sess_cut(struct kb_srv_sess *s);
/* Free sessions idle past the grace period (all of them with `all`). */
void kb_srv_sess_expire(struct kb_srv *srv, bool all);

/* srv_replay.c. Before serving a non-idempotent request: true when the
 * reply is known (copied to out, *len set; waits while the first copy of
 * the request still runs); false: run it, then kb_srv_replay_store. */
bool kb_srv_replay_op(uint32_t op);
bool kb_srv_replay_begin(struct kb_srv_replay *rp, uint64_t id, uint8_t *out, size_t cap,
			 size_t *len);
void kb_srv_replay_store(struct kb_srv_replay *rp, uint64_t id, const uint8_t *reply, size_t len);
void kb_srv_replay_init(struct kb_srv_replay *rp);
void kb_srv_replay_destroy(struct kb_srv_replay *rp);

/* srv_notify.c: inotify watches of looked-up nodes, pushed as NOTIFY. */
struct kb_srv_notifier;
int kb_srv_notify_start(struct kb_srv *srv, struct kb_srv_notifier **out);
void kb_srv_notify_stop(struct kb_srv_notifier *nf); /* NULL-safe */
/* Watch node n for session s: a directory (its entries, and their data and
 * attributes), or a regular file with more than one link (changed through
 * another name). Bounded per session and shared fairly between keys; a
 * node that cannot be watched takes the session's lease back (NOTIFY
 * LEASE_OFF) until it is forgotten. */
void kb_srv_notify_watch(struct kb_srv_notifier *nf, struct kb_srv_sess *s,
			 const struct kb_srv_node *n);
/* Session s forgot node id (no lookups left): its watch goes. */
void kb_srv_notify_unwatch(struct kb_srv_notifier *nf, struct kb_srv_sess *s, uint64_t node);
/* Drop every watch and pending push of s (before s is freed). */
void kb_srv_notify_forget(struct kb_srv_notifier *nf, struct kb_srv_sess *s);
/* The request s is about to run changes node/name ("" = the node itself):
 * for KB_SRV_MINE_MS its events are not pushed back to s (it knows). */
#define KB_SRV_MINE_MS 300
void kb_srv_notify_mine(struct kb_srv_notifier *nf, struct kb_srv_sess *s, uint64_t node,
			const char *name);
/* NOTIFY_RECALL of directory `node` to s, sent at once (srv_dlease.c). */
void kb_srv_notify_recall(struct kb_srv_notifier *nf, struct kb_srv_sess *s, uint64_t node);

/* srv_reload.c: is key still authorized with these options (KB_KEYF_*)? */
bool kb_srv_key_ok(struct kb_srv *s, const uint8_t *key, unsigned flags);

/* srv_conn.c: one connection's threads */
/* peer "ADDR:PORT", host "ADDR" (the per-address handshake limit). */
int kb_srv_conn_spawn(struct kb_srv *s, int fd, const char *peer, const char *host);
/* Janitor (server.c), srv lock held: apply the deadlines to every
 * connection, and the queued-bytes budget. */
void kb_srv_conns_deadlines(struct kb_srv *s, uint64_t now);
/* Caller holds s->lock. */
void kb_srv_conns_shutdown(struct kb_srv *s, bool force);
/* Join and free the connections whose receivers have exited. */
void kb_srv_reap(struct kb_srv *s);

/* srv_ops.c: one request (session established); fills w->resp and, for
 * replies with bulk bytes, *data_len bytes at `data`. */
struct kb_srv_req {
	struct kb_srv_conn *conn;
	struct kb_srv_sess *sess;
	const kb_Request *q;
	kb_Response *r;
	const uint8_t *bulk; /* request bulk, inside the received frame */
	size_t bulk_len;
	uint8_t *data;   /* reply bulk area inside w->tx */
	size_t data_max; /* room at data */
	size_t data_len; /* reply bulk bytes produced */
	struct kb_srv_worker *w;
};
int kb_srv_dispatch(struct kb_srv_req *rq);
/* srv_sess.c: true for operations cheap enough to serve on the receiver
 * thread: one or two system calls on a name or on attributes (PING,
 * GETATTR, LOOKUP, namespace ops, SETXATTR, SETATTR without a size, CREATE
 * without O_TRUNC...) and WRITEs of at most KB_SRV_QUICK_WRITE bytes (a
 * small file's data: one pwrite into the page cache); never one
 * that reads file data, lists a directory, replies with a bulk or may take
 * long. */
#define KB_SRV_QUICK_WRITE (16u << 10)
bool kb_srv_quick_op(const uint8_t *pt, size_t len);
void kb_srv_attr_fill(kb_Attr *a, const struct stat *st);

#endif
