/* fuzz_request.c - arbitrary bytes as one decrypted request frame, through
 * the request decoder and the whole dispatcher, against a temp share.
 *
 * The session (HELLO) is made once; each input is then one frame on it, so
 * node and handle ids found by earlier inputs stay valid and the fuzzer can
 * chain operations. RLIMIT_FSIZE keeps WRITE/FALLOCATE from filling the
 * disk. Every reply must decode as a kb.Response with the request's id.
 * An input that starts with 0xC0 is a COMPOUND: the rest, as records of
 * [u16 BE length][bytes], are its parts (each a request plaintext), and
 * every part's reply in its reply must decode too.
 */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chan.h"
#include "server.h"
#include "srv_impl.h"
#include "util.h"
#include "wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct kb_srv *srv;
static struct kb_srv_conn *conn;
static struct kb_srv_worker *worker;
static kb_Response resp; /* large: not on the stack */
static kb_Request req;

static void setup_share(const char *dir)
{
	char p[512];
	FILE *f;

	snprintf(p, sizeof(p), "%s/file", dir);
	f = fopen(p, "w");
	if (f) {
		fputs("hello fuzzer\n", f);
		fclose(f);
	}
	snprintf(p, sizeof(p), "%s/dir", dir);
	mkdir(p, 0755);
	snprintf(p, sizeof(p), "%s/dir/link", dir);
	if (symlink("/etc/passwd", p)) {
		/* exists from an earlier run */
	}
}

static char tmpl[] = "/tmp/fuzz_request.XXXXXX";

static void cleanup(void)
{
	char cmd[64];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpl);
	if (system(cmd)) {
		/* best effort */
	}
}

static void init(void)
{
	struct kb_srv_cfg cfg = {0};
	struct rlimit rl = {16 << 20, 16 << 20};
	uint8_t priv[32], frame[8192], *reply;
	char err[256];
	size_t len, rlen;
	const char *dir = mkdtemp(tmpl);

	if (!dir)
		abort();
	atexit(cleanup);
	setup_share(dir);
	setrlimit(RLIMIT_FSIZE, &rl);
	signal(SIGXFSZ, SIG_IGN);
	memset(priv, 7, sizeof(priv));
	cfg.share = dir;
	cfg.priv = priv;
	cfg.no_listen = true;
	if (kb_srv_new(&srv, &cfg, err, sizeof(err)) || kb_srv_start(srv, err, sizeof(err)) ||
	    kb_srv_conn_detached(&conn, srv, 0) || kb_srv_worker_new(&worker, 1u << 20)) {
		fprintf(stderr, "fuzz_request: %s\n", err);
		abort();
	}
	memset(&req, 0, sizeof(req));
	req.id = 1;
	req.op = kb_Op_HELLO;
	req.version = 1;
	snprintf(req.path, sizeof(req.path), "/");
	if (kb_wire_encode_req(frame, sizeof(frame), &req, &len) ||
	    kb_srv_handle_frame(conn, worker, frame, len, &reply, &rlen) < 0)
		abort();
}

/* 0xC0 + records: a COMPOUND frame of those parts into out. */
static size_t compound_of(const uint8_t *data, size_t size, uint8_t *out, size_t cap)
{
	static uint8_t parts[1u << 20];
	size_t n = 0, len = 0;

	memset(&req, 0, sizeof(req));
	req.id = 77;
	req.op = kb_Op_COMPOUND;
	for (size_t i = 1; i + 2 <= size;) {
		size_t rl = (size_t)data[i] << 8 | data[i + 1];

		rl = rl < size - i - 2 ? rl : size - i - 2;
		kb_put_be32(parts + n, (uint32_t)rl);
		memcpy(parts + n + 4, data + i + 2, rl);
		n += 4 + rl;
		i += 2 + rl;
	}
	if (kb_wire_encode_req(out, cap, &req, &len) || len + n > cap)
		return 0;
	memcpy(out + len, parts, n);
	return len + n;
}

/* Every part's reply in a COMPOUND's reply decodes. */
static void check_parts(const uint8_t *bulk, size_t left)
{
	static kb_Response part;
	const uint8_t *pt, *b;
	size_t len, bl;
	int r;

	while ((r = kb_wire_part_next(&bulk, &left, &pt, &len)) > 0)
		if (kb_wire_decode_resp(pt, len, &part, &b, &bl))
			abort();
	if (r < 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t *copy;
	const uint8_t *bulk, *rb;
	uint8_t *reply;
	size_t blen, rlen, rbl;
	int rc;

	if (!srv)
		init();
	if (size > (1u << 20))
		return 0;
	if (!copy)
		copy = malloc(1u << 20);
	if (size && data[0] == 0xC0)
		size = compound_of(data, size, copy, 1u << 20);
	else
		memcpy(copy, data, size);  /* the server may keep no pointer into it */
	(void)kb_srv_quick_op(copy, size); /* the receiver's op peek */
	rc = kb_srv_handle_frame(conn, worker, copy, size, &reply, &rlen);
	if (reply) {
		if (kb_wire_decode_resp(reply + KB_FRAME_HEAD, rlen, &resp, &rb, &rbl))
			abort(); /* the server sent something malformed */
		if (kb_wire_decode_req(copy, size, &req, &bulk, &blen) == 0 && resp.id != req.id)
			abort();
		if (req.op == kb_Op_COMPOUND && resp.err == kb_Err_OK)
			check_parts(rb, rbl);
	}
	(void)rc;
	return 0;
}
