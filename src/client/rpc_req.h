/* rpc_req.h - building a request, for the typed calls (rpc_api.c, and
 * rpc_wb.c for the write-behind stream): private to src/client. */
#ifndef KB_RPC_REQ_H
#define KB_RPC_REQ_H

#include <errno.h>
#include <string.h>

#include "keibifs.pb.h"
#include "op.h"

#define REQ(name, opv)                          \
	kb_Request name = kb_Request_init_zero; \
	name.op = (opv)

/* s into a bounded string field: -ENAMETOOLONG when it does not fit. */
static inline int kb_req_put_str(char *dst, size_t cap, const char *s)
{
	size_t n = strlen(s);

	if (n >= cap)
		return -ENAMETOOLONG;
	memcpy(dst, s, n + 1);
	return 0;
}

#define PUT_NAME(req, field, s) kb_req_put_str((req)->field, sizeof((req)->field), (s))

/* The caller's ids, on the operations the server performs as the caller. */
static inline void kb_req_put_creds(kb_Request *req, const kb_Creds *who)
{
	if (!who || !kb_op_is(req->op, KB_OP_CREDS))
		return;
	req->has_creds = true;
	req->creds = *who;
}

#endif
