/* noise_crypto.c - Noise's crypto functions over mbedTLS: the RNG
 * (CTR_DRBG from the OS entropy source), X25519, SHA-256, HKDF, and the
 * CipherState object (kb_aead + nonce). */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ecdh.h>
#include <mbedtls/entropy.h>
#include <mbedtls/md.h>
#include <mbedtls/sha256.h>
#include <mbedtls/version.h>

#include "err.h"
#include "noise_int.h"
#include "util.h"

#if MBEDTLS_VERSION_MAJOR >= 3
#define kb_sha256_starts mbedtls_sha256_starts
#define kb_sha256_update mbedtls_sha256_update
#define kb_sha256_finish mbedtls_sha256_finish
#else
#define kb_sha256_starts mbedtls_sha256_starts_ret
#define kb_sha256_update mbedtls_sha256_update_ret
#define kb_sha256_finish mbedtls_sha256_finish_ret
#endif

/* ---- RNG ------------------------------------------------------------------ */

struct kb_noise_rng {
	pthread_mutex_t lock; /* protects drbg (and its entropy source) */
	mbedtls_entropy_context entropy;
	mbedtls_ctr_drbg_context drbg;
};

int kb_noise_rng_new(struct kb_noise_rng **out)
{
	static const char pers[] = "keibifs noise rng";
	struct kb_noise_rng *r = calloc(1, sizeof(*r)); /* owned until *out */

	if (!r)
		return -ENOMEM;
	pthread_mutex_init(&r->lock, NULL);
	mbedtls_entropy_init(&r->entropy);
	mbedtls_ctr_drbg_init(&r->drbg);
	if (mbedtls_ctr_drbg_seed(&r->drbg, mbedtls_entropy_func, &r->entropy,
				  (const unsigned char *)pers, sizeof(pers) - 1)) {
		kb_noise_rng_free(r);
		return -KB_ECRYPTO;
	}
	mbedtls_ctr_drbg_set_prediction_resistance(&r->drbg, MBEDTLS_CTR_DRBG_PR_OFF);
	*out = r;
	return 0;
}

void kb_noise_rng_free(struct kb_noise_rng *r)
{
	if (!r)
		return;
	mbedtls_ctr_drbg_free(&r->drbg); /* zeroizes */
	mbedtls_entropy_free(&r->entropy);
	pthread_mutex_destroy(&r->lock);
	free(r);
}

int kb_noise_rng_bytes(struct kb_noise_rng *r, uint8_t *out, size_t n)
{
	int ret = 0;

	pthread_mutex_lock(&r->lock);
	while (n && !ret) {
		size_t k = KB_MIN(n, (size_t)MBEDTLS_CTR_DRBG_MAX_REQUEST);

		if (mbedtls_ctr_drbg_random(&r->drbg, out, k))
			ret = -KB_ECRYPTO;
		out += k;
		n -= k;
	}
	pthread_mutex_unlock(&r->lock);
	return ret;
}

/* ---- X25519 ------------------------------------------------------------- */

/* RFC 7748 clamping, on the caller's copy. */
static void clamp(uint8_t k[static 32])
{
	k[0] &= 248;
	k[31] &= 127;
	k[31] |= 64;
}

/* out = X25519(priv, point), point NULL for the base point. mbedTLS reads
 * and writes Montgomery coordinates little-endian, as RFC 7748 does. */
static int x25519_mul(uint8_t out[static 32], const uint8_t priv[static 32], const uint8_t *point)
{
	uint8_t k[32]; /* clamped private scalar; wiped */
	mbedtls_ecp_group grp;
	mbedtls_ecp_point q, r;
	mbedtls_mpi d;
	int ret = -KB_ECRYPTO;

	mbedtls_ecp_group_init(&grp);
	mbedtls_ecp_point_init(&q);
	mbedtls_ecp_point_init(&r);
	mbedtls_mpi_init(&d);
	memcpy(k, priv, 32);
	clamp(k);
	if (mbedtls_ecp_group_load(&grp, MBEDTLS_ECP_DP_CURVE25519) ||
	    mbedtls_mpi_read_binary_le(&d, k, 32))
		goto out;
	if (point && mbedtls_ecp_point_read_binary(&grp, &q, point, 32))
		goto out;
	/* The product is checked for the point at infinity (a low-order
	 * input), which Noise allows to fail. */
	if (mbedtls_ecp_mul(&grp, &r, &d, point ? &q : &grp.G, NULL, NULL) ||
	    mbedtls_ecp_is_zero(&r)) {
		ret = -KB_EHANDSHAKE;
		goto out;
	}
	if (mbedtls_mpi_write_binary_le(&r.X, out, 32))
		goto out;
	ret = 0;
out:
	kb_memzero(k, sizeof(k));
	mbedtls_mpi_free(&d); /* zeroizes */
	mbedtls_ecp_point_free(&q);
	mbedtls_ecp_point_free(&r);
	mbedtls_ecp_group_free(&grp);
	return ret;
}

int kb_x25519_pub(const uint8_t priv[static 32], uint8_t pub[static 32])
{
	return x25519_mul(pub, priv, NULL);
}

int kb_x25519(uint8_t shared[static 32], const uint8_t priv[static 32],
	      const uint8_t pub[static 32])
{
	int ret = x25519_mul(shared, priv, pub);
	uint8_t z = 0;

	for (int i = 0; !ret && i < 32; i++)
		z |= shared[i];
	if (!ret && !z)
		ret = -KB_EHANDSHAKE;
	return ret;
}

int kb_x25519_keygen(struct kb_noise_rng *r, uint8_t priv[static 32], uint8_t pub[static 32])
{
	int ret = kb_noise_rng_bytes(r, priv, 32);

	if (!ret) {
		clamp(priv);
		ret = kb_x25519_pub(priv, pub);
	}
	if (ret)
		kb_memzero(priv, 32);
	return ret;
}

/* ---- hash, HKDF --------------------------------------------------------- */

int kb_noise_sha256(uint8_t out[static 32], const uint8_t *a, size_t alen, const uint8_t *b,
		    size_t blen)
{
	mbedtls_sha256_context c;
	int ret = -KB_ECRYPTO;

	mbedtls_sha256_init(&c);
	if (kb_sha256_starts(&c, 0) || kb_sha256_update(&c, a, alen) ||
	    (blen && kb_sha256_update(&c, b, blen)) || kb_sha256_finish(&c, out))
		goto out;
	ret = 0;
out:
	mbedtls_sha256_free(&c);
	return ret;
}

int kb_noise_hkdf(const uint8_t ck[static 32], const uint8_t *ikm, size_t ikmlen, unsigned n,
		  uint8_t *o1, uint8_t *o2, uint8_t *o3)
{
	const mbedtls_md_info_t *md = mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);
	uint8_t tk[32], in[33]; /* temp_key and HMAC input; wiped */
	uint8_t *outs[3] = {o1, o2, o3};
	int ret = -KB_ECRYPTO;

	if (!md || n < 2 || n > 3)
		return -EINVAL;
	if (mbedtls_md_hmac(md, ck, 32, ikm, ikmlen, tk))
		goto out;
	in[0] = 1;
	if (mbedtls_md_hmac(md, tk, 32, in, 1, outs[0]))
		goto out;
	for (unsigned i = 1; i < n; i++) {
		memcpy(in, outs[i - 1], 32);
		in[32] = (uint8_t)(i + 1);
		if (mbedtls_md_hmac(md, tk, 32, in, 33, outs[i]))
			goto out;
	}
	ret = 0;
out:
	kb_memzero(tk, sizeof(tk));
	kb_memzero(in, sizeof(in));
	return ret;
}

/* ---- CipherState -------------------------------------------------------- */

void kb_noise_cs_init(struct kb_noise_cs *cs)
{
	cs->aead = NULL;
	cs->n = 0;
}

void kb_noise_cs_destroy(struct kb_noise_cs *cs)
{
	kb_aead_free(cs->aead);
	kb_noise_cs_init(cs);
}

int kb_noise_cs_set_key(struct kb_noise_cs *cs, enum kb_aead_backend be, const uint8_t k[static 32])
{
	int ret = 0;

	if (cs->aead)
		ret = kb_aead_set_key(cs->aead, k);
	else
		ret = kb_aead_new(&cs->aead, be, k);
	cs->n = 0;
	return ret;
}

int kb_noise_cs_rekey(struct kb_noise_cs *cs)
{
	uint8_t k[32] = {0}, tag[KB_AEAD_TAG]; /* new key; wiped */
	int ret;

	if (!cs->aead)
		return -EINVAL;
	ret = kb_aead_seal(cs->aead, UINT64_MAX, NULL, 0, k, k, sizeof(k), tag);
	if (!ret)
		ret = kb_aead_set_key(cs->aead, k);
	kb_memzero(k, sizeof(k));
	return ret;
}

int kb_noise_cs_encrypt(struct kb_noise_cs *cs, const uint8_t *ad, size_t adlen, const uint8_t *in,
			size_t len, uint8_t *out)
{
	int ret;

	if (!cs->aead) {
		if (len)
			memmove(out, in, len);
		return 0;
	}
	if (cs->n == UINT64_MAX)
		return -KB_ENONCE;
	ret = kb_aead_seal(cs->aead, cs->n, ad, adlen, in, out, len, out + len);
	if (!ret)
		cs->n++;
	return ret;
}

int kb_noise_cs_decrypt(struct kb_noise_cs *cs, const uint8_t *ad, size_t adlen, const uint8_t *in,
			size_t len, uint8_t *out)
{
	uint8_t tag[KB_AEAD_TAG]; /* copied: out may overlap in */
	int ret;

	if (!cs->aead) {
		if (len)
			memmove(out, in, len);
		return 0;
	}
	if (len < KB_AEAD_TAG)
		return -KB_EBADTAG;
	if (cs->n == UINT64_MAX)
		return -KB_ENONCE;
	len -= KB_AEAD_TAG;
	memcpy(tag, in + len, sizeof(tag));
	if (len)
		memmove(out, in, len);
	ret = kb_aead_open(cs->aead, cs->n, ad, adlen, out, len, tag);
	if (!ret)
		cs->n++;
	else
		kb_memzero(out, len);
	return ret;
}
