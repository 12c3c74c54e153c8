/* test_proxy.c - -o proxy_command: a mount whose connections run a command
 * (socat to the server) and speak over its stdin/stdout; the command's
 * stderr in the client's log; new commands after the old ones are killed;
 * nothing left behind (no zombie, no process after the unmount). */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proxy.h"
#include "th.h"
#include "th_mount.h"

#define MAXPIDS 64

START_TEST(test_expand)
{
	char out[64], err[128];

	ck_assert_int_gt(kb_proxy_expand(out, sizeof(out), "ssh -W %h:%p j %%p", "srv", "26431",
					 err, sizeof(err)),
			 0);
	ck_assert_str_eq(out, "ssh -W srv:26431 j %p");
	ck_assert_int_eq(kb_proxy_expand(out, sizeof(out), "nc %r", "srv", "1", err, sizeof(err)),
			 -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "%r"));
	ck_assert_int_eq(kb_proxy_expand(out, sizeof(out), "x %", "srv", "1", err, sizeof(err)),
			 -EINVAL);
	ck_assert_int_eq(kb_proxy_expand(out, 8, "%h%h%h", "srv", "1", err, sizeof(err)),
			 -ENAMETOOLONG);
	ck_assert(kb_proxy_host_ok("fe80::1"));
	ck_assert(kb_proxy_host_ok("peer-1.local"));
	ck_assert(!kb_proxy_host_ok("a;reboot"));
	ck_assert(!kb_proxy_host_ok("$(id)"));
	ck_assert(!kb_proxy_host_ok("-oProxyCommand=x"));
}
END_TEST

/* The pids the proxy commands wrote into dir (one file each). */
static unsigned read_pids(const char *dir, pid_t *pids)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	unsigned n = 0;

	ck_assert_ptr_nonnull(d);
	while ((e = readdir(d)) && n < MAXPIDS)
		if (!strncmp(e->d_name, "pid.", 4))
			pids[n++] = (pid_t)atoi(e->d_name + 4);
	closedir(d);
	return n;
}

/* Gone, or at least not a zombie waiting for us, within 5 s. */
static bool reaped(pid_t pid)
{
	char path[64], st[512];

	for (int waited = 0; waited < 5000; waited += 20) {
		FILE *f;
		char *rp;

		snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
		f = fopen(path, "r");
		if (!f)
			return true;
		st[0] = '\0';
		if (!fgets(st, sizeof(st), f))
			st[0] = '\0';
		fclose(f);
		rp = strrchr(st, ')');
		if (rp && rp[1] == ' ' && rp[2] != 'Z')
			return false; /* alive and running: not what we wait for */
		usleep(20000);
	}
	return false;
}

static bool gone(pid_t pid)
{
	for (int waited = 0; waited < 5000; waited += 20) {
		if (kill(pid, 0) < 0 && errno == ESRCH)
			return true;
		usleep(20000);
	}
	return false;
}

static bool socat_ok(void)
{
	if (th_sh("command -v socat >/dev/null 2>&1") == 0)
		return true;
	fprintf(stderr, "SKIP test_proxy: socat is not installed (scripts/install-deps.sh)\n");
	return false;
}

START_TEST(test_mount_through_proxy)
{
	struct th_server ts;
	struct th_mount m;
	char *piddir = th_tmpdir("proxypids"), opts[1024], *out = NULL;
	pid_t first[MAXPIDS], all[MAXPIDS];
	unsigned n1, n2;

	if (!th_fuse_available("test_proxy") || !socat_ok())
		return;
	ck_assert_ptr_nonnull(piddir);
	ck_assert_int_eq(th_server_start(&ts, 0, NULL), 0);
	ck_assert_int_eq(th_write_pattern(th_server_path(&ts, "a.bin"), 6u << 20, 1, 0644), 0);
	snprintf(opts, sizeof(opts),
		 "conns=3,proxy_command=echo $$ >%s/pid.$$; echo hello-from-proxy >&2; "
		 "exec socat - TCP:%%h:%%p",
		 piddir);
	ck_assert_int_eq(th_mount_start(&m, &ts, "/", opts), 0);

	/* read and write through the proxies */
	ck_assert_int_eq(th_sh("cmp '%s' '%s/a.bin'", th_server_path(&ts, "a.bin"), m.mnt), 0);
	ck_assert_int_eq(
		th_sh("head -c 3000000 /dev/urandom >'%s/w.bin' && sync '%s/w.bin'", m.mnt, m.mnt),
		0);
	ck_assert_int_eq(th_sh("cmp '%s' '%s/w.bin'", th_server_path(&ts, "w.bin"), m.mnt), 0);
	n1 = read_pids(piddir, first);
	ck_assert_uint_eq(n1, 3); /* one per connection */
	ck_assert(th_wait_file_contains(m.log, "proxy_command: hello-from-proxy", 5000));

	/* kill every proxy: the mount runs new ones and keeps working */
	for (unsigned i = 0; i < n1; i++)
		ck_assert_int_eq(kill(first[i], SIGKILL), 0);
	ck_assert_int_eq(th_write_pattern(th_server_path(&ts, "b.bin"), 5u << 20, 2, 0644), 0);
	ck_assert_int_eq(th_sh("cmp '%s' '%s/b.bin'", th_server_path(&ts, "b.bin"), m.mnt), 0);
	ck_assert_int_eq(th_sh("cmp '%s' '%s/a.bin'", th_server_path(&ts, "a.bin"), m.mnt), 0);
	ck_assert(th_wait_file_contains(m.log, "reconnected to", 10000));
	for (int waited = 0; waited < 10000 && read_pids(piddir, all) < 2 * n1; waited += 50)
		usleep(50000);
	n2 = read_pids(piddir, all);
	ck_assert_uint_ge(n2, 2 * n1); /* a new command per connection */
	for (unsigned i = 0; i < n1; i++)
		ck_assert_msg(reaped(first[i]), "killed proxy %d not reaped", (int)first[i]);

	/* the unmount ends the client's proxies */
	th_mount_stop(&m);
	n2 = read_pids(piddir, all);
	for (unsigned i = 0; i < n2; i++)
		ck_assert_msg(gone(all[i]), "proxy %d outlived the unmount", (int)all[i]);
	th_server_cleanup(&ts);
	th_sh_out(&out, "rm -rf '%s'", piddir);
	free(out);
	free(piddir);
}
END_TEST

START_TEST(test_proxy_fails)
{
	struct th_server ts;
	char *out = NULL;
	bool left = false;
	int st;

	if (!th_fuse_available("test_proxy"))
		return;
	ck_assert_int_eq(th_server_start(&ts, 0, NULL), 0);
	st = th_mount_expect_fail(&ts, "/", "proxy_command=echo relay-said-no >&2; exit 3", &out,
				  &left);
	ck_assert_int_ne(st, 0);
	ck_assert(!left);
	ck_assert_ptr_nonnull(out);
	ck_assert_msg(strstr(out, "relay-said-no"), "no stderr line in: %s", out);
	ck_assert_msg(strstr(out, "through proxy_command"), "no clear error in: %s", out);
	free(out);
	out = NULL;
	st = th_mount_expect_fail(&ts, "/", "proxy_command=nc %r %p", &out, &left);
	ck_assert_int_ne(st, 0);
	ck_assert_msg(out && strstr(out, "unknown escape"), "output: %s", out ? out : "");
	free(out);
	th_server_cleanup(&ts);
}
END_TEST

Suite *suite_proxy(void);
Suite *suite_proxy(void)
{
	Suite *s = suite_create("proxy");
	TCase *tc = tcase_create("proxy");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_expand);
	tcase_add_test(tc, test_mount_through_proxy);
	tcase_add_test(tc, test_proxy_fails);
	suite_add_tcase(s, tc);
	return s;
}
