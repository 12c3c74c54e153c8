/* buf.h - reference-counted byte buffers and a free-list pool.
 *
 * A kb_buf is the unit of ownership for frame data: a frame is received and
 * decrypted into one, the block cache keeps it, and a FUSE reply is made from
 * it. Whoever holds a reference may read it; the last kb_buf_put() returns it
 * to its pool's free list (or frees it), so steady state does no malloc.
 */
#ifndef KB_BUF_H
#define KB_BUF_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

struct kb_bufpool;

struct kb_buf {
	atomic_int ref;
	struct kb_bufpool *pool; /* NULL when allocated alone */
	struct kb_buf *next;     /* free-list link, only while in the pool */
	size_t cap;              /* usable bytes in mem[] */
	size_t len;              /* bytes in use; meaning is the holder's */
	size_t off;              /* holder-defined offset of the payload */
	uint8_t mem[] __attribute__((aligned(64)));
};

/* Buffers of 256 KiB and more are carved from 2 MiB-aligned MADV_HUGEPAGE
 * arenas and kept (all of them) until the pool goes: for the client, whose
 * block cache holds its receive buffers anyway. Without it they come from
 * malloc and only `keep` free ones are kept (the server: memory goes back
 * after a burst). */
#define KB_BUFPOOL_ARENA 1u
/* A pool of buffers of capacity `cap`, keeping at most `keep` free ones. */
int kb_bufpool_new(struct kb_bufpool **out, size_t cap, unsigned keep, unsigned flags);
/* Drops the owner's reference; the pool lives on until its last buffer is
 * put. NULL-safe. */
void kb_bufpool_free(struct kb_bufpool *p);
/* Capacity of the pool's buffers. */
size_t kb_bufpool_cap(const struct kb_bufpool *p);
/* Number of buffers ever malloc'd by the pool (for allocation accounting). */
unsigned long kb_bufpool_allocs(const struct kb_bufpool *p);

/* A buffer with ref 1, from the free list or freshly malloc'd; NULL on ENOMEM. */
struct kb_buf *kb_buf_get(struct kb_bufpool *p);
/* A stand-alone buffer of `cap` bytes with ref 1; NULL on ENOMEM. */
struct kb_buf *kb_buf_alloc(size_t cap);

static inline struct kb_buf *kb_buf_ref(struct kb_buf *b)
{
	atomic_fetch_add_explicit(&b->ref, 1, memory_order_relaxed);
	return b;
}

/* Drop a reference; NULL-safe. */
void kb_buf_put(struct kb_buf *b);

#endif
