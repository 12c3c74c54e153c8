/* compress.c - zstd on bulk bytes: flag, bounds, per-thread contexts,
 * the incompressible-data probe and compress=auto's link measure. */
#include <errno.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <zstd.h>

#include "compress.h"
#include "err.h"
#include "util.h"

#define Z_LEVEL 1                /* fastest standard level: 300-600 MB/s */
#define Z_SAMPLE (8u << 10)      /* probe: two samples of this size */
#define Z_SAMPLE_MIN (64u << 10) /* bulks from this size are probed */
#define Z_RATE_EVERY_NS (100ull * 1000000u)
#define Z_BACKLOG (1u << 20) /* unsent bytes that say "the link is behind" */

/* Per thread: made on first use, freed by the key's destructor. */
struct zctx {
	ZSTD_CCtx *c;
	ZSTD_DCtx *d;
	uint8_t *scratch; /* kb_z_scratch */
	size_t scratch_cap;
	uint8_t sample[ZSTD_COMPRESSBOUND(Z_SAMPLE)];
};

static pthread_key_t zkey;
static pthread_once_t zonce = PTHREAD_ONCE_INIT;
static _Atomic uint64_t st_din, st_dout, st_iin, st_iout, st_skip;

static void zctx_free(void *p)
{
	struct zctx *z = p;

	ZSTD_freeCCtx(z->c);
	ZSTD_freeDCtx(z->d);
	free(z->scratch);
	free(z);
}

static void zkey_make(void)
{
	(void)pthread_key_create(&zkey, zctx_free);
}

static struct zctx *zctx(void)
{
	struct zctx *z;

	pthread_once(&zonce, zkey_make);
	z = pthread_getspecific(zkey);
	if (z)
		return z;
	z = calloc(1, sizeof(*z));
	if (!z)
		return NULL;
	if (pthread_setspecific(zkey, z)) {
		free(z);
		return NULL;
	}
	return z;
}

uint8_t *kb_z_scratch(size_t cap)
{
	struct zctx *z = zctx();
	uint8_t *p;

	if (!z)
		return NULL;
	if (z->scratch_cap >= cap)
		return z->scratch;
	p = malloc(cap);
	if (!p)
		return NULL;
	free(z->scratch);
	z->scratch = p;
	z->scratch_cap = cap;
	return p;
}

/* Level 1, with zstd's content checksum: data that decompresses but is not
 * what was compressed (a sender's bug, or its memory) is caught. */
static ZSTD_CCtx *cctx_new(void)
{
	ZSTD_CCtx *c = ZSTD_createCCtx();

	if (c && (ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, Z_LEVEL)) ||
		  ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 1)))) {
		ZSTD_freeCCtx(c);
		c = NULL;
	}
	return c;
}

/* One zstd frame with a content checksum and a content size equal to raw;
 * anything else is not ours. */
static bool frame_ok(const uint8_t *zd, size_t zlen, size_t raw)
{
	/* RFC 8878: magic 0xFD2FB528 (LE), then the frame header descriptor,
	 * whose bit 2 is the content checksum flag */
	return zlen > 5 && zd[0] == 0x28 && zd[1] == 0xb5 && zd[2] == 0x2f && zd[3] == 0xfd &&
	       (zd[4] & 4) && ZSTD_getFrameContentSize(zd, zlen) == raw &&
	       ZSTD_findFrameCompressedSize(zd, zlen) == zlen;
}

bool kb_z_flagged(const uint8_t *pt, size_t len)
{
	return len >= 4 && (kb_get_be32(pt) & KB_Z_FLAG);
}

void kb_z_mark(uint8_t *hdr)
{
	hdr[0] |= 0x80;
}

int kb_z_inflated_len(const uint8_t *pt, size_t len, size_t max, size_t *out)
{
	size_t h, raw;

	if (len < 4)
		return -KB_EPROTO;
	h = kb_get_be32(pt) & ~KB_Z_FLAG;
	if (h > len - 4 || len - 4 - h < KB_Z_PREFIX)
		return -KB_EPROTO;
	raw = kb_get_be32(pt + 4 + h);
	if (4 + h > max || raw > max - 4 - h)
		return -KB_EPROTO;
	*out = 4 + h + raw;
	return 0;
}

ssize_t kb_z_inflate(uint8_t *out, size_t cap, const uint8_t *pt, size_t len)
{
	struct zctx *z = zctx();
	size_t need, h, raw, got;
	const uint8_t *zd;

	if (kb_z_inflated_len(pt, len, cap, &need))
		return -KB_EPROTO;
	if (!z || (!z->d && !(z->d = ZSTD_createDCtx())))
		return -ENOMEM;
	h = kb_get_be32(pt) & ~KB_Z_FLAG;
	raw = need - 4 - h;
	zd = pt + 4 + h + KB_Z_PREFIX;
	if (!frame_ok(zd, len - 4 - h - KB_Z_PREFIX, raw))
		return -KB_EPROTO;
	got = ZSTD_decompressDCtx(z->d, out + 4 + h, raw, zd, len - 4 - h - KB_Z_PREFIX);
	if (ZSTD_isError(got) || got != raw)
		return -KB_EPROTO;
	kb_put_be32(out, (uint32_t)h);
	memcpy(out + 4, pt + 4, h);
	atomic_fetch_add_explicit(&st_iin, len - 4 - h, memory_order_relaxed);
	atomic_fetch_add_explicit(&st_iout, raw, memory_order_relaxed);
	return (ssize_t)need;
}

/* Does a sample at p compress to less than 7/8 of itself? */
static bool sample_compresses(struct zctx *z, const uint8_t *p)
{
	size_t n = ZSTD_compress2(z->c, z->sample, sizeof(z->sample), p, Z_SAMPLE);

	return !ZSTD_isError(n) && n < Z_SAMPLE - Z_SAMPLE / 8;
}

ssize_t kb_z_deflate(uint8_t *dst, size_t cap, const uint8_t *src, size_t n)
{
	struct zctx *z;
	size_t room, got;

	if (n < KB_Z_MIN || cap < KB_Z_PREFIX + 64 || n > UINT32_MAX)
		return 0;
	z = zctx();
	if (!z || (!z->c && !(z->c = cctx_new())))
		return -ENOMEM;
	/* Media, archives and random data: two samples say so for the price
	 * of 16 KiB of work, instead of compressing a whole block for nothing. */
	if (n >= Z_SAMPLE_MIN && !sample_compresses(z, src) &&
	    !sample_compresses(z, src + (n / 2 & ~(size_t)4095))) {
		atomic_fetch_add_explicit(&st_skip, 1, memory_order_relaxed);
		return 0;
	}
	room = KB_MIN(cap - KB_Z_PREFIX, n - n / 32);
	got = ZSTD_compress2(z->c, dst + KB_Z_PREFIX, room, src, n);
	if (ZSTD_isError(got)) { /* mostly "no room": it did not save 1/32 */
		atomic_fetch_add_explicit(&st_skip, 1, memory_order_relaxed);
		return 0;
	}
	kb_put_be32(dst, (uint32_t)n);
	atomic_fetch_add_explicit(&st_din, n, memory_order_relaxed);
	atomic_fetch_add_explicit(&st_dout, got, memory_order_relaxed);
	return (ssize_t)(KB_Z_PREFIX + got);
}

static void link_sample(int fd, struct kb_z_link *l)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);
	uint64_t now = kb_now_ns(), rate;

	memset(&ti, 0, sizeof(ti));
	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0) {
		if (errno == EOPNOTSUPP || errno == ENOPROTOOPT)
			atomic_store(&l->slow, true); /* not TCP: a proxy_command */
		return;
	}
	if (len < offsetof(struct tcp_info, tcpi_notsent_bytes) + 4)
		return;                                    /* a kernel too old to tell */
	if (!l->at_ns || ti.tcpi_bytes_acked < l->acked) { /* first, or a new socket */
		l->at_ns = now;
		l->acked = ti.tcpi_bytes_acked;
	} else if (now - l->at_ns >= Z_RATE_EVERY_NS) {
		rate = (ti.tcpi_bytes_acked - l->acked) * 1000000000ull / (now - l->at_ns);
		if (rate >= KB_Z_AUTO_BPS)
			atomic_store(&l->slow, false);
		else if (ti.tcpi_notsent_bytes)
			atomic_store(&l->slow, true);
		atomic_store(&l->known, true);
		l->at_ns = now;
		l->acked = ti.tcpi_bytes_acked;
		return;
	}
	if (!atomic_load(&l->known))
		atomic_store(&l->slow, ti.tcpi_notsent_bytes > Z_BACKLOG);
}

bool kb_z_link_slow(int fd, struct kb_z_link *l)
{
	bool idle = false;

	if ((!atomic_load(&l->known) || kb_now_ns() - l->at_ns >= Z_RATE_EVERY_NS) &&
	    atomic_compare_exchange_strong(&l->sampling, &idle, true)) {
		link_sample(fd, l);
		atomic_store(&l->sampling, false);
	}
	return atomic_load(&l->slow);
}

void kb_z_stats(struct kb_z_stats *st)
{
	st->deflated_in = atomic_load(&st_din);
	st->deflated_out = atomic_load(&st_dout);
	st->inflated_in = atomic_load(&st_iin);
	st->inflated_out = atomic_load(&st_iout);
	st->skipped = atomic_load(&st_skip);
}
