/* test_util.c - shared helpers: hex, base64, errors, buffers. */
#include <check.h>
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
	static const char *padded[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
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
}
END_TEST

START_TEST(test_err)
{
	ck_assert_int_eq(kb_err_to_errno(-ENOENT), -ENOENT);
	ck_assert_int_eq(kb_err_to_errno(-KB_EBADTAG), -EIO);
	ck_assert_int_eq(kb_err_to_errno(-KB_ETIMEOUT), -ETIMEDOUT);
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

	ck_assert_int_eq(kb_bufpool_new(&p, 4096, 2), 0);
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

Suite *suite_util(void);
Suite *suite_util(void)
{
	Suite *s = suite_create("util");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_hex_roundtrip);
	tcase_add_test(tc, test_b64);
	tcase_add_test(tc, test_err);
	tcase_add_test(tc, test_bufpool_reuse);
	suite_add_tcase(s, tc);
	return s;
}
