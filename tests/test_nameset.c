/* test_nameset.c - kbfs_nameset: (server node, name) -> expiry. */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "kbfs_nameset.h"

START_TEST(test_nameset_add_left_drop)
{
	struct kbfs_nameset *ng;
	char name[300];

	ck_assert_int_eq(kbfs_nameset_new(&ng), 0);
	ck_assert_uint_eq(kbfs_nameset_left(ng, 7, "a", 0, 100), 0);
	kbfs_nameset_add(ng, 7, "a", 0, 1000);
	ck_assert_uint_eq(kbfs_nameset_left(ng, 7, "a", 0, 100), 900);
	ck_assert_uint_eq(kbfs_nameset_left(ng, 7, "a", 0, 1000), 0); /* expired */
	ck_assert_uint_eq(kbfs_nameset_left(ng, 7, "a", 1, 100), 0);  /* new session */
	ck_assert_uint_eq(kbfs_nameset_left(ng, 8, "a", 0, 100), 0);  /* other dir */
	ck_assert_uint_eq(kbfs_nameset_left(ng, 7, "ab", 0, 100), 0); /* other name */
	ck_assert_uint_eq(kbfs_nameset_left(ng, 0, "a", 0, 100), 0);  /* no parent */
	kbfs_nameset_drop(ng, 7, "b");                                /* not there */
	ck_assert_uint_eq(kbfs_nameset_left(ng, 7, "a", 0, 100), 900);
	kbfs_nameset_drop(ng, 7, "a");
	ck_assert_uint_eq(kbfs_nameset_left(ng, 7, "a", 0, 100), 0);
	/* many names: each answers for itself; a collision only forgets */
	for (int i = 0; i < 10000; i++) {
		snprintf(name, sizeof(name), "n%d", i);
		kbfs_nameset_add(ng, 9, name, 0, 5000);
	}
	for (int i = 0; i < 10000; i++) {
		uint64_t left;

		snprintf(name, sizeof(name), "n%d", i);
		left = kbfs_nameset_left(ng, 9, name, 0, 1000);
		ck_assert(left == 0 || left == 4000);
		snprintf(name, sizeof(name), "m%d", i);
		ck_assert_uint_eq(kbfs_nameset_left(ng, 9, name, 0, 1000), 0);
	}
	snprintf(name, sizeof(name), "n%d", 9999); /* the last one added is there */
	ck_assert_uint_eq(kbfs_nameset_left(ng, 9, name, 0, 1000), 4000);
	memset(name, 'x', 299);
	name[299] = '\0';
	kbfs_nameset_add(ng, 9, name, 0, 5000); /* too long to keep: ignored */
	ck_assert_uint_eq(kbfs_nameset_left(ng, 9, name, 0, 1000), 0);
	kbfs_nameset_free(ng);
	kbfs_nameset_free(NULL);
}
END_TEST

Suite *suite_nameset(void);
Suite *suite_nameset(void)
{
	Suite *s = suite_create("nameset");
	TCase *tc = tcase_create("table");

	tcase_add_test(tc, test_nameset_add_left_drop);
	suite_add_tcase(s, tc);
	return s;
}
