/* runner.c - one Check runner for every suite (tests/test_*.c).
 * KB_TESTS=name,name limits the run to those suites. The last line printed
 * is Check's own summary. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "th.h"

#define KB_SUITE(n) Suite *suite_##n(void);
#include "suites.h"
#undef KB_SUITE

struct suite_entry {
	const char *name;
	Suite *(*make)(void);
};

static const struct suite_entry suites[] = {
#define KB_SUITE(n) {#n, suite_##n},
#include "suites.h"
#undef KB_SUITE
};

static int wanted(const char *name)
{
	const char *sel = getenv("KB_TESTS");
	size_t n = strlen(name);

	if (!sel || !*sel)
		return 1;
	for (const char *p = sel; p && *p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL)
		if (!strncmp(p, name, n) && (p[n] == ',' || p[n] == '\0'))
			return 1;
	return 0;
}

int main(void)
{
	SRunner *sr = NULL;
	int failed;

	th_run_begin();
	for (size_t i = 0; i < sizeof(suites) / sizeof(suites[0]); i++) {
		if (!wanted(suites[i].name))
			continue;
		if (!sr)
			sr = srunner_create(suites[i].make());
		else
			srunner_add_suite(sr, suites[i].make());
	}
	if (!sr) {
		fprintf(stderr, "runner: no suite selected\n");
		th_run_end();
		return 1;
	}
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	th_run_end();
	return failed ? 1 : 0;
}
