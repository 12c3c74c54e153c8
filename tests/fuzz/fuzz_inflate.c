/* fuzz_inflate.c - the receiving side of compressed bulks (compress.h)
 * against arbitrary messages, and the round trip of arbitrary data.
 *
 * First byte even: the rest is a message plaintext as a peer could send it.
 * Oracles (abort on violation):
 *  - kb_z_inflated_len never answers more than the bound it was given;
 *  - kb_z_inflate into a buffer of exactly that size (ASan: no byte past
 *    it is touched) returns either -KB_EPROTO or exactly that size, and
 *    then the header is the message's own with the flag cleared.
 * First byte odd: the rest is file data; deflated and inflated again it
 * must come back byte for byte (or not be deflated at all).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "compress.h"
#include "err.h"
#include "util.h"

#define MAXMSG ((1u << 20) + 512u) /* what a client with 1 MiB blocks accepts */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_inflate(const uint8_t *pt, size_t len)
{
	size_t need = 0, h;
	uint8_t *out;
	ssize_t n;

	if (kb_z_inflated_len(pt, len, MAXMSG, &need))
		return;
	if (need > MAXMSG)
		abort();
	out = malloc(need ? need : 1);
	if (!out)
		return;
	n = kb_z_inflate(out, need, pt, len);
	if (n != -KB_EPROTO && n != (ssize_t)need)
		abort();
	if (n > 0) {
		h = kb_get_be32(pt) & ~KB_Z_FLAG;
		if (kb_get_be32(out) != h || memcmp(out + 4, pt + 4, h))
			abort();
	}
	free(out);
}

static void check_round_trip(const uint8_t *d, size_t n)
{
	size_t cap = KB_Z_DST_CAP(n) + 16, need;
	uint8_t *z = malloc(cap + 4), *back;
	ssize_t zn, got;

	if (!z)
		return;
	z[0] = 0x80; /* [H = 0 | flag][no header][bulk] */
	z[1] = z[2] = z[3] = 0;
	zn = kb_z_deflate(z + 4, cap, d, n);
	if (zn < 0)
		abort();
	if (zn > 0) {
		if (kb_z_inflated_len(z, 4 + (size_t)zn, MAXMSG, &need) || need != 4 + n)
			abort();
		back = malloc(need);
		if (back) {
			got = kb_z_inflate(back, need, z, 4 + (size_t)zn);
			if (got != (ssize_t)need || memcmp(back + 4, d, n))
				abort();
			free(back);
		}
	}
	free(z);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	if (data[0] & 1)
		check_round_trip(data + 1, KB_MIN(size - 1, (size_t)MAXMSG - 4));
	else
		check_inflate(data + 1, size - 1);
	return 0;
}
