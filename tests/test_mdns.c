/* test_mdns.c - LAN discovery: keibifsd --announce in one network namespace,
 * keibifs --browse and a mount by name (mdns:NAME) from another, joined by
 * a veth pair; each namespace has its own dbus-daemon and avahi-daemon,
 * started here and stopped by PID (avahi-daemon in a private mount
 * namespace too, for its pid file). Needs root, ip, nsenter, unshare,
 * dbus-daemon and avahi-daemon: without them the test says SKIP and why.
 * The "no avahi-daemon" errors are checked everywhere. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keys.h"
#include "th.h"
#include "th_mount.h"

/* Set by the unchecked setup, in the runner: names of this run's network
 * namespaces, which its teardown deletes even when a test failed midway
 * (the daemons are stopped by PID by the runner's own cleanup). */
static int ns_tag;

static void ns_setup(void)
{
	ns_tag = (int)getpid();
}

static void ns_teardown(void)
{
	th_sh("ip netns del kbmdA-%d 2>/dev/null; ip netns del kbmdB-%d 2>/dev/null; true", ns_tag,
	      ns_tag);
}

struct mdns_env {
	char ns[2][32]; /* kbmdA-PID, kbmdB-PID */
	bool ns_made[2];
	char *dir;             /* owned temp dir */
	char bus[2][PATH_MAX]; /* the D-Bus socket of each namespace */
	char log[4][PATH_MAX]; /* dbus 0/1, avahi 0/1 */
	pid_t dbus[2], avahi[2], srv;
	char net[24];  /* 10.X.Y */
	char name[40]; /* the announced service name */
	struct th_server ts;
};

static bool tool(const char *t)
{
	return th_sh("command -v %s >/dev/null 2>&1", t) == 0;
}

static void env_stop(struct mdns_env *e)
{
	if (e->srv > 0)
		th_stop(e->srv, 5000);
	for (int i = 0; i < 2; i++) {
		if (e->avahi[i] > 0)
			th_stop(e->avahi[i], 5000);
		if (e->dbus[i] > 0)
			th_stop(e->dbus[i], 5000);
		if (e->ns_made[i])
			th_sh("ip netns del %s", e->ns[i]); /* takes its veth end along */
	}
	e->srv = e->avahi[0] = e->avahi[1] = e->dbus[0] = e->dbus[1] = 0;
	e->ns_made[0] = e->ns_made[1] = false;
	th_server_cleanup(&e->ts);
	if (e->dir && !getenv("KB_KEEP_TMP"))
		th_sh("rm -rf '%s'", e->dir);
	free(e->dir);
	e->dir = NULL;
}

static bool netns_up(struct mdns_env *e)
{
	int pid = ns_tag;

	snprintf(e->net, sizeof(e->net), "10.%d.%d", 200 + pid % 50, (pid / 50) % 250);
	for (int i = 0; i < 2; i++) {
		snprintf(e->ns[i], sizeof(e->ns[i]), "kbmd%c-%d", 'A' + i, pid);
		if (th_sh("ip netns add %s", e->ns[i]))
			return false;
		e->ns_made[i] = true;
	}
	return th_sh("ip link add kbva%d netns %s type veth peer name kbvb%d netns %s", pid,
		     e->ns[0], pid, e->ns[1]) == 0 &&
	       th_sh("ip -n %s addr add %s.1/24 dev kbva%d && ip -n %s link set kbva%d up && "
		     "ip -n %s link set lo up",
		     e->ns[0], e->net, pid, e->ns[0], pid, e->ns[0]) == 0 &&
	       th_sh("ip -n %s addr add %s.2/24 dev kbvb%d && ip -n %s link set kbvb%d up && "
		     "ip -n %s link set lo up",
		     e->ns[1], e->net, pid, e->ns[1], pid, e->ns[1]) == 0;
}

static bool write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	if (!f)
		return false;
	fputs(text, f);
	return fclose(f) == 0;
}

/* dbus-daemon and avahi-daemon for namespace i. */
static bool daemons_up(struct mdns_env *e, int i)
{
	char conf[PATH_MAX], aconf[PATH_MAX], text[2048], env[PATH_MAX + 40], netarg[64],
		shcmd[PATH_MAX + 200];
	int pid = ns_tag;

	snprintf(e->bus[i], sizeof(e->bus[i]), "%s/bus%d", e->dir, i);
	snprintf(conf, sizeof(conf), "%s/dbus%d.conf", e->dir, i);
	snprintf(text, sizeof(text),
		 "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus Bus Configuration "
		 "1.0//EN\"\n"
		 " \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n"
		 "<busconfig><listen>unix:path=%s</listen><auth>EXTERNAL</auth>\n"
		 "<policy context=\"default\"><allow user=\"*\"/><allow own=\"*\"/>\n"
		 "<allow send_destination=\"*\" eavesdrop=\"true\"/><allow eavesdrop=\"true\"/>\n"
		 "</policy></busconfig>\n",
		 e->bus[i]);
	if (!write_text(conf, text))
		return false;
	snprintf(netarg, sizeof(netarg), "--net=/run/netns/%s", e->ns[i]);
	snprintf(e->log[i], sizeof(e->log[i]), "%s/dbus%d.log", e->dir, i);
	{
		char cfarg[PATH_MAX + 20];
		char *argv[] = {"/usr/bin/nsenter", netarg, "dbus-daemon", "--nofork", cfarg, NULL};

		snprintf(cfarg, sizeof(cfarg), "--config-file=%s", conf);
		e->dbus[i] = th_spawn(argv, e->log[i]);
	}
	for (int w = 0; w < 5000 && access(e->bus[i], F_OK); w += 20)
		usleep(20000);
	if (e->dbus[i] <= 0 || access(e->bus[i], F_OK))
		return false;
	snprintf(aconf, sizeof(aconf), "%s/avahi%d.conf", e->dir, i);
	snprintf(text, sizeof(text),
		 "[server]\nhost-name=kbmdh%c-%d\nuse-ipv4=yes\nuse-ipv6=no\n"
		 "allow-interfaces=kbv%c%d\nenable-dbus=yes\nratelimit-interval-usec=1000000\n"
		 "ratelimit-burst=1000\n[wide-area]\nenable-wide-area=no\n"
		 "[publish]\npublish-hinfo=no\npublish-workstation=no\n",
		 'A' + i, pid, 'a' + i, pid);
	if (!write_text(aconf, text))
		return false;
	snprintf(env, sizeof(env), "DBUS_SYSTEM_BUS_ADDRESS=unix:path=%s", e->bus[i]);
	/* its own mount namespace: its pid file (/run/avahi-daemon) is private */
	snprintf(shcmd, sizeof(shcmd),
		 "mkdir -p /run/avahi-daemon && mount -t tmpfs kbmdns /run/avahi-daemon && "
		 "exec avahi-daemon --no-drop-root --no-chroot --no-rlimits -f '%s'",
		 aconf);
	snprintf(e->log[2 + i], sizeof(e->log[2 + i]), "%s/avahi%d.log", e->dir, i);
	{
		char *argv[] = {"/usr/bin/nsenter",
				netarg,
				"env",
				env,
				"unshare",
				"-m",
				"sh",
				"-c",
				shcmd,
				NULL};

		e->avahi[i] = th_spawn(argv, e->log[2 + i]);
	}
	return e->avahi[i] > 0 &&
	       th_wait_file_contains(e->log[2 + i], "Server startup complete", 15000);
}

/* Run a shell command inside namespace i with its bus; output in *out. */
static int in_ns(struct mdns_env *e, int i, char **out, const char *cmd)
{
	return th_sh_out(out,
			 "nsenter --net=/run/netns/%s env DBUS_SYSTEM_BUS_ADDRESS=unix:path=%s "
			 "%s 2>&1",
			 e->ns[i], e->bus[i], cmd);
}

static void skip(struct mdns_env *e, const char *why)
{
	char *out = NULL;

	fprintf(stderr, "SKIP test_mdns: %s\n", why);
	for (int i = 0; i < 4; i++)
		if (e->log[i][0] && !th_sh_out(&out, "tail -n 5 '%s' 2>/dev/null", e->log[i]) &&
		    out && *out)
			fprintf(stderr, "  %s:\n%s", e->log[i], out);
	free(out);
	env_stop(e);
}

START_TEST(test_announce_browse_mount)
{
	struct mdns_env e;
	char cmd[4 * PATH_MAX], fpr[KB_FPR_LEN], *out = NULL, empty[PATH_MAX];

	memset(&e, 0, sizeof(e));
	if (!th_fuse_available("test_mdns"))
		return;
	if (!tool("ip") || !tool("nsenter") || !tool("unshare") || !tool("dbus-daemon") ||
	    !tool("avahi-daemon")) {
		fprintf(stderr, "SKIP test_mdns: needs ip, nsenter, unshare, dbus-daemon and "
				"avahi-daemon (scripts/install-deps.sh)\n");
		return;
	}
	e.dir = th_tmpdir("mdns");
	ck_assert_ptr_nonnull(e.dir);
	if (!netns_up(&e))
		return skip(&e, "cannot make two network namespaces joined by a veth pair here");
	if (!daemons_up(&e, 0) || !daemons_up(&e, 1))
		return skip(&e, "dbus-daemon or avahi-daemon would not start in a namespace");

	/* the server, in namespace A, announced */
	ck_assert_int_eq(th_server_prepare(&e.ts, 0), 0);
	ck_assert_int_eq(th_write_pattern(th_server_path(&e.ts, "hello.bin"), 300000, 5, 0644), 0);
	snprintf(e.name, sizeof(e.name), "kbtest-%d", ns_tag);
	{
		char netarg[64], env[PATH_MAX + 40];
		char *argv[] = {"/usr/bin/nsenter",
				netarg,
				"env",
				env,
				(char *)th_bin("keibifsd"),
				"--share",
				e.ts.share,
				"--key",
				e.ts.server_key,
				"--authorized",
				e.ts.authorized,
				"--listen",
				"0.0.0.0:26431",
				"--foreground",
				"--announce",
				e.name,
				NULL};

		snprintf(netarg, sizeof(netarg), "--net=/run/netns/%s", e.ns[0]);
		snprintf(env, sizeof(env), "DBUS_SYSTEM_BUS_ADDRESS=unix:path=%s", e.bus[0]);
		e.srv = th_spawn(argv, e.ts.log);
	}
	ck_assert_int_gt(e.srv, 0);
	ck_assert_msg(th_wait_file_contains(e.ts.log, "announced as", 15000),
		      "no announcement (see %s)", e.ts.log);
	kb_key_fingerprint(e.ts.server_pub, fpr);

	/* browse from namespace B: trusted by known_peers */
	snprintf(cmd, sizeof(cmd), "%s --browse -o known_peers=%s", th_bin("keibifs"),
		 e.ts.known_peers);
	ck_assert_int_eq(in_ns(&e, 1, &out, cmd), 0);
	ck_assert_msg(strstr(out, e.name) && strstr(out, "port 26431") && strstr(out, fpr) &&
			      strstr(out, ": trusted") && strstr(out, "share share") &&
			      strstr(out, e.net),
		      "browse said: %s", out);
	free(out);
	/* ... and not trusted by an empty one: the peer= to add is shown */
	snprintf(empty, sizeof(empty), "%s/empty_known", e.dir);
	ck_assert(write_text(empty, ""));
	chmod(empty, 0600);
	snprintf(cmd, sizeof(cmd), "%s --browse -o known_peers=%s", th_bin("keibifs"), empty);
	ck_assert_int_eq(in_ns(&e, 1, &out, cmd), 0);
	ck_assert_msg(strstr(out, "not trusted yet") && strstr(out, "-o peer=") && strstr(out, fpr),
		      "browse said: %s", out);
	free(out);

	/* mount by name from namespace B (its network only: the mount is ours) */
	{
		struct th_mount m = {0};
		char netarg[64], env[PATH_MAX + 40], remote[80], opts[3 * PATH_MAX];
		char *argv[] = {"/usr/bin/nsenter",
				netarg,
				"env",
				env,
				(char *)th_bin("keibifs"),
				remote,
				m.mnt,
				"-f",
				"-o",
				opts,
				NULL};

		m.dir = th_tmpdir("mdnsmnt");
		snprintf(m.mnt, sizeof(m.mnt), "%s/mnt", m.dir);
		snprintf(m.log, sizeof(m.log), "%s/client.log", m.dir);
		ck_assert_int_eq(mkdir(m.mnt, 0755), 0);
		snprintf(netarg, sizeof(netarg), "--net=/run/netns/%s", e.ns[1]);
		snprintf(env, sizeof(env), "DBUS_SYSTEM_BUS_ADDRESS=unix:path=%s", e.bus[1]);
		snprintf(remote, sizeof(remote), "mdns:%s:/", e.name);
		snprintf(opts, sizeof(opts), "identity=%s,known_peers=%s", e.ts.client_key,
			 e.ts.known_peers);
		th_track_mount(m.mnt);
		m.pid = th_spawn(argv, m.log);
		for (int w = 0; w < 15000 && !th_is_mounted(m.mnt); w += 20)
			usleep(20000);
		ck_assert_msg(th_is_mounted(m.mnt), "mount by name failed (see %s)", m.log);
		ck_assert_int_eq(
			th_sh("cmp '%s' '%s/hello.bin'", th_server_path(&e.ts, "hello.bin"), m.mnt),
			0);
		ck_assert(th_wait_file_contains(m.log, e.net, 1000)); /* connected there */
		th_mount_stop(&m);
	}
	env_stop(&e);
}
END_TEST

/* Without a daemon (no bus at that address): one clear line, exit 1. */
START_TEST(test_no_daemon)
{
	char *out = NULL, *mnt = th_tmpdir("mdnsnone");
	struct th_server ts;
	int st;

	ck_assert_int_eq(th_server_prepare(&ts, 0), 0); /* keys only */
	st = th_sh_out(&out, "env DBUS_SYSTEM_BUS_ADDRESS=unix:path=/nonexistent/kbbus %s --browse",
		       th_bin("keibifs"));
	ck_assert_int_ne(st, 0);
	ck_assert_msg(out && strstr(out, "avahi-daemon is not running") &&
			      strchr(out, '\n') == out + strlen(out) - 1,
		      "said: %s", out ? out : "");
	free(out);
	out = NULL;
	st = th_sh_out(&out,
		       "env DBUS_SYSTEM_BUS_ADDRESS=unix:path=/nonexistent/kbbus %s "
		       "mdns:nothere:/ '%s' -f -o identity=%s,known_peers=%s",
		       th_bin("keibifs"), mnt, ts.client_key, ts.known_peers);
	ck_assert_int_ne(st, 0);
	ck_assert_msg(out && strstr(out, "avahi-daemon is not running"), "said: %s",
		      out ? out : "");
	ck_assert(!th_is_mounted(mnt));
	free(out);
	th_sh("rm -rf '%s'", mnt);
	free(mnt);
	th_server_cleanup(&ts);
}
END_TEST

Suite *suite_mdns(void);
Suite *suite_mdns(void)
{
	Suite *s = suite_create("mdns");
	TCase *tc = tcase_create("mdns");

	tcase_set_timeout(tc, 120);
	tcase_add_unchecked_fixture(tc, ns_setup, ns_teardown);
	tcase_add_test(tc, test_no_daemon);
	tcase_add_test(tc, test_announce_browse_mount);
	suite_add_tcase(s, tc);
	return s;
}
