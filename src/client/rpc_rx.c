/* rpc_rx.c - the receiver thread of one connection: frames into pooled
 * buffers, replies matched by id and handed over whole (see rpc.c). */
#include <errno.h>
#include <string.h>

#include "err.h"
#include "rpc_int.h"
#include "util.h"
#include "wire.h"

#define SLOT_MASK (KB_RPC_SLOTS - 1)

/* ---- receiving -------------------------------------------------------- */

int kb_rpc_peek_id(const uint8_t *frame, size_t len, uint64_t *id)
{
	static const uint32_t tag = kb_Response_id_tag;

	*id = 0;
	return kb_wire_peek_varints(frame, len, SIZE_MAX, &tag, id, 1);
}

static void rx_notify(struct kb_rpc_conn *c, struct kb_buf *buf)
{
	struct kb_rpc *r = c->r;
	struct kb_rpc_result *res = c->scratch;
	void (*cb)(void *, const kb_Response *);
	void *arg;

	if (kb_wire_decode_resp(buf->mem, buf->len, &res->resp, &res->bulk, &res->bulk_len)) {
		kb_buf_put(buf); /* pushes are advisory: drop a malformed one */
		return;
	}
	if (res->resp.id == 0 && kb_rpc_lease_notify(r, &res->resp)) {
		kb_buf_put(buf);
		res->bulk = NULL;
		return;
	}
	pthread_mutex_lock(&r->lock);
	cb = r->notify;
	arg = r->notify_arg;
	pthread_mutex_unlock(&r->lock);
	if (cb && res->resp.id == 0)
		cb(arg, &res->resp);
	kb_buf_put(buf);
	res->bulk = NULL;
}

/* Consumes buf. Nonzero only for errors fatal to the connection. `fail`:
 * complete the request with this error instead of the reply (a compressed
 * bulk that did not decompress). */
static int rx_dispatch(struct kb_rpc_conn *c, struct kb_buf *buf, int fail)
{
	struct kb_rpc_result *res;
	struct kb_rpc_slot *s;
	uint64_t id;
	int rc;

	rc = kb_rpc_peek_id(buf->mem, buf->len, &id);
	if (rc) {
		kb_buf_put(buf);
		return rc;
	}
	if (id == 0) {
		rx_notify(c, buf);
		return 0;
	}
	s = &c->slots[id & SLOT_MASK];
	pthread_mutex_lock(&c->lock);
	if ((s->state != KB_SLOT_INFLIGHT && s->state != KB_SLOT_SENDING) || s->id != id) {
		pthread_mutex_unlock(&c->lock); /* late reply to a timed-out request */
		kb_buf_put(buf);
		return 0;
	}
	s->state = KB_SLOT_CLAIMED;
	pthread_mutex_unlock(&c->lock);

	res = s->cb || !s->res ? c->scratch : s->res;
	rc = fail ? fail
		  : kb_wire_decode_resp(buf->mem, buf->len, &res->resp, &res->bulk, &res->bulk_len);
	if (!rc && res->resp.id != id)
		rc = -KB_EPROTO;
	if (rc) {
		kb_buf_put(buf);
		res->bulk = NULL;
		res->bulk_len = 0;
		kb_rpc_complete(c, s, rc, NULL);
		return 0;
	}
	res->frame = buf;
	buf->off = (size_t)(res->bulk - buf->mem);
	rc = res->resp.err == kb_Err_OK ? 0 : kb_wire_err_to_errno(res->resp.err);
	if (!s->cb && s->take)
		s->take(s->take_arg, &res->resp, res->bulk, res->bulk_len);
	if (res == c->scratch && !s->cb)
		kb_rpc_result_reset(res);
	kb_rpc_complete(c, s, rc, res);
	if (res == c->scratch)
		kb_rpc_result_reset(res);
	return 0;
}

/* A compressed bulk (a READ's data): inflated, straight from the received
 * frame, into a pooled buffer of the size class that fits it, which
 * replaces the received one (the block cache keeps it; the data is never
 * copied again). Never beyond the largest frame we accept. */
static int rx_inflate(struct kb_rpc_conn *c, struct kb_buf **buf, size_t *plen)
{
	struct kb_buf *nb;
	size_t need;
	ssize_t n;

	if (!(c->info.caps & KB_CAP_ZSTD))
		return -KB_EPROTO; /* not negotiated: fatal (the caller checks) */
	if (kb_z_inflated_len((*buf)->mem, *plen, c->r->max_read + KB_WIRE_HEADROOM, &need))
		return -KB_EPROTO;
	nb = kb_buf_get(kb_rpc_pool_for(c->r, need));
	if (!nb)
		return -ENOMEM;
	n = kb_z_inflate(nb->mem, nb->cap, (*buf)->mem, *plen);
	if (n < 0) {
		kb_buf_put(nb);
		return (int)n;
	}
	kb_buf_put(*buf);
	*buf = nb;
	*plen = (size_t)n;
	return 0;
}

static void *rx_main(void *arg)
{
	struct kb_rpc_conn *c = arg;
	int rc;

	for (;;) {
		struct kb_buf *buf;
		size_t plen;

		rc = kb_chan_recv_len(c->chan, &plen);
		if (rc)
			break;
		buf = kb_buf_get(kb_rpc_pool_for(c->r, plen + KB_FRAME_TAG));
		if (!buf) {
			rc = -ENOMEM;
			break;
		}
		rc = kb_chan_recv_body(c->chan, buf->mem, plen);
		if (rc) {
			kb_buf_put(buf);
			break;
		}
		buf->len = plen;
		atomic_store(&c->last_rx_ns, kb_now_ns());
		rc = kb_z_flagged(buf->mem, plen) ? rx_inflate(c, &buf, &plen) : 0;
		if (rc == -KB_EPROTO && c->info.caps & KB_CAP_ZSTD) {
			kb_rpc_logf(c->r, "corrupt compressed reply from %s: failed with EIO",
				    c->r->host);
			buf->mem[0] &= 0x7f; /* the header is intact: whose reply it was */
		} else if (rc) {
			kb_buf_put(buf);
			break;
		}
		buf->len = plen;
		rc = rx_dispatch(c, buf, rc);
		if (rc)
			break;
	}
	kb_rpc_conn_down(c, rc);
	return NULL;
}

int kb_rpc_conn_start(struct kb_rpc_conn *c, struct kb_chan *chan, const struct kb_chan_info *info)
{
	int rc;

	pthread_mutex_lock(&c->lock);
	c->chan = chan;
	c->info = *info;
	c->up = true;
	pthread_mutex_unlock(&c->lock);
	atomic_store(&c->last_rx_ns, kb_now_ns());
	atomic_store(&c->ping_sent_ns, 0);
	rc = -pthread_create(&c->rx, NULL, rx_main, c);
	if (rc) {
		pthread_mutex_lock(&c->lock);
		c->up = false;
		pthread_mutex_unlock(&c->lock);
		return rc;
	}
	c->rx_started = true;
	return 0;
}

void kb_rpc_conn_set_ready(struct kb_rpc_conn *c)
{
	pthread_mutex_lock(&c->lock);
	c->ready = c->up;
	pthread_cond_broadcast(&c->space); /* callers stalled on a reconnect */
	pthread_mutex_unlock(&c->lock);
}

void kb_rpc_conn_shutdown(struct kb_rpc_conn *c)
{
	if (!c->r)
		return;
	kb_chan_shutdown(c->chan);
	if (c->rx_started)
		pthread_join(c->rx, NULL);
	c->rx_started = false;
	kb_rpc_conn_down(c, -KB_ECLOSED); /* no receiver ever ran: nothing pending, harmless */
}
