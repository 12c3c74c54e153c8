/* util.h - small shared helpers: wiping secrets, hex/base64, full I/O. */
#ifndef KB_UTIL_H
#define KB_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define KB_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define KB_MIN(a, b) ((a) < (b) ? (a) : (b))
#define KB_MAX(a, b) ((a) > (b) ? (a) : (b))

/* Zero memory in a way the compiler may not elide (secrets). */
void kb_memzero(void *p, size_t n);

/* Constant-time comparison: 0 when equal. */
int kb_memcmp_ct(const void *a, const void *b, size_t n);

static inline void kb_put_be32(uint8_t *p, uint32_t v)
{
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
}

static inline uint32_t kb_get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline void kb_put_be64(uint8_t *p, uint64_t v)
{
	kb_put_be32(p, v >> 32);
	kb_put_be32(p + 4, (uint32_t)v);
}

/* Hex decode: returns bytes written or -EINVAL. out must hold strlen(hex)/2. */
ssize_t kb_hex_decode(uint8_t *out, size_t cap, const char *hex);
/* Hex encode into out (2*n+1 bytes). */
void kb_hex_encode(char *out, const uint8_t *in, size_t n);

/* Standard base64; `pad` selects '=' padding. out needs 4*((n+2)/3)+1. */
void kb_b64_encode(char *out, const uint8_t *in, size_t n, int pad);
/* Decodes padded or unpadded base64 of at most KB_B64_MAX_IN characters
 * (no whitespace); returns bytes or -EINVAL. */
#define KB_B64_MAX_IN 256
ssize_t kb_b64_decode(uint8_t *out, size_t cap, const char *in, size_t len);

/* Loop until n bytes are done. Return 0, -errno, or -KB_ECLOSED/-KB_ETRUNC
 * when the peer closes before the first / a later byte. EINTR is retried. */
int kb_read_full(int fd, void *buf, size_t n);
int kb_write_full(int fd, const void *buf, size_t n);

/* Monotonic clock in nanoseconds. */
uint64_t kb_now_ns(void);

/* FNV-1a of a 64-bit key (little-endian bytes) then a NUL-terminated
 * string, mixed: for hash tables, not for anything an attacker may choose to
 * collide at a cost to others (a collision costs only a cache entry). */
uint64_t kb_hash_key_name(uint64_t key, const char *name);

#endif
