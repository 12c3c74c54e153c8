/* test_rekey.c - time-based rekey end to end: a keibifsd and an rpc client
 * with a short period (KEIBIFS_REKEY_MS, which can only shorten the 2
 * minutes) keep one connection working across several rekeys, and the
 * channel counters show they happened by time, not by volume.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "chan.h"
#include "rpc.h"
#include "th.h"
#include "th_server.h"

static struct th_server ts;
static struct kb_rpc *R;

static void teardown(void)
{
	kb_rpc_free(R);
	R = NULL;
	th_server_cleanup(&ts);
}

START_TEST(test_rekey_by_time_end_to_end)
{
	struct kb_rpc_stats st;
	kb_Entry root;
	uint64_t n;
	bool ro;

	setenv(KB_CHAN_REKEY_ENV, "100", 1); /* the server inherits it */
	ck_assert_uint_eq(kb_chan_rekey_period(), 100000000ull);
	ck_assert_int_eq(th_server_start(&ts, 0, NULL), 0);
	ck_assert_int_eq(th_write_pattern(th_server_path(&ts, "f"), 10, 1, 0644), 0);
	ck_assert_int_eq(th_server_connect(&ts, 1, &R, &root, &ro), 0);
	for (int i = 0; i < 8; i++) {
		usleep(150 * 1000); /* past the period: both directions rekey */
		ck_assert_int_eq(th_lookup(R, root.node, "f", &n), 0);
		ck_assert_int_eq(kb_rpc_forget(R, n, 1), 0);
	}
	kb_rpc_stats(R, &st);
	ck_assert_uint_eq(st.reconnects, 0);
	ck_assert_uint_eq(st.conns_up, 1);
	/* each lookup after a pause went out under a new key, and its reply
	 * came back under one: 16 at least, none by volume */
	ck_assert_msg(st.rekeys_time >= 8, "%llu rekeys by time",
		      (unsigned long long)st.rekeys_time);
	ck_assert_uint_eq(st.rekeys, st.rekeys_time);
	/* the 2-minute default cannot be raised from the environment */
	setenv(KB_CHAN_REKEY_ENV, "99999999", 1);
	ck_assert_uint_eq(kb_chan_rekey_period(), KB_CHAN_REKEY_NS);
	unsetenv(KB_CHAN_REKEY_ENV);
}
END_TEST

Suite *suite_rekey(void);
Suite *suite_rekey(void)
{
	Suite *s = suite_create("rekey");
	TCase *tc = tcase_create("rekey");

	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_rekey_by_time_end_to_end);
	suite_add_tcase(s, tc);
	return s;
}
