/* th_server.c - a real keibifsd for protocol and FUSE tests. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chan.h"
#include "keys.h"
#include "net.h"
#include "wire.h"
#include "noise.h"
#include "raw_chan.h"
#include "rpc.h"
#include "th.h"
#include "th_server.h"

static int copy_line(const char *from, const char *to, const char *prefix, int append)
{
	char line[512];
	FILE *in = fopen(from, "r"), *out;
	int fd;

	if (!in)
		return -1;
	if (!fgets(line, sizeof(line), in)) {
		fclose(in);
		return -1;
	}
	fclose(in);
	fd = open(to, O_WRONLY | O_CREAT | (append ? O_APPEND : O_TRUNC), 0600);
	out = fd >= 0 ? fdopen(fd, append ? "a" : "w") : NULL;
	if (!out)
		return -1;
	fprintf(out, "%s%s", prefix, line);
	return fclose(out) ? -1 : 0;
}

int th_server_prepare(struct th_server *ts, unsigned flags)
{
	struct kb_noise_rng *rng = NULL;
	char err[256], pub[PATH_MAX + 8];
	int ret = -1;

	memset(ts, 0, sizeof(*ts));
	ts->dir = th_tmpdir("srv");
	if (!ts->dir || kb_noise_rng_new(&rng))
		goto out;
	snprintf(ts->share, sizeof(ts->share), "%s/share", ts->dir);
	snprintf(ts->log, sizeof(ts->log), "%s/server.log", ts->dir);
	snprintf(ts->server_key, sizeof(ts->server_key), "%s/server.key", ts->dir);
	snprintf(ts->client_key, sizeof(ts->client_key), "%s/client.key", ts->dir);
	snprintf(ts->authorized, sizeof(ts->authorized), "%s/authorized", ts->dir);
	snprintf(ts->known_peers, sizeof(ts->known_peers), "%s/known_peers", ts->dir);
	if (mkdir(ts->share, 0755))
		goto out;
	if (kb_key_generate(ts->server_key, false, rng, ts->server_pub, err, sizeof(err)) ||
	    kb_key_generate(ts->client_key, false, rng, ts->client_pub, err, sizeof(err))) {
		fprintf(stderr, "th_server: keygen: %s\n", err);
		goto out;
	}
	if (kb_key_load_private(ts->client_key, ts->client_priv, ts->client_pub, err, sizeof(err)))
		goto out;
	snprintf(pub, sizeof(pub), "%s.pub", ts->client_key);
	if (copy_line(pub, ts->authorized, (flags & TH_SRV_RO_KEY) ? "ro " : "", 0))
		goto out;
	snprintf(pub, sizeof(pub), "%s.pub", ts->server_key);
	if (copy_line(pub, ts->known_peers, "", 0))
		goto out;
	ts->port = th_free_port();
	snprintf(ts->port_str, sizeof(ts->port_str), "%d", ts->port);
	ret = 0;
out:
	kb_noise_rng_free(rng);
	return ret;
}

int th_server_start(struct th_server *ts, unsigned flags, const char *const *extra)
{
	if (th_server_prepare(ts, flags))
		return -1;
	return th_server_spawn(ts, flags, extra);
}

int th_server_spawn(struct th_server *ts, unsigned flags, const char *const *extra)
{
	const char *argv[32];
	char listen[64];
	int n = 0;

	snprintf(listen, sizeof(listen), "127.0.0.1:%d", ts->port);
	argv[n++] = th_bin("keibifsd");
	argv[n++] = "--share";
	argv[n++] = ts->share;
	argv[n++] = "--key";
	argv[n++] = ts->server_key;
	argv[n++] = "--authorized";
	argv[n++] = ts->authorized;
	argv[n++] = "--listen";
	argv[n++] = listen;
	argv[n++] = "--foreground";
	if (flags & TH_SRV_RO)
		argv[n++] = "--read-only";
	for (; extra && *extra && n < 30; extra++)
		argv[n++] = *extra;
	argv[n] = NULL;
	ts->pid = th_spawn((char *const *)argv, ts->log);
	if (ts->pid <= 0) {
		ts->pid = 0;
		return -1;
	}
	if (flags & TH_SRV_NOWAIT)
		return 0;
	if (!th_wait_file_contains(ts->log, "keibifsd: ready", 10000)) {
		fprintf(stderr, "th_server: keibifsd did not get ready; log %s\n", ts->log);
		return -1;
	}
	return 0;
}

int th_server_stop(struct th_server *ts)
{
	int st;

	if (ts->pid <= 0)
		return -1;
	st = th_stop(ts->pid, 10000);
	ts->pid = 0;
	return st;
}

void th_server_cleanup(struct th_server *ts)
{
	if (ts->pid > 0)
		th_server_stop(ts);
	if (ts->dir && !getenv("KB_KEEP_TMP"))
		th_sh("rm -rf '%s'", ts->dir);
	free(ts->dir);
	ts->dir = NULL;
}

void th_session_free(struct kb_rpc **r, struct kb_rpc_result **res)
{
	kb_rpc_result_free(*res);
	*res = NULL;
	kb_rpc_free(*r);
	*r = NULL;
}

int th_server_end(struct th_server *ts, struct kb_rpc **r, struct kb_rpc_result **res)
{
	int st = 0;

	th_session_free(r, res);
	if (ts->pid > 0)
		st = th_server_stop(ts);
	th_server_cleanup(ts);
	return st;
}

int th_server_connect_via(struct th_server *ts, const char *port, const uint8_t priv[32],
			  unsigned conns, int timeout_ms, struct kb_rpc **out, kb_Entry *root,
			  bool *read_only, char *err, size_t errlen)
{
	struct kb_keyset *trust = NULL;
	struct kb_rpc_cfg cfg = {
		.host = "127.0.0.1",
		.port = port,
		.path = "/",
		.conns = conns,
		.identity = priv,
		.timeout_ms = timeout_ms,
	};
	kb_Entry dummy;
	bool ro;
	int ret = kb_keyset_new(&trust);

	if (!ret)
		ret = kb_keyset_add(trust, ts->server_pub, 0);
	cfg.trust = trust;
	if (!ret)
		ret = kb_rpc_new(out, &cfg, root ? root : &dummy, read_only ? read_only : &ro, err,
				 errlen);
	kb_keyset_free(trust);
	return ret;
}

int th_server_connect_as(struct th_server *ts, const uint8_t priv[32], unsigned conns,
			 struct kb_rpc **out, kb_Entry *root, char *err, size_t errlen)
{
	return th_server_connect_via(ts, ts->port_str, priv, conns, 10000, out, root, NULL, err,
				     errlen);
}

int th_server_connect(struct th_server *ts, unsigned conns, struct kb_rpc **out, kb_Entry *root,
		      bool *read_only)
{
	char err[256] = "";
	int ret = th_server_connect_via(ts, ts->port_str, ts->client_priv, conns, 10000, out, root,
					read_only, err, sizeof(err));

	if (ret)
		fprintf(stderr, "th_server_connect: %s\n", err);
	return ret;
}

int th_proxy_start(const struct th_server *ts, const char *const *extra, struct th_server *via,
		   pid_t *pid, char plog[PATH_MAX])
{
	const char *argv[16];
	char to[64];
	int n = 0;

	*via = *ts;
	via->port = th_free_port();
	snprintf(via->port_str, sizeof(via->port_str), "%d", via->port);
	snprintf(to, sizeof(to), "127.0.0.1:%d", ts->port);
	snprintf(plog, PATH_MAX, "%s/proxy.log", ts->dir);
	argv[n++] = th_bin("tests/kbproxy");
	argv[n++] = "--listen";
	argv[n++] = via->port_str;
	argv[n++] = "--to";
	argv[n++] = to;
	for (; extra && *extra && n < 15; extra++)
		argv[n++] = *extra;
	argv[n] = NULL;
	*pid = th_spawn((char *const *)argv, plog);
	if (*pid <= 0) {
		*pid = 0;
		return -1;
	}
	return th_wait_file_contains(plog, "kbproxy: ready", 10000) ? 0 : -1;
}

const char *th_server_path(const struct th_server *ts, const char *rel)
{
	static __thread char p[PATH_MAX * 2];

	th_mounts_drain(); /* what the mounts queued is there first */
	snprintf(p, sizeof(p), "%s/%s", ts->share, rel);
	return p;
}

int th_call(struct kb_rpc *r, kb_Request *q, const void *bulk, size_t blen,
	    struct kb_rpc_result *res)
{
	if (res)
		kb_rpc_result_reset(res);
	return kb_rpc_call(r, q, bulk, blen, res);
}

int th_lookup(struct kb_rpc *r, uint64_t parent, const char *name, uint64_t *node)
{
	kb_Entry e;
	int ret = kb_rpc_lookup(r, parent, name, &e);

	if (!ret && node)
		*node = e.node;
	return ret;
}

int th_raw_connect(struct th_server *ts, const uint8_t *priv, struct kb_chan **out)
{
	struct kb_net_opts o = {.timeout_ms = 5000};
	struct kb_chan_info info;
	char err[256];
	int fd = -1, ret = kb_net_connect(&fd, "127.0.0.1", ts->port_str, &o, err, sizeof(err));

	if (!ret)
		ret = kb_rawchan_handshake(fd, priv ? priv : ts->client_priv, 5000, out, &info);
	return ret;
}

int th_raw_call(struct kb_chan *c, const uint8_t *pt, size_t len, kb_Response *resp)
{
	static __thread uint8_t buf[KB_FRAME_HEAD + 65536 + KB_FRAME_TAG];
	const uint8_t *bulk;
	size_t plen, blen;
	int ret;

	if (len > 65536)
		return -EINVAL;
	memcpy(buf + KB_FRAME_HEAD, pt, len);
	ret = kb_chan_send(c, buf, len);
	if (!ret)
		ret = kb_chan_recv(c, buf, sizeof(buf), &plen);
	if (!ret)
		ret = kb_wire_decode_resp(buf, plen, resp, &bulk, &blen);
	return ret;
}
