/* test_walkthrough.c - README.md's "Use it" section, run as written on two
 * machines (network namespaces joined by a veth pair), then the mistakes a
 * new user makes: tests/scenarios/walkthrough.sh does it all; this runs it
 * and shows its output when it fails. It SKIPs loudly without ip netns or
 * FUSE. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "th.h"

START_TEST(test_readme_walkthrough)
{
	char *out = NULL;
	int rc;

	if (!th_fuse_available("walkthrough"))
		return;
	rc = th_sh_out(&out, "bash '%s/tests/scenarios/walkthrough.sh' '%s' '%s/README.md'",
		       th_srcdir(), th_build(), th_srcdir());
	if (rc == 77) {
		/* the script printed its reason */
		fprintf(stderr, "%s", out ? out : "SKIP: walkthrough\n");
		free(out);
		return;
	}
	ck_assert_msg(rc == 0, "walkthrough.sh exit %d:\n%s", rc, out ? out : "");
	ck_assert_msg(out && strstr(out, "ok: the README's steps work as written"), "%s", out);
	free(out);
}
END_TEST

Suite *suite_walkthrough(void);
Suite *suite_walkthrough(void)
{
	Suite *s = suite_create("walkthrough");
	TCase *tc = tcase_create("readme");

	tcase_set_timeout(tc, 240);
	tcase_add_test(tc, test_readme_walkthrough);
	suite_add_tcase(s, tc);
	return s;
}
