/* compress.h - zstd on a message's bulk bytes (PROTOCOL.md section 3).
 *
 * Only when both sides offered KB_CAP_ZSTD in the handshake. A message whose
 * bulk is compressed sets the top bit of its u32 header length H:
 *
 *   [u32 BE H | 0x80000000][H bytes of protobuf header][u32 BE raw][zstd]
 *
 * where `raw` is the bulk's length once decompressed. The header itself is
 * never compressed. The receiver inflates the message into a buffer of its
 * own before anything else reads it: [u32 BE H][header][raw bulk bytes].
 * Bounds: `raw` must fit the receiver's largest message (it never sizes
 * anything from it beyond that), and the zstd data must produce exactly
 * `raw` bytes; anything else is -KB_EPROTO.
 *
 * Threads: every function may be called from any thread; each thread keeps
 * its own zstd contexts (made on first use, freed when the thread exits).
 */
#ifndef KB_COMPRESS_H
#define KB_COMPRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define KB_CAP_ZSTD (1ull << 0) /* handshake capability bit */
#define KB_Z_FLAG 0x80000000u   /* in H: the bulk is [u32 raw][zstd] */
#define KB_Z_PREFIX 4           /* the u32 raw length before the zstd data */
#define KB_Z_MIN 4096           /* smaller bulks are never compressed */
/* compress=auto compresses while the connection's measured delivery rate
 * is below this (bytes/s): 64 MB/s, a fraction of what zstd level 1
 * compresses per core (300-600 MB/s on text), so the link stays the
 * bottleneck; loopback and LAN links run at GB/s and are left alone. */
#define KB_Z_AUTO_BPS (64ull << 20)

enum kb_z_mode {
	KB_Z_OFF = 0,
	KB_Z_AUTO = 1,
	KB_Z_ON = 2
};

/* The message plaintext pt[0..len) has a compressed bulk. */
bool kb_z_flagged(const uint8_t *pt, size_t len);
/* Length of pt once inflated, checked against max (the largest message we
 * accept): 0 or -KB_EPROTO. */
int kb_z_inflated_len(const uint8_t *pt, size_t len, size_t max, size_t *out);
/* Inflate pt into out[0..cap): header copied with the flag cleared, bulk
 * decompressed. cap must be at least kb_z_inflated_len's answer. Returns
 * the inflated length or -KB_EPROTO (corrupt data, wrong length). */
ssize_t kb_z_inflate(uint8_t *out, size_t cap, const uint8_t *pt, size_t len);

/* Compress src[0..n) as a bulk into dst ([u32 raw][zstd]), dst having cap
 * bytes. Returns the bytes written, or 0 when it is not worth it: n below
 * KB_Z_MIN, a sample of the data does not compress (media, archives,
 * random), or the result would not save at least 1/32. Negative on an
 * internal error (treat as 0). */
ssize_t kb_z_deflate(uint8_t *dst, size_t cap, const uint8_t *src, size_t n);
/* Room dst needs for kb_z_deflate of n bytes (never more than n anyway:
 * a result that large is refused). */
#define KB_Z_DST_CAP(n) ((n) + KB_Z_PREFIX)

/* This thread's scratch buffer of at least cap bytes (grown as needed,
 * freed with the thread); NULL on ENOMEM. Valid until its next call. */
uint8_t *kb_z_scratch(size_t cap);

/* Set the flag in an encoded header ([u32 H][...]). */
void kb_z_mark(uint8_t *hdr);

/* compress=auto's measure of one connection's link (the caller's, all
 * zero at first; any thread). */
struct kb_z_link {
	_Atomic bool slow;      /* the decision */
	_Atomic bool known;     /* a whole window was measured */
	_Atomic bool sampling;  /* one thread samples at a time */
	_Atomic uint64_t at_ns; /* window start: written by the sampling
				      * thread, read by any */
	uint64_t acked;         /* at window start (the sampling thread) */
};
/* compress=auto's decision for a connection on fd, from the kernel's
 * TCP_INFO, the first time a bulk is to be sent and then every 100 ms at
 * most: the bytes the peer acknowledged over that window (an average, not
 * a burst) while data was still waiting in our send queue (so the link,
 * not we, set the pace). Below KB_Z_AUTO_BPS: slow; at or above it: fast,
 * also when the queue was empty; below it with an empty queue (we sent
 * little: a trickle says nothing about the link): unchanged. Until the
 * first window is over (a deep pipeline sends many blocks before that),
 * slow while more than 1 MiB waits unsent in our send queue right now.
 * True when fd is not TCP (a proxy_command: nothing to measure, and such
 * links are slow). */
bool kb_z_link_slow(int fd, struct kb_z_link *l);

/* Counters for the bench and --status: bulk bytes in and out of zstd on
 * this process, and blocks a probe found incompressible. */
struct kb_z_stats {
	uint64_t deflated_in, deflated_out, inflated_in, inflated_out, skipped;
};
void kb_z_stats(struct kb_z_stats *st);

#endif
