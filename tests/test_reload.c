/* test_reload.c - keibifsd's keys while it runs: SIGHUP re-reads the
 * authorized keys and the pre-shared key without dropping sessions, ends
 * the sessions of a key that was removed, and the server keeps running
 * (contrib/keibifsd.service's ExecReload sends SIGHUP). The server refuses
 * a pre-shared key file that group or others may read, with the client's
 * message.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "keys.h"
#include "noise.h"
#include "rpc.h"
#include "th.h"
#include "th_mount.h"
#include "th_server.h"
#include "util.h"

static struct th_server ts;
static struct th_mount tm;
static struct kb_rpc *RB, *R1;

static void teardown(void)
{
	kb_rpc_free(RB);
	kb_rpc_free(R1);
	RB = R1 = NULL;
	th_mount_stop(&tm);
	th_server_cleanup(&ts);
}

/* A new key pair at ts.dir/NAME; its public line appended to authorized
 * when `add`. */
static void new_key(const char *name, uint8_t priv[32], char *publine, size_t cap)
{
	struct kb_noise_rng *rng = NULL;
	char path[PATH_MAX], err[256];
	uint8_t pub[32];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", ts.dir, name);
	ck_assert_int_eq(kb_noise_rng_new(&rng), 0);
	ck_assert_int_eq(kb_key_generate(path, false, rng, pub, err, sizeof(err)), 0);
	kb_noise_rng_free(rng);
	ck_assert_int_eq(kb_key_load_private(path, priv, pub, err, sizeof(err)), 0);
	snprintf(path + strlen(path), sizeof(path) - strlen(path), ".pub");
	f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	ck_assert_ptr_nonnull(fgets(publine, (int)cap, f));
	fclose(f);
}

/* authorized := the given lines (each ending in \n) */
static void write_authorized(const char *a, const char *b)
{
	FILE *f = fopen(ts.authorized, "w");

	ck_assert_ptr_nonnull(f);
	fprintf(f, "%s%s", a ? a : "", b ? b : "");
	ck_assert_int_eq(fclose(f), 0);
}

static void hup_and_wait(const char *logline)
{
	ck_assert_int_eq(kill(ts.pid, SIGHUP), 0);
	ck_assert_msg(th_wait_file_contains(ts.log, logline, 10000), "no '%s' in %s", logline,
		      ts.log);
	ck_assert_int_eq(kill(ts.pid, 0), 0); /* still running */
}

START_TEST(test_sighup_adds_and_removes_keys)
{
	char a_line[512], b_line[512], err[256], *out = NULL;
	uint8_t b_priv[32];
	kb_Entry root;
	uint64_t n = 0;
	FILE *f;
	int fd;

	if (!th_fuse_available("reload"))
		return;
	ck_assert_int_eq(th_server_start(&ts, 0, NULL), 0);
	f = fopen(ts.authorized, "r");
	ck_assert_ptr_nonnull(f);
	ck_assert_ptr_nonnull(fgets(a_line, sizeof(a_line), f)); /* key A: the test key */
	fclose(f);
	ck_assert_int_eq(th_write_pattern(th_server_path(&ts, "f"), 100, 1, 0644), 0);
	/* A: a mount; B: not authorized yet */
	ck_assert_int_eq(th_mount_start(&tm, &ts, "/", "timeout=3"), 0);
	new_key("b.key", b_priv, b_line, sizeof(b_line));
	ck_assert_int_ne(th_server_connect_as(&ts, b_priv, 1, &RB, &root, err, sizeof(err)), 0);
	RB = NULL;

	write_authorized(a_line, b_line);
	hup_and_wait("reloaded keys: 2 authorized");
	ck_assert_msg(th_server_connect_as(&ts, b_priv, 1, &RB, &root, err, sizeof(err)) == 0,
		      "B after reload: %s", err);
	ck_assert_int_eq(th_lookup(RB, root.node, "f", &n), 0);
	ck_assert_int_eq(th_sh_out(&out, "cat '%s/f' > /dev/null", tm.mnt), 0); /* A carries on */
	free(out);

	write_authorized(b_line, NULL);
	hup_and_wait("ended 1 session");
	/* A's session is gone and its key refused: its next change fails */
	{
		char p[PATH_MAX + 16];

		snprintf(p, sizeof(p), "%s/new-by-a", tm.mnt);
		fd = open(p, O_CREAT | O_WRONLY, 0644);
		ck_assert_int_lt(fd, 0);
		ck_assert_int_eq(access(th_server_path(&ts, "new-by-a"), F_OK), -1);
	}
	/* B's session was not touched */
	ck_assert_int_eq(th_lookup(RB, root.node, "f", NULL), 0);
	ck_assert_int_eq(kill(ts.pid, 0), 0);
	ck_assert_msg(th_wait_file_contains(ts.log, "no longer authorized", 0) ||
			      th_wait_file_contains(ts.log, "is not authorized", 0),
		      "A's reconnect was not refused (log %s)", ts.log);
	/* and a clean stop afterwards */
	{
		int st = th_server_stop(&ts);

		ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "exit status %d", st);
	}
}
END_TEST

static int connect_psk(const uint8_t psk[32], struct kb_rpc **out)
{
	struct kb_keyset *trust = NULL;
	struct kb_rpc_cfg cfg = {
		.host = "127.0.0.1",
		.port = ts.port_str,
		.path = "/",
		.conns = 1,
		.identity = ts.client_priv,
		.timeout_ms = 3000,
		.psk = psk,
		.noreconnect = true,
	};
	kb_Entry root;
	char err[256];
	bool ro;
	int ret = kb_keyset_new(&trust);

	if (!ret)
		ret = kb_keyset_add(trust, ts.server_pub, 0);
	cfg.trust = trust;
	if (!ret)
		ret = kb_rpc_new(out, &cfg, &root, &ro, err, sizeof(err));
	kb_keyset_free(trust);
	if (ret)
		*out = NULL;
	return ret;
}

static void write_psk(const char *path, const uint8_t psk[32], mode_t mode)
{
	char b64[64];
	FILE *f;

	kb_b64_encode(b64, psk, 32, 1);
	unlink(path);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fprintf(f, "%s\n", b64);
	ck_assert_int_eq(fclose(f), 0);
	ck_assert_int_eq(chmod(path, mode), 0);
}

START_TEST(test_psk_reload)
{
	uint8_t p1[32], p2[32];
	char path[PATH_MAX], *pdir = th_tmpdir("psk");
	const char *extra[] = {"--psk", path, NULL};

	memset(p1, 0x11, sizeof(p1));
	memset(p2, 0x22, sizeof(p2));
	ck_assert_ptr_nonnull(pdir);
	snprintf(path, sizeof(path), "%s/psk", pdir);
	write_psk(path, p1, 0600);
	ck_assert_int_eq(th_server_start(&ts, 0, extra), 0);
	ck_assert_int_eq(connect_psk(p1, &R1), 0);
	write_psk(path, p2, 0600);
	hup_and_wait("ended 0 sessions");
	ck_assert_int_ne(connect_psk(p1, &RB), 0);
	ck_assert_int_eq(connect_psk(p2, &RB), 0);
	{ /* the session made with the old key carries on */
		kb_Request q = kb_Request_init_zero;

		q.op = kb_Op_PING;
		ck_assert_int_eq(th_call(R1, &q, NULL, 0, NULL), 0);
	}
	/* a psk file others may read: refused on reload, the old key stays */
	write_psk(path, p1, 0644);
	hup_and_wait("readable by others (chmod 600 it); keeping the current keys");
	kb_rpc_free(RB);
	ck_assert_int_eq(connect_psk(p2, &RB), 0);
	th_sh("rm -rf '%s'", pdir);
	free(pdir);
}
END_TEST

/* The server refuses a group/other-readable psk at start, in the client's
 * words. */
START_TEST(test_psk_mode_refused)
{
	char path[PATH_MAX], *out = NULL, want[PATH_MAX + 64];
	uint8_t p[32];
	int st;

	memset(p, 0x33, sizeof(p));
	ck_assert_int_eq(th_server_prepare(&ts, 0), 0);
	snprintf(path, sizeof(path), "%s/psk", ts.dir);
	write_psk(path, p, 0640);
	st = th_sh_out(&out,
		       "'%s' --share '%s' --key '%s' --authorized '%s' --listen 127.0.0.1:%d "
		       "--foreground --psk '%s' & p=$!; sleep 1; kill $p 2>/dev/null && "
		       "echo STILL-RUNNING; wait $p",
		       th_bin("keibifsd"), ts.share, ts.server_key, ts.authorized, ts.port, path);
	snprintf(want, sizeof(want),
		 "keibifsd: pre-shared key %s: readable by others (chmod 600 it)", path);
	ck_assert_msg(strstr(out, want) && !strstr(out, "STILL-RUNNING"), "status %d: %s", st, out);
	free(out);
	/* the client says the same */
	{
		char err[512];
		uint8_t k[32];

		ck_assert_int_eq(kb_psk_load(path, k, err, sizeof(err)), -EPERM);
		ck_assert_str_eq(err, want + strlen("keibifsd: "));
	}
}
END_TEST

Suite *suite_reload(void);
Suite *suite_reload(void)
{
	Suite *s = suite_create("reload");
	TCase *tc = tcase_create("reload");

	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_sighup_adds_and_removes_keys);
	tcase_add_test(tc, test_psk_reload);
	tcase_add_test(tc, test_psk_mode_refused);
	suite_add_tcase(s, tc);
	return s;
}
