/* fuzz_request.c - arbitrary bytes as one decrypted request frame, through
 * the request decoder and the whole dispatcher, against a temp share.
 *
 * The session (HELLO) is made once; each input is then one frame on it, so
 * node and handle ids found by earlier inputs stay valid and the fuzzer can
 * chain operations. RLIMIT_FSIZE keeps WRITE/FALLOCATE from filling the
 * disk. Every reply must decode as a kb.Response with the request's id.
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t *copy;
	const uint8_t *bulk;
	uint8_t *reply;
	size_t blen, rlen;
	int rc;

	if (!srv)
		init();
	if (size > (1u << 20))
		return 0;
	if (!copy)
		copy = malloc(1u << 20);
	memcpy(copy, data, size);          /* the server may keep no pointer into it */
	(void)kb_srv_quick_op(copy, size); /* the receiver's op peek */
	rc = kb_srv_handle_frame(conn, worker, copy, size, &reply, &rlen);
	if (reply) {
		if (kb_wire_decode_resp(reply + KB_FRAME_HEAD, rlen, &resp, &bulk, &blen))
			abort(); /* the server sent something malformed */
		if (kb_wire_decode_req(copy, size, &req, &bulk, &blen) == 0 && resp.id != req.id)
			abort();
	}
	(void)rc;
	return 0;
}
