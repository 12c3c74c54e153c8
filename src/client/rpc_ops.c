/* rpc_ops.c - thin synchronous/asynchronous wrappers over rpc_send.h
 * (the stream or the rpc) for the common operations. Each copies what it needs
 * out of the reply on the receiver thread (no Response struct to keep). */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>
#include <string.h>

#include "rpc.h"
#include "rpc_send.h"
#include "util.h"

/* A kb_Request is ~9 KB: fine on any thread we run on (FUSE workers have
 * default-size stacks), and zeroing it is the price of proto3 defaults. */
#define REQ(name, opv)                          \
	kb_Request name = kb_Request_init_zero; \
	name.op = (opv)

static int set_name(kb_Request *req, const char *name)
{
	size_t n = strlen(name);

	if (n >= sizeof(req->name))
		return -ENAMETOOLONG;
	memcpy(req->name, name, n + 1);
	return 0;
}

int kb_rpc_ping(struct kb_rpc *r, uint64_t *rtt_us)
{
	REQ(req, kb_Op_PING);
	uint64_t t0 = kb_now_ns();
	int rc = kb_send_take(r, &req, NULL, 0, NULL, NULL);

	if (!rc && rtt_us)
		*rtt_us = (kb_now_ns() - t0) / 1000u;
	return rc;
}

static void take_entry(void *arg, const kb_Response *resp, const uint8_t *b, size_t n)
{
	(void)b;
	(void)n;
	*(kb_Entry *)arg = resp->entry;
}

int kb_rpc_lookup(struct kb_rpc *r, uint64_t parent, const char *name, kb_Entry *out)
{
	REQ(req, kb_Op_LOOKUP);
	int rc = set_name(&req, name);

	req.node = parent;
	memset(out, 0, sizeof(*out));
	return rc ? rc : kb_send_take(r, &req, NULL, 0, take_entry, out);
}

static void take_attr(void *arg, const kb_Response *resp, const uint8_t *b, size_t n)
{
	(void)b;
	(void)n;
	*(kb_Attr *)arg = resp->attr;
}

int kb_rpc_getattr(struct kb_rpc *r, uint64_t node, kb_Attr *out)
{
	REQ(req, kb_Op_GETATTR);

	req.node = node;
	memset(out, 0, sizeof(*out));
	return kb_send_take(r, &req, NULL, 0, take_attr, out);
}

static void forget_done(void *arg, int status, struct kb_rpc_result *res)
{
	(void)arg;
	(void)status;
	(void)res;
}

static int forget(struct kb_rpc *r, uint64_t node, uint64_t count, bool behind)
{
	REQ(req, kb_Op_FORGET);

	req.node = node;
	req.count = (uint32_t)KB_MIN(count, UINT32_MAX);
	req.length = count; /* full width; the server takes count, else length */
	return behind ? kb_send_async_behind(r, &req, NULL, 0, forget_done, NULL)
		      : kb_send_async(r, &req, NULL, 0, -1, forget_done, NULL);
}

int kb_rpc_forget(struct kb_rpc *r, uint64_t node, uint64_t count)
{
	return forget(r, node, count, false);
}

int kb_rpc_forget_behind(struct kb_rpc *r, uint64_t node, uint64_t count)
{
	return forget(r, node, count, true);
}

struct open_out {
	uint64_t fh;
	uint32_t open_flags;
};

static void take_open(void *arg, const kb_Response *resp, const uint8_t *b, size_t n)
{
	struct open_out *o = arg;

	(void)b;
	(void)n;
	o->fh = resp->fh;
	o->open_flags = resp->open_flags;
}

int kb_rpc_open(struct kb_rpc *r, uint64_t node, uint32_t flags, uint64_t *fh, uint32_t *open_flags)
{
	return kb_rpc_open_mask(r, node, flags, 0, fh, open_flags);
}

int kb_rpc_open_mask(struct kb_rpc *r, uint64_t node, uint32_t flags, uint32_t set_mask,
		     uint64_t *fh, uint32_t *open_flags)
{
	REQ(req, kb_Op_OPEN);
	struct open_out o = {0};
	int rc;

	req.node = node;
	req.flags = flags;
	req.set_mask = set_mask;
	rc = kb_send_take(r, &req, NULL, 0, take_open, &o);
	*fh = o.fh;
	if (open_flags)
		*open_flags = o.open_flags;
	return rc;
}

int kb_rpc_opendir(struct kb_rpc *r, uint64_t node, uint64_t *fh)
{
	REQ(req, kb_Op_OPENDIR);
	struct open_out o = {0};
	int rc;

	req.node = node;
	rc = kb_send_take(r, &req, NULL, 0, take_open, &o);
	*fh = o.fh;
	return rc;
}

int kb_rpc_release(struct kb_rpc *r, uint64_t node, uint64_t fh, bool dir)
{
	REQ(req, dir ? kb_Op_RELEASEDIR : kb_Op_RELEASE);

	req.node = node;
	req.fh = fh;
	return kb_send_take(r, &req, NULL, 0, NULL, NULL);
}

int kb_rpc_read_async(struct kb_rpc *r, uint64_t node, uint64_t fh, uint64_t off, uint32_t len,
		      int conn_hint, kb_rpc_cb cb, void *arg)
{
	REQ(req, kb_Op_READ);

	req.node = node;
	req.fh = fh;
	req.offset = off;
	req.length = len;
	return kb_send_async(r, &req, NULL, 0, conn_hint, cb, arg);
}

struct pread_out {
	void *buf;
	size_t cap, got;
};

static void take_read(void *arg, const kb_Response *resp, const uint8_t *b, size_t n)
{
	struct pread_out *o = arg;

	(void)resp;
	o->got = KB_MIN(n, o->cap);
	memcpy(o->buf, b, o->got);
}

int kb_rpc_pread(struct kb_rpc *r, uint64_t node, uint64_t fh, void *buf, size_t len, uint64_t off,
		 size_t *got)
{
	REQ(req, kb_Op_READ);
	struct pread_out o = {.buf = buf, .cap = len};
	int rc;

	if (len > kb_rpc_max_read(r))
		return -EINVAL;
	req.node = node;
	req.fh = fh;
	req.offset = off;
	req.length = len;
	rc = kb_send_take(r, &req, NULL, 0, take_read, &o);
	*got = o.got;
	return rc;
}

struct link_out {
	char *buf;
	size_t cap;
	int rc;
};

static void take_link(void *arg, const kb_Response *resp, const uint8_t *b, size_t n)
{
	struct link_out *o = arg;
	size_t len = strnlen(resp->link, sizeof(resp->link));

	(void)b;
	(void)n;
	if (len >= o->cap) {
		o->rc = -ERANGE;
		return;
	}
	memcpy(o->buf, resp->link, len);
	o->buf[len] = '\0';
}

int kb_rpc_readlink(struct kb_rpc *r, uint64_t node, char *buf, size_t cap)
{
	REQ(req, kb_Op_READLINK);
	struct link_out o = {.buf = buf, .cap = cap};
	int rc;

	req.node = node;
	rc = kb_send_take(r, &req, NULL, 0, take_link, &o);
	return rc ? rc : o.rc;
}

static void take_statfs(void *arg, const kb_Response *resp, const uint8_t *b, size_t n)
{
	(void)b;
	(void)n;
	*(kb_Statfs *)arg = resp->st;
}

int kb_rpc_statfs(struct kb_rpc *r, uint64_t node, kb_Statfs *out)
{
	REQ(req, kb_Op_STATFS);

	req.node = node;
	memset(out, 0, sizeof(*out));
	return kb_send_take(r, &req, NULL, 0, take_statfs, out);
}

/* ---- BYE ----------------------------------------------------------------- */

/* Shared by kb_rpc_bye and its callback: whoever drops the last reference
 * frees it (the callback may run after the waiter gave up). */
struct bye_wait {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool done;
	int refs; /* lock */
};

static void bye_unref(struct bye_wait *w)
{
	bool last;

	pthread_mutex_lock(&w->lock);
	last = --w->refs == 0;
	pthread_mutex_unlock(&w->lock);
	if (last) {
		pthread_cond_destroy(&w->cond);
		pthread_mutex_destroy(&w->lock);
		free(w);
	}
}

static void bye_cb(void *arg, int status, struct kb_rpc_result *res)
{
	struct bye_wait *w = arg;

	(void)status;
	(void)res;
	pthread_mutex_lock(&w->lock);
	w->done = true;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
	bye_unref(w);
}

void kb_rpc_bye(struct kb_rpc *r, int wait_ms)
{
	kb_Request req = kb_Request_init_zero;
	struct kb_rpc_stats st;
	struct bye_wait *w;
	pthread_condattr_t ca;
	struct timespec ts;

	if (!r)
		return;
	kb_rpc_stats(r, &st);
	if (!st.conns_up)
		return;
	w = calloc(1, sizeof(*w));
	if (!w)
		return;
	pthread_mutex_init(&w->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&w->cond, &ca);
	pthread_condattr_destroy(&ca);
	w->refs = 2;
	req.op = kb_Op_BYE;
	if (kb_send_async(r, &req, NULL, 0, -1, bye_cb, w)) {
		w->refs = 1; /* the callback will not run */
		bye_unref(w);
		return;
	}
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += wait_ms / 1000;
	ts.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&w->lock);
	while (!w->done)
		if (pthread_cond_timedwait(&w->cond, &w->lock, &ts))
			break;
	pthread_mutex_unlock(&w->lock);
	bye_unref(w);
}
