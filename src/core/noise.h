/* noise.h - Noise Protocol Framework (rev 34) over mbedTLS:
 * 25519 / AESGCM / SHA256, generic token-driven HandshakeState.
 *
 * Supported patterns: NN, KK, XK, IK, XX, and psk modifiers (XXpsk3).
 * The product uses Noise_XX_25519_AESGCM_SHA256 (Noise_XXpsk3_... with a
 * pre-shared key).
 */
#ifndef KB_NOISE_H
#define KB_NOISE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aead.h"

#define KB_NOISE_KEY 32
#define KB_NOISE_HASH 32
#define KB_NOISE_MAX_MSG 65535

/* A CipherState: key + nonce. Caller storage; init/destroy. */
struct kb_noise_cs {
	struct kb_aead *aead; /* NULL until a key is set */
	uint64_t n;
};
void kb_noise_cs_init(struct kb_noise_cs *cs);
void kb_noise_cs_destroy(struct kb_noise_cs *cs); /* wipes */
/* Noise Rekey(): k = first 32 bytes of ENCRYPT(k, 2^64-1, "", zeros[32]). */
int kb_noise_cs_rekey(struct kb_noise_cs *cs);

struct kb_noise_rng; /* CTR_DRBG seeded from the OS; thread-safe */
int kb_noise_rng_new(struct kb_noise_rng **out);
void kb_noise_rng_free(struct kb_noise_rng *r);
int kb_noise_rng_bytes(struct kb_noise_rng *r, uint8_t *out, size_t n);

/* X25519 helpers (mbedTLS). */
int kb_x25519_keygen(struct kb_noise_rng *r, uint8_t priv[static 32], uint8_t pub[static 32]);
int kb_x25519_pub(const uint8_t priv[static 32], uint8_t pub[static 32]);

struct kb_noise_hs_cfg {
	const char *protocol; /* e.g. "Noise_XX_25519_AESGCM_SHA256" */
	bool initiator;
	const uint8_t *prologue; /* may be NULL */
	size_t prologue_len;
	const uint8_t *s;             /* local static private key or NULL */
	const uint8_t *rs;            /* remote static public key (K/IK) or NULL */
	const uint8_t *psk;           /* 32 bytes or NULL */
	const uint8_t *e;             /* fixed ephemeral private key (test vectors) or NULL */
	struct kb_noise_rng *rng;     /* for ephemerals when e is NULL */
	enum kb_aead_backend backend; /* for the transport CipherStates */
};

struct kb_noise_hs; /* opaque HandshakeState */

/* -EINVAL / -ENOTSUP for a malformed or unsupported protocol name. */
int kb_noise_hs_new(struct kb_noise_hs **out, const struct kb_noise_hs_cfg *cfg);
void kb_noise_hs_free(struct kb_noise_hs *hs); /* NULL-safe, wipes */

/* WriteMessage: out receives the handshake message; *outlen its size.
 * payload must not overlap out. Any error poisons the state (later calls
 * return -KB_EHANDSHAKE). */
int kb_noise_hs_write(struct kb_noise_hs *hs, const uint8_t *payload, size_t plen, uint8_t *out,
		      size_t outcap, size_t *outlen);
/* ReadMessage: payload receives the decrypted payload. -KB_EHANDSHAKE on a
 * malformed or unauthenticated message (or a payload over pcap); payload
 * may alias msg. */
int kb_noise_hs_read(struct kb_noise_hs *hs, const uint8_t *msg, size_t len, uint8_t *payload,
		     size_t pcap, size_t *plen);
/* True when it is this side's turn to write. */
bool kb_noise_hs_my_turn(const struct kb_noise_hs *hs);
/* True when all messages of the pattern have been processed. */
bool kb_noise_hs_done(const struct kb_noise_hs *hs);
/* Remote static public key, once received: 0 or -ENOENT. */
int kb_noise_hs_remote_static(const struct kb_noise_hs *hs, uint8_t rs[static 32]);
/* The handshake hash h. */
void kb_noise_hs_hash(const struct kb_noise_hs *hs, uint8_t h[static KB_NOISE_HASH]);
/* Split(): the initiator's c1 is its send state; for the responder c1 is
 * recv. `send`/`recv` are caller storage, initialised here. Only after done. */
int kb_noise_hs_split(struct kb_noise_hs *hs, struct kb_noise_cs *send, struct kb_noise_cs *recv);

/* Transport encrypt/decrypt with a CipherState (used by the vector runner;
 * the frame channel uses kb_aead directly for in-place zero-copy I/O). */
int kb_noise_cs_encrypt(struct kb_noise_cs *cs, const uint8_t *ad, size_t adlen, const uint8_t *in,
			size_t len, uint8_t *out /* len + 16 */);
int kb_noise_cs_decrypt(struct kb_noise_cs *cs, const uint8_t *ad, size_t adlen, const uint8_t *in,
			size_t len /* incl tag */, uint8_t *out);

#endif
