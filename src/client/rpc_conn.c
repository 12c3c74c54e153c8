/* rpc_conn.c - opening a session: connect, authenticate, HELLO / ATTACH,
 * with one clear line of error text for each way it can fail. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "net.h"
#include "noise.h"
#include "rpc_int.h"
#include "util.h"
#include "wire.h"

#define KB_RPC_MAX_CONNS 64

/* While kb_rpc_new runs: the caller's trust set. Later (reconnects): only
 * the key the server had at the first connection. */
static int verify_server(void *arg, const uint8_t rs[static 32], unsigned *flags)
{
	struct kb_rpc *r = arg;
	char why[sizeof(r->trust_why)];
	int rc;

	if (!r->cfg.trust) {
		*flags = 0;
		return kb_memcmp_ct(r->server_key, rs, KB_KEY_LEN) ? -KB_EUNTRUSTED : 0;
	}
	rc = kb_keyset_match_host(r->cfg.trust, r->host, r->port, rs, flags, why, sizeof(why));
	if (rc == -EKEYREJECTED) {
		pthread_mutex_lock(&r->lock);
		memcpy(r->trust_why, why, sizeof(why));
		pthread_mutex_unlock(&r->lock);
	}
	return rc ? -KB_EUNTRUSTED : 0;
}

static void handshake_error(struct kb_rpc *r, const struct kb_chan_info *info, int rc, char *err,
			    size_t errlen)
{
	char where[320], fpr[KB_FPR_LEN];

	kb_net_format(where, sizeof(where), r->host, r->port);
	if (r->proxy_command)
		snprintf(where + strlen(where), sizeof(where) - strlen(where),
			 " (through proxy_command)");
	if (rc == -KB_EUNTRUSTED && info->have_remote_static) {
		char b64[48], hostpat[300];

		pthread_mutex_lock(&r->lock);
		if (r->trust_why[0]) {
			snprintf(err, errlen, "%s", r->trust_why);
			pthread_mutex_unlock(&r->lock);
			return;
		}
		pthread_mutex_unlock(&r->lock);
		kb_key_fingerprint(info->remote_static, fpr);
		kb_b64_encode(b64, info->remote_static, KB_KEY_LEN, 1);
		if (!strcmp(r->port, KB_DEFAULT_PORT))
			snprintf(hostpat, sizeof(hostpat), "%s", r->host);
		else /* known_hosts' form for another port */
			snprintf(hostpat, sizeof(hostpat), "[%s]:%s", r->host, r->port);
		snprintf(err, errlen,
			 "unknown server key %s for %s: if you trust it, add -o peer=%s, or add "
			 "the line '%s keibifs-x25519 %s' to your known_peers file",
			 fpr, where, fpr, hostpat, b64);
	} else if (rc == -KB_EREFUSED && r->cfg.psk) {
		kb_key_fingerprint(r->our_pub, fpr);
		snprintf(err, errlen,
			 "the server %s closed the connection after the handshake: pre-shared key "
			 "mismatch (or it does not know our key %s: add our .pub line to its "
			 "authorized keys file)",
			 where, fpr);
	} else if (rc == -KB_EREFUSED) {
		kb_key_fingerprint(r->our_pub, fpr);
		snprintf(err, errlen,
			 "the server %s refused our key %s: add our .pub line to its authorized "
			 "keys file",
			 where, fpr);
	} else if (rc == -KB_EHANDSHAKE && r->cfg.psk) {
		snprintf(err, errlen,
			 "handshake with %s failed: pre-shared key mismatch (or the server uses "
			 "none: keibifsd --psk FILE)",
			 where);
	} else if (!r->cfg.psk && (rc == -KB_ECLOSED || rc == -KB_ETRUNC || rc == -ECONNRESET)) {
		snprintf(err, errlen,
			 "the server %s closed the connection during the handshake: it may need a "
			 "pre-shared key (-o psk=FILE), or it is not keibifsd",
			 where);
	} else if (rc == -KB_ETIMEOUT || rc == -ETIMEDOUT || rc == -EAGAIN) {
		snprintf(err, errlen, "timed out during the handshake with %s", where);
	} else {
		snprintf(err, errlen, "handshake with %s failed: %s", where, kb_strerror(rc));
	}
}

static void proxy_log(void *arg, const char *line)
{
	kb_rpc_logf(arg, "proxy_command: %s", line);
}

/* The connection's fd: TCP, or our end of a proxy_command (*proxy). */
static int conn_fd(struct kb_rpc *r, const struct kb_net_opts *no, int *fd, struct kb_proxy **proxy,
		   char *err, size_t errlen)
{
	if (!r->proxy_command)
		return kb_net_connect(fd, r->host, r->port, no, err, errlen);
	return kb_proxy_start(proxy, fd, r->proxy_command, r->host, r->port, proxy_log, r, err,
			      errlen);
}

/* A server whose budget for unauthenticated peers is full (a flood of
 * half-open connections) closes new handshakes before its first answer.
 * Before the mount is up, nobody else retries for us: a handshake closed
 * before the server said anything is tried again a few times (backoff
 * 100, 200, 400 ms). Later connections have their keeper's backoff. */
static bool first_cut(const struct kb_rpc *r, const struct kb_chan_info *info, int rc,
		      unsigned attempt)
{
	return !atomic_load(&r->opened) && attempt + 1 < KB_RPC_FIRST_TRIES &&
	       !info->have_remote_static && (rc == -KB_ECLOSED || rc == -ECONNRESET);
}

/* TCP (or proxy_command) + Noise for connection i; on success c owns the
 * channel (and the proxy) and its receiver runs. */
int kb_rpc_conn_connect(struct kb_rpc *r, unsigned i, char *err, size_t errlen)
{
	/* TCP_USER_TIMEOUT: a vanished peer (data unacknowledged for twice the
	 * request timeout) kills the connection; a stuck but alive one only
	 * times requests out. */
	struct kb_net_opts no = {.timeout_ms = r->timeout_ms, .user_timeout_ms = 2 * r->timeout_ms};
	struct kb_chan_cfg cc = {
		.initiator = true,
		.s = r->cfg.identity,
		.psk = r->cfg.psk,
		.backend = r->cfg.backend,
		.max_frame = (uint32_t)r->cfg.max_frame,
		.rng = r->rng,
		.timeout_ms = r->timeout_ms,
		.verify = verify_server,
		.verify_arg = r,
		.caps = r->cfg.compress != KB_Z_OFF ? KB_CAP_ZSTD : 0,
	};
	struct kb_chan_info info = {0};
	struct kb_chan *chan = NULL;
	struct kb_proxy *proxy = NULL;
	int fd = -1, rc;

	for (unsigned attempt = 0;; attempt++) {
		rc = conn_fd(r, &no, &fd, &proxy, err, errlen);
		if (rc)
			return rc;
		memset(&info, 0, sizeof(info));
		rc = kb_chan_handshake(&chan, fd, &cc, &info); /* closes fd on failure */
		if (!rc)
			break;
		kb_proxy_stop(proxy);
		proxy = NULL;
		if (!first_cut(r, &info, rc, attempt)) {
			handshake_error(r, &info, rc, err, errlen);
			return rc;
		}
		usleep(KB_RPC_FIRST_RETRY_MS * 1000u << attempt);
	}
	if (i == 0 && !r->peer_fpr[0]) {
		memcpy(r->server_key, info.remote_static, KB_KEY_LEN);
		kb_key_fingerprint(r->server_key, r->peer_fpr);
	} else if (kb_memcmp_ct(r->server_key, info.remote_static, KB_KEY_LEN)) {
		snprintf(err, errlen, "the server's key changed between connections");
		kb_chan_free(chan);
		kb_proxy_stop(proxy);
		return -KB_EUNTRUSTED;
	}
	r->conns[i].proxy = proxy; /* the slot's old one was stopped by retire */
	/* A stuck peer must not hold a sender past its deadline. */
	kb_net_send_timeout(kb_chan_fd(chan), r->timeout_ms);
	rc = kb_rpc_conn_start(&r->conns[i], chan, &info);
	if (rc)
		snprintf(err, errlen, "cannot start a receiver thread: %s", strerror(-rc));
	return rc;
}

struct hello_out {
	kb_Entry *root;
	bool *read_only;
	struct kb_rpc *r;
	bool got_token;
};

static void hello_take(void *arg, const kb_Response *resp, const uint8_t *bulk, size_t n)
{
	struct hello_out *h = arg;

	(void)bulk;
	(void)n;
	if (resp->err != kb_Err_OK)
		return;
	if (h->root)
		*h->root = resp->entry;
	if (h->read_only)
		*h->read_only = resp->read_only;
	h->r->owners = resp->owners;
	kb_rpc_lease_hello(h->r, resp);
	if (resp->has_entry)
		h->r->root = resp->entry;
	if (resp->token.size > 0 && resp->token.size <= sizeof(h->r->token)) {
		memcpy(h->r->token, resp->token.bytes, resp->token.size);
		h->r->token_len = resp->token.size;
		h->got_token = true;
	}
}

static void hello_error(const struct kb_rpc *r, int rc, char *err, size_t errlen)
{
	if (rc == -ENOENT && strcmp(r->path, "/"))
		snprintf(err, errlen,
			 "no such directory in the share: %s (PATH is relative to "
			 "the directory keibifsd shares: HOST:/ is the share itself)",
			 r->path);
	else if (rc == -ENOENT)
		snprintf(err, errlen, "no such directory on the server: %s", r->path);
	else if (rc == -ENOTDIR)
		snprintf(err, errlen,
			 "not a directory in the share: %s (PATH is relative to "
			 "the directory keibifsd shares)",
			 r->path);
	else if (rc == -EACCES || rc == -EPERM)
		snprintf(err, errlen, "permission denied on the server: %s", r->path);
	else if (rc == -ETIMEDOUT)
		snprintf(err, errlen, "the server did not answer HELLO in time");
	else
		snprintf(err, errlen, "the server refused the session for %s: %s", r->path,
			 kb_strerror(rc));
}

/* HELLO on slot i: a new session (token, root). The caller serialises
 * session changes (kb_rpc_new, or the keepers' sess_lock). */
int kb_rpc_conn_hello(struct kb_rpc *r, unsigned i, kb_Entry *root, bool *read_only)
{
	kb_Request req = kb_Request_init_zero; /* ~9 KB: caller's own thread stack */
	struct hello_out h = {.root = root, .read_only = read_only, .r = r};
	int rc;

	req.op = kb_Op_HELLO;
	req.version = KB_PROTO_VERSION;
	snprintf(req.path, sizeof(req.path), "%s", r->path);
	rc = kb_rpc_call_on(&r->conns[i], &req, hello_take, &h);
	if (!rc && !h.got_token)
		rc = -KB_EPROTO;
	return rc;
}

/* ATTACH slot i to the current session (-EACCES: the server has no such
 * session any more). */
int kb_rpc_conn_attach(struct kb_rpc *r, unsigned i)
{
	kb_Request req = kb_Request_init_zero; /* ~9 KB: caller's own thread stack */

	req.op = kb_Op_ATTACH;
	req.token.size = (pb_size_t)r->token_len;
	memcpy(req.token.bytes, r->token, r->token_len);
	return kb_rpc_call_on(&r->conns[i], &req, NULL, NULL);
}

/* The session: HELLO on connection 0, ATTACH on the others. */
static int conn_session(struct kb_rpc *r, unsigned i, kb_Entry *root, bool *read_only, char *err,
			size_t errlen)
{
	int rc;

	if (i == 0) {
		rc = kb_rpc_conn_hello(r, 0, root, read_only);
		if (rc)
			hello_error(r, rc, err, errlen);
	} else {
		rc = kb_rpc_conn_attach(r, i);
		if (rc)
			snprintf(err, errlen, "the server refused connection %u of the session: %s",
				 i + 1, kb_strerror(rc));
	}
	if (!rc)
		kb_rpc_conn_set_ready(&r->conns[i]);
	return rc;
}

int kb_rpc_conn_open(struct kb_rpc *r, unsigned i, kb_Entry *root, bool *read_only, char *err,
		     size_t errlen)
{
	int rc = kb_rpc_conn_connect(r, i, err, errlen);

	if (!rc)
		rc = conn_session(r, i, root, read_only, err, errlen);
	return rc;
}

/* Connections 1..n-1 in parallel (after HELLO): a mount over a long link
 * pays one connection setup, not n. */
struct opener {
	struct kb_rpc *r;
	unsigned i;
	int rc;
	pthread_t th;
	bool started;
	char err[512];
};

static void *opener_main(void *arg)
{
	struct opener *o = arg;

	o->rc = kb_rpc_conn_open(o->r, o->i, NULL, NULL, o->err, sizeof(o->err));
	return NULL;
}

static int open_rest(struct kb_rpc *r, char *err, size_t errlen)
{
	struct opener *o = calloc(r->nconns, sizeof(*o));
	int rc = 0;

	if (!o) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	for (unsigned i = 1; i < r->nconns; i++) {
		o[i] = (struct opener){.r = r, .i = i};
		o[i].started = !pthread_create(&o[i].th, NULL, opener_main, &o[i]);
		if (!o[i].started)
			opener_main(&o[i]); /* no thread: do it here */
	}
	for (unsigned i = 1; i < r->nconns; i++)
		if (o[i].started)
			pthread_join(o[i].th, NULL);
	for (unsigned i = 1; i < r->nconns && !rc; i++) {
		rc = o[i].rc;
		if (rc)
			snprintf(err, errlen, "%s", o[i].err);
	}
	free(o);
	return rc;
}

/* What both sides accept, once every connection is up. */
static void set_limits(struct kb_rpc *r)
{
	for (unsigned i = 0; i < r->nconns; i++) {
		uint32_t mf = r->conns[i].info.max_frame;
		size_t w = mf > KB_WIRE_HEADROOM ? mf - KB_WIRE_HEADROOM : 0;

		r->max_write = i == 0 ? w : KB_MIN(r->max_write, w);
	}
}

static int rpc_alloc(struct kb_rpc **out, const struct kb_rpc_cfg *cfg)
{
	size_t max_frame = cfg->max_frame ? cfg->max_frame : KB_FRAME_MAX_DEFAULT;
	struct kb_rpc *r = calloc(1, sizeof(*r));
	int rc = -ENOMEM;

	if (!r)
		return -ENOMEM;
	pthread_mutex_init(&r->lock, NULL);
	pthread_mutex_init(&r->sess_lock, NULL);
	{
		pthread_condattr_t ca; /* the timer sleeps to CLOCK_MONOTONIC deadlines */

		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&r->tick, &ca);
		pthread_condattr_destroy(&ca);
	}
	*out = r; /* partially built: kb_rpc_free copes */
	r->cfg = *cfg;
	r->host = strdup(cfg->host);
	r->port = strdup(cfg->port ? cfg->port : "26431");
	r->path = strdup(cfg->path ? cfg->path : "/");
	r->proxy_command = cfg->proxy_command ? strdup(cfg->proxy_command) : NULL;
	r->cfg.proxy_command = r->proxy_command;
	r->conns = calloc(cfg->conns, sizeof(*r->conns));
	if (!r->host || !r->port || !r->path || !r->conns ||
	    (cfg->proxy_command && !r->proxy_command))
		return rc;
	r->cfg.host = r->host;
	r->cfg.port = r->port;
	snprintf(r->host_disp, sizeof(r->host_disp), strchr(r->host, ':') ? "[%s]" : "%s", r->host);
	r->cfg.path = r->path;
	r->timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : KB_RPC_DEFAULT_TIMEOUT_MS;
	if (cfg->keepalive_ms >= 0)
		r->keepalive_ns = (uint64_t)(cfg->keepalive_ms ? cfg->keepalive_ms
							       : KB_RPC_KEEPALIVE_MS) *
				  1000000u;
	r->max_read = max_frame - KB_WIRE_HEADROOM;
	/* Our own copies of the keys: reconnects need them after kb_rpc_new. */
	if (cfg->identity) {
		memcpy(r->identity, cfg->identity, KB_KEY_LEN);
		r->cfg.identity = r->identity;
	}
	if (cfg->psk) {
		memcpy(r->psk, cfg->psk, sizeof(r->psk));
		r->cfg.psk = r->psk;
	}
	rc = cfg->identity ? kb_x25519_pub(cfg->identity, r->our_pub) : 0;
	if (!rc)
		rc = kb_noise_rng_new(&r->rng);
	if (!rc)
		rc = kb_rpc_pools_init(r, max_frame);
	for (unsigned i = 0; !rc && i < cfg->conns; i++) {
		rc = kb_rpc_conn_init(&r->conns[i], r, i);
		r->nconns = i + 1;
	}
	if (!rc)
		rc = kb_rpc_timer_start(r);
	return rc;
}

int kb_rpc_new(struct kb_rpc **out, const struct kb_rpc_cfg *cfg, kb_Entry *root, bool *read_only,
	       char *err, size_t errlen)
{
	struct kb_rpc *r = NULL;
	int rc = -EINVAL;

	snprintf(err, errlen, "invalid client configuration");
	if (!cfg->host || !cfg->identity || !cfg->trust || cfg->conns < 1 ||
	    cfg->conns > KB_RPC_MAX_CONNS ||
	    (cfg->max_frame &&
	     (cfg->max_frame <= KB_WIRE_HEADROOM || cfg->max_frame > KB_FRAME_MAX_LIMIT)))
		return rc;
	rc = rpc_alloc(&r, cfg);
	if (rc) {
		snprintf(err, errlen, "cannot set up the client: %s", kb_strerror(rc));
		goto out;
	}
	rc = kb_rpc_conn_open(r, 0, root, read_only, err, errlen);
	if (!rc && r->nconns > 1)
		rc = open_rest(r, err, errlen);
	if (!rc)
		set_limits(r);
	/* The caller's trust set is only borrowed while connecting; later
	 * connections must meet the server key pinned now. */
	r->cfg.trust = NULL;
	r->reconnect = !cfg->noreconnect;
	if (!rc && r->reconnect) {
		rc = kb_rpc_keepers_start(r);
		if (rc)
			snprintf(err, errlen, "cannot start the reconnect threads: %s",
				 kb_strerror(rc));
	}
out:
	if (rc) {
		kb_rpc_free(r);
		return rc;
	}
	err[0] = '\0';
	atomic_store(&r->opened, true);
	*out = r;
	return 0;
}

int kb_rpc_new_raw(struct kb_rpc **out, const struct kb_rpc_cfg *cfg, struct kb_chan **chans)
{
	struct kb_rpc *r = NULL;
	int rc = -EINVAL;

	if (cfg->conns < 1 || cfg->conns > KB_RPC_MAX_CONNS || !cfg->host)
		goto out;
	rc = rpc_alloc(&r, cfg);
	if (!rc)
		r->max_write = r->max_read;
	for (unsigned i = 0; !rc && i < r->nconns; i++) {
		struct kb_chan_info info = {.max_frame = (uint32_t)(r->max_read + KB_WIRE_HEADROOM),
					    .caps = cfg->compress ? KB_CAP_ZSTD : 0};

		rc = kb_rpc_conn_start(&r->conns[i], chans[i], &info);
		chans[i] = NULL;
		if (!rc)
			kb_rpc_conn_set_ready(&r->conns[i]);
	}
out:
	for (unsigned i = 0; i < cfg->conns && i < KB_RPC_MAX_CONNS; i++)
		kb_chan_free(chans[i]); /* those not taken */
	if (rc) {
		kb_rpc_free(r);
		return rc;
	}
	atomic_store(&r->opened, true);
	*out = r;
	return 0;
}

void kb_rpc_free(struct kb_rpc *r)
{
	if (!r)
		return;
	atomic_store(&r->closing, true);
	kb_rpc_keepers_stop(r); /* before the receivers: keepers join them too */
	kb_rpc_timer_stop(r);
	for (unsigned i = 0; i < r->nconns; i++)
		kb_chan_shutdown(r->conns[i].chan);
	for (unsigned i = 0; i < r->nconns; i++)
		kb_rpc_conn_shutdown(&r->conns[i]);
	for (unsigned i = 0; i < r->nconns; i++)
		kb_rpc_conn_destroy(&r->conns[i]);
	for (unsigned i = 0; i < r->npools; i++)
		kb_bufpool_free(r->pools[i]);
	kb_noise_rng_free(r->rng);
	pthread_cond_destroy(&r->tick);
	pthread_mutex_destroy(&r->lock);
	pthread_mutex_destroy(&r->sess_lock);
	kb_memzero(r->token, sizeof(r->token));
	kb_memzero(r->identity, sizeof(r->identity));
	kb_memzero(r->psk, sizeof(r->psk));
	free(r->conns);
	free(r->host);
	free(r->port);
	free(r->path);
	free(r->proxy_command);
	free(r);
}
