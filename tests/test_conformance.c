/* test_conformance.c - tests/conformance.py on a local directory and on a
 * real mount in owners=preserve mode (keibifsd --allow-owners, keibifs -o
 * owners=preserve,allow_other), as root and as an unprivileged user made
 * for the test (kbconf, useradd -M when missing). Both sides get the same
 * fixtures the script's permission checks look for next to its work dirs:
 * root-owned (0644), root-dir/file (dir 0755) and sticky/root-file (dir
 * 01777), all root's. The script prints how many checks match on the mount
 * and exits non-zero on any mismatch other than those it documents as
 * inherent to keibifs (printed with the reason). Server and mount live in
 * unchecked fixtures (the runner's process): always unmounted and stopped
 * by PID. Needs root and /dev/fuse (skipped otherwise).
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "th.h"
#include "th_mount.h"
#include "th_server.h"

#define CONF_USER "kbconf"

static struct th_server srv;
static struct th_mount mnt;
static char *local; /* owned: the reference directory */
static bool up;

/* Let others search every ancestor of path (temp dirs are 0700). */
static int open_path(const char *path)
{
	char p[PATH_MAX], *s;
	struct stat st;

	snprintf(p, sizeof(p), "%s", path);
	for (s = p + strlen(p); s > p; s = strrchr(p, '/')) {
		*s = '\0';
		if (!*p)
			break;
		if (stat(p, &st) ||
		    ((st.st_mode & 0011) != 0011 && chmod(p, (st.st_mode & 07777) | 0011)))
			return -1;
	}
	return 0;
}

/* base (exists) gets the script's permission fixtures, all root's, made
 * anew (a run as root changes them: chmod_foreign_file). */
static int fixtures(const char *base)
{
	return th_sh("cd '%s' && rm -rf root-owned root-dir sticky && chmod 0777 . &&"
		     " echo data > root-owned && chmod 0644 root-owned"
		     " && mkdir -m 0755 root-dir && echo data > root-dir/file"
		     " && mkdir sticky && chmod 01777 sticky && echo data > sticky/root-file",
		     base);
}

static void setup(void)
{
	static const char *const extra[] = {"--allow-owners", NULL};

	up = false;
	if (geteuid() != 0 || !th_fuse_available("conformance"))
		return;
	if (th_sh("id -u " CONF_USER
		  " >/dev/null 2>&1 || useradd -M -s /usr/sbin/nologin " CONF_USER) != 0) {
		fprintf(stderr, "conformance: cannot create user " CONF_USER "\n");
		return;
	}
	local = th_tmpdir("conf-local");
	if (!local || th_server_start(&srv, 0, extra) < 0 || fixtures(local) ||
	    fixtures(srv.share) ||
	    th_mount_start(&mnt, &srv, "/", "owners=preserve,allow_other") < 0)
		return;
	if (open_path(mnt.mnt) || open_path(local) || chmod(mnt.mnt, 0777))
		return;
	up = true;
}

static void teardown(void)
{
	th_mount_stop(&mnt);
	th_server_cleanup(&srv);
	if (local)
		th_sh("rm -rf '%s'", local);
	free(local);
	local = NULL;
}

#define REQUIRE_UP()                                                          \
	do {                                                                  \
		if (geteuid() != 0) {                                         \
			fprintf(stderr, "conformance: not root, skipped\n");  \
			return;                                               \
		}                                                             \
		ck_assert_msg(up, "conformance fixture failed (see stderr)"); \
	} while (0)

/* Run the script as `prefix` (empty: root); prints its report. */
static void run_as(const char *who, const char *prefix)
{
	char *out = NULL;
	int st;

	ck_assert_int_eq(fixtures(local), 0);
	ck_assert_int_eq(fixtures(mnt.mnt), 0); /* through the mount, as root */
	st = th_sh_out(&out, "cd / && %s /usr/bin/python3 '%s/tests/conformance.py' '%s' '%s' 2>&1",
		       prefix, th_srcdir(), local, mnt.mnt);
	fprintf(stderr, "conformance as %s, owners=preserve:\n%s", who, out ? out : "");
	ck_assert_msg(st == 0, "conformance as %s: exit %d:\n%s", who, st, out ? out : "");
	ck_assert_ptr_nonnull(out);
	ck_assert_ptr_nonnull(strstr(out, "match the reference"));
	free(out);
}

START_TEST(test_conformance_root)
{
	REQUIRE_UP();
	run_as("root", "");
}
END_TEST

START_TEST(test_conformance_user)
{
	struct passwd *pw;
	char prefix[128];

	REQUIRE_UP();
	pw = getpwnam(CONF_USER);
	ck_assert_ptr_nonnull(pw);
	snprintf(prefix, sizeof(prefix), "setpriv --reuid=%u --regid=%u --clear-groups",
		 (unsigned)pw->pw_uid, (unsigned)pw->pw_gid);
	run_as(CONF_USER, prefix);
}
END_TEST

/* What the user made on the mount is the user's on the server. */
START_TEST(test_owner_on_server)
{
	struct passwd *pw;
	struct stat st;
	char path[PATH_MAX + 16];

	REQUIRE_UP();
	pw = getpwnam(CONF_USER);
	ck_assert_ptr_nonnull(pw);
	snprintf(path, sizeof(path), "%s/by-user", mnt.mnt);
	ck_assert_int_eq(th_sh("setpriv --reuid=%u --regid=%u --clear-groups sh -c "
			       "'echo x > \"%s\"; mkdir \"%s.d\"'",
			       (unsigned)pw->pw_uid, (unsigned)pw->pw_gid, path, path),
			 0);
	ck_assert_int_eq(stat(th_server_path(&srv, "by-user"), &st), 0);
	ck_assert_uint_eq(st.st_uid, pw->pw_uid);
	ck_assert_uint_eq(st.st_gid, pw->pw_gid);
	ck_assert_int_eq(stat(th_server_path(&srv, "by-user.d"), &st), 0);
	ck_assert_uint_eq(st.st_uid, pw->pw_uid);
	ck_assert_int_eq(stat(path, &st), 0); /* the mount shows the real ids */
	ck_assert_uint_eq(st.st_uid, pw->pw_uid);
	/* chown by root through the mount works and is real on the server */
	ck_assert_int_eq(chown(path, 0, 0), 0);
	ck_assert_int_eq(stat(th_server_path(&srv, "by-user"), &st), 0);
	ck_assert_uint_eq(st.st_uid, 0);
	/* and the user may no longer write it (0644 root's) */
	ck_assert_int_ne(th_sh("setpriv --reuid=%u --regid=%u --clear-groups sh -c "
			       "'echo y > \"%s\"' 2>/dev/null",
			       (unsigned)pw->pw_uid, (unsigned)pw->pw_gid, path),
			 0);
}
END_TEST

/* fallocate that extends a file, then a write: the mount's mtime is the
 * server's (the kernel sent no time of its own after the FALLOCATE). */
START_TEST(test_mtime_after_fallocate_write)
{
	char path[PATH_MAX + 16], buf[4096];
	struct stat m, s;
	int fd;

	REQUIRE_UP();
	snprintf(path, sizeof(path), "%s/falloc-mtime", mnt.mnt);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(fallocate(fd, 0, 0, 1 << 20), 0);
	memset(buf, 'm', sizeof(buf));
	ck_assert_int_eq(pwrite(fd, buf, sizeof(buf), 0), (ssize_t)sizeof(buf));
	ck_assert_int_eq(fsync(fd), 0); /* the data and its time are on the server */
	ck_assert_int_eq(fstat(fd, &m), 0);
	ck_assert_int_eq(stat(th_server_path(&srv, "falloc-mtime"), &s), 0);
	ck_assert_msg(m.st_mtim.tv_sec == s.st_mtim.tv_sec &&
			      m.st_mtim.tv_nsec == s.st_mtim.tv_nsec,
		      "open: mount mtime %ld.%09ld, server %ld.%09ld", (long)m.st_mtim.tv_sec,
		      m.st_mtim.tv_nsec, (long)s.st_mtim.tv_sec, s.st_mtim.tv_nsec);
	ck_assert_int_eq(close(fd), 0);
	ck_assert_int_eq(stat(path, &m), 0);
	ck_assert_int_eq(stat(th_server_path(&srv, "falloc-mtime"), &s), 0);
	ck_assert_int_eq(m.st_size, 1 << 20);
	ck_assert_msg(m.st_mtim.tv_sec == s.st_mtim.tv_sec &&
			      m.st_mtim.tv_nsec == s.st_mtim.tv_nsec,
		      "mount mtime %ld.%09ld, server %ld.%09ld", (long)m.st_mtim.tv_sec,
		      m.st_mtim.tv_nsec, (long)s.st_mtim.tv_sec, s.st_mtim.tv_nsec);
}
END_TEST

/* owners=preserve against a server that would not act as the caller (no
 * --allow-owners, no `owners` key option): refused at mount time, with
 * one line naming the server option (it used to mount, show real owners
 * and let chown through while new files belonged to the server's user). */
START_TEST(test_owners_refused_without_server_option)
{
	struct th_server plain;
	char *out = NULL;
	bool left = false;
	int st;

	if (!th_fuse_available("owners refused"))
		return;
	ck_assert_int_eq(th_server_start(&plain, 0, NULL), 0);
	st = th_mount_expect_fail(&plain, "/", "owners=preserve", &out, &left);
	ck_assert_msg(st != 0 && !left, "mounted: %s", out ? out : "");
	ck_assert_msg(out && strstr(out, "--allow-owners") && strstr(out, "owners=preserve"), "%s",
		      out ? out : "");
	free(out);
	th_server_cleanup(&plain);
}
END_TEST

Suite *suite_conformance(void);
Suite *suite_conformance(void)
{
	Suite *s = suite_create("conformance");
	TCase *tc = tcase_create("owners");

	tcase_add_unchecked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_conformance_root);
	tcase_add_test(tc, test_conformance_user);
	tcase_add_test(tc, test_owner_on_server);
	tcase_add_test(tc, test_owners_refused_without_server_option);
	tcase_add_test(tc, test_mtime_after_fallocate_write);
	suite_add_tcase(s, tc);
	return s;
}
