/* test_wire.c - message codec: round trips, bounds, malformed input. */
#include <check.h>
#include <stdint.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "util.h"
#include "wire.h"

START_TEST(test_req_roundtrip_with_bulk)
{
	kb_Request in = kb_Request_init_zero, out;
	uint8_t frame[1024];
	const uint8_t *bulk;
	size_t len, blen;

	in.id = 42;
	in.op = kb_Op_WRITE;
	in.node = 7;
	in.offset = 1ull << 40;
	strcpy(in.name, "file.txt");
	ck_assert_int_eq(kb_wire_encode_req(frame, sizeof(frame), &in, &len), 0);
	ck_assert_uint_eq(len, kb_wire_req_size(&in));
	memcpy(frame + len, "BULKDATA", 8);
	ck_assert_int_eq(kb_wire_decode_req(frame, len + 8, &out, &bulk, &blen), 0);
	ck_assert_uint_eq(out.id, 42);
	ck_assert_int_eq(out.op, kb_Op_WRITE);
	ck_assert_uint_eq(out.offset, 1ull << 40);
	ck_assert_str_eq(out.name, "file.txt");
	ck_assert_uint_eq(blen, 8);
	ck_assert_ptr_eq(bulk, frame + len); /* bulk is not copied */
}
END_TEST

/* READDIR entries in the bulk: 1024 of them at the longest name, in one
 * buffer sized by KB_WIRE_DIRENT_MAX, decoded back in order; a short
 * buffer, a truncated entry and an over-long name are refused. */
START_TEST(test_dirents_in_bulk)
{
	enum {
		N = 1024
	};
	size_t cap = N * KB_WIRE_DIRENT_MAX, len = 0, n, off = 0;
	uint8_t *bulk = malloc(cap), tiny[8], bad[300];
	kb_Dirent d, out;
	int i = 0;

	for (i = 0; i < N; i++) {
		d = (kb_Dirent)kb_Dirent_init_zero;
		memset(d.name, 'a' + i % 26, 255);
		d.cookie = (uint64_t)i + 1;
		d.type = 8;
		d.ino = 1u << 31;
		d.has_entry = true;
		d.entry.node = 1000 + (uint64_t)i;
		d.entry.has_attr = true;
		d.entry.attr.size = UINT64_MAX;
		ck_assert_int_eq(kb_wire_dirent_put(bulk + len, cap - len, &d, &n), 0);
		ck_assert_uint_le(n, KB_WIRE_DIRENT_MAX);
		len += n;
	}
	for (i = 0; kb_wire_dirent_next(bulk, len, &off, &out) == 1; i++) {
		ck_assert_uint_eq(out.cookie, (uint64_t)i + 1);
		ck_assert_uint_eq(out.entry.node, 1000 + (uint64_t)i);
		ck_assert_uint_eq(strlen(out.name), 255);
		ck_assert_uint_eq(out.entry.attr.size, UINT64_MAX);
	}
	ck_assert_int_eq(i, N);
	ck_assert_uint_eq(off, len);
	ck_assert_int_eq(kb_wire_dirent_put(tiny, sizeof(tiny), &d, &n), -ENOSPC);
	off = len - n; /* the last entry cut short */
	ck_assert_int_eq(kb_wire_dirent_next(bulk, len - 1, &off, &out), -KB_EPROTO);
	/* a name (field 1) of 260 bytes: over the 255+NUL bound */
	bad[0] = 0x87;
	bad[1] = 0x02; /* length 263 */
	bad[2] = 0x0a;
	bad[3] = 0x84;
	bad[4] = 0x02; /* field 1, 260 bytes */
	memset(bad + 5, 'x', sizeof(bad) - 5);
	off = 0;
	ck_assert_int_eq(kb_wire_dirent_next(bad, 2 + 263, &off, &out), -KB_EPROTO);
	free(bulk);
}
END_TEST

START_TEST(test_malformed)
{
	kb_Request r;
	const uint8_t *bulk;
	size_t blen;
	uint8_t f[64] = {0, 0, 0, 100};                      /* header longer than frame */
	uint8_t g[8] = {0, 0, 0, 4, 0xff, 0xff, 0xff, 0xff}; /* garbage protobuf */
	uint8_t big[300];

	ck_assert_int_eq(kb_wire_decode_req(f, 3, &r, &bulk, &blen), -KB_EPROTO);
	ck_assert_int_eq(kb_wire_decode_req(f, sizeof(f), &r, &bulk, &blen), -KB_EPROTO);
	ck_assert_int_eq(kb_wire_decode_req(g, sizeof(g), &r, &bulk, &blen), -KB_EPROTO);
	/* name (field 5) of 260 bytes: over the 255+NUL bound */
	kb_put_be32(big, 263);
	big[4] = 5 << 3 | 2;
	big[5] = 0x84; /* varint 260 */
	big[6] = 0x02;
	memset(big + 7, 'x', 260);
	ck_assert_int_eq(kb_wire_decode_req(big, 267, &r, &bulk, &blen), -KB_EPROTO);
}
END_TEST

START_TEST(test_errno_map)
{
	ck_assert_int_eq(kb_wire_err_to_errno(kb_wire_err_from_errno(-ENOENT)), -ENOENT);
	ck_assert_int_eq(kb_wire_err_to_errno(kb_wire_err_from_errno(-ENOSPC)), -ENOSPC);
	ck_assert_int_eq(kb_wire_err_to_errno(kb_wire_err_from_errno(-EDQUOT)), -EDQUOT);
	ck_assert_int_eq(kb_wire_err_from_errno(0), kb_Err_OK);
	ck_assert_int_eq(kb_wire_err_from_errno(-EHWPOISON), kb_Err_E_IO);
	ck_assert_int_eq(kb_wire_err_to_errno((kb_Err)9999), -EIO);
	ck_assert_str_eq(kb_wire_op_name(kb_Op_READ), "READ");
	ck_assert_str_eq(kb_wire_op_name((kb_Op)999), "UNKNOWN");
}
END_TEST

Suite *suite_wire(void);
Suite *suite_wire(void)
{
	Suite *s = suite_create("wire");
	TCase *tc = tcase_create("codec");

	tcase_add_test(tc, test_req_roundtrip_with_bulk);
	tcase_add_test(tc, test_dirents_in_bulk);
	tcase_add_test(tc, test_malformed);
	tcase_add_test(tc, test_errno_map);
	suite_add_tcase(s, tc);
	return s;
}
