/* test_compress.c - zstd on bulk data: the codec's bounds, exact round
 * trips through a mount (compressible, incompressible, mixed; reads and
 * writes), negotiation (a server that refuses, a client that does not
 * offer), and a corrupted compressed reply caught without a crash. */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "chan.h"
#include "compress.h"
#include "err.h"
#include "rpc.h"
#include "rpc_int.h"
#include "th.h"
#include "th_mount.h"
#include "util.h"
#include "wire.h"

/* Source-like text: compresses about 4-8x with zstd -1. */
static void fill_text(uint8_t *p, size_t n, unsigned seed)
{
	size_t off = 0;
	unsigned i = seed;

	while (off < n) {
		char line[160];
		int w = snprintf(
			line, sizeof(line),
			"static int handler_%u(struct req *r, int flags) { return r->n * %u + "
			"flags; } /* step %u */\n",
			i, i * 7 % 1000, i % 97);
		size_t k = KB_MIN((size_t)w, n - off);

		memcpy(p + off, line, k);
		off += k;
		i++;
	}
}

static void fill_random(uint8_t *p, size_t n, uint64_t seed)
{
	uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;

	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = (uint8_t)(x >> 32);
	}
}

/* kind 0 text, 1 random, 2 mixed (384 KiB pieces of each, in turn). */
static uint8_t *make_data(int kind, size_t n)
{
	uint8_t *p = malloc(n);
	size_t piece = 384u << 10;

	ck_assert_ptr_nonnull(p);
	if (kind == 0)
		fill_text(p, n, 1);
	else if (kind == 1)
		fill_random(p, n, 2);
	else
		for (size_t off = 0, i = 0; off < n; off += piece, i++) {
			if (i & 1)
				fill_random(p + off, KB_MIN(piece, n - off), i);
			else
				fill_text(p + off, KB_MIN(piece, n - off), (unsigned)i);
		}
	return p;
}

static void write_file(const char *path, const uint8_t *p, size_t n)
{
	FILE *f = fopen(path, "w");

	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(p, 1, n, f), n);
	ck_assert_int_eq(fclose(f), 0);
}

START_TEST(test_codec)
{
	size_t n = 1u << 20, hl, need;
	uint8_t *text = make_data(0, n), *rnd = make_data(1, n);
	uint8_t *z = malloc(KB_Z_DST_CAP(n)), *msg = malloc(n + 256), *out = malloc(n + 256);
	kb_Response resp = kb_Response_init_zero;
	ssize_t zn, got;

	/* compressible: [hdr|flag][raw][zstd] inflates back to the exact bytes */
	zn = kb_z_deflate(z, KB_Z_DST_CAP(n), text, n);
	ck_assert_int_gt(zn, 0);
	ck_assert_int_lt(zn, (ssize_t)(n / 3));
	resp.id = 7;
	ck_assert_int_eq(kb_wire_encode_resp(msg, 256, &resp, &hl), 0);
	kb_z_mark(msg);
	memcpy(msg + hl, z, (size_t)zn);
	ck_assert(kb_z_flagged(msg, hl + (size_t)zn));
	ck_assert_int_eq(kb_z_inflated_len(msg, hl + (size_t)zn, n + 256, &need), 0);
	ck_assert_uint_eq(need, hl + n);
	got = kb_z_inflate(out, n + 256, msg, hl + (size_t)zn);
	ck_assert_int_eq(got, (ssize_t)(hl + n));
	ck_assert(!kb_z_flagged(out, (size_t)got));
	ck_assert_int_eq(memcmp(out + hl, text, n), 0);
	ck_assert_int_eq(memcmp(out + 4, msg + 4, hl - 4), 0);

	/* a raw length beyond what we accept: refused before any work */
	ck_assert_int_eq(kb_z_inflated_len(msg, hl + (size_t)zn, n, &need), -KB_EPROTO);
	ck_assert_int_eq(kb_z_inflate(out, n, msg, hl + (size_t)zn), -KB_EPROTO);
	/* a raw length that lies (shorter than the data): caught */
	kb_put_be32(msg + hl, (uint32_t)(n - 1));
	ck_assert_int_eq(kb_z_inflate(out, n + 256, msg, hl + (size_t)zn), -KB_EPROTO);
	kb_put_be32(msg + hl, (uint32_t)n);
	/* corrupted zstd data, truncated data */
	msg[hl + 40] ^= 0x55;
	msg[hl + 41] ^= 0xff;
	ck_assert_int_eq(kb_z_inflate(out, n + 256, msg, hl + (size_t)zn), -KB_EPROTO);
	msg[hl + 40] ^= 0x55;
	msg[hl + 41] ^= 0xff;
	ck_assert_int_eq(kb_z_inflate(out, n + 256, msg, hl + (size_t)zn / 2), -KB_EPROTO);
	ck_assert_int_eq(kb_z_inflate(out, n + 256, msg, hl + 2), -KB_EPROTO);
	ck_assert_int_eq(kb_z_inflate(out, n + 256, msg, 3), -KB_EPROTO);

	/* incompressible: not worth it (sent raw), and too small: never */
	ck_assert_int_eq(kb_z_deflate(z, KB_Z_DST_CAP(n), rnd, n), 0);
	ck_assert_int_eq(kb_z_deflate(z, KB_Z_DST_CAP(n), text, KB_Z_MIN - 1), 0);
	free(text);
	free(rnd);
	free(z);
	free(msg);
	free(out);
}
END_TEST

/* ---- through a mount --------------------------------------------------- */

#define FILE_LEN ((3u << 20) + 12345u) /* 4 blocks, the last one short */

static double status_num(const char *st, const char *after)
{
	const char *p = strstr(st, "compress:");

	p = p ? strstr(p, after) : NULL;
	return p ? strtod(p + strlen(after), NULL) : -1.0;
}

/* Read three kinds of file through a mount made with opts, write them
 * back through it; every byte compared. Returns the mount's status text. */
static char *round_trip(const char *srv_extra, const char *opts)
{
	static const char *const names[] = {"text", "random", "mixed"};
	const char *extra[] = {srv_extra, NULL};
	struct th_server ts;
	struct th_mount m;
	char *tmp = th_tmpdir("zsrc"), *st = NULL, path[PATH_MAX];

	ck_assert_int_eq(th_server_start(&ts, 0, srv_extra ? extra : NULL), 0);
	for (int k = 0; k < 3; k++) {
		uint8_t *d = make_data(k, FILE_LEN);

		snprintf(path, sizeof(path), "%s", th_server_path(&ts, names[k]));
		write_file(path, d, FILE_LEN);
		snprintf(path, sizeof(path), "%s/%s", tmp, names[k]);
		write_file(path, d, FILE_LEN);
		free(d);
	}
	ck_assert_int_eq(th_mount_start(&m, &ts, "/", opts), 0);
	for (int k = 0; k < 3; k++) {
		/* cold reads: READ replies */
		ck_assert_int_eq(th_sh("cmp '%s/%s' '%s/%s'", tmp, names[k], m.mnt, names[k]), 0);
		/* writes: WRITE requests, then compared on the server's disk */
		ck_assert_int_eq(th_sh("cp '%s/%s' '%s/w-%s' && sync '%s/w-%s'", tmp, names[k],
				       m.mnt, names[k], m.mnt, names[k]),
				 0);
		snprintf(path, sizeof(path), "w-%s", names[k]);
		ck_assert_int_eq(
			th_sh("cmp '%s/%s' '%s'", tmp, names[k], th_server_path(&ts, path)), 0);
	}
	ck_assert_int_eq(th_sh_out(&st, "getfattr -n keibifs.status --only-values '%s'", m.mnt), 0);
	th_mount_stop(&m);
	th_server_cleanup(&ts);
	th_sh("rm -rf '%s'", tmp);
	free(tmp);
	return st;
}

START_TEST(test_mount_on)
{
	char *st;
	double zin, din, dout, zout;

	if (!th_fuse_available("test_compress"))
		return;
	st = round_trip(NULL, "compress=on,conns=2");
	ck_assert_ptr_nonnull(strstr(st, "compress: on, zstd negotiated"));
	zin = status_num(st, "received ");
	din = status_num(st, "MiB of zstd for ");
	dout = status_num(st, "sent ");
	zout = status_num(st, "MiB of data as ");
	/* the text and the text halves of the mixed file went compressed both
	 * ways; the random data (and the mixed file's random blocks) raw */
	ck_assert_msg(zin > 0.0 && din > 2.0 * zin, "status: %s", st);
	ck_assert_msg(zout > 0.0 && dout > 2.0 * zout, "status: %s", st);
	free(st);
}
END_TEST

START_TEST(test_server_refuses)
{
	char *st;

	if (!th_fuse_available("test_compress"))
		return;
	st = round_trip("--no-compress", "compress=on");
	ck_assert_msg(strstr(st, "compress: on, refused by the server; received 0.0 MiB"),
		      "status: %s", st);
	ck_assert_msg(strstr(st, "sent 0.0 MiB of data"), "status: %s", st);
	free(st);
}
END_TEST

START_TEST(test_client_off)
{
	char *st;

	if (!th_fuse_available("test_compress"))
		return;
	st = round_trip(NULL, "compress=off");
	ck_assert_msg(strstr(st, "compress: off, not offered; received 0.0 MiB"), "status: %s", st);
	free(st);
}
END_TEST

/* ---- a corrupted compressed reply (fake server over a socketpair) ------ */

#define FAKE_FRAME ((1u << 20) + 4096u)

struct fake {
	struct kb_chan *chan; /* owned: the server's side */
	pthread_t th;
	uint32_t compress_seen; /* the last READ's compress field */
};

/* READ node 1: a good compressed reply; node 2: corrupted zstd; node 3: a
 * raw length far past any frame; node 4: compressed and raw lengths that
 * disagree. */
static void *fake_main(void *arg)
{
	struct fake *f = arg;
	uint8_t *in = malloc(FAKE_FRAME + KB_FRAME_TAG), *out = malloc(FAKE_FRAME);
	uint8_t *data = make_data(0, 1u << 20);

	for (;;) {
		kb_Request q;
		kb_Response p = kb_Response_init_zero;
		const uint8_t *bulk;
		size_t plen, bl, hl;
		ssize_t zn;

		if (kb_chan_recv(f->chan, in, FAKE_FRAME + KB_FRAME_TAG, &plen) ||
		    kb_wire_decode_req(in, plen, &q, &bulk, &bl))
			break;
		f->compress_seen = q.compress;
		p.id = q.id;
		ck_assert_int_eq(kb_wire_encode_resp(out, 256, &p, &hl), 0);
		kb_z_mark(out);
		zn = kb_z_deflate(out + hl, FAKE_FRAME - hl, data, q.length);
		ck_assert_int_gt(zn, 0);
		if (q.node == 2)
			memset(out + hl + 100, 0xa5, 64);
		if (q.node == 3)
			kb_put_be32(out + hl, 0x7fffffff);
		if (q.node == 4)
			kb_put_be32(out + hl, (uint32_t)q.length + 1);
		{
			struct iovec iov = {.iov_base = out, .iov_len = hl + (size_t)zn};

			if (kb_chan_sendv(f->chan, &iov, 1))
				break;
		}
	}
	free(in);
	free(out);
	free(data);
	return NULL;
}

START_TEST(test_corrupt_reply)
{
	static const uint8_t k1[32] = {1}, k2[32] = {2};
	struct kb_rpc_cfg cfg = {.host = "fake",
				 .conns = 1,
				 .timeout_ms = 5000,
				 .max_frame = FAKE_FRAME,
				 .keepalive_ms = -1,
				 .noreconnect = true,
				 .compress = KB_Z_ON};
	struct kb_chan *cc = NULL;
	struct fake f = {0};
	uint8_t *buf = malloc(1u << 20), *want = make_data(0, 1u << 20);
	struct kb_rpc *r = NULL;
	size_t got = 0;
	int sv[2];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	ck_assert_int_eq(
		kb_chan_from_keys(&cc, sv[0], KB_AEAD_DEFAULT, k1, k2, FAKE_FRAME, FAKE_FRAME), 0);
	ck_assert_int_eq(
		kb_chan_from_keys(&f.chan, sv[1], KB_AEAD_DEFAULT, k2, k1, FAKE_FRAME, FAKE_FRAME),
		0);
	ck_assert_int_eq(pthread_create(&f.th, NULL, fake_main, &f), 0);
	ck_assert_int_eq(kb_rpc_new_raw(&r, &cfg, &cc), 0);

	ck_assert_int_eq(kb_rpc_pread(r, 1, 0, buf, 1u << 20, 0, &got), 0);
	ck_assert_uint_eq(got, 1u << 20);
	ck_assert_int_eq(memcmp(buf, want, got), 0);
	ck_assert_uint_eq(f.compress_seen, KB_Z_ON);
	/* each bad reply fails its own request, clearly, and nothing else */
	for (uint64_t node = 2; node <= 4; node++)
		ck_assert_int_eq(kb_rpc_pread(r, node, 0, buf, 1u << 20, 0, &got), -KB_EPROTO);
	ck_assert_int_eq(kb_rpc_pread(r, 1, 0, buf, 64u << 10, 0, &got), 0);
	ck_assert_uint_eq(got, 64u << 10);
	ck_assert_int_eq(memcmp(buf, want, got), 0);

	kb_rpc_free(r);
	kb_chan_shutdown(f.chan);
	pthread_join(f.th, NULL);
	kb_chan_free(f.chan);
	free(buf);
	free(want);
}
END_TEST

Suite *suite_compress(void);
Suite *suite_compress(void)
{
	Suite *s = suite_create("compress");
	TCase *tc = tcase_create("compress");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_codec);
	tcase_add_test(tc, test_corrupt_reply);
	tcase_add_test(tc, test_mount_on);
	tcase_add_test(tc, test_server_refuses);
	tcase_add_test(tc, test_client_off);
	suite_add_tcase(s, tc);
	return s;
}
