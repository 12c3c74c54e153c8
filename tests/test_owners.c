/* test_owners.c - owners=preserve on the server: requests that carry
 * Request.creds are served as that uid/gid/groups when the session may
 * (keibifsd --allow-owners or an `owners` key, server running as root), and
 * as the server user otherwise. Protocol level, through the rpc client;
 * each test starts its own server. Needs root (skipped otherwise).
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rpc.h"
#include "th.h"
#include "th_server.h"

#define UID 1234
#define GID 1234
#define OTHER 4321

static struct th_server ts;
static struct kb_rpc *R;
static kb_Entry root;
static struct kb_rpc_result *res;

static void connect_rpc(void)
{
	bool ro;

	ck_assert_int_eq(th_server_connect(&ts, 1, &R, &root, &ro), 0);
	res = kb_rpc_result_new();
	ck_assert_ptr_nonnull(res);
}

/* keibifsd on a prepared ts, with `key_opt` ("owners " or "") before the
 * client key and extra arguments. */
static void start(const char *key_opt, const char *extra)
{
	const char *const xs[] = {extra, NULL};
	char line[512];
	FILE *f;

	ck_assert_int_eq(th_server_prepare(&ts, 0), 0);
	f = fopen(ts.authorized, "r");
	ck_assert_ptr_nonnull(f);
	ck_assert_ptr_nonnull(fgets(line, sizeof(line), f));
	fclose(f);
	f = fopen(ts.authorized, "w");
	ck_assert_ptr_nonnull(f);
	fprintf(f, "%s%s", key_opt, line);
	fclose(f);
	ck_assert_msg(th_server_spawn(&ts, 0, xs) == 0, "log %s", ts.log);
	/* fixtures: a world-writable dir, a sticky one, a setgid one owned by
	 * group OTHER, a private root file, a group-readable root file */
	ck_assert_int_eq(mkdir(th_server_path(&ts, "pub"), 0777), 0);
	ck_assert_int_eq(chmod(th_server_path(&ts, "pub"), 0777), 0);
	ck_assert_int_eq(mkdir(th_server_path(&ts, "sticky"), 0777), 0);
	ck_assert_int_eq(chmod(th_server_path(&ts, "sticky"), 01777), 0);
	ck_assert_int_eq(th_write_pattern(th_server_path(&ts, "sticky/rootf"), 10, 1, 0666), 0);
	ck_assert_int_eq(mkdir(th_server_path(&ts, "sgid"), 0777), 0);
	ck_assert_int_eq(chown(th_server_path(&ts, "sgid"), 0, OTHER), 0);
	ck_assert_int_eq(chmod(th_server_path(&ts, "sgid"), 02777), 0);
	ck_assert_int_eq(th_write_pattern(th_server_path(&ts, "secret"), 10, 1, 0600), 0);
	ck_assert_int_eq(th_write_pattern(th_server_path(&ts, "grp"), 10, 1, 0640), 0);
	ck_assert_int_eq(chown(th_server_path(&ts, "grp"), 0, OTHER), 0);
	connect_rpc();
}

static void teardown(void)
{
	int st = th_server_end(&ts, &R, &res);

	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "keibifsd exit status %d", st);
}

#define Q(var, o) TH_REQ(var, o)

/* Credentials of uid/gid with up to two groups (0: none). */
static void as(kb_Request *q, uint32_t uid, uint32_t gid, uint32_t g1)
{
	q->has_creds = true;
	q->creds.uid = uid;
	q->creds.gid = gid;
	q->creds.groups_count = 0;
	if (g1)
		q->creds.groups[q->creds.groups_count++] = g1;
}

static uint64_t lookup_ok(uint64_t parent, const char *name)
{
	uint64_t n = 0;

	ck_assert_int_eq(th_lookup(R, parent, name, &n), 0);
	return n;
}

/* CREATE dir/name as uid:gid (uid ~0: no creds). */
static int create_as(uint64_t dir, const char *name, uint32_t uid, uint32_t gid)
{
	Q(q, CREATE);
	int ret;

	q.node = dir;
	snprintf(q.name, sizeof(q.name), "%s", name);
	q.flags = O_WRONLY;
	q.mode = 0644;
	if (uid != (uint32_t)-1)
		as(&q, uid, gid, 0);
	kb_rpc_result_reset(res);
	ret = kb_rpc_call(R, &q, NULL, 0, res);
	if (!ret) {
		Q(r, RELEASE);
		r.node = res->resp.entry.node;
		r.fh = res->resp.fh;
		ck_assert_int_eq(th_call(R, &r, NULL, 0, NULL), 0);
	}
	return ret;
}

/* OPEN path read-only as uid:gid (+group g1); closes it again. */
static int open_as(const char *name, uint32_t uid, uint32_t gid, uint32_t g1, bool creds)
{
	uint64_t n = lookup_ok(root.node, name);
	Q(q, OPEN);
	int ret;

	q.node = n;
	q.flags = O_RDONLY;
	if (creds)
		as(&q, uid, gid, g1);
	ret = th_call(R, &q, NULL, 0, res);
	if (!ret) {
		Q(r, RELEASE);
		r.node = n;
		r.fh = res->resp.fh;
		ck_assert_int_eq(th_call(R, &r, NULL, 0, NULL), 0);
	}
	return ret;
}

static void owner_is(const char *rel, uid_t uid, gid_t gid)
{
	struct stat st;

	ck_assert_int_eq(stat(th_server_path(&ts, rel), &st), 0);
	ck_assert_msg(st.st_uid == uid && st.st_gid == gid, "%s: %u:%u, expected %u:%u", rel,
		      (unsigned)st.st_uid, (unsigned)st.st_gid, (unsigned)uid, (unsigned)gid);
}

#define NEED_ROOT()                                                     \
	do {                                                            \
		if (geteuid()) {                                        \
			fprintf(stderr, "owners: not root, skipped\n"); \
			return;                                         \
		}                                                       \
	} while (0)

START_TEST(test_new_files_owned_by_caller)
{
	uint64_t pub, sgid;

	NEED_ROOT();
	start("", "--allow-owners");
	pub = lookup_ok(root.node, "pub");
	sgid = lookup_ok(root.node, "sgid");
	ck_assert_int_eq(create_as(pub, "f", UID, GID), 0);
	owner_is("pub/f", UID, GID);
	{
		Q(q, MKDIR);
		q.node = pub;
		strcpy(q.name, "d");
		q.mode = 0755;
		as(&q, UID, GID, 0);
		ck_assert_int_eq(th_call(R, &q, NULL, 0, res), 0);
		owner_is("pub/d", UID, GID);
	}
	{
		Q(q, SYMLINK);
		q.node = pub;
		strcpy(q.name, "l");
		strcpy(q.name2, "f");
		as(&q, UID, GID, 0);
		ck_assert_int_eq(th_call(R, &q, NULL, 0, res), 0);
		struct stat st;
		ck_assert_int_eq(lstat(th_server_path(&ts, "pub/l"), &st), 0);
		ck_assert_uint_eq(st.st_uid, UID);
	}
	/* setgid directory: the group is the directory's, not the caller's */
	ck_assert_int_eq(create_as(sgid, "g", UID, GID), 0);
	owner_is("sgid/g", UID, OTHER);
	/* uid 0 in creds: root as on a local disk */
	ck_assert_int_eq(create_as(pub, "r", 0, 0), 0);
	owner_is("pub/r", 0, 0);
	/* no creds at all: the server user */
	ck_assert_int_eq(create_as(pub, "plain", (uint32_t)-1, 0), 0);
	owner_is("pub/plain", 0, 0);
	/* the share root is root's 0755: no new names for uid 1234 */
	ck_assert_int_eq(create_as(root.node, "nope", UID, GID), -EACCES);
}
END_TEST

START_TEST(test_permission_checks)
{
	uint64_t n;

	NEED_ROOT();
	start("", "--allow-owners");
	ck_assert_int_eq(open_as("secret", UID, GID, 0, true), -EACCES);
	ck_assert_int_eq(open_as("secret", 0, 0, 0, true), 0);
	ck_assert_int_eq(open_as("grp", UID, GID, 0, true), -EACCES);
	ck_assert_int_eq(open_as("grp", UID, GID, OTHER, true), 0); /* supplementary */
	ck_assert_int_eq(open_as("grp", UID, OTHER, 0, true), 0);   /* primary */
	n = lookup_ok(root.node, "secret");
	{
		Q(q, ACCESS);
		q.node = n;
		q.mode = R_OK;
		as(&q, UID, GID, 0);
		ck_assert_int_eq(th_call(R, &q, NULL, 0, res), -EACCES);
		q.has_creds = false;
		ck_assert_int_eq(th_call(R, &q, NULL, 0, res), 0);
	}
	{ /* chmod / chown of root's file: EPERM as on ext4 */
		Q(q, SETATTR);
		q.node = n;
		q.has_attr = true;
		q.set_mask = kb_SetMask_SET_MODE;
		q.attr.mode = 0644;
		as(&q, UID, GID, 0);
		ck_assert_int_eq(th_call(R, &q, NULL, 0, res), -EPERM);
		q.set_mask = kb_SetMask_SET_UID;
		q.attr.uid = UID;
		ck_assert_int_eq(th_call(R, &q, NULL, 0, res), -EPERM);
		/* utimes(NULL) needs write access, explicit times ownership */
		q.set_mask = kb_SetMask_SET_ATIME_NOW | kb_SetMask_SET_MTIME_NOW;
		ck_assert_int_eq(th_call(R, &q, NULL, 0, res), -EACCES);
		q.set_mask = kb_SetMask_SET_MTIME;
		q.attr.mtime = 1;
		ck_assert_int_eq(th_call(R, &q, NULL, 0, res), -EPERM);
	}
	/* the worker threads come back to root after each request */
	for (int i = 0; i < 16; i++) {
		ck_assert_int_eq(open_as("secret", UID, GID, 0, true), -EACCES);
		ck_assert_int_eq(open_as("secret", 0, 0, 0, false), 0);
	}
	/* an invalid uid is refused, not served as root */
	ck_assert_int_eq(open_as("secret", (uint32_t)-1, GID, 0, true), -EINVAL);
}
END_TEST

START_TEST(test_sticky_dir)
{
	uint64_t st;

	NEED_ROOT();
	start("", "--allow-owners");
	st = lookup_ok(root.node, "sticky");
	ck_assert_int_eq(create_as(st, "mine", UID, GID), 0);
	{
		Q(q, UNLINK);
		q.node = st;
		strcpy(q.name, "rootf");
		as(&q, UID, GID, 0);
		ck_assert_int_eq(th_call(R, &q, NULL, 0, res), -EPERM);
		strcpy(q.name, "mine");
		as(&q, OTHER, OTHER, 0);
		ck_assert_int_eq(th_call(R, &q, NULL, 0, res), -EPERM);
		as(&q, UID, GID, 0); /* the owner may */
		ck_assert_int_eq(th_call(R, &q, NULL, 0, res), 0);
	}
	{ /* rename away root's file: EPERM too */
		Q(q, RENAME);
		q.node = st;
		q.node2 = st;
		strcpy(q.name, "rootf");
		strcpy(q.name2, "stolen");
		as(&q, UID, GID, 0);
		ck_assert_int_eq(th_call(R, &q, NULL, 0, res), -EPERM);
	}
	ck_assert_int_eq(access(th_server_path(&ts, "sticky/rootf"), F_OK), 0);
}
END_TEST

/* Without --allow-owners and without an owners key, creds are ignored. */
START_TEST(test_creds_ignored_when_not_allowed)
{
	uint64_t pub;

	NEED_ROOT();
	start("", NULL);
	pub = lookup_ok(root.node, "pub");
	ck_assert_int_eq(create_as(pub, "f", UID, GID), 0);
	owner_is("pub/f", 0, 0);
	ck_assert_int_eq(open_as("secret", UID, GID, 0, true), 0);
	ck_assert_int_eq(create_as(root.node, "top", UID, GID), 0);
}
END_TEST

/* An `owners` key is allowed without --allow-owners. */
START_TEST(test_owners_key)
{
	uint64_t pub;

	NEED_ROOT();
	start("owners ", NULL);
	pub = lookup_ok(root.node, "pub");
	ck_assert_int_eq(create_as(pub, "f", UID, GID), 0);
	owner_is("pub/f", UID, GID);
	ck_assert_int_eq(open_as("secret", UID, GID, 0, true), -EACCES);
}
END_TEST

Suite *suite_owners(void);
Suite *suite_owners(void)
{
	Suite *s = suite_create("owners");
	TCase *tc = tcase_create("owners");

	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_new_files_owned_by_caller);
	tcase_add_test(tc, test_permission_checks);
	tcase_add_test(tc, test_sticky_dir);
	tcase_add_test(tc, test_creds_ignored_when_not_allowed);
	tcase_add_test(tc, test_owners_key);
	suite_add_tcase(s, tc);
	return s;
}
