/* test_aead.c - the AES-256-GCM seam: known answers, backend agreement,
 * gathered input, tampering. */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "aead.h"
#include "err.h"
#include "th_aead.h"
#include "util.h"

struct kat {
	const char *key, *ad, *pt, *ct_tag;
	uint64_t nonce;
};

static const struct kat kats[] = {
	/* NIST GCM spec test cases 13 and 14 (AES-256, zero key, zero IV). */
	{"0000000000000000000000000000000000000000000000000000000000000000", "", "",
	 "530f8afbc74536b9a963b4f1c4cb738b", 0},
	{"0000000000000000000000000000000000000000000000000000000000000000", "",
	 "00000000000000000000000000000000",
	 "cea7403d4d606b6e074ec5d3baf39d18d0d1c8a799996bf0265b98b5d48ab919", 0},
	/* Computed independently with python cryptography's AESGCM, nonce
	 * 00000000 || 0102030405060708, AD "ad". */
	{"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", "6164",
	 "6b6569626966732061656164206b617420706c61696e746578742c20343520627974657320"
	 "6c6f6e672e2e2e2e",
	 "6f340c6cb4877abe62fa9c8b3e0c58845a8930a3bebb3c09918f78705f02ffaf565c7debbad6a2488729"
	 "4cb5448037ae5eab45e663ef33d12189124df2",
	 0x0102030405060708ull},
};

static size_t unhex(uint8_t *out, size_t cap, const char *hex)
{
	ssize_t n = kb_hex_decode(out, cap, hex);

	ck_assert_int_ge(n, 0);
	return (size_t)n;
}

START_TEST(test_kat)
{
	enum kb_aead_backend be = backends[_i % NBE];
	const struct kat *k = &kats[_i / NBE];
	uint8_t key[32], ad[16], pt[64], exp[80], buf[64], tag[16];
	size_t adlen, ptlen, explen;
	struct kb_aead *a;

	unhex(key, sizeof(key), k->key);
	adlen = unhex(ad, sizeof(ad), k->ad);
	ptlen = unhex(pt, sizeof(pt), k->pt);
	explen = unhex(exp, sizeof(exp), k->ct_tag);
	ck_assert_uint_eq(explen, ptlen + 16);
	ck_assert_int_eq(kb_aead_new(&a, be, key), 0);
	ck_assert_int_eq(kb_aead_backend_of(a), be);
	/* in place */
	memcpy(buf, pt, ptlen);
	ck_assert_int_eq(kb_aead_seal(a, k->nonce, ad, adlen, buf, buf, ptlen, tag), 0);
	ck_assert_mem_eq(buf, exp, ptlen);
	ck_assert_mem_eq(tag, exp + ptlen, 16);
	ck_assert_int_eq(kb_aead_open(a, k->nonce, ad, adlen, buf, ptlen, tag), 0);
	ck_assert_mem_eq(buf, pt, ptlen);
	kb_aead_free(a);
}
END_TEST

/* Deterministic byte source for the randomized comparisons. */
static uint32_t rnd(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

static void fill(uint8_t *p, size_t n, uint32_t *s)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)rnd(s);
}

/* Split [0,len) into up to 8 iovecs at random (often odd) offsets. */
static int split(struct iovec *iov, uint8_t *p, size_t len, uint32_t *s)
{
	int n = 0;
	size_t off = 0;

	while (off < len && n < 7) {
		size_t take = rnd(s) % 3 ? rnd(s) % 40 : rnd(s) % (len - off + 1);

		take = KB_MIN(take, len - off);
		iov[n++] = (struct iovec){p + off, take};
		off += take;
	}
	iov[n++] = (struct iovec){p + off, len - off};
	return n;
}

START_TEST(test_backends_agree)
{
	uint8_t key[32], ad[13], tag[KB_ARRAY_SIZE(backends)][16], tagv[16];
	uint8_t *pt, *ct[KB_ARRAY_SIZE(backends)], *ctv; /* test-owned */
	struct kb_aead *a[KB_ARRAY_SIZE(backends)];
	uint32_t s = 0x1234567u;
	struct iovec iov[8];

	pt = malloc(70001);
	ctv = malloc(70001);
	ck_assert_ptr_nonnull(pt);
	ck_assert_ptr_nonnull(ctv);
	fill(key, sizeof(key), &s);
	for (int b = 0; b < NBE; b++) {
		ct[b] = malloc(70001);
		ck_assert_ptr_nonnull(ct[b]);
		ck_assert_int_eq(kb_aead_new(&a[b], backends[b], key), 0);
	}
	for (int round = 0; round < 120; round++) {
		size_t len = round < 40 ? (size_t)round : rnd(&s) % 70001;
		size_t adlen = rnd(&s) % sizeof(ad);
		uint64_t nonce = (uint64_t)rnd(&s) << 32 | rnd(&s);
		int niov;

		fill(pt, len, &s);
		fill(ad, adlen, &s);
		niov = split(iov, pt, len, &s);
		for (int b = 0; b < NBE; b++) {
			ck_assert_int_eq(
				kb_aead_seal(a[b], nonce, ad, adlen, pt, ct[b], len, tag[b]), 0);
			ck_assert_int_eq(
				kb_aead_sealv(a[b], nonce, ad, adlen, iov, niov, ctv, tagv), 0);
			ck_assert_mem_eq(ctv, ct[b], len);
			ck_assert_mem_eq(tagv, tag[b], 16);
			if (b) {
				ck_assert_mem_eq(ct[b], ct[0], len);
				ck_assert_mem_eq(tag[b], tag[0], 16);
			}
		}
		/* cross open: sealed by backend b, opened by the other */
		for (int b = 0; b < NBE; b++) {
			int o = (b + 1) % NBE;

			memcpy(ctv, ct[b], len);
			ck_assert_int_eq(kb_aead_open(a[o], nonce, ad, adlen, ctv, len, tag[b]), 0);
			ck_assert_mem_eq(ctv, pt, len);
		}
	}
	for (int b = 0; b < NBE; b++) {
		kb_aead_free(a[b]);
		free(ct[b]);
	}
	free(pt);
	free(ctv);
}
END_TEST

START_TEST(test_tamper)
{
	enum kb_aead_backend be = backends[_i];
	uint8_t key[32] = {1, 2, 3}, ad[4] = {0, 0, 1, 0}, pt[100], buf[100], tag[16], t2[16];
	struct kb_aead *a;
	uint32_t s = 99;

	fill(pt, sizeof(pt), &s);
	ck_assert_int_eq(kb_aead_new(&a, be, key), 0);
	ck_assert_int_eq(kb_aead_seal(a, 7, ad, 4, pt, buf, sizeof(pt), tag), 0);
	for (int what = 0; what < 5; what++) {
		uint8_t c[100], ad2[4];
		uint64_t n = 7;

		memcpy(c, buf, sizeof(c));
		memcpy(t2, tag, 16);
		memcpy(ad2, ad, 4);
		if (what == 0)
			c[50] ^= 0x01;
		else if (what == 1)
			t2[15] ^= 0x80;
		else if (what == 2)
			ad2[3] ^= 1;
		else if (what == 3)
			n = 8;
		else
			n = 7 | 1ull << 63;
		ck_assert_int_eq(kb_aead_open(a, n, ad2, 4, c, sizeof(c), t2), -KB_EBADTAG);
	}
	/* short AD and wrong key are rejected too */
	memcpy(t2, tag, 16);
	{
		uint8_t c[100];

		memcpy(c, buf, sizeof(c));
		ck_assert_int_eq(kb_aead_open(a, 7, ad, 3, c, sizeof(c), t2), -KB_EBADTAG);
		key[0] ^= 1;
		ck_assert_int_eq(kb_aead_set_key(a, key), 0);
		memcpy(c, buf, sizeof(c));
		ck_assert_int_eq(kb_aead_open(a, 7, ad, 4, c, sizeof(c), t2), -KB_EBADTAG);
		key[0] ^= 1;
		ck_assert_int_eq(kb_aead_set_key(a, key), 0);
		memcpy(c, buf, sizeof(c));
		ck_assert_int_eq(kb_aead_open(a, 7, ad, 4, c, sizeof(c), t2), 0);
		ck_assert_mem_eq(c, pt, sizeof(pt));
	}
	kb_aead_free(a);
}
END_TEST

START_TEST(test_backend_names)
{
	struct kb_aead *a;
	uint8_t key[32] = {0};

	ck_assert_str_eq(kb_aead_backend_name(KB_AEAD_MBEDTLS), "mbedtls");
	ck_assert_str_eq(kb_aead_backend_name(KB_AEAD_OPENSSL), "openssl");
	ck_assert_int_eq(kb_aead_new(&a, KB_AEAD_DEFAULT, key), 0);
	ck_assert_int_eq(kb_aead_backend_of(a), kb_aead_default());
	kb_aead_free(a);
	kb_aead_free(NULL);
#ifdef KB_HAVE_OPENSSL
	ck_assert_int_eq(kb_aead_default(), KB_AEAD_OPENSSL);
#else
	ck_assert_int_eq(kb_aead_default(), KB_AEAD_MBEDTLS);
	ck_assert_int_eq(kb_aead_new(&a, KB_AEAD_OPENSSL, key), -ENOTSUP);
#endif
	ck_assert_int_eq(kb_aead_new(&a, (enum kb_aead_backend)42, key), -EINVAL);
}
END_TEST

Suite *suite_aead(void);
Suite *suite_aead(void)
{
	Suite *s = suite_create("aead");
	TCase *tc = tcase_create("core");

	tcase_add_loop_test(tc, test_kat, 0, NBE * (int)KB_ARRAY_SIZE(kats));
	tcase_add_test(tc, test_backends_agree);
	tcase_add_loop_test(tc, test_tamper, 0, NBE);
	tcase_add_test(tc, test_backend_names);
	suite_add_tcase(s, tc);
	return s;
}
