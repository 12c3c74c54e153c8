/* test_siblings.c - kbfs_siblings: small files in listing order. */
#include <check.h>
#include <stdint.h>

#include "kbfs_siblings.h"

START_TEST(test_siblings_next_in_order)
{
	struct kbfs_siblings *s;
	uint64_t out[64];

	ck_assert_int_eq(kbfs_siblings_new(&s), 0);
	ck_assert_uint_eq(kbfs_siblings_next(s, 5, out, 64), 0); /* never listed */
	for (uint64_t f = 100; f < 110; f++)
		kbfs_siblings_add(s, 1, f); /* dir 1: files 100..109 */
	for (uint64_t f = 200; f < 203; f++)
		kbfs_siblings_add(s, 2, f); /* then dir 2 */
	ck_assert_uint_eq(kbfs_siblings_next(s, 100, out, 64), 9);
	ck_assert_uint_eq(out[0], 101);
	ck_assert_uint_eq(out[8], 109); /* stops where dir 2's listing begins */
	ck_assert_uint_eq(kbfs_siblings_next(s, 105, out, 3), 3);
	ck_assert_uint_eq(out[2], 108);
	ck_assert_uint_eq(kbfs_siblings_next(s, 109, out, 64), 0);
	ck_assert_uint_eq(kbfs_siblings_next(s, 201, out, 64), 1);
	ck_assert_uint_eq(out[0], 202);
	/* listed again later: the newest listing counts */
	kbfs_siblings_add(s, 1, 108);
	kbfs_siblings_add(s, 1, 109);
	ck_assert_uint_eq(kbfs_siblings_next(s, 108, out, 64), 1);
	ck_assert_uint_eq(out[0], 109);
	/* pushed out of the ring: forgotten */
	for (uint64_t f = 1000; f < 1000 + KBFS_SIBLINGS_LOG; f++)
		kbfs_siblings_add(s, 3, f);
	ck_assert_uint_eq(kbfs_siblings_next(s, 100, out, 64), 0);
	/* (an older entry may have lost its index slot to a newer one) */
	ck_assert_uint_eq(kbfs_siblings_next(s, 1000 + KBFS_SIBLINGS_LOG - 65, out, 64), 64);
	ck_assert_uint_eq(out[63], 1000 + KBFS_SIBLINGS_LOG - 1);
	ck_assert_uint_eq(kbfs_siblings_next(s, 0, out, 64), 0);
	kbfs_siblings_free(s);
	kbfs_siblings_free(NULL);
}
END_TEST

Suite *suite_siblings(void);
Suite *suite_siblings(void)
{
	Suite *s = suite_create("siblings");
	TCase *tc = tcase_create("ring");

	tcase_add_test(tc, test_siblings_next_in_order);
	suite_add_tcase(s, tc);
	return s;
}
