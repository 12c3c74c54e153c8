/* rpc_lease.c - the server's promise to push every change (a lease).
 *
 * HELLO's reply says for how long (lease_ms) what the session holds stays
 * valid without asking, and which ids the server checks permissions as.
 * The promise holds while every connection is up and has heard from the
 * server within lease_ms (a keepalive PING every KB_RPC_KEEPALIVE_MS on an
 * idle connection renews it), and the server has not taken it back
 * (NOTIFY with NOTIFY_LEASE_OFF: it could not watch something the session
 * holds). Any lapse moves the epoch on, so a cache entry stored under an
 * older epoch is no longer backed even when the promise is given again.
 *
 * Locks: r->lock guards the HELLO fields; the epoch is atomic.
 */
#include <string.h>

#include "rpc_int.h"
#include "util.h"

void kb_rpc_lease_hello(struct kb_rpc *r, const kb_Response *resp)
{
	pthread_mutex_lock(&r->lock);
	r->have_server_ids = resp->has_server_ids;
	if (resp->has_server_ids)
		r->server_ids = resp->server_ids;
	r->lease_ms = resp->lease_ms;
	r->features = resp->features;
	r->lease_off = false;
	pthread_mutex_unlock(&r->lock);
	kb_rpc_lease_lapse(r); /* a new session: nothing older is backed */
}

void kb_rpc_lease_lapse(struct kb_rpc *r)
{
	atomic_fetch_add(&r->lease_epoch, 1);
}

bool kb_rpc_lease_notify(struct kb_rpc *r, const kb_Response *n)
{
	if (!n->notify_flags || (n->notify_flags & kb_NotifyFlags_NOTIFY_RECALL))
		return false; /* a node's push, or a recall: the notify hook's */
	pthread_mutex_lock(&r->lock);
	if (n->notify_flags & kb_NotifyFlags_NOTIFY_LEASE_OFF)
		r->lease_off = true;
	else if (n->notify_flags & kb_NotifyFlags_NOTIFY_LEASE_ON)
		r->lease_off = false;
	pthread_mutex_unlock(&r->lock);
	if (n->notify_flags & (kb_NotifyFlags_NOTIFY_LEASE_OFF | kb_NotifyFlags_NOTIFY_LEASE_LAPSE))
		kb_rpc_lease_lapse(r);
	return true;
}

bool kb_rpc_server_ids(struct kb_rpc *r, kb_Creds *ids)
{
	bool have;

	pthread_mutex_lock(&r->lock);
	have = r->have_server_ids;
	if (have)
		*ids = r->server_ids;
	pthread_mutex_unlock(&r->lock);
	return have;
}

uint32_t kb_rpc_features(struct kb_rpc *r)
{
	uint32_t f;

	pthread_mutex_lock(&r->lock);
	f = r->features;
	pthread_mutex_unlock(&r->lock);
	return f;
}

uint32_t kb_rpc_lease_ms(struct kb_rpc *r)
{
	uint32_t ms;

	pthread_mutex_lock(&r->lock);
	ms = r->lease_ms;
	pthread_mutex_unlock(&r->lock);
	return ms;
}

uint64_t kb_rpc_lease(struct kb_rpc *r, uint64_t now_ns)
{
	uint64_t epoch = atomic_load(&r->lease_epoch), lease_ns;
	bool off;

	pthread_mutex_lock(&r->lock);
	lease_ns = (uint64_t)r->lease_ms * 1000000u;
	off = r->lease_off || r->stopping;
	pthread_mutex_unlock(&r->lock);
	if (!lease_ns || off)
		return 0;
	for (unsigned i = 0; i < r->nconns; i++) {
		struct kb_rpc_conn *c = &r->conns[i];
		uint64_t last = atomic_load(&c->last_rx_ns);
		bool ready;

		pthread_mutex_lock(&c->lock);
		ready = c->ready;
		pthread_mutex_unlock(&c->lock);
		if (!ready)
			return 0;
		if (last < now_ns && now_ns - last > lease_ns) {
			kb_rpc_lease_lapse(r); /* silent too long: pushes may be lost */
			return 0;
		}
	}
	/* read again: a lapse during the checks must not be missed */
	return atomic_load(&r->lease_epoch) == epoch ? epoch : 0;
}

void kb_rpc_set_route(struct kb_rpc *r, void *stream, kb_rpc_route_fn fn, void *arg)
{
	r->route_stream = stream;
	r->route_fn = fn;
	r->route_arg = arg;
}

void *kb_rpc_route_stream(struct kb_rpc *r)
{
	return r->route_stream;
}

void *kb_rpc_route(struct kb_rpc *r, const kb_Request *req)
{
	if (!r->route_stream || req->seq)
		return NULL;
	if ((req->node && r->route_fn(r->route_arg, req->node)) ||
	    (req->node2 && r->route_fn(r->route_arg, req->node2)))
		return r->route_stream;
	return NULL;
}
