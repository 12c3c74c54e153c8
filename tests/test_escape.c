/* test_escape.c - a client must never reach outside the share.
 *
 * The server's temp dir holds share/ and, beside it, outside/ with a canary
 * file. Every attack below goes through the protocol (the rpc library, or
 * hand-made frames on a raw channel); afterwards the canary must be
 * unchanged and nothing new may exist outside the share.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "chan.h"
#include "err.h"
#include "keys.h"
#include "rpc.h"
#include "th.h"
#include "th_server.h"
#include "wire.h"

#define CANARY "canary: must never change\n"

static struct th_server ts;
static struct kb_rpc *R;
static kb_Entry root;
static struct kb_rpc_result *res;
static char outside[PATH_MAX + 16];

static const char *out_path(const char *rel)
{
	static char p[2 * PATH_MAX];

	snprintf(p, sizeof(p), "%s/%s", outside, rel);
	return p;
}

static void setup(void)
{
	FILE *f;

	ck_assert_int_eq(th_server_start(&ts, 0, NULL), 0);
	snprintf(outside, sizeof(outside), "%s/outside", ts.dir);
	ck_assert_int_eq(mkdir(outside, 0755), 0);
	f = fopen(out_path("canary"), "w");
	ck_assert_ptr_nonnull(f);
	fputs(CANARY, f);
	fclose(f);
	ck_assert_int_eq(th_server_connect(&ts, 1, &R, &root, NULL), 0);
	res = kb_rpc_result_new();
}

/* The canary is intact and outside/ holds nothing else. */
static void check_outside(void)
{
	char buf[128] = "";
	FILE *f = fopen(out_path("canary"), "r");
	char *ls = NULL;

	ck_assert_ptr_nonnull(f);
	ck_assert_ptr_nonnull(fgets(buf, sizeof(buf), f));
	fclose(f);
	ck_assert_str_eq(buf, CANARY);
	ck_assert_int_eq(th_sh_out(&ls, "ls -A '%s'", outside), 0);
	ck_assert_str_eq(ls, "canary\n");
	free(ls);
	ck_assert_int_eq(th_sh("test -z \"$(ls -A '%s' | grep -v -e '^share$' -e '^outside$' "
			       "-e '^server' -e '^client' -e '^authorized$' -e '^known_peers$')\"",
			       ts.dir),
			 0);
}

static void teardown(void)
{
	int st = th_server_end(&ts, &R, &res);

	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "keibifsd exit status %d", st);
}

#define Q(var, o) TH_REQ(var, o)

static int lookup(uint64_t p, const char *name, uint64_t *n)
{
	return th_lookup(R, p, name, n);
}

static int create_in(uint64_t p, const char *name)
{
	Q(q, CREATE);
	q.node = p;
	q.flags = O_RDWR;
	q.mode = 0644;
	snprintf(q.name, sizeof(q.name), "%s", name);
	return th_call(R, &q, NULL, 0, res);
}

START_TEST(test_dotdot)
{
	uint64_t d;
	char err[256];
	struct kb_rpc *r2 = NULL;
	struct kb_keyset *trust = NULL;
	kb_Entry e;
	bool ro;

	ck_assert_int_eq(mkdir(th_server_path(&ts, "sub"), 0755), 0);
	ck_assert_int_eq(lookup(root.node, "sub", &d), 0);
	ck_assert_int_eq(lookup(d, "..", NULL), -EINVAL);
	ck_assert_int_eq(lookup(root.node, "..", NULL), -EINVAL);
	ck_assert_int_eq(lookup(root.node, "../outside", NULL), -EINVAL);
	ck_assert_int_eq(create_in(d, ".."), -EINVAL);
	ck_assert_int_eq(create_in(root.node, "../outside/evil"), -EINVAL);
	{
		Q(q, MKDIR);
		q.node = root.node;
		snprintf(q.name, sizeof(q.name), "..");
		ck_assert_int_eq(th_call(R, &q, NULL, 0, res), -EINVAL);
	}
	/* HELLO with a path climbing out */
	ck_assert_int_eq(kb_keyset_new(&trust), 0);
	ck_assert_int_eq(kb_keyset_add(trust, ts.server_pub, 0), 0);
	{
		static const char *paths[] = {"..", "/../outside", "sub/../../outside",
					      "/sub/../.."};

		for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
			struct kb_rpc_cfg cfg = {
				.host = "127.0.0.1",
				.port = ts.port_str,
				.path = paths[i],
				.conns = 1,
				.identity = ts.client_priv,
				.trust = trust,
				.timeout_ms = 5000,
			};

			ck_assert_int_ne(kb_rpc_new(&r2, &cfg, &e, &ro, err, sizeof(err)), 0);
		}
	}
	kb_keyset_free(trust);
	check_outside();
}
END_TEST

START_TEST(test_symlinks_out)
{
	uint64_t l, up, loop, n;
	char buf[256];
	uint64_t fh;
	uint32_t of;
	kb_Attr a;

	ck_assert_int_eq(symlink("/etc", th_server_path(&ts, "etc")), 0);
	ck_assert_int_eq(symlink("../outside", th_server_path(&ts, "up")), 0);
	ck_assert_int_eq(symlink("loop", th_server_path(&ts, "loop")), 0);
	ck_assert_int_eq(symlink("../outside/canary", th_server_path(&ts, "canary")), 0);
	ck_assert_int_eq(lookup(root.node, "etc", &l), 0);
	ck_assert_int_eq(kb_rpc_getattr(R, l, &a), 0);
	ck_assert(S_ISLNK(a.mode)); /* the link itself, never its target */
	ck_assert_int_eq(kb_rpc_readlink(R, l, buf, sizeof(buf)), 0);
	ck_assert_str_eq(buf, "/etc"); /* returned as text */
	ck_assert_int_eq(lookup(l, "passwd", NULL), -ENOTDIR);
	ck_assert_int_eq(kb_rpc_opendir(R, l, &fh), -ENOTDIR);
	ck_assert_int_eq(kb_rpc_open(R, l, O_RDONLY, &fh, &of), -ELOOP);
	ck_assert_int_eq(create_in(l, "evil"), -ENOTDIR);
	ck_assert_int_eq(lookup(root.node, "up", &up), 0);
	ck_assert_int_eq(lookup(up, "canary", NULL), -ENOTDIR);
	ck_assert_int_eq(create_in(up, "evil"), -ENOTDIR);
	ck_assert_int_eq(lookup(root.node, "loop", &loop), 0);
	ck_assert_int_eq(kb_rpc_open(R, loop, O_RDONLY, &fh, &of), -ELOOP);
	ck_assert_int_eq(lookup(loop, "x", NULL), -ENOTDIR);
	/* operations on a symlink node that would follow it elsewhere */
	ck_assert_int_eq(lookup(root.node, "canary", &n), 0);
	{
		Q(q, READ);
		q.node = n;
		q.length = 100;
		ck_assert_int_ne(th_call(R, &q, NULL, 0, res), 0); /* fh 0 needs a regular file */
	}
	{
		Q(q, SETATTR);
		q.node = n;
		q.has_attr = true;
		q.set_mask = kb_SetMask_SET_SIZE;
		ck_assert_int_eq(th_call(R, &q, NULL, 0, res), -EINVAL);
		q.set_mask = kb_SetMask_SET_MODE;
		q.attr.mode = 0777;
		ck_assert_int_eq(th_call(R, &q, NULL, 0, res), -EOPNOTSUPP);
	}
	{
		Q(q, SETXATTR);
		q.node = n;
		snprintf(q.name, sizeof(q.name), "user.evil");
		ck_assert_int_eq(th_call(R, &q, "x", 1, res), -EPERM);
	}
	{
		Q(q, CREATE); /* create over an existing symlink must not follow it */
		q.node = root.node;
		q.flags = O_RDWR | O_TRUNC;
		q.mode = 0644;
		snprintf(q.name, sizeof(q.name), "canary");
		ck_assert_int_eq(th_call(R, &q, NULL, 0, res), -ELOOP);
	}
	{
		Q(q, SYMLINK); /* a new link pointing out is only text */
		q.node = root.node;
		snprintf(q.name, sizeof(q.name), "new");
		snprintf(q.name2, sizeof(q.name2), "/etc/shadow");
		ck_assert_int_eq(th_call(R, &q, NULL, 0, res), 0);
		ck_assert(S_ISLNK(res->resp.entry.attr.mode));
	}
	/* HELLO through a symlink */
	{
		struct kb_keyset *trust = NULL;
		struct kb_rpc *r2 = NULL;
		kb_Entry e;
		bool ro;
		char err[256];
		struct kb_rpc_cfg cfg = {
			.host = "127.0.0.1",
			.port = ts.port_str,
			.path = "up",
			.conns = 1,
			.identity = ts.client_priv,
			.timeout_ms = 5000,
		};

		ck_assert_int_eq(kb_keyset_new(&trust), 0);
		ck_assert_int_eq(kb_keyset_add(trust, ts.server_pub, 0), 0);
		cfg.trust = trust;
		ck_assert_int_ne(kb_rpc_new(&r2, &cfg, &e, &ro, err, sizeof(err)), 0);
		kb_keyset_free(trust);
	}
	check_outside();
}
END_TEST

/* LINK takes a node: a hard link can only be made to an inode the client
 * already reached inside the share; linking a symlink node links the
 * symlink, not its target. */
START_TEST(test_hard_links)
{
	uint64_t l;
	struct stat before, after, st;

	ck_assert_int_eq(symlink("../outside/canary", th_server_path(&ts, "sl")), 0);
	ck_assert_int_eq(stat(out_path("canary"), &before), 0);
	ck_assert_int_eq(lookup(root.node, "sl", &l), 0);
	{
		Q(q, LINK);
		q.node = l;
		q.node2 = root.node;
		snprintf(q.name2, sizeof(q.name2), "hl");
		ck_assert_int_eq(th_call(R, &q, NULL, 0, res), 0);
		q.node = 0xfffff; /* unknown node */
		snprintf(q.name2, sizeof(q.name2), "hl2");
		ck_assert_int_eq(th_call(R, &q, NULL, 0, res), -ESTALE);
		q.node = l;
		q.node2 = 0xfffff;
		ck_assert_int_eq(th_call(R, &q, NULL, 0, res), -ESTALE);
		q.node2 = root.node;
		snprintf(q.name2, sizeof(q.name2), "../outside/hl3");
		ck_assert_int_eq(th_call(R, &q, NULL, 0, res), -EINVAL);
	}
	ck_assert_int_eq(lstat(th_server_path(&ts, "hl"), &st), 0);
	ck_assert(S_ISLNK(st.st_mode));
	ck_assert_int_eq(stat(out_path("canary"), &after), 0);
	ck_assert_uint_eq(before.st_nlink, after.st_nlink);
	check_outside();
}
END_TEST

/* A thread keeps exchanging a directory and a symlink pointing outside
 * while the client looks up and creates through that name. */
struct swapper {
	char a[PATH_MAX], b[PATH_MAX];
	atomic_bool stop;
	unsigned swaps;
};

static void *swap_main(void *p)
{
	struct swapper *s = p;

	while (!atomic_load(&s->stop)) {
		if (renameat2(AT_FDCWD, s->a, AT_FDCWD, s->b, RENAME_EXCHANGE) == 0)
			s->swaps++;
	}
	return NULL;
}

START_TEST(test_symlink_swap_race)
{
	struct swapper s = {0};
	pthread_t th;
	unsigned found_inside = 0;
	struct stat canary;

	ck_assert_int_eq(stat(out_path("canary"), &canary), 0);
	ck_assert_int_eq(mkdir(th_server_path(&ts, "d"), 0755), 0);
	ck_assert_int_eq(th_write_pattern(th_server_path(&ts, "d/canary"), 10, 1, 0644), 0);
	ck_assert_int_eq(symlink("../outside", th_server_path(&ts, "l")), 0);
	snprintf(s.a, sizeof(s.a), "%s", th_server_path(&ts, "d"));
	snprintf(s.b, sizeof(s.b), "%s", th_server_path(&ts, "l"));
	ck_assert_int_eq(pthread_create(&th, NULL, swap_main, &s), 0);
	for (int i = 0; i < 1500; i++) {
		uint64_t d;
		kb_Entry e;

		if (lookup(root.node, i % 2 ? "d" : "l", &d))
			continue;
		if (kb_rpc_lookup(R, d, "canary", &e) == 0) {
			ck_assert_uint_ne(e.attr.ino, canary.st_ino);
			found_inside++;
		}
		create_in(d, "evil");
		{
			Q(q, MKDIR);
			q.node = d;
			q.mode = 0755;
			snprintf(q.name, sizeof(q.name), "evil-dir");
			th_call(R, &q, NULL, 0, res);
		}
	}
	atomic_store(&s.stop, true);
	pthread_join(th, NULL);
	ck_assert_uint_gt(s.swaps, 0);
	ck_assert_uint_gt(found_inside, 0);
	check_outside();
}
END_TEST

/* Hand-made frames: names with '/' or NUL, garbage, no HELLO first. */
static size_t enc(uint8_t *buf, size_t cap, const kb_Request *q)
{
	size_t len = 0;

	ck_assert_int_eq(kb_wire_encode_req(buf, cap, q, &len), 0);
	return len;
}

START_TEST(test_raw_names)
{
	struct kb_chan *c = NULL;
	static uint8_t f[8192];
	static kb_Response resp;
	static kb_Request q;
	size_t len;
	uint8_t *p;

	ck_assert_int_eq(th_write_pattern(th_server_path(&ts, "aXb"), 10, 1, 0644), 0);
	ck_assert_int_eq(th_write_pattern(th_server_path(&ts, "a"), 10, 1, 0644), 0);
	ck_assert_int_eq(th_raw_connect(&ts, NULL, &c), 0);
	memset(&q, 0, sizeof(q));
	q.id = 1;
	q.op = kb_Op_HELLO;
	q.version = 1;
	snprintf(q.path, sizeof(q.path), "/");
	len = enc(f, sizeof(f), &q);
	ck_assert_int_eq(th_raw_call(c, f, len, &resp), 0);
	ck_assert_int_eq(resp.err, kb_Err_OK);
	root.node = resp.entry.node;

	memset(&q, 0, sizeof(q));
	q.id = 2;
	q.op = kb_Op_LOOKUP;
	q.node = root.node;
	snprintf(q.name, sizeof(q.name), "aXb");
	len = enc(f, sizeof(f), &q);
	ck_assert_int_eq(th_raw_call(c, f, len, &resp), 0);
	ck_assert_int_eq(resp.err, kb_Err_OK); /* control: the name works */
	q.id = 3;
	len = enc(f, sizeof(f), &q);
	p = memmem(f, len, "aXb", 3);
	ck_assert_ptr_nonnull(p);
	p[1] = '\0'; /* "a\0b": must not silently become "a" */
	ck_assert_int_eq(th_raw_call(c, f, len, &resp), 0);
	ck_assert_uint_eq(resp.id, 3);
	ck_assert_int_eq(resp.err, kb_Err_E_INVAL);
	p[1] = '/'; /* "a/b" */
	ck_assert_int_eq(th_raw_call(c, f, len, &resp), 0);
	ck_assert_int_eq(resp.err, kb_Err_E_INVAL);
	/* a symlink target with a NUL inside */
	memset(&q, 0, sizeof(q));
	q.id = 4;
	q.op = kb_Op_SYMLINK;
	q.node = root.node;
	snprintf(q.name, sizeof(q.name), "s");
	snprintf(q.name2, sizeof(q.name2), "ok/../YYoutside");
	len = enc(f, sizeof(f), &q);
	p = memmem(f, len, "YY", 2);
	p[0] = '\0';
	ck_assert_int_eq(th_raw_call(c, f, len, &resp), 0);
	ck_assert_int_eq(resp.err, kb_Err_E_INVAL);
	/* garbage: the server closes this connection, nobody else notices */
	memset(f, 0xff, 64);
	ck_assert_int_ne(th_raw_call(c, f, 64, &resp), 0);
	kb_chan_free(c);
	ck_assert_int_eq(kb_rpc_ping(R, NULL), 0);
	check_outside();
}
END_TEST

START_TEST(test_raw_no_hello)
{
	struct kb_chan *c = NULL;
	static uint8_t f[8192];
	static kb_Response resp;
	static kb_Request q;
	size_t len;

	ck_assert_int_eq(th_raw_connect(&ts, NULL, &c), 0);
	memset(&q, 0, sizeof(q));
	q.id = 1;
	q.op = kb_Op_GETATTR;
	q.node = 1;
	len = enc(f, sizeof(f), &q);
	ck_assert_int_ne(th_raw_call(c, f, len, &resp), 0); /* closed, no answer */
	kb_chan_free(c);
	/* ATTACH with a made-up token */
	ck_assert_int_eq(th_raw_connect(&ts, NULL, &c), 0);
	memset(&q, 0, sizeof(q));
	q.id = 1;
	q.op = kb_Op_ATTACH;
	q.token.size = 16;
	memset(q.token.bytes, 0x11, 16);
	len = enc(f, sizeof(f), &q);
	ck_assert_int_eq(th_raw_call(c, f, len, &resp), 0);
	ck_assert_int_eq(resp.err, kb_Err_E_ACCES);
	ck_assert_int_ne(th_raw_call(c, f, len, &resp), 0); /* then closed */
	kb_chan_free(c);
	ck_assert_int_eq(kb_rpc_ping(R, NULL), 0);
}
END_TEST

Suite *suite_escape(void);
Suite *suite_escape(void)
{
	Suite *s = suite_create("escape");
	TCase *tc = tcase_create("confinement");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_dotdot);
	tcase_add_test(tc, test_symlinks_out);
	tcase_add_test(tc, test_hard_links);
	tcase_add_test(tc, test_symlink_swap_race);
	tcase_add_test(tc, test_raw_names);
	tcase_add_test(tc, test_raw_no_hello);
	suite_add_tcase(s, tc);
	return s;
}
