/* test_util.c - shared helpers: hex, base64, errors, buffers. */
#include <check.h>
#include <stdint.h>
#include <errno.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "util.h"

START_TEST(test_hex_roundtrip)
{
	uint8_t in[5] = {0, 1, 0xab, 0xcd, 0xff}, out[5];
	char hex[11];

	kb_hex_encode(hex, in, 5);
	ck_assert_str_eq(hex, "0001abcdff");
	ck_assert_int_eq(kb_hex_decode(out, sizeof(out), hex), 5);
	ck_assert_mem_eq(in, out, 5);
	ck_assert_int_eq(kb_hex_decode(out, sizeof(out), "0g"), -EINVAL);
	ck_assert_int_eq(kb_hex_decode(out, sizeof(out), "abc"), -EINVAL);
}
END_TEST

START_TEST(test_b64)
{
	/* RFC 4648 vectors */
	static const char *plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
	static const char *padded[] = {"",         "Zg==",     "Zm8=",    "Zm9v",
				       "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
	char enc[16];
	uint8_t dec[16];

	for (int i = 0; i < 7; i++) {
		size_t n = strlen(plain[i]);

		kb_b64_encode(enc, (const uint8_t *)plain[i], n, 1);
		ck_assert_str_eq(enc, padded[i]);
		ck_assert_int_eq(kb_b64_decode(dec, sizeof(dec), enc, strlen(enc)), (int)n);
		ck_assert_mem_eq(dec, plain[i], n);
		kb_b64_encode(enc, (const uint8_t *)plain[i], n, 0);
		ck_assert_ptr_null(strchr(enc, '='));
		ck_assert_int_eq(kb_b64_decode(dec, sizeof(dec), enc, strlen(enc)), (int)n);
	}
	ck_assert_int_eq(kb_b64_decode(dec, sizeof(dec), "Zm9v!", 5), -EINVAL);
	ck_assert_int_eq(kb_b64_decode(dec, 2, "Zm9v", 4), -EINVAL);
	/* a lone sextet, '=' inside, whitespace, NUL: all refused */
	ck_assert_int_eq(kb_b64_decode(dec, sizeof(dec), "Zm9vY", 5), -EINVAL);
	ck_assert_int_eq(kb_b64_decode(dec, sizeof(dec), "Zg==Zg==", 8), -EINVAL);
	ck_assert_int_eq(kb_b64_decode(dec, sizeof(dec), "Zm9 v", 5), -EINVAL);
	ck_assert_int_eq(kb_b64_decode(dec, sizeof(dec), "Zm9v\n", 5), -EINVAL);
	ck_assert_int_eq(kb_b64_decode(dec, sizeof(dec), "Zm\0v", 4), -EINVAL);
}
END_TEST

START_TEST(test_err)
{
	ck_assert_int_eq(kb_err_to_errno(-ENOENT), -ENOENT);
	ck_assert_int_eq(kb_err_to_errno(-KB_EBADTAG), -EIO);
	ck_assert_int_eq(kb_err_to_errno(-KB_ETIMEOUT), -EIO);
	ck_assert_int_eq(kb_err_to_errno(-ETIMEDOUT), -EIO); /* past timeout=: EIO */
	ck_assert_int_eq(kb_err_to_errno(-KB_ECLOSED), -ENOTCONN);
	ck_assert_int_eq(kb_err_to_errno(0), 0);
	ck_assert_ptr_nonnull(strstr(kb_strerror(-KB_EBADTAG), "authentication"));
	ck_assert_str_eq(kb_strerror(-ENOENT), strerror(ENOENT));
}
END_TEST

START_TEST(test_bufpool_reuse)
{
	struct kb_bufpool *p;
	struct kb_buf *a, *b;

	ck_assert_int_eq(kb_bufpool_new(&p, 4096, 2, 0), 0);
	a = kb_buf_get(p);
	ck_assert_ptr_nonnull(a);
	ck_assert_uint_eq(a->cap, 4096);
	kb_buf_ref(a);
	kb_buf_put(a); /* still referenced once */
	kb_buf_put(a); /* back to the free list */
	b = kb_buf_get(p);
	ck_assert_ptr_eq(a, b); /* reused, no new allocation */
	ck_assert_uint_eq(kb_bufpool_allocs(p), 1);
	kb_bufpool_free(p); /* pool outlives its outstanding buffer */
	kb_buf_put(b);
}
END_TEST

/* Large buffers are carved from 2 MiB-aligned arenas: distinct, aligned,
 * writable to their last byte, recycled without new carving, and alive
 * until the last one is put even after the pool's owner let go. */
START_TEST(test_bufpool_arena)
{
	enum {
		N = 70
	}; /* more than one 32 MiB arena's worth */
	struct kb_bufpool *p;
	struct kb_buf *b[N], *again;
	size_t cap = (1u << 20) + 4096;

	ck_assert_int_eq(kb_bufpool_new(&p, cap, 2, KB_BUFPOOL_ARENA), 0);
	for (int i = 0; i < N; i++) {
		b[i] = kb_buf_get(p);
		ck_assert_ptr_nonnull(b[i]);
		ck_assert_uint_eq(b[i]->cap, cap);
		ck_assert_uint_eq((uintptr_t)b[i]->mem % 64, 0);
		memset(b[i]->mem, i, cap);
		for (int j = 0; j < i; j++)
			ck_assert_ptr_ne(b[i], b[j]);
	}
	for (int i = 0; i < N; i++)
		ck_assert_uint_eq(b[i]->mem[cap - 1], (uint8_t)i); /* no overlap */
	ck_assert_uint_eq(kb_bufpool_allocs(p), N);
	for (int i = 0; i < N; i++)
		kb_buf_put(b[i]); /* arenas: all kept, whatever `keep` says */
	for (int i = 0; i < N; i++)
		b[i] = kb_buf_get(p);
#if defined(__SANITIZE_ADDRESS__)
	/* under ASan buffers are malloc'd and `keep` = 2 of them come back */
	ck_assert_uint_eq(kb_bufpool_allocs(p), 2 * N - 2);
#else
	ck_assert_uint_eq(kb_bufpool_allocs(p), N);
#endif
	again = b[0];
	kb_bufpool_free(p);
	for (int i = 1; i < N; i++)
		kb_buf_put(b[i]);
	memset(again->mem, 0, cap); /* still mapped */
	kb_buf_put(again);          /* the last one: the arenas go */
	/* without KB_BUFPOOL_ARENA (the server): malloc, and only `keep` kept */
	ck_assert_int_eq(kb_bufpool_new(&p, cap, 2, 0), 0);
	for (int i = 0; i < 4; i++)
		b[i] = kb_buf_get(p);
	for (int i = 0; i < 4; i++)
		kb_buf_put(b[i]);
	for (int i = 0; i < 4; i++)
		b[i] = kb_buf_get(p);
	ck_assert_uint_eq(kb_bufpool_allocs(p), 6);
	for (int i = 0; i < 4; i++)
		kb_buf_put(b[i]);
	kb_bufpool_free(p);
}
END_TEST

Suite *suite_util(void);
Suite *suite_util(void)
{
	Suite *s = suite_create("util");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_hex_roundtrip);
	tcase_add_test(tc, test_b64);
	tcase_add_test(tc, test_err);
	tcase_add_test(tc, test_bufpool_reuse);
	tcase_add_test(tc, test_bufpool_arena);
	suite_add_tcase(s, tc);
	return s;
}
