/* test_newdirs.c - kbfs_newdirs: directories we made, names we put there. */
#include <check.h>
#include <stdio.h>

#include "kbfs_newdirs.h"

#define S 1000000000ull /* one second, in ns */

START_TEST(test_newdirs_names)
{
	struct kbfs_newdirs *fr;
	char name[64];
	unsigned maybe = 0;

	ck_assert_int_eq(kbfs_newdirs_new(&fr), 0);
	/* unknown directory: nothing is known missing */
	ck_assert_uint_eq(kbfs_newdirs_missing(fr, 5, "a", 1, 10), 0);
	kbfs_newdirs_born(fr, 5, 1, 0, S);
	ck_assert_uint_eq(kbfs_newdirs_missing(fr, 5, "a", 1, 100), S - 100);
	ck_assert_uint_eq(kbfs_newdirs_missing(fr, 5, "a", 2, 100), 0); /* new session */
	ck_assert_uint_eq(kbfs_newdirs_missing(fr, 6, "a", 1, 100), 0); /* other dir */
	/* a name we put there is asked for; others still are not */
	kbfs_newdirs_add(fr, 5, "a", S / 2, S);
	ck_assert_uint_eq(kbfs_newdirs_missing(fr, 5, "a", 1, S / 2), 0);
	/* ...and the add renewed the window */
	ck_assert_uint_eq(kbfs_newdirs_missing(fr, 5, "b", 1, S), S / 2);
	ck_assert_uint_eq(kbfs_newdirs_missing(fr, 5, "b", 1, S + S / 2), 0); /* expired */
	ck_assert_uint_eq(kbfs_newdirs_missing(fr, 5, "b", 1, S), 0);         /* and forgotten */
	/* an add to a directory that is not fresh does not make it fresh */
	kbfs_newdirs_add(fr, 5, "c", 2 * S, S);
	ck_assert_uint_eq(kbfs_newdirs_missing(fr, 5, "d", 1, 2 * S), 0);
	/* renewals never go past KBFS_NEWDIRS_MAX_NS after the mkdir */
	kbfs_newdirs_born(fr, 7, 1, 0, S);
	for (uint64_t t = 0; t < KBFS_NEWDIRS_MAX_NS + 2 * S; t += S / 2) {
		snprintf(name, sizeof(name), "t%llu", (unsigned long long)t);
		kbfs_newdirs_add(fr, 7, name, t, S);
	}
	ck_assert_uint_eq(kbfs_newdirs_missing(fr, 7, "zz", 1, KBFS_NEWDIRS_MAX_NS), 0);
	/* case-insensitive shares: "A" made means "a" may be there; a name
	 * that is not ASCII is never answered, and making one forgets the dir */
	kbfs_newdirs_born(fr, 12, 1, 0, S);
	kbfs_newdirs_add(fr, 12, "Makefile", 1, S);
	ck_assert_uint_eq(kbfs_newdirs_missing(fr, 12, "makefile", 1, 2), 0);
	ck_assert_uint_eq(kbfs_newdirs_missing(fr, 12, "MAKEFILE", 1, 2), 0);
	ck_assert_uint_gt(kbfs_newdirs_missing(fr, 12, "makefile.in", 1, 2), 0);
	ck_assert_uint_eq(kbfs_newdirs_missing(fr, 12, "caf\xc3\xa9", 1, 2), 0);
	ck_assert_uint_gt(kbfs_newdirs_missing(fr, 12, "cafe", 1, 2), 0);
	kbfs_newdirs_add(fr, 12,
			 "\xe2\x84\xaa"
			 "elvin",
			 1, S); /* KELVIN SIGN */
	ck_assert_uint_eq(kbfs_newdirs_missing(fr, 12, "kelvin", 1, 2), 0);
	ck_assert_uint_eq(kbfs_newdirs_missing(fr, 12, "other", 1, 2), 0);
	/* a push drops the directory */
	kbfs_newdirs_born(fr, 8, 1, 0, S);
	kbfs_newdirs_drop(fr, 9); /* not there: nothing happens */
	ck_assert_uint_gt(kbfs_newdirs_missing(fr, 8, "x", 1, 1), 0);
	kbfs_newdirs_drop(fr, 8);
	ck_assert_uint_eq(kbfs_newdirs_missing(fr, 8, "x", 1, 1), 0);
	/* 2,000 names: every one of them is asked for (never a false
	 * "missing"), and few others are (false "maybe" < 2%) */
	kbfs_newdirs_born(fr, 10, 1, 0, S);
	for (int i = 0; i < 2000; i++) {
		snprintf(name, sizeof(name), ".w%05d.XXXXXX", i);
		kbfs_newdirs_add(fr, 10, name, 1, S);
	}
	for (int i = 0; i < 2000; i++) {
		snprintf(name, sizeof(name), ".w%05d.XXXXXX", i);
		ck_assert_uint_eq(kbfs_newdirs_missing(fr, 10, name, 1, 2), 0);
		snprintf(name, sizeof(name), "w%05d", i);
		maybe += kbfs_newdirs_missing(fr, 10, name, 1, 2) == 0;
	}
	ck_assert_uint_lt(maybe, 40);
	/* past KBFS_NEWDIRS_NAMES the directory is forgotten */
	for (int i = 2000; i <= KBFS_NEWDIRS_NAMES; i++) {
		snprintf(name, sizeof(name), "n%d", i);
		kbfs_newdirs_add(fr, 10, name, 1, S);
	}
	ck_assert_uint_eq(kbfs_newdirs_missing(fr, 10, "never", 1, 2), 0);
	/* a zero window (negative_timeout=0) disables it */
	kbfs_newdirs_born(fr, 11, 1, 0, 0);
	ck_assert_uint_eq(kbfs_newdirs_missing(fr, 11, "x", 1, 0), 0);
	kbfs_newdirs_free(fr);
	kbfs_newdirs_free(NULL);
}
END_TEST

Suite *suite_newdirs(void);
Suite *suite_newdirs(void)
{
	Suite *s = suite_create("newdirs");
	TCase *tc = tcase_create("table");

	tcase_add_test(tc, test_newdirs_names);
	suite_add_tcase(s, tc);
	return s;
}
