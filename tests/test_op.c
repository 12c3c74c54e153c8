/* test_op.c - the operation table (src/core/op.c) classifies every
 * operation of the protocol, and only those, consistently. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keibifs.pb.h"
#include "op.h"
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

Suite *suite_op(void);
Suite *suite_op(void)
{
	Suite *s = suite_create("op");
	TCase *tc = tcase_create("table");

	tcase_add_test(tc, test_every_op_classified);
	tcase_add_test(tc, test_rules);
	suite_add_tcase(s, tc);
	return s;
}
