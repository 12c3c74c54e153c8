/* kbfs_node.h - the inode table: FUSE ino -> node.
 *
 * A node knows its server node id, the kernel's lookup count, the lookups
 * the server counted for it, its parent and name (so that it can be
 * re-resolved on a new session), and its cached attributes. The FUSE ino of
 * a node is its address (FUSE_ROOT_ID for the root), stable for its life.
 * Every field is protected by the table's lock.
 */
#ifndef KBFS_NODE_H
#define KBFS_NODE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "keibifs.pb.h"

struct kbfs_node {
	uint64_t ino;             /* FUSE ino (1 for the root) */
	uint64_t remote;          /* server node id; 0 once forgotten */
	uint64_t nlookup;         /* kernel's lookup count */
	uint64_t rlookup;         /* lookups the server counted (FORGET this) */
	struct kbfs_node *parent; /* pinned while we name it */
	unsigned pins;            /* children naming us as parent */
	char *name;               /* owned; NULL for the root */
	kb_Attr attr;             /* last attributes seen */
	uint64_t attr_expiry_ns;
	uint64_t version;        /* kbfs_attr_version(attr) */
	uint64_t kcache_version; /* version the kernel page cache holds */
	bool own_change;         /* we changed it since the last attributes */
	uint64_t attr_gen;       /* table gen the attributes are current for */
	uint64_t lease_epoch;    /* lease the attributes are backed by (0: none) */
	uint64_t parent_kids;    /* parent's kids_gen when they were stored */
	uint64_t kids_gen;       /* +1 per change seen to a child of ours */
	uint64_t quiet_until_ns; /* no lease before: our own change was recent */
	bool no_lease;           /* on a filesystem the server promises nothing for */
	unsigned wr_inflight;    /* WRITEs sent, not answered */
	uint64_t wr_seq;         /* WRITEs sent */
	unsigned writers;        /* open files with a server handle for writing */
	int64_t kmtime;          /* the kernel's last mtime flush (kmtime_set) */
	uint32_t kmtime_ns;
	bool kmtime_set;         /* while open for writing (writeback cache) */
	struct kbfs_node *hnext; /* remote id hash chain */
	uint64_t sgen;           /* rpc session generation `remote` is from */
	struct kbfs_node *onext; /* old-session index chain (in_old) */
	bool in_old;             /* in the old-session index: remote is stale */
	struct kbfs_node *nnext; /* (parent, name) hash chain, while named */
	/* Write-behind (kbfs_wb.c): */
	bool wb;               /* requests naming it go through the stream */
	bool dlease;           /* a directory leased to us: its names decided here */
	uint64_t dlease_epoch; /* the server's push lease epoch when it was taken */
	unsigned wb_pending;   /* its stream requests not answered yet */
	uint64_t wb_epoch;     /* the table's wb_epoch when its attributes became ours */
	int wb_err;            /* first error of a stream request for it (0: none) */
	int wb_failed;         /* a queued change of its own failed: changes to it are
				* refused with this until it is looked up again */
	uint64_t wb_until_ns;  /* its attributes stay ours until then (or while pending) */
	uint64_t fake_ino;     /* made here: the st_ino shown for its life (0: none) */
	uint64_t real_ino;     /* ...and the server's, once an answer told it */
};

/* st_ino of what the mount made itself (write-behind) before the server
 * answered: kept for the node's life, so st_ino never changes under a
 * program that compares it (tar, find, cp -a). */
#define KBFS_FAKE_INO (1ull << 62)

struct kbfs_nodes;

/* Version of a file's data: a hash of size, mtime and ctime. */
uint64_t kbfs_attr_version(const kb_Attr *a);

int kbfs_nodes_new(struct kbfs_nodes **out, const kb_Entry *root);
/* The server's promise (kb_rpc_lease): its epoch now, or 0. Attributes
 * stored from a reply to a request sent under epoch E, when no change was
 * seen meanwhile, stay valid past attr_timeout while the lease still
 * returns E and no change to the node or a sibling (a push naming the
 * directory's entry, our own change) was seen since. Set once, before
 * use; never called with the table's lock held. */
typedef uint64_t (*kbfs_lease_fn)(void *arg, uint64_t now_ns);
/* After our own change to a node, pushes about it are dropped as our own
 * (the server's marks and kbfs_notify's quiet table, 300 ms), so a change
 * someone else made in that moment may not be pushed: attributes fetched
 * within this long after it are not backed by the lease. */
#define KBFS_NODE_QUIET_NS 1000000000ull
void kbfs_nodes_set_lease(struct kbfs_nodes *t, kbfs_lease_fn fn, void *arg);
void kbfs_nodes_free(struct kbfs_nodes *t);

/* Node of a FUSE ino (valid while the kernel holds a lookup on it). */
struct kbfs_node *kbfs_node_of(struct kbfs_nodes *t, uint64_t ino);
/* Server node id of ino, or 0. */
uint64_t kbfs_node_remote(struct kbfs_nodes *t, uint64_t ino);

/* An entry the server returned under parent/name (counted one lookup on
 * the server): find or create its node, count one kernel lookup, store the
 * attributes. Returns the FUSE ino, or 0 on ENOMEM (the server lookup is
 * then forgotten). The attributes are current if nothing changed since
 * gen (read before the request; UINT64_MAX: not). */
uint64_t kbfs_node_enter(struct kbfs_nodes *t, uint64_t parent_ino, const char *name,
			 const kb_Entry *e, uint64_t attr_ttl_ns, uint64_t gen);
/* The kernel forgot n lookups. When a node's count reaches zero, *remote
 * and *count get what to FORGET on the server (0 otherwise). */
void kbfs_node_forget(struct kbfs_nodes *t, uint64_t ino, uint64_t n, uint64_t *remote,
		      uint64_t *count);
/* Store fresh attributes; returns true when the version changed. */
bool kbfs_node_set_attr(struct kbfs_nodes *t, uint64_t ino, const kb_Attr *a, uint64_t attr_ttl_ns,
			uint64_t *version);
/* Cached attributes not yet past attr_timeout: true and *a. */
bool kbfs_node_attr_unexpired(struct kbfs_nodes *t, uint64_t ino, kb_Attr *a);
/* Current attributes: the table counts a generation, moved on by every
 * change we know of (an attribute expired, our own change to a file,
 * every namespace change of ours: kbfs_nodes_outdate_attrs). Attributes stored
 * with the generation read before their request was sent
 * (kbfs_nodes_gen, kbfs_node_set_attr_gen) are current while it has not
 * moved and they are unexpired: then no change of ours or push can have come
 * between the server's answer and now, and a GETATTR may be answered from
 * them. Any change anywhere ends that for every node (conservative: a
 * sequential writer like git or rsync still finds its own file's). */
uint64_t kbfs_nodes_gen(struct kbfs_nodes *t);
void kbfs_nodes_outdate_attrs(struct kbfs_nodes *t);
bool kbfs_node_set_attr_gen(struct kbfs_nodes *t, uint64_t ino, const kb_Attr *a,
			    uint64_t attr_ttl_ns, uint64_t *version, uint64_t gen);
bool kbfs_node_attr_current(struct kbfs_nodes *t, uint64_t ino, kb_Attr *a);
/* A WRITE to ino is sent: its ticket (kbfs_node_write_done's seq, gen). */
struct kbfs_wr_ticket {
	uint64_t seq, gen;
	bool alone; /* no other WRITE of the node was in flight */
};
void kbfs_node_write_start(struct kbfs_nodes *t, uint64_t ino, struct kbfs_wr_ticket *tk);
/* ...and answered: as kbfs_node_own_change, and, when the reply carried the
 * attributes after it (a, else NULL), they are stored; current only if
 * this WRITE was the node's only one in flight from its sending to now
 * (so the server ran it apart from our other writes) and nothing else
 * changed meanwhile. */
void kbfs_node_write_done(struct kbfs_nodes *t, uint64_t ino, const struct kbfs_wr_ticket *tk,
			  const kb_Attr *a, uint64_t attr_ttl_ns);
/* At open: record that the kernel cache now holds `version`; returns true
 * when it already did (keep_cache). */
bool kbfs_node_open_version(struct kbfs_nodes *t, uint64_t ino, uint64_t version);
/* We changed the file (write, truncate, chmod...): its cached attributes
 * are stale, and the next version seen is adopted as the kernel cache's
 * (which already holds our change) instead of dropping that cache. */
void kbfs_node_own_change(struct kbfs_nodes *t, uint64_t ino);
/* We are about to change the name `name` in directory dir (server id):
 * the directory, and the node the name holds if we know it (its link
 * count), are changed by us (as kbfs_node_own_change). */
void kbfs_node_own_name_change(struct kbfs_nodes *t, uint64_t dir, const char *name);
/* A rename we made: the nodes follow their names (for re-resolution);
 * a replaced target loses its name. */
void kbfs_node_renamed(struct kbfs_nodes *t, uint64_t parent_ino, const char *name,
		       uint64_t newparent_ino, const char *newname, bool exchange);
/* The kernel (writeback cache: it owns mtime) flushed its mtime for a file
 * open for writing: WRITEs sent after it carry that mtime, so that the
 * server's own time of a later write does not replace the kernel's when
 * the kernel has nothing newer to flush (a write in the same clock tick
 * as a fallocate). Forgotten when the last writer closes. */
void kbfs_node_kernel_mtime_set(struct kbfs_nodes *t, uint64_t ino, int64_t sec, uint32_t nsec);
bool kbfs_node_kernel_mtime(struct kbfs_nodes *t, uint64_t ino, int64_t *sec, uint32_t *nsec);
/* Count an open for writing (+1) or its release (-1); returns the count. */
unsigned kbfs_node_writers(struct kbfs_nodes *t, uint64_t ino, int delta);
/* FUSE ino of a server node id, or 0 when no node has it (any more); with
 * a copy of its last attributes in *a unless a is NULL (under one lock). */
uint64_t kbfs_node_by_remote(struct kbfs_nodes *t, uint64_t remote, kb_Attr *a);
/* A LOOKUP answered from a listing (kbfs_list.h) for a node we have as
 * parent/name with a kernel lookup: its attributes if valid, else the
 * listing's entry e's (stored, current if nothing changed since gen) unless
 * a change of ours may be newer than the listing. Counts one kernel lookup
 * and, if `held` (the listing's server lookup is handed over), one server
 * lookup. Returns the ino with *a, or 0 (nothing counted). */
uint64_t kbfs_node_enter_listed(struct kbfs_nodes *t, uint64_t parent_ino, const char *name,
				const kb_Entry *e, bool held, uint64_t attr_ttl_ns, uint64_t gen,
				kb_Attr *a);
/* A listing's attributes may replace ino's (see kbfs_node_enter_listed). */
bool kbfs_node_listable(struct kbfs_nodes *t, uint64_t ino);
/* Changes others made to the children of directory ino (a push naming
 * one of its entries or a child): a listing of it taken before is stale.
 * Our own changes do not count: they expire the child's own attributes,
 * which a listing's answer defers to (kbfs_ops.c). */
uint64_t kbfs_node_kids_gen(struct kbfs_nodes *t, uint64_t ino);
/* ino is on a filesystem the server promises no pushes for (Entry.no_lease). */
bool kbfs_node_no_lease(struct kbfs_nodes *t, uint64_t ino);
/* The same by server id (0 for a node we do not have: one made later
 * starts at 0 too). */
uint64_t kbfs_node_kids_by_remote(struct kbfs_nodes *t, uint64_t remote);
/* A push named an entry of directory `dir`: its children's lease ends,
 * and the node that entry names, if we have it (the directory's watch
 * reports its files' changes: the server watches a file itself only when
 * it has other links) is expired as kbfs_node_expire_remote: its ino or 0. */
uint64_t kbfs_node_expire_child(struct kbfs_nodes *t, uint64_t dir, const char *name,
				bool *writing);
/* Number of live nodes (tests). */
unsigned kbfs_nodes_count(struct kbfs_nodes *t);

/* A new session (kbfs_session_cb, no calls): the root's new id; every
 * other node's id is from an old session until it is re-resolved, and goes
 * into an index by (parent, name), so that an entry the new session
 * returns under that name (a listing, a LOOKUP) re-uses the node when it
 * is the same file (inode number, type) instead of making a second inode
 * for it (an open file would keep the stale one). */
void kbfs_nodes_session(struct kbfs_nodes *t, uint64_t gen, uint64_t root_remote);

/* ino's server id is from an older session than the current one (it is
 * re-resolved at its first ESTALE: kbfs_call.c). */
bool kbfs_node_is_old(struct kbfs_nodes *t, uint64_t ino);

/* Where a node hangs, for re-resolution on a new session (kbfs_remap.c). */
struct kbfs_node_where {
	uint64_t remote; /* the node's current server id */
	uint64_t parent_ino, parent_remote;
	char name[256];
	kb_Attr attr; /* last attributes seen (ino, type) */
};
/* Fill w for ino; -ESTALE for the root or a forgotten/unnamed node (w->remote
 * and w->attr are still filled). */
int kbfs_node_where(struct kbfs_nodes *t, uint64_t ino, struct kbfs_node_where *w);
/* Point ino at new_remote if it still has old_remote and no other node has
 * new_remote: true when remapped (the server counted one lookup for it). */
bool kbfs_node_remap(struct kbfs_nodes *t, uint64_t ino, uint64_t old_remote, uint64_t new_remote);

/* The same by server id, found and expired under one lock (a node found
 * by kbfs_node_by_remote may be forgotten and freed before it is used):
 * returns its FUSE ino, or 0. *writing: we have it open for writing. */
uint64_t kbfs_node_expire_remote(struct kbfs_nodes *t, uint64_t remote, bool *writing);
/* Changed on the server (NOTIFY): the cached attributes are stale. */
void kbfs_node_expire(struct kbfs_nodes *t, uint64_t ino);

/* ---- write-behind (kbfs_wb.c) ----
 * A node is "in the stream" (wb) once a change the mount answered itself
 * named it: every later request naming it goes through the stream too
 * (kbfs_node_wb_remote is the rpc's route), so none overtakes those
 * changes. While the write-behind epoch has not moved (a recall, a new
 * session, a lease lapse move it), its attributes are the mount's own:
 * kept by its changes, answered without asking. */
bool kbfs_node_wb_remote(struct kbfs_nodes *t, uint64_t remote);
/* The same for the node ino. */
bool kbfs_node_wb(struct kbfs_nodes *t, uint64_t ino);
/* After a change of ours, a node's attributes stay ours this long (a push
 * about it from someone else ends that sooner). */
#define KBFS_WB_OURS_NS (10ull * 1000000000ull)
/* Mark ino in the stream; dlease: a directory whose lease we hold. */
void kbfs_node_wb_set(struct kbfs_nodes *t, uint64_t ino, bool dlease);
/* true when ino is a directory we hold the lease on (*remote: its id). */
bool kbfs_node_wb_dlease(struct kbfs_nodes *t, uint64_t ino, uint64_t *remote);
/* The lease on directory `remote` ends (a recall): true when we held it. */
bool kbfs_node_wb_dlease_end(struct kbfs_nodes *t, uint64_t remote);
/* A push about node remote (not our own change): its attributes are not
 * ours to keep any more. */
void kbfs_node_wb_pushed(struct kbfs_nodes *t, uint64_t remote);
/* A stream request for ino queued / answered (by remote id: the node may
 * be forgotten by then). The first error sticks (kbfs_node_wb_error); a
 * reply's attributes are kept when it was the node's last one pending. */
void kbfs_node_wb_begin(struct kbfs_nodes *t, uint64_t ino);
void kbfs_node_wb_begin_remote(struct kbfs_nodes *t, uint64_t remote);
void kbfs_node_wb_end(struct kbfs_nodes *t, uint64_t remote, int status, const kb_Attr *a,
		      uint64_t attr_ttl_ns);
/* ino's attributes when they are the mount's own (see above): true, *a. */
bool kbfs_node_wb_attr(struct kbfs_nodes *t, uint64_t ino, kb_Attr *a);
/* Change them (a change answered here), as the kernel will see them. */
void kbfs_node_wb_attr_set(struct kbfs_nodes *t, uint64_t ino, const kb_Attr *a,
			   uint64_t attr_ttl_ns);
/* The first error a stream request for ino got (0: none). */
int kbfs_node_wb_error(struct kbfs_nodes *t, uint64_t ino);
/* A queued change of node remote itself (its CREATE, a SETATTR, a WRITE)
 * failed with status: until the node is entered again from a lookup or a
 * listing, kbfs_node_wb_failed gives that error. */
void kbfs_node_wb_fail(struct kbfs_nodes *t, uint64_t remote, int status);
int kbfs_node_wb_failed(struct kbfs_nodes *t, uint64_t ino);
/* Keep ino's node (+1) while something outlives the kernel's use of it
 * (a file closed with its writes still queued), or let it go (-1). */
void kbfs_node_hold(struct kbfs_nodes *t, uint64_t ino, int delta);
/* The name of node `remote` was removed here (write-behind): it is in the
 * stream now (its time flushes go behind the UNLINK), one link fewer. */
void kbfs_node_wb_unlinked(struct kbfs_nodes *t, uint64_t remote, bool dir);
/* The st_ino to show for the server's ino (its fake one, if it has). */
uint64_t kbfs_nodes_shown_ino(struct kbfs_nodes *t, uint64_t ino);
/* One more kernel lookup of the live node with server id remote (a name
 * of a leased directory answered here): its ino and attributes, or 0. */
uint64_t kbfs_node_ref_remote(struct kbfs_nodes *t, uint64_t remote, kb_Attr *a);
/* Every lease and every attribute of our own ends (new session, lapse). */
void kbfs_nodes_wb_lapse(struct kbfs_nodes *t);

#endif
