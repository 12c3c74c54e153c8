/* rpc_wb.c - the typed write-behind calls of rpc_wb.h. */
#include <errno.h>
#include <string.h>

#include "op.h"
#include "rpc_req.h"
#include "rpc_wb.h"

static int queue(struct kb_stream *st, kb_Request *req, const kb_Creds *who, kb_rpc_cb cb,
		 void *arg)
{
	kb_req_put_creds(req, who);
	return kb_stream_submit(st, req, NULL, 0, cb, arg);
}

int kb_wb_mkdir(struct kb_stream *st, uint64_t parent, const char *name, uint32_t mode,
		uint64_t new_id, const kb_Creds *who, kb_rpc_cb cb, void *arg)
{
	REQ(req, kb_Op_MKDIR);

	if (kb_req_mkdir(&req, parent, name, mode))
		return -ENAMETOOLONG;
	req.new_id = new_id;
	req.want_lease = true; /* ours alone: it is new */
	return queue(st, &req, who, cb, arg);
}

int kb_wb_create(struct kb_stream *st, uint64_t parent, const char *name, uint32_t flags,
		 uint32_t mode, uint64_t new_id, const kb_Creds *who, kb_rpc_cb cb, void *arg)
{
	REQ(req, kb_Op_CREATE);

	if (kb_req_create(&req, parent, name, flags, mode))
		return -ENAMETOOLONG;
	req.new_id = new_id;
	return queue(st, &req, who, cb, arg);
}

int kb_wb_symlink(struct kb_stream *st, uint64_t parent, const char *name, const char *target,
		  uint64_t new_id, const kb_Creds *who, kb_rpc_cb cb, void *arg)
{
	REQ(req, kb_Op_SYMLINK);

	if (kb_req_symlink(&req, parent, name, target))
		return -ENAMETOOLONG;
	req.new_id = new_id;
	return queue(st, &req, who, cb, arg);
}

int kb_wb_setattr(struct kb_stream *st, uint64_t node, uint64_t fh, uint32_t set_mask,
		  const kb_Attr *values, kb_rpc_cb cb, void *arg)
{
	REQ(req, kb_Op_SETATTR);

	kb_req_setattr(&req, node, fh, set_mask, values);
	return queue(st, &req, NULL, cb, arg);
}

int kb_wb_rename(struct kb_stream *st, uint64_t parent, const char *name, uint64_t newparent,
		 const char *newname, uint32_t flags, const kb_Creds *who, kb_rpc_cb cb, void *arg)
{
	REQ(req, kb_Op_RENAME);

	if (kb_req_rename(&req, parent, name, newparent, newname, flags))
		return -ENAMETOOLONG;
	return queue(st, &req, who, cb, arg);
}

int kb_wb_remove(struct kb_stream *st, uint64_t parent, const char *name, bool dir,
		 const kb_Creds *who, kb_rpc_cb cb, void *arg)
{
	REQ(req, dir ? kb_Op_RMDIR : kb_Op_UNLINK);

	if (kb_req_remove(&req, parent, name))
		return -ENAMETOOLONG;
	return queue(st, &req, who, cb, arg);
}

int kb_wb_lease_return(struct kb_stream *st, uint64_t node)
{
	REQ(req, kb_Op_LEASE_RETURN);

	req.node = node;
	return queue(st, &req, NULL, NULL, NULL);
}
