/* rpc_send.h - how the typed calls (rpc_api.c, rpc_ops.c, rpc_wb.c) send:
 * through the write-behind stream when the request names a node the
 * route says is in it (kb_rpc_set_route), else straight through the rpc.
 * Each returns as its kb_rpc_* namesake. */
#ifndef KB_RPC_SEND_H
#define KB_RPC_SEND_H

#include "rpc.h"

int kb_send_take(struct kb_rpc *r, kb_Request *req, const void *bulk, size_t bulk_len,
		 kb_rpc_take_fn take, void *arg);
int kb_send_res(struct kb_rpc *r, kb_Request *req, const void *bulk, size_t bulk_len,
		struct kb_rpc_result *res);
int kb_send_async(struct kb_rpc *r, kb_Request *req, const void *bulk, size_t bulk_len,
		  int conn_hint, kb_rpc_cb cb, void *arg);
/* The same behind everything in the stream when there is one (whatever
 * the request names). */
int kb_send_async_behind(struct kb_rpc *r, kb_Request *req, const void *bulk, size_t bulk_len,
			 kb_rpc_cb cb, void *arg);
/* The same for a request on a handle of session generation `basis`
 * (kb_stream_submit_basis). */
int kb_send_async_basis(struct kb_rpc *r, uint64_t basis, kb_Request *req, const void *bulk,
			size_t bulk_len, int conn_hint, kb_rpc_cb cb, void *arg);

#endif
