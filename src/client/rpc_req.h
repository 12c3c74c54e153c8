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

/* The fields of each operation both kinds of typed call send (rpc_api.c
 * waits for the reply, rpc_wb.c queues it in the write-behind stream):
 * decided here once. req is made with REQ (its op set); each returns 0
 * or -ENAMETOOLONG before anything is sent. */
static inline int kb_req_mkdir(kb_Request *req, uint64_t parent, const char *name, uint32_t mode)
{
	if (PUT_NAME(req, name, name))
		return -ENAMETOOLONG;
	req->node = parent;
	req->mode = mode;
	return 0;
}

static inline int kb_req_symlink(kb_Request *req, uint64_t parent, const char *name,
				 const char *target)
{
	if (PUT_NAME(req, name, name) || PUT_NAME(req, name2, target))
		return -ENAMETOOLONG;
	req->node = parent;
	return 0;
}

static inline int kb_req_create(kb_Request *req, uint64_t parent, const char *name, uint32_t flags,
				uint32_t mode)
{
	if (PUT_NAME(req, name, name))
		return -ENAMETOOLONG;
	req->node = parent;
	req->flags = flags;
	req->mode = mode;
	return 0;
}

/* UNLINK or RMDIR (req's op). */
static inline int kb_req_remove(kb_Request *req, uint64_t parent, const char *name)
{
	if (PUT_NAME(req, name, name))
		return -ENAMETOOLONG;
	req->node = parent;
	return 0;
}

static inline int kb_req_rename(kb_Request *req, uint64_t parent, const char *name,
				uint64_t newparent, const char *newname, uint32_t flags)
{
	/* newname is a name, though it travels as name2 */
	if (PUT_NAME(req, name, name) || strlen(newname) >= sizeof(req->name) ||
	    PUT_NAME(req, name2, newname))
		return -ENAMETOOLONG;
	req->node = parent;
	req->node2 = newparent;
	req->flags = flags;
	return 0;
}

static inline void kb_req_setattr(kb_Request *req, uint64_t node, uint64_t fh, uint32_t set_mask,
				  const kb_Attr *values)
{
	req->node = node;
	req->fh = fh;
	req->has_attr = true;
	req->attr = *values;
	req->set_mask = set_mask;
}

#endif
