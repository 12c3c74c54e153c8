/* noise_int.h - primitives shared by noise.c and its helpers: SHA-256,
 * HKDF (HMAC-SHA256), X25519 DH and CipherState key setting. Internal to the
 * Noise module; not an interface for other modules. */
#ifndef KB_NOISE_INT_H
#define KB_NOISE_INT_H

#include <stddef.h>
#include <stdint.h>

#include "noise.h"

/* out = SHA-256(a || b); b may be NULL with blen 0. */
int kb_noise_sha256(uint8_t out[static 32], const uint8_t *a, size_t alen, const uint8_t *b,
		    size_t blen);
/* Noise HKDF(ck, ikm, n): n (2 or 3) outputs of 32 bytes each. */
int kb_noise_hkdf(const uint8_t ck[static 32], const uint8_t *ikm, size_t ikmlen, unsigned n,
		  uint8_t *o1, uint8_t *o2, uint8_t *o3);
/* shared = X25519(priv, pub); -KB_EHANDSHAKE for a low-order point. */
int kb_x25519(uint8_t shared[static 32], const uint8_t priv[static 32],
	      const uint8_t pub[static 32]);
/* InitializeKey(k): creates or rekeys cs->aead, n = 0. */
int kb_noise_cs_set_key(struct kb_noise_cs *cs, enum kb_aead_backend be,
			const uint8_t k[static 32]);

#endif
