/* fuzz_handshake.c - arbitrary bytes as the peer's handshake messages (and
 * then transport messages) for an XX / XXpsk3 initiator or responder.
 *
 * Input: byte 0 = flags (bit 0: we are the responder, bit 1: XXpsk3,
 * bit 2: mbedTLS backend), then chunks [2-byte BE length][bytes], each used
 * as the next message from the peer. Our side writes whenever it is its
 * turn. Keys and ephemerals are fixed so runs are reproducible. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "noise.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t s_key[32] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
static const uint8_t e_key[32] = {42, 43, 44, 45, 46, 47, 48, 49, 50};
static const uint8_t psk[32] = {7, 7, 7, 7};

/* Next chunk, or 0 when the input is used up. */
static int next_chunk(const uint8_t **p, size_t *left, const uint8_t **chunk, size_t *len)
{
	size_t n;

	if (*left < 2)
		return 0;
	n = (size_t)(*p)[0] << 8 | (*p)[1];
	*p += 2;
	*left -= 2;
	if (n > *left)
		n = *left;
	*chunk = *p;
	*len = n;
	*p += n;
	*left -= n;
	return 1;
}

static void transport(struct kb_noise_hs *hs, const uint8_t *p, size_t left)
{
	static uint8_t out[KB_NOISE_MAX_MSG];
	struct kb_noise_cs send, recv;
	const uint8_t *chunk;
	size_t len;

	if (kb_noise_hs_split(hs, &send, &recv))
		return;
	while (next_chunk(&p, &left, &chunk, &len))
		if (kb_noise_cs_decrypt(&recv, NULL, 0, chunk, len, out) == 0 && len >= 16)
			kb_noise_cs_encrypt(&send, NULL, 0, out, len - 16, out);
	kb_noise_cs_destroy(&send);
	kb_noise_cs_destroy(&recv);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t msg[KB_NOISE_MAX_MSG], pl[KB_NOISE_MAX_MSG];
	struct kb_noise_hs_cfg cfg = {.s = s_key, .e = e_key};
	struct kb_noise_hs *hs = NULL;
	const uint8_t *p = data + 1, *chunk;
	size_t left, len, n;

	if (size < 1)
		return 0;
	left = size - 1;
	cfg.initiator = !(data[0] & 1);
	cfg.protocol = data[0] & 2 ? "Noise_XXpsk3_25519_AESGCM_SHA256"
				   : "Noise_XX_25519_AESGCM_SHA256";
	cfg.psk = data[0] & 2 ? psk : NULL;
	cfg.backend = data[0] & 4 ? KB_AEAD_MBEDTLS : KB_AEAD_DEFAULT;
	if (kb_noise_hs_new(&hs, &cfg))
		return 0;
	while (!kb_noise_hs_done(hs)) {
		if (kb_noise_hs_my_turn(hs)) {
			if (kb_noise_hs_write(hs, (const uint8_t *)"hi", 2, msg, sizeof(msg), &n))
				break;
			continue;
		}
		if (!next_chunk(&p, &left, &chunk, &len) ||
		    kb_noise_hs_read(hs, chunk, len, pl, sizeof(pl), &n))
			break;
	}
	if (kb_noise_hs_done(hs))
		transport(hs, p, left);
	kb_noise_hs_free(hs);
	return 0;
}
