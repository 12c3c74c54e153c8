/* util.c - small shared helpers. */
#include <errno.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mbedtls/base64.h>

#include "err.h"
#include "util.h"

void kb_memzero(void *p, size_t n)
{
	explicit_bzero(p, n);
}

int kb_memcmp_ct(const void *a, const void *b, size_t n)
{
	const volatile uint8_t *x = a, *y = b;
	uint8_t d = 0;

	for (size_t i = 0; i < n; i++)
		d |= x[i] ^ y[i];
	return d;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

ssize_t kb_hex_decode(uint8_t *out, size_t cap, const char *hex)
{
	size_t len = strlen(hex);

	if (len % 2 || len / 2 > cap)
		return -EINVAL;
	for (size_t i = 0; i < len / 2; i++) {
		int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -EINVAL;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return (ssize_t)(len / 2);
}

void kb_hex_encode(char *out, const uint8_t *in, size_t n)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * n] = '\0';
}

/* Base64 through mbedTLS, whose decoder's table lookups do not depend on
 * the (secret) input: private keys and PSKs go through here. */
void kb_b64_encode(char *out, const uint8_t *in, size_t n, int pad)
{
	size_t cap = 4 * ((n + 2) / 3) + 1, olen = 0;

	out[0] = '\0'; /* mbedTLS writes nothing for empty input */
	if (mbedtls_base64_encode((unsigned char *)out, cap, &olen, in, n)) {
		out[0] = '\0';
		return;
	}
	while (!pad && olen > 0 && out[olen - 1] == '=')
		out[--olen] = '\0';
}

ssize_t kb_b64_decode(uint8_t *out, size_t cap, const char *in, size_t len)
{
	unsigned char padded[KB_B64_MAX_IN + 3]; /* may hold a secret: wiped */
	size_t olen = 0;
	ssize_t ret = -EINVAL;

	if (len > KB_B64_MAX_IN || memchr(in, '\0', len) || memchr(in, ' ', len) ||
	    memchr(in, '\n', len) || memchr(in, '\r', len))
		return -EINVAL;
	memcpy(padded, in, len);
	while (len % 4)
		padded[len++] = '=';
	if (mbedtls_base64_decode(out, cap, &olen, padded, len) == 0)
		ret = (ssize_t)olen;
	kb_memzero(padded, sizeof(padded));
	return ret;
}

int kb_read_full(int fd, void *buf, size_t n)
{
	size_t done = 0;

	while (done < n) {
		ssize_t r = read(fd, (char *)buf + done, n - done);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return done ? -KB_ETRUNC : -KB_ECLOSED;
		done += (size_t)r;
	}
	return 0;
}

int kb_write_full(int fd, const void *buf, size_t n)
{
	size_t done = 0;

	while (done < n) {
		ssize_t r = write(fd, (const char *)buf + done, n - done);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		done += (size_t)r;
	}
	return 0;
}

uint64_t kb_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t kb_hash_key_name(uint64_t key, const char *name)
{
	uint64_t h = 1469598103934665603ull;

	for (int i = 0; i < 8; i++)
		h = (h ^ ((key >> (8 * i)) & 0xff)) * 1099511628211ull;
	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		h = (h ^ *p) * 1099511628211ull;
	/* FNV's low bits follow the last bytes closely: mix (fmix64) */
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ull;
	return h ^ (h >> 33);
}
