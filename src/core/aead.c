/* aead.c - AES-256-GCM behind one seam: mbedTLS (reference, always built)
 * and OpenSSL EVP (KB_HAVE_OPENSSL). Both keep their key schedule in the
 * object so a call only sets the nonce: no allocation per call.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/gcm.h>
#ifdef KB_HAVE_OPENSSL
#include <openssl/evp.h>
#endif

#include "aead.h"
#include "err.h"
#include "util.h"

#define KB_AEAD_NONCE 12
/* EVP takes int lengths: feed it in chunks no larger than this. */
#define KB_EVP_CHUNK (1u << 30)

struct kb_aead {
	enum kb_aead_backend be;
	mbedtls_gcm_context gcm; /* mbedTLS backend: key schedule */
#ifdef KB_HAVE_OPENSSL
	EVP_CIPHER_CTX *enc; /* OpenSSL backend: owned, key set once */
	EVP_CIPHER_CTX *dec;
#endif
};

static void nonce_bytes(uint8_t iv[static KB_AEAD_NONCE], uint64_t n)
{
	memset(iv, 0, 4);
	kb_put_be64(iv + 4, n);
}

enum kb_aead_backend kb_aead_default(void)
{
#ifdef KB_HAVE_OPENSSL
	return KB_AEAD_OPENSSL;
#else
	return KB_AEAD_MBEDTLS;
#endif
}

const char *kb_aead_backend_name(enum kb_aead_backend be)
{
	if (be == KB_AEAD_DEFAULT)
		be = kb_aead_default();
	switch (be) {
	case KB_AEAD_MBEDTLS: return "mbedtls";
	case KB_AEAD_OPENSSL: return "openssl";
	default: return "unknown";
	}
}

enum kb_aead_backend kb_aead_backend_of(const struct kb_aead *a)
{
	return a->be;
}

#ifdef KB_HAVE_OPENSSL
static int evp_setup(EVP_CIPHER_CTX **ctx, int enc, const uint8_t *key)
{
	if (!*ctx) {
		*ctx = EVP_CIPHER_CTX_new();
		if (!*ctx)
			return -ENOMEM;
		if (EVP_CipherInit_ex(*ctx, EVP_aes_256_gcm(), NULL, NULL, NULL, enc) != 1 ||
		    EVP_CIPHER_CTX_ctrl(*ctx, EVP_CTRL_GCM_SET_IVLEN, KB_AEAD_NONCE, NULL) != 1)
			return -KB_ECRYPTO;
	}
	if (EVP_CipherInit_ex(*ctx, NULL, NULL, key, NULL, enc) != 1)
		return -KB_ECRYPTO;
	return 0;
}
#endif

int kb_aead_set_key(struct kb_aead *a, const uint8_t key[static KB_AEAD_KEY])
{
	if (a->be == KB_AEAD_MBEDTLS) {
		if (mbedtls_gcm_setkey(&a->gcm, MBEDTLS_CIPHER_ID_AES, key, 256))
			return -KB_ECRYPTO;
		return 0;
	}
#ifdef KB_HAVE_OPENSSL
	int ret = evp_setup(&a->enc, 1, key);

	if (!ret)
		ret = evp_setup(&a->dec, 0, key);
	return ret;
#else
	return -ENOTSUP;
#endif
}

int kb_aead_new(struct kb_aead **out, enum kb_aead_backend be,
		const uint8_t key[static KB_AEAD_KEY])
{
	struct kb_aead *a; /* owned here until handed to *out */
	int ret;

	if (be == KB_AEAD_DEFAULT)
		be = kb_aead_default();
	if (be != KB_AEAD_MBEDTLS && be != KB_AEAD_OPENSSL)
		return -EINVAL;
#ifndef KB_HAVE_OPENSSL
	if (be == KB_AEAD_OPENSSL)
		return -ENOTSUP;
#endif
	a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->be = be;
	mbedtls_gcm_init(&a->gcm);
	ret = kb_aead_set_key(a, key);
	if (ret) {
		kb_aead_free(a);
		return ret;
	}
	*out = a;
	return 0;
}

void kb_aead_free(struct kb_aead *a)
{
	if (!a)
		return;
	mbedtls_gcm_free(&a->gcm); /* zeroizes */
#ifdef KB_HAVE_OPENSSL
	EVP_CIPHER_CTX_free(a->enc); /* cleanses the key schedule */
	EVP_CIPHER_CTX_free(a->dec);
#endif
	kb_memzero(a, sizeof(*a));
	free(a);
}

/* ---- mbedTLS ---------------------------------------------------------- */

/* Gather iov through the GCM stream. mbedTLS 2.28's gcm_update wants whole
 * 16-byte blocks except on the last call: a partial block is carried in a
 * stack buffer until it is filled from the next iovec. */
static int mbed_sealv(struct kb_aead *a, const uint8_t *iv, const uint8_t *ad, size_t adlen,
		      const struct iovec *iov, int iovcnt, uint8_t *out, uint8_t *tag)
{
	uint8_t carry[16]; /* plaintext of a partial block; wiped at out */
	size_t clen = 0;
	int ret = -KB_ECRYPTO;

	if (mbedtls_gcm_starts(&a->gcm, MBEDTLS_GCM_ENCRYPT, iv, KB_AEAD_NONCE, ad, adlen))
		goto out;
	for (int i = 0; i < iovcnt; i++) {
		const uint8_t *p = iov[i].iov_base;
		size_t n = iov[i].iov_len, take, bulk;

		if (clen) {
			take = KB_MIN(n, sizeof(carry) - clen);
			memcpy(carry + clen, p, take);
			clen += take;
			p += take;
			n -= take;
			if (clen < sizeof(carry))
				continue;
			if (mbedtls_gcm_update(&a->gcm, clen, carry, out))
				goto out;
			out += clen;
			clen = 0;
		}
		bulk = n & ~(size_t)15;
		if (bulk && mbedtls_gcm_update(&a->gcm, bulk, p, out))
			goto out;
		out += bulk;
		memcpy(carry, p + bulk, n - bulk);
		clen = n - bulk;
	}
	if (clen && mbedtls_gcm_update(&a->gcm, clen, carry, out))
		goto out;
	if (mbedtls_gcm_finish(&a->gcm, tag, KB_AEAD_TAG))
		goto out;
	ret = 0;
out:
	kb_memzero(carry, sizeof(carry));
	return ret;
}

/* ---- OpenSSL ------------------------------------------------------------ */

#ifdef KB_HAVE_OPENSSL
static int evp_update(EVP_CIPHER_CTX *ctx, const uint8_t *in, uint8_t *out, size_t len,
		      size_t *done)
{
	while (len) {
		int n = (int)KB_MIN(len, (size_t)KB_EVP_CHUNK), outl = 0;

		if (EVP_CipherUpdate(ctx, out, &outl, in, n) != 1 || outl != n)
			return -KB_ECRYPTO;
		in += n;
		out += n;
		len -= (size_t)n;
		*done += (size_t)n;
	}
	return 0;
}

static int evp_start(EVP_CIPHER_CTX *ctx, int enc, const uint8_t *iv, const uint8_t *ad,
		     size_t adlen)
{
	int outl;

	if (EVP_CipherInit_ex(ctx, NULL, NULL, NULL, iv, enc) != 1)
		return -KB_ECRYPTO;
	while (adlen) {
		int n = (int)KB_MIN(adlen, (size_t)KB_EVP_CHUNK);

		if (EVP_CipherUpdate(ctx, NULL, &outl, ad, n) != 1)
			return -KB_ECRYPTO;
		ad += n;
		adlen -= (size_t)n;
	}
	return 0;
}

static int evp_sealv(struct kb_aead *a, const uint8_t *iv, const uint8_t *ad, size_t adlen,
		     const struct iovec *iov, int iovcnt, uint8_t *out, uint8_t *tag)
{
	size_t done = 0;
	int outl = 0;

	if (evp_start(a->enc, 1, iv, ad, adlen))
		return -KB_ECRYPTO;
	for (int i = 0; i < iovcnt; i++)
		if (evp_update(a->enc, iov[i].iov_base, out + done, iov[i].iov_len, &done))
			return -KB_ECRYPTO;
	if (EVP_EncryptFinal_ex(a->enc, out + done, &outl) != 1 || outl != 0 ||
	    EVP_CIPHER_CTX_ctrl(a->enc, EVP_CTRL_GCM_GET_TAG, KB_AEAD_TAG, tag) != 1)
		return -KB_ECRYPTO;
	return 0;
}

static int evp_open(struct kb_aead *a, const uint8_t *iv, const uint8_t *ad, size_t adlen,
		    uint8_t *buf, size_t len, const uint8_t *tag)
{
	uint8_t t[KB_AEAD_TAG]; /* EVP's ctrl takes a non-const pointer */
	size_t done = 0;
	int outl = 0;

	memcpy(t, tag, sizeof(t));
	if (evp_start(a->dec, 0, iv, ad, adlen) || evp_update(a->dec, buf, buf, len, &done) ||
	    EVP_CIPHER_CTX_ctrl(a->dec, EVP_CTRL_GCM_SET_TAG, KB_AEAD_TAG, t) != 1)
		return -KB_ECRYPTO;
	/* The tag comparison inside is CRYPTO_memcmp (constant time). */
	if (EVP_DecryptFinal_ex(a->dec, buf + len, &outl) != 1)
		return -KB_EBADTAG;
	return 0;
}
#endif

/* ---- the seam ------------------------------------------------------------ */

int kb_aead_sealv(struct kb_aead *a, uint64_t nonce, const uint8_t *ad, size_t adlen,
		  const struct iovec *iov, int iovcnt, uint8_t *out,
		  uint8_t tag[static KB_AEAD_TAG])
{
	uint8_t iv[KB_AEAD_NONCE];

	if (iovcnt < 0 || (iovcnt && !iov))
		return -EINVAL;
	nonce_bytes(iv, nonce);
#ifdef KB_HAVE_OPENSSL
	if (a->be == KB_AEAD_OPENSSL)
		return evp_sealv(a, iv, ad, adlen, iov, iovcnt, out, tag);
#endif
	return mbed_sealv(a, iv, ad, adlen, iov, iovcnt, out, tag);
}

int kb_aead_seal(struct kb_aead *a, uint64_t nonce, const uint8_t *ad, size_t adlen,
		 const uint8_t *in, uint8_t *out, size_t len, uint8_t tag[static KB_AEAD_TAG])
{
	uint8_t iv[KB_AEAD_NONCE];
	struct iovec v = {.iov_base = (void *)in, .iov_len = len};

	if (a->be == KB_AEAD_OPENSSL)
		return kb_aead_sealv(a, nonce, ad, adlen, &v, 1, out, tag);
	nonce_bytes(iv, nonce);
	if (mbedtls_gcm_crypt_and_tag(&a->gcm, MBEDTLS_GCM_ENCRYPT, len, iv, KB_AEAD_NONCE, ad,
				      adlen, in, out, KB_AEAD_TAG, tag))
		return -KB_ECRYPTO;
	return 0;
}

int kb_aead_open(struct kb_aead *a, uint64_t nonce, const uint8_t *ad, size_t adlen, uint8_t *buf,
		 size_t len, const uint8_t tag[static KB_AEAD_TAG])
{
	uint8_t iv[KB_AEAD_NONCE];
	int ret;

	nonce_bytes(iv, nonce);
#ifdef KB_HAVE_OPENSSL
	if (a->be == KB_AEAD_OPENSSL)
		return evp_open(a, iv, ad, adlen, buf, len, tag);
#endif
	/* mbedtls_gcm_auth_decrypt compares the tag in constant time. */
	ret = mbedtls_gcm_auth_decrypt(&a->gcm, len, iv, KB_AEAD_NONCE, ad, adlen, tag, KB_AEAD_TAG,
				       buf, buf);
	if (ret == MBEDTLS_ERR_GCM_AUTH_FAILED)
		return -KB_EBADTAG;
	return ret ? -KB_ECRYPTO : 0;
}
