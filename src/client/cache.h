/* cache.h - the client's block cache: an LRU of file blocks, no FUSE in it.
 *
 * A block is named by (node, version, index, shift): it covers the bytes
 * [index << shift, (index + 1) << shift) of version `version` of file
 * `node`. Full blocks use the mount's block shift; random reads use smaller
 * sub-blocks (e.g. 64 KiB) under a different shift, so both can coexist.
 *
 * A block IS the kb_buf its reply frame was received and decrypted into:
 * the cache keeps a reference on that buffer, and every hit hands out one
 * more reference (struct kb_cache_ref). Eviction only drops the cache's
 * reference, so a block being replied from stays alive until the reply is
 * done. Capacity is counted in bytes of buffer memory actually held.
 *
 * Protocol (as squashfuse's get / fill / put):
 *   kb_cache_get()      HIT: a reference to the data, caller kb_buf_put()s it;
 *                       WAIT: somebody is already pulling it (the waiter, if
 *                       given, is called once when that pull ends);
 *                       FILL: caller must pull it, then kb_cache_complete()
 *                       exactly once (the waiter, if given, is registered
 *                       like any other); MISS: absent and not created.
 *   kb_cache_complete() publishes the data (or drops the entry on error) and
 *                       calls every waiter with the status, outside the lock;
 *                       on success each waiter is handed its own reference
 *                       in w->ref (it must kb_buf_put it), so no waiter has
 *                       to look the block up again (it may be evicted by
 *                       then) and none ever pulls from the completing thread.
 * Entries are preallocated at kb_cache_new(): no malloc per block.
 *
 * Thread-safe (one mutex). Waiter callbacks run on the completing thread
 * with no cache lock held, so they may call back into the cache.
 */
#ifndef KB_CACHE_H
#define KB_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

struct kb_cache;       /* opaque */
struct kb_cache_entry; /* opaque: a pending fill handle */

struct kb_cache_key {
	uint64_t node;    /* client-side node number (stable across reconnects) */
	uint64_t version; /* file version (size + mtime + ctime hash) */
	uint64_t index;   /* block index in units of 1 << shift */
	uint32_t shift;   /* log2 of the block span */
};

/* A hit: one reference on buf, owned by the holder (kb_buf_put when done). */
struct kb_cache_ref {
	struct kb_buf *buf;
	const uint8_t *data; /* points into buf */
	size_t len;          /* bytes of the block present (short at EOF) */
};

/* Embedded in the caller's request; linked into a pending entry. */
struct kb_cache_waiter {
	void (*fn)(struct kb_cache_waiter *w, int status);
	struct kb_cache_ref ref;      /* status 0: the waiter's own reference */
	struct kb_cache_waiter *next; /* cache-private link */
};

enum kb_cache_result {
	KB_CACHE_HIT = 1,
	KB_CACHE_WAIT,
	KB_CACHE_FILL,
	KB_CACHE_MISS,
};

#define KB_CACHE_CREATE 1u /* become the filler when the block is absent */
#define KB_CACHE_PROBE 2u  /* a prefetch: not counted as a hit or a miss */

struct kb_cache_stats {
	uint64_t hits, misses, fills, waits, evictions, invalidations;
	size_t bytes, capacity;
	unsigned entries, pending;
};

/* A cache holding at most `capacity` bytes of buffers, with entries
 * preallocated for blocks down to `min_block` bytes. */
int kb_cache_new(struct kb_cache **out, size_t capacity, size_t min_block);
/* Drops every reference the cache holds. Pending fills must be completed
 * first. NULL-safe. */
void kb_cache_free(struct kb_cache *c);

/* Look a block up; see the protocol above. `ref` is filled on HIT, `fill`
 * on FILL. Returns a kb_cache_result, or -ENOBUFS when the block is absent
 * and every entry is busy with a pending fill (pull it uncached). */
int kb_cache_get(struct kb_cache *c, const struct kb_cache_key *k, unsigned flags,
		 struct kb_cache_waiter *w, struct kb_cache_ref *ref, struct kb_cache_entry **fill);

/* End a fill. status 0: the block is `len` bytes at `data` inside `buf`
 * (the cache takes its own reference; the caller keeps its own). status < 0:
 * the entry is dropped. Waiters are called with status either way. */
void kb_cache_complete(struct kb_cache_entry *e, int status, struct kb_buf *buf,
		       const uint8_t *data, size_t len);

/* Drop the blocks of `node` whose version differs from keep_version (every
 * block of the node when keep_version is 0). Pending fills are detached:
 * they complete normally but are not published. Returns blocks dropped. */
unsigned kb_cache_invalidate(struct kb_cache *c, uint64_t node, uint64_t keep_version);

void kb_cache_stats(struct kb_cache *c, struct kb_cache_stats *st);

#endif
