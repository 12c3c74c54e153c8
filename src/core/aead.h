/* aead.h - the one seam every AES-256-GCM operation goes through.
 *
 * Two backends produce identical bytes: mbedTLS GCM (always built, the
 * reference) and OpenSSL EVP (built when KB_HAVE_OPENSSL, the default for
 * bulk frames because it is ~20x faster here). Nonces follow Noise's AESGCM
 * encoding: 4 zero bytes then the 64-bit counter big-endian.
 */
#ifndef KB_AEAD_H
#define KB_AEAD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define KB_AEAD_KEY 32
#define KB_AEAD_TAG 16

enum kb_aead_backend {
	KB_AEAD_DEFAULT = 0, /* OpenSSL when built with it, else mbedTLS */
	KB_AEAD_MBEDTLS,
	KB_AEAD_OPENSSL,
};

struct kb_aead; /* opaque; owns its key schedule, wiped on free. Not for two
		 * threads at once: callers serialise (the channel's send lock). */

/* -ENOTSUP when the backend was not built in. */
int kb_aead_new(struct kb_aead **out, enum kb_aead_backend be,
		const uint8_t key[static KB_AEAD_KEY]);
void kb_aead_free(struct kb_aead *a); /* NULL-safe, wipes */
/* Replace the key (used by Noise Rekey); keeps the backend. */
int kb_aead_set_key(struct kb_aead *a, const uint8_t key[static KB_AEAD_KEY]);
enum kb_aead_backend kb_aead_backend_of(const struct kb_aead *a);
/* The backend DEFAULT resolves to in this build. */
enum kb_aead_backend kb_aead_default(void);
const char *kb_aead_backend_name(enum kb_aead_backend be); /* "openssl"... */

/* Encrypt len bytes at in into out (in == out allowed: in place), write the
 * tag to tag. */
int kb_aead_seal(struct kb_aead *a, uint64_t nonce, const uint8_t *ad, size_t adlen,
		 const uint8_t *in, uint8_t *out, size_t len, uint8_t tag[static KB_AEAD_TAG]);
/* Gathered plaintext (iov) encrypted into contiguous out; same bytes as one
 * seal over the concatenation. */
int kb_aead_sealv(struct kb_aead *a, uint64_t nonce, const uint8_t *ad, size_t adlen,
		  const struct iovec *iov, int iovcnt, uint8_t *out,
		  uint8_t tag[static KB_AEAD_TAG]);
/* Decrypt in place after checking the tag (constant time); on failure
 * returns -KB_EBADTAG and the buffer content is unspecified and must not be
 * used. */
int kb_aead_open(struct kb_aead *a, uint64_t nonce, const uint8_t *ad, size_t adlen, uint8_t *buf,
		 size_t len, const uint8_t tag[static KB_AEAD_TAG]);

#endif
