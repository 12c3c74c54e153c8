/* test_op.c - the operation table (src/core/op.c) classifies every
 * operation of the protocol, and only those, consistently; every one a
 * client sends has a typed call (src/client/rpc_api.h), and the mount
 * (fuse/) builds no request of its own. */
#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keibifs.pb.h"
#include "op.h"
#include "rpc_api.h"
#include "th.h"

/* The values of `enum Op` in proto/keibifs.proto: listed[v] for each. */
static int proto_ops(bool *listed, size_t n)
{
	char path[4096], line[512];
	bool in = false;
	int count = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/proto/keibifs.proto", th_srcdir());
	f = fopen(path, "r");
	ck_assert_msg(f, "open %s", path);
	while (fgets(line, sizeof(line), f)) {
		char name[64];
		int v;

		if (!in) {
			in = strstr(line, "enum Op {") != NULL;
			continue;
		}
		if (strchr(line, '}'))
			break;
		if (sscanf(line, " %63[A-Z_0-9] = %d;", name, &v) == 2) {
			ck_assert_msg(v >= 0 && (size_t)v < n, "%s = %d", name, v);
			listed[v] = true;
			count++;
		}
	}
	fclose(f);
	return count;
}

START_TEST(test_every_op_classified)
{
	bool listed[_kb_Op_MAX + 1] = {false};
	int n = proto_ops(listed, sizeof(listed) / sizeof(listed[0]));

	ck_assert_int_gt(n, 30);
	for (int v = _kb_Op_MIN; v <= _kb_Op_MAX; v++) {
		uint32_t p = kb_op_props((uint32_t)v);

		if (!listed[v] || v == kb_Op_OP_NONE) {
			ck_assert_msg(p == 0, "value %d is no operation but has properties", v);
			continue;
		}
		ck_assert_msg(p & KB_OP_KNOWN, "operation %d is not in the table", v);
		if (p & (KB_OP_FIRST | KB_OP_PUSH))
			continue;
		/* a request the client may re-send is either safe to run twice
		 * or answered from the reply cache, never both, never neither */
		ck_assert_msg(!!(p & KB_OP_IDEMPOTENT) + !!(p & KB_OP_REPLAY) == 1,
			      "operation %d: idempotent xor reply-cached", v);
	}
	ck_assert_uint_eq(kb_op_props(_kb_Op_MAX + 1), 0);
	ck_assert_uint_eq(kb_op_props(UINT32_MAX), 0);
}
END_TEST

START_TEST(test_rules)
{
	/* re-sent after a cut, these must run once */
	ck_assert(kb_op_is(kb_Op_FALLOCATE, KB_OP_REPLAY));
	ck_assert(kb_op_is(kb_Op_COPY_FILE_RANGE, KB_OP_REPLAY));
	ck_assert(kb_op_is(kb_Op_FORGET, KB_OP_REPLAY));
	ck_assert(kb_op_is(kb_Op_CREATE, KB_OP_REPLAY | KB_OP_MUTATING));
	ck_assert(kb_op_is(kb_Op_WRITE, KB_OP_IDEMPOTENT | KB_OP_MUTATING | KB_OP_BULK_IN));
	ck_assert(kb_op_is(kb_Op_READ, KB_OP_IDEMPOTENT | KB_OP_BULK_OUT));
	ck_assert(!kb_op_is(kb_Op_READ, KB_OP_MUTATING));
	ck_assert(!kb_op_is(kb_Op_READ, KB_OP_QUICK));
	ck_assert(kb_op_is(kb_Op_GETATTR, KB_OP_QUICK));
	ck_assert(kb_op_is(kb_Op_HELLO, KB_OP_FIRST));
	/* every op that changes the share is refused on a read-only one,
	 * and the ones served on the receiver carry no reply bulk */
	for (int v = _kb_Op_MIN; v <= _kb_Op_MAX; v++)
		ck_assert_msg(!kb_op_is((uint32_t)v, KB_OP_QUICK | KB_OP_BULK_OUT), "%d", v);
}
END_TEST

/* The text of the file at path under the source tree (malloc'd). */
static char *src_text(const char *path)
{
	char full[4096];
	char *buf;
	long n;
	FILE *f;

	snprintf(full, sizeof(full), "%s/%s", th_srcdir(), path);
	f = fopen(full, "r");
	ck_assert_msg(f, "open %s", full);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)n + 1);
	ck_assert(buf && fread(buf, 1, (size_t)n, f) == (size_t)n);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

START_TEST(test_every_client_op_typed)
{
	bool listed[_kb_Op_MAX + 1] = {false};
	char *api = src_text("src/client/rpc_api.h"), *rpc = src_text("src/client/rpc.h");
	char *wb = src_text("src/client/rpc_wb.h"), *st = src_text("src/client/stream.h");

	proto_ops(listed, sizeof(listed) / sizeof(listed[0]));
	for (int v = _kb_Op_MIN; v <= _kb_Op_MAX; v++) {
		const char *call = kb_rpc_api_call((uint32_t)v);
		char decl[128];

		if (!listed[v] || v == kb_Op_OP_NONE ||
		    (kb_op_props((uint32_t)v) & (KB_OP_FIRST | KB_OP_PUSH))) {
			ck_assert_msg(!call, "%d is sent by no caller but names %s", v, call);
			continue;
		}
		ck_assert_msg(call, "operation %d has no typed call", v);
		snprintf(decl, sizeof(decl), " %s(struct kb_rpc *r", call);
		if (!strstr(api, decl) && !strstr(rpc, decl)) /* or only in the stream */
			snprintf(decl, sizeof(decl), " %s(struct kb_stream *st", call);
		ck_assert_msg(strstr(api, decl) || strstr(rpc, decl) || strstr(wb, decl) ||
				      strstr(st, decl),
			      "%s is not declared", call);
	}
	free(st);
	free(wb);
	free(api);
	free(rpc);
}
END_TEST

/* The mount speaks only through the typed calls: no kb_Request, no wire
 * codec, no raw send anywhere in fuse/. */
START_TEST(test_fuse_no_raw_requests)
{
	static const char *const banned[] = {"kb_Request",        "\"wire.h\"",     "kb_rpc_call(",
					     "kb_rpc_call_take(", "kb_rpc_submit(", "kb_wire_"};
	char dir[4096];
	struct dirent *de;
	unsigned files = 0;
	DIR *d;

	snprintf(dir, sizeof(dir), "%s/fuse", th_srcdir());
	d = opendir(dir);
	ck_assert_msg(d, "open %s", dir);
	while ((de = readdir(d))) {
		size_t n = strlen(de->d_name);
		char path[512];
		char *text;

		if (n < 3 || (strcmp(de->d_name + n - 2, ".c") && strcmp(de->d_name + n - 2, ".h")))
			continue;
		snprintf(path, sizeof(path), "fuse/%s", de->d_name);
		text = src_text(path);
		for (size_t i = 0; i < sizeof(banned) / sizeof(banned[0]); i++)
			ck_assert_msg(!strstr(text, banned[i]), "%s mentions %s", path, banned[i]);
		free(text);
		files++;
	}
	closedir(d);
	ck_assert_uint_gt(files, 20);
}
END_TEST

Suite *suite_op(void);
Suite *suite_op(void)
{
	Suite *s = suite_create("op");
	TCase *tc = tcase_create("table");

	tcase_add_test(tc, test_every_op_classified);
	tcase_add_test(tc, test_rules);
	tcase_add_test(tc, test_every_client_op_typed);
	tcase_add_test(tc, test_fuse_no_raw_requests);
	suite_add_tcase(s, tc);
	return s;
}
