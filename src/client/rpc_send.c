/* rpc_send.c - route a typed call through the stream or the rpc. */
#include "rpc_send.h"
#include "stream.h"

int kb_send_take(struct kb_rpc *r, kb_Request *req, const void *bulk, size_t bulk_len,
		 kb_rpc_take_fn take, void *arg)
{
	struct kb_stream *st = kb_rpc_route(r, req);

	return st ? kb_stream_call(st, req, bulk, bulk_len, take, arg)
		  : kb_rpc_call_take(r, req, bulk, bulk_len, take, arg);
}

int kb_send_res(struct kb_rpc *r, kb_Request *req, const void *bulk, size_t bulk_len,
		struct kb_rpc_result *res)
{
	struct kb_stream *st = kb_rpc_route(r, req);

	return st ? kb_stream_call_res(st, req, bulk, bulk_len, res)
		  : kb_rpc_call(r, req, bulk, bulk_len, res);
}

int kb_send_async_basis(struct kb_rpc *r, uint64_t basis, kb_Request *req, const void *bulk,
			size_t bulk_len, int conn_hint, kb_rpc_cb cb, void *arg)
{
	struct kb_stream *st = kb_rpc_route(r, req);

	return st ? kb_stream_submit_basis(st, basis, req, bulk, bulk_len, cb, arg)
		  : kb_rpc_submit(r, req, bulk, bulk_len, conn_hint, cb, arg);
}

int kb_send_async(struct kb_rpc *r, kb_Request *req, const void *bulk, size_t bulk_len,
		  int conn_hint, kb_rpc_cb cb, void *arg)
{
	return kb_send_async_basis(r, KB_STREAM_NOW, req, bulk, bulk_len, conn_hint, cb, arg);
}

int kb_send_async_behind(struct kb_rpc *r, kb_Request *req, const void *bulk, size_t bulk_len,
			 kb_rpc_cb cb, void *arg)
{
	struct kb_stream *st = kb_rpc_route_stream(r);

	return st ? kb_stream_submit(st, req, bulk, bulk_len, cb, arg)
		  : kb_rpc_submit(r, req, bulk, bulk_len, -1, cb, arg);
}
