/* test_privilege.c - no root by accident (issue 11): a root keibifsd in the
 * default ownership mode hands out no setuid/setgid bits and no files of
 * other users, with or without a mount; a client mount with allow_other
 * lets the kernel check permissions; every mount is nosuid,nodev unless
 * owners=preserve asks otherwise, also as mount.fuse3 starts it (it adds
 * dev,suid); a node whose directory was moved out of the share on the
 * server creates nothing outside. Needs root (skipped loudly otherwise).
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kbfs.h"
#include "rpc.h"
#include "th.h"
#include "th_mount.h"
#include "th_server.h"

#define OTHER 1234
#define NOBODY 65534

static struct th_server ts;
static struct th_mount tm;
static struct kb_rpc *R;
static struct kb_rpc_result *res;
static kb_Entry root;

static void teardown(void)
{
	th_session_free(&R, &res);
	th_mount_stop(&tm);
	th_server_cleanup(&ts);
}

static bool need_root(const char *what, bool mount)
{
	if (geteuid()) {
		fprintf(stderr, "\n*** SKIP: privilege %s: not root ***\n\n", what);
		return false;
	}
	return !mount || th_fuse_available(what);
}

/* server side: a share path's mode (all bits) and owner */
static mode_t smode(const char *rel)
{
	struct stat st;

	ck_assert_msg(lstat(th_server_path(&ts, rel), &st) == 0, "%s: %s", rel, strerror(errno));
	return st.st_mode & 07777;
}

static void sowner(const char *rel, uid_t uid, gid_t gid)
{
	struct stat st;

	ck_assert_int_eq(lstat(th_server_path(&ts, rel), &st), 0);
	ck_assert_msg(st.st_uid == uid && st.st_gid == gid, "%s: %u:%u, expected %u:%u", rel,
		      (unsigned)st.st_uid, (unsigned)st.st_gid, (unsigned)uid, (unsigned)gid);
}

static const char *mp(const char *rel)
{
	static __thread char p[2 * PATH_MAX];

	snprintf(p, sizeof(p), "%s/%s", tm.mnt, rel);
	return p;
}

static void connect_rpc(void)
{
	bool ro;

	ck_assert_int_eq(th_server_connect(&ts, 1, &R, &root, &ro), 0);
	res = kb_rpc_result_new();
	ck_assert_ptr_nonnull(res);
}

#define Q(var, o) TH_REQ(var, o)

/* ---- 1. the server: setuid/setgid and chown outside owners mode ------ */

/* Through a real mount by root, in the default owners=map mode. */
START_TEST(test_mount_no_suid_no_chown)
{
	int fd;

	if (!need_root("squash via mount", true))
		return;
	ck_assert_int_eq(th_server_start(&ts, 0, NULL), 0);
	/* set up on the server: a setuid-root program, a file of another user */
	ck_assert_int_eq(th_write_pattern(th_server_path(&ts, "suidroot"), 100, 1, 0755), 0);
	ck_assert_int_eq(chmod(th_server_path(&ts, "suidroot"), 04755), 0);
	ck_assert_int_eq(th_write_pattern(th_server_path(&ts, "sgidtrunc"), 100, 2, 0755), 0);
	ck_assert_int_eq(chmod(th_server_path(&ts, "sgidtrunc"), 06755), 0);
	ck_assert_int_eq(th_write_pattern(th_server_path(&ts, "theirs"), 10, 3, 0644), 0);
	ck_assert_int_eq(chown(th_server_path(&ts, "theirs"), OTHER, OTHER), 0);
	ck_assert_int_eq(th_mount_start(&tm, &ts, "/", NULL), 0);
	umask(0);

	fd = open(mp("new"), O_CREAT | O_EXCL | O_WRONLY, 04755);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(close(fd), 0);
	ck_assert_uint_eq(smode("new"), 0755);
	ck_assert_int_eq(chmod(mp("new"), 06777), 0);
	ck_assert_uint_eq(smode("new"), 0777);
	ck_assert_int_eq(mkdir(mp("dir"), 02777), 0);
	ck_assert_uint_eq(smode("dir"), 0777);
	ck_assert_int_eq(chmod(mp("dir"), 07777), 0);
	/* a directory the mount made: its chmod is written behind (kbfs_wb.h) */
	ck_assert_int_eq(th_sh("'%s' --sync '%s'", th_bin("keibifs"), tm.mnt), 0);
	ck_assert_uint_eq(smode("dir"), 01777);

	/* chown/chgrp: no change of owner or group (the server is root here) */
	ck_assert_int_eq(chown(mp("new"), OTHER, (gid_t)-1), -1);
	ck_assert_int_eq(errno, EPERM);
	ck_assert_int_eq(chown(mp("new"), (uid_t)-1, OTHER), -1);
	ck_assert_int_eq(errno, EPERM);
	ck_assert_int_eq(chown(mp("new"), 0, 0), 0); /* its own ids: a no-op */
	sowner("new", 0, 0);
	/* a server-side user's file is not taken for root */
	ck_assert_int_eq(chown(mp("theirs"), 0, (gid_t)-1), -1);
	ck_assert_int_eq(errno, EPERM);
	ck_assert_int_eq(chown(mp("theirs"), (uid_t)-1, 0), -1);
	ck_assert_int_eq(errno, EPERM);
	sowner("theirs", OTHER, OTHER);

	/* a write or truncation by root through the mount clears the bits */
	fd = open(mp("suidroot"), O_WRONLY | O_APPEND);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "x", 1), 1);
	ck_assert_int_eq(close(fd), 0);
	ck_assert_uint_eq(smode("suidroot"), 0755);
	ck_assert_int_eq(truncate(mp("sgidtrunc"), 10), 0);
	ck_assert_uint_eq(smode("sgidtrunc"), 0755);
}
END_TEST

static int create(uint64_t dir, const char *name, uint32_t mode)
{
	Q(q, CREATE);
	int ret;

	q.node = dir;
	snprintf(q.name, sizeof(q.name), "%s", name);
	q.flags = O_WRONLY;
	q.mode = mode;
	ret = th_call(R, &q, NULL, 0, res);
	if (!ret) {
		Q(r, RELEASE);
		r.node = res->resp.entry.node;
		r.fh = res->resp.fh;
		ck_assert_int_eq(th_call(R, &r, NULL, 0, NULL), 0);
	}
	return ret;
}

static int setattr(uint64_t node, uint32_t mask, uint32_t mode, uint32_t uid, uint32_t gid)
{
	Q(q, SETATTR);

	q.node = node;
	q.has_attr = true;
	q.set_mask = mask;
	q.attr.mode = mode;
	q.attr.uid = uid;
	q.attr.gid = gid;
	return th_call(R, &q, NULL, 0, res);
}

/* A hostile client speaking the protocol itself, on a root server in the
 * default mode; then the same requests with --allow-owners (unchanged). */
START_TEST(test_protocol_squash)
{
	uint64_t f = 0, fifo = 0;

	if (!need_root("squash via protocol", false))
		return;
	ck_assert_int_eq(th_server_start(&ts, 0, NULL), 0);
	connect_rpc();
	ck_assert_int_eq(create(root.node, "f", 06755), 0);
	ck_assert_uint_eq(smode("f"), 0755);
	ck_assert_int_eq(th_lookup(R, root.node, "f", &f), 0);
	ck_assert_int_eq(setattr(f, kb_SetMask_SET_MODE, 04777, 0, 0), 0);
	ck_assert_uint_eq(smode("f"), 0777);
	ck_assert_uint_eq(res->resp.attr.mode & 07777, 0777);
	{
		Q(q, MKNOD);
		q.node = root.node;
		strcpy(q.name, "fifo");
		q.mode = S_IFIFO | 06666;
		ck_assert_int_eq(th_call(R, &q, NULL, 0, res), 0);
		ck_assert_uint_eq(smode("fifo"), 0666);
		fifo = res->resp.entry.node;
		ck_assert_uint_ne(fifo, 0);
	}
	ck_assert_int_eq(setattr(f, kb_SetMask_SET_UID, 0, OTHER, 0), -EPERM);
	ck_assert_int_eq(setattr(f, kb_SetMask_SET_GID, 0, 0, OTHER), -EPERM);
	ck_assert_int_eq(setattr(f, kb_SetMask_SET_UID | kb_SetMask_SET_GID, 0, 0, 0), 0);
	sowner("f", 0, 0);
	/* creds sent by a session that may not use them change nothing */
	{
		Q(q, SETATTR);
		q.node = f;
		q.has_attr = true;
		q.set_mask = kb_SetMask_SET_UID;
		q.attr.uid = OTHER;
		q.has_creds = true;
		q.creds.uid = 0;
		q.creds.gid = 0;
		ck_assert_int_eq(th_call(R, &q, NULL, 0, res), -EPERM);
	}
	th_session_free(&R, &res);
	th_server_cleanup(&ts);

	/* owners mode: the caller's credentials decide, as before */
	{
		const char *extra[] = {"--allow-owners", NULL};

		ck_assert_int_eq(th_server_start(&ts, 0, extra), 0);
	}
	connect_rpc();
	ck_assert_int_eq(create(root.node, "g", 04755), 0);
	ck_assert_uint_eq(smode("g"), 04755);
	ck_assert_int_eq(th_lookup(R, root.node, "g", &f), 0);
	ck_assert_int_eq(setattr(f, kb_SetMask_SET_UID | kb_SetMask_SET_GID, 0, OTHER, OTHER), 0);
	sowner("g", OTHER, OTHER);
}
END_TEST

/* ---- 2. the client: allow_other, nosuid, nodev -------------------------- */

/* The FUSE arguments kbfs_opts_parse makes of -o opts, joined by spaces. */
static char *parsed(const char *opts, struct kbfs_opts *o)
{
	char *argv[] = {"keibifs", "h:/x", "/mnt/x", "-o", (char *)opts, NULL};
	struct fuse_args args;
	char err[256], *j;
	size_t len = 1;

	ck_assert_int_eq(kbfs_opts_parse(5, argv, o, &args, err, sizeof(err)), 0);
	for (int i = 0; i < args.argc; i++)
		len += strlen(args.argv[i]) + 1;
	j = calloc(1, len);
	for (int i = 0; i < args.argc; i++) {
		strcat(j, args.argv[i]);
		strcat(j, " ");
	}
	fuse_opt_free_args(&args);
	kbfs_opts_free(o);
	return j;
}

/* The last of suid/nosuid (dev/nodev) wins in libfuse's mount options:
 * is it `yes`? Options are split at spaces and commas, "-o" dropped. */
static bool last_is(const char *j, const char *yes, const char *no)
{
	char *copy = strdup(j), *save = NULL, *t;
	int last = 0; /* 1: yes, -1: no */

	for (t = strtok_r(copy, " ,", &save); t; t = strtok_r(NULL, " ,", &save)) {
		if (!strncmp(t, "-o", 2))
			t += 2;
		if (!strcmp(t, yes))
			last = 1;
		else if (!strcmp(t, no))
			last = -1;
	}
	free(copy);
	return last == 1;
}

START_TEST(test_opts_safety)
{
	struct kbfs_opts o;
	char *j;

	j = parsed("allow_other", &o);
	ck_assert_msg(strstr(j, "default_permissions") && last_is(j, "nosuid", "suid") &&
			      last_is(j, "nodev", "dev"),
		      "%s", j);
	free(j);
	j = parsed("rw,dev,suid", &o); /* as mount.fuse3 passes them */
	ck_assert_msg(!strstr(j, "default_permissions") && last_is(j, "nosuid", "suid") &&
			      last_is(j, "nodev", "dev"),
		      "%s", j);
	free(j);
	j = parsed("owners=preserve,dev,suid", &o);
	ck_assert_msg(strstr(j, "default_permissions") && last_is(j, "suid", "nosuid") &&
			      last_is(j, "dev", "nodev"),
		      "%s", j);
	free(j);
	j = parsed("owners=preserve,dev,suid,nosuid", &o);
	ck_assert_msg(last_is(j, "nosuid", "suid") && last_is(j, "dev", "nodev"), "%s", j);
	free(j);
	j = parsed("owners=preserve", &o);
	ck_assert_msg(last_is(j, "nosuid", "suid") && last_is(j, "nodev", "dev"), "%s", j);
	free(j);
}
END_TEST

/* Let user nobody reach the mount point: the test dirs are 0700. */
static void open_path_for_nobody(void)
{
	const char *state = getenv("KB_TEST_STATE");

	ck_assert_ptr_nonnull(state);
	ck_assert_int_eq(chmod(state, 0711), 0);
	ck_assert_int_eq(chmod(tm.dir, 0711), 0);
}

/* Run a shell command as uid/gid 65534 without groups; its exit status. */
static int as_nobody(char **out, const char *cmd)
{
	return th_sh_out(out, "setpriv --reuid=%d --regid=%d --clear-groups -- sh -c '%s'", NOBODY,
			 NOBODY, cmd);
}

START_TEST(test_allow_other_map_checks_permissions)
{
	char cmd[3 * PATH_MAX], *out = NULL;
	int st;

	if (!need_root("allow_other", true))
		return;
	if (access("/usr/bin/setpriv", X_OK)) {
		fprintf(stderr, "\n*** SKIP: allow_other: no setpriv ***\n\n");
		return;
	}
	ck_assert_int_eq(th_server_start(&ts, 0, NULL), 0);
	ck_assert_int_eq(th_write_pattern(th_server_path(&ts, "rootfile"), 4096, 5, 0644), 0);
	ck_assert_int_eq(th_mount_start(&tm, &ts, "/", "allow_other"), 0);
	open_path_for_nobody();
	/* control: nobody can reach and read it */
	snprintf(cmd, sizeof(cmd), "cat %s > /dev/null", mp("rootfile"));
	st = as_nobody(&out, cmd);
	ck_assert_msg(st == 0, "nobody cannot read: %s", out);
	free(out);
	snprintf(cmd, sizeof(cmd), "echo owned >> %s", mp("rootfile"));
	st = as_nobody(&out, cmd);
	ck_assert_msg(st != 0, "nobody appended to root's 0644 file: %s", out);
	free(out);
	snprintf(cmd, sizeof(cmd), "chmod 4777 %s", mp("rootfile"));
	st = as_nobody(&out, cmd);
	ck_assert_msg(st != 0, "nobody chmodded root's file: %s", out);
	free(out);
	snprintf(cmd, sizeof(cmd), "echo x > %s", mp("nobodys"));
	st = as_nobody(&out, cmd);
	ck_assert_msg(st != 0, "nobody created a file in root's 0755 share: %s", out);
	free(out);
	ck_assert_uint_eq(smode("rootfile"), 0644);
	{
		struct stat sb;

		ck_assert_int_eq(stat(th_server_path(&ts, "rootfile"), &sb), 0);
		ck_assert_int_eq(sb.st_size, 4096);
	}
}
END_TEST

/* The mount's options as /proc/self/mountinfo shows them (per-mount). */
static void mount_opts(const char *mnt, char *buf, size_t cap)
{
	char real[PATH_MAX], line[8192];
	FILE *f = fopen("/proc/self/mountinfo", "r");

	buf[0] = '\0';
	ck_assert_ptr_nonnull(realpath(mnt, real));
	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof(line), f)) {
		char *tok[6], *save = NULL, *p = line;
		int i;

		for (i = 0; i < 6 && (tok[i] = strtok_r(p, " ", &save)); i++)
			p = NULL;
		if (i == 6 && !strcmp(tok[4], real))
			snprintf(buf, cap, "%s", tok[5]);
	}
	fclose(f);
}

static bool has_opt(const char *opts, const char *o)
{
	size_t n = strlen(o);

	for (const char *p = opts; p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL)
		if (!strncmp(p, o, n) && (p[n] == ',' || p[n] == '\0'))
			return true;
	return false;
}

/* A setuid-root copy of id(1) in the share, run through the mount by
 * nobody: prints the effective uid. */
static void put_suid_id(void)
{
	ck_assert_int_eq(th_sh("cp /usr/bin/id '%s' && chmod 4755 '%s'",
			       th_server_path(&ts, "suid-id"), th_server_path(&ts, "suid-id")),
			 0);
}

static void check_nosuid_mount(const char *mnt)
{
	char opts[512], cmd[3 * PATH_MAX], *out = NULL;
	int st;

	mount_opts(mnt, opts, sizeof(opts));
	ck_assert_msg(has_opt(opts, "nosuid") && has_opt(opts, "nodev"), "mount options: %s", opts);
	snprintf(cmd, sizeof(cmd), "%s/suid-id -u", mnt);
	st = as_nobody(&out, cmd);
	ck_assert_msg(st == 0, "suid-id: %s", out);
	ck_assert_msg(atoi(out) == NOBODY, "a setuid file ran as euid %s", out);
	free(out);
}

/* mount.fuse3 runs `keibifs SRC MNT -o OPTS,dev,suid`: the client is
 * started exactly so (in the foreground, to stop it by pid). */
START_TEST(test_mount_fuse3_args_nosuid)
{
	char opts[512];

	if (!need_root("nosuid", true))
		return;
	ck_assert_int_eq(th_server_start(&ts, 0, NULL), 0);
	put_suid_id();
	ck_assert_int_eq(th_mount_start(&tm, &ts, "/", "allow_other,dev,suid"), 0);
	open_path_for_nobody();
	check_nosuid_mount(tm.mnt);
	th_mount_stop(&tm);

	/* owners=preserve with dev,suid asked: honoured (the control; it
	 * needs a server that acts as its callers, else the mount is refused) */
	th_server_cleanup(&ts);
	ck_assert_int_eq(th_server_start(&ts, 0, (const char *const[]){"--allow-owners", NULL}), 0);
	ck_assert_int_eq(th_mount_start(&tm, &ts, "/", "owners=preserve,allow_other,dev,suid"), 0);
	mount_opts(tm.mnt, opts, sizeof(opts));
	ck_assert_msg(!has_opt(opts, "nosuid") && !has_opt(opts, "nodev"), "preserve: %s", opts);
	th_mount_stop(&tm);
}
END_TEST

/* The real mount.fuse3 (mount -t fuse.keibifs, fstab): it finds keibifs
 * in $PATH and adds dev,suid. */
START_TEST(test_mount_fuse3_real_nosuid)
{
	char bin[PATH_MAX], *out = NULL, real[PATH_MAX];
	pid_t pid;
	int st;

	if (!need_root("mount.fuse3", true))
		return;
	if (access("/usr/sbin/mount.fuse3", X_OK) && access("/sbin/mount.fuse3", X_OK)) {
		fprintf(stderr, "\n*** SKIP: mount.fuse3 missing ***\n\n");
		return;
	}
	ck_assert_ptr_nonnull(realpath(th_build(), bin));
	ck_assert_int_eq(th_server_start(&ts, 0, NULL), 0);
	put_suid_id();
	memset(&tm, 0, sizeof(tm));
	tm.dir = th_tmpdir("mountfuse3");
	ck_assert_ptr_nonnull(tm.dir);
	snprintf(tm.mnt, sizeof(tm.mnt), "%s/mnt", tm.dir);
	ck_assert_int_eq(mkdir(tm.mnt, 0755), 0);
	ck_assert_ptr_nonnull(realpath(tm.mnt, real));
	th_track_mount(tm.mnt);
	st = th_sh_out(&out,
		       "PATH='%s':$PATH mount.fuse3 127.0.0.1:/ '%s' -t fuse.keibifs -o "
		       "port=%d,identity=%s,known_peers=%s,allow_other",
		       bin, real, ts.port, ts.client_key, ts.known_peers);
	ck_assert_msg(st == 0, "mount.fuse3: %s", out);
	free(out);
	pid = th_find_keibifs(real); /* daemonized by mount.fuse3 */
	ck_assert_int_gt(pid, 0);
	th_track_pid(pid);
	open_path_for_nobody();
	check_nosuid_mount(tm.mnt);
	/* unmounting ends the daemon; then stop it by pid if it lingers */
	th_umount(tm.mnt);
	for (int waited = 0; waited < 5000 && kill(pid, 0) == 0; waited += 10)
		usleep(10000);
	if (kill(pid, 0) == 0)
		th_stop(pid, 2000);
}
END_TEST

/* ---- 3. a directory moved out of the share on the server --------------- */

START_TEST(test_moved_out_dir)
{
	uint64_t d = 0, in = 0;
	char outside[PATH_MAX + 16], inside[PATH_MAX];

	if (!need_root("moved out", false))
		return;
	ck_assert_int_eq(th_server_start(&ts, 0, NULL), 0);
	ck_assert_int_eq(mkdir(th_server_path(&ts, "d"), 0755), 0);
	ck_assert_int_eq(mkdir(th_server_path(&ts, "sub"), 0755), 0);
	ck_assert_int_eq(mkdir(th_server_path(&ts, "in"), 0755), 0);
	connect_rpc();
	ck_assert_int_eq(th_lookup(R, root.node, "d", &d), 0);
	ck_assert_int_eq(th_lookup(R, root.node, "in", &in), 0);
	snprintf(outside, sizeof(outside), "%s/outside", ts.dir);
	snprintf(inside, sizeof(inside), "%s", th_server_path(&ts, "sub/in"));
	ck_assert_int_eq(rename(th_server_path(&ts, "d"), outside), 0);
	ck_assert_int_eq(rename(th_server_path(&ts, "in"), inside), 0);
	{
		Q(q, MKDIR);
		q.node = d;
		strcpy(q.name, "x");
		q.mode = 0755;
		ck_assert_int_eq(th_call(R, &q, NULL, 0, res), -ESTALE);
		q.node = in; /* moved inside the share: fine */
		ck_assert_int_eq(th_call(R, &q, NULL, 0, res), 0);
	}
	ck_assert_int_eq(create(d, "y", 0644), -ESTALE);
	{
		Q(q, SYMLINK);
		q.node = d;
		strcpy(q.name, "l");
		strcpy(q.name2, "/etc/passwd");
		ck_assert_int_eq(th_call(R, &q, NULL, 0, res), -ESTALE);
	}
	{
		char p[PATH_MAX + 32];
		struct stat st;

		snprintf(p, sizeof(p), "%s/x", outside);
		ck_assert_int_eq(lstat(p, &st), -1);
		snprintf(p, sizeof(p), "%s/y", outside);
		ck_assert_int_eq(lstat(p, &st), -1);
		snprintf(p, sizeof(p), "%s/l", outside);
		ck_assert_int_eq(lstat(p, &st), -1);
		ck_assert_int_eq(lstat(th_server_path(&ts, "sub/in/x"), &st), 0);
	}
	th_sh("rm -rf '%s'", outside);
}
END_TEST

Suite *suite_privilege(void);
Suite *suite_privilege(void)
{
	Suite *s = suite_create("privilege");
	TCase *tc = tcase_create("privilege");

	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_mount_no_suid_no_chown);
	tcase_add_test(tc, test_protocol_squash);
	tcase_add_test(tc, test_opts_safety);
	tcase_add_test(tc, test_allow_other_map_checks_permissions);
	tcase_add_test(tc, test_mount_fuse3_args_nosuid);
	tcase_add_test(tc, test_mount_fuse3_real_nosuid);
	tcase_add_test(tc, test_moved_out_dir);
	suite_add_tcase(s, tc);
	return s;
}
