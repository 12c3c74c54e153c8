/* srv_dispatch.c - one request of an established session to its
 * operation (srv_ops.c, srv_io.c, srv_dir.c): the node it names, EROFS for
 * a read-only session, confinement of the directory a name op works in,
 * and the marks that keep the session's own changes from being pushed
 * back to it (srv_notify.c).
 */
#include <errno.h>
#include <fcntl.h>

#include "op.h"
#include "srv_impl.h"
#include "srv_ops.h"

/* Operations that change the share: refused with EROFS on a read-only
 * session. (OPEN checks its flags itself; ACCESS its W_OK.) */
static bool mutating(kb_Op op)
{
	return kb_op_is(op, KB_OP_MUTATING); /* the table in src/core/op.c */
}

/* Operations that create, remove or rename a name in directory q->node. */
static bool names_op(kb_Op op)
{
	switch (op) {
	case kb_Op_CREATE:
	case kb_Op_MKDIR:
	case kb_Op_MKNOD:
	case kb_Op_SYMLINK:
	case kb_Op_UNLINK:
	case kb_Op_RMDIR:
	case kb_Op_RENAME: return true;
	default: return false;
	}
}

static int dispatch_node(struct kb_srv_req *rq, struct kb_srv_node *n)
{
	switch (rq->q->op) {
	case kb_Op_LOOKUP: return kb_srv_op_lookup(rq, n);
	case kb_Op_GETATTR: return kb_srv_op_getattr(rq, n);
	case kb_Op_SETATTR: return kb_srv_op_setattr(rq, n);
	case kb_Op_OPENDIR: return kb_srv_op_opendir(rq, n);
	case kb_Op_READDIR: return kb_srv_op_readdir(rq, n);
	case kb_Op_OPEN: return kb_srv_op_open(rq, n);
	case kb_Op_CREATE: return kb_srv_op_create(rq, n);
	case kb_Op_READ: return kb_srv_op_read(rq, n);
	case kb_Op_WRITE: return kb_srv_op_write(rq, n);
	case kb_Op_FLUSH: return kb_srv_op_flush(rq, n);
	case kb_Op_FSYNC:
	case kb_Op_FSYNCDIR: return kb_srv_op_fsync(rq, n);
	case kb_Op_MKDIR: return kb_srv_op_mkdir(rq, n);
	case kb_Op_MKNOD: return kb_srv_op_mknod(rq, n);
	case kb_Op_UNLINK: return kb_srv_op_unlink(rq, n, 0);
	case kb_Op_RMDIR: return kb_srv_op_unlink(rq, n, AT_REMOVEDIR);
	case kb_Op_RENAME: return kb_srv_op_rename(rq, n);
	case kb_Op_LINK: return kb_srv_op_link(rq, n);
	case kb_Op_SYMLINK: return kb_srv_op_symlink(rq, n);
	case kb_Op_READLINK: return kb_srv_op_readlink(rq, n);
	case kb_Op_STATFS: return kb_srv_op_statfs(rq, n);
	case kb_Op_GETXATTR:
	case kb_Op_LISTXATTR: return kb_srv_op_getxattr(rq, n);
	case kb_Op_SETXATTR:
	case kb_Op_REMOVEXATTR: return kb_srv_op_setxattr(rq, n);
	case kb_Op_FALLOCATE: return kb_srv_op_fallocate(rq, n);
	case kb_Op_COPY_FILE_RANGE: return kb_srv_op_copy(rq, n);
	case kb_Op_LSEEK: return kb_srv_op_lseek(rq, n);
	case kb_Op_ACCESS: return kb_srv_op_access(rq, n);
	case kb_Op_LEASE_RETURN: return kb_srv_op_lease_return(rq, n);
	case kb_Op_SYNCFS: return kb_srv_op_syncfs(rq, n);
	default: return -ENOSYS;
	}
}

/* What this request changes: its events are the session's own (not pushed
 * back to it, srv_notify.c). Marked before it runs; checked when the
 * burst of pushes goes out. */
static void mark_mine(struct kb_srv_req *rq)
{
	struct kb_srv_notifier *nf = rq->sess->srv->notifier;
	const kb_Request *q = rq->q;

	switch (q->op) {
	case kb_Op_CREATE:
	case kb_Op_MKDIR:
	case kb_Op_MKNOD:
	case kb_Op_SYMLINK:
	case kb_Op_UNLINK:
	case kb_Op_RMDIR: kb_srv_notify_mine(nf, rq->sess, q->node, q->name); break;
	case kb_Op_RENAME:
		kb_srv_notify_mine(nf, rq->sess, q->node, q->name);
		kb_srv_notify_mine(nf, rq->sess, q->node2, q->name2);
		break;
	case kb_Op_LINK:
		kb_srv_notify_mine(nf, rq->sess, q->node2, q->name2);
		kb_srv_notify_mine(nf, rq->sess, q->node, "");
		break;
	case kb_Op_WRITE:
	case kb_Op_SETATTR:
	case kb_Op_FALLOCATE:
	case kb_Op_SETXATTR:
	case kb_Op_REMOVEXATTR: kb_srv_notify_mine(nf, rq->sess, q->node, ""); break;
	case kb_Op_COPY_FILE_RANGE: kb_srv_notify_mine(nf, rq->sess, q->node2, ""); break;
	default: break;
	}
}

int kb_srv_dispatch(struct kb_srv_req *rq)
{
	const kb_Request *q = rq->q;
	struct kb_srv_node *n;
	int ret;

	switch (q->op) {
	case kb_Op_PING: return 0;
	case kb_Op_FORGET:
		/* `count` per the .proto; `length` accepted for 64-bit counts */
		if (kb_srv_node_forget(&rq->sess->nodes, q->node,
				       q->count ? q->count : q->length) == 1)
			kb_srv_notify_unwatch(rq->sess->srv->notifier, rq->sess, q->node);
		return 0;
	case kb_Op_RELEASE:
	case kb_Op_RELEASEDIR: return kb_srv_fh_remove(&rq->sess->fhs, q->fh);
	case kb_Op_HELLO:
	case kb_Op_ATTACH: return -EINVAL; /* only as a connection's first request */
	case kb_Op_BYE: return -EINVAL;    /* the session layer's (srv_sess.c) */
	default: break;
	}
	if (mutating(q->op) && rq->sess->ro)
		return -EROFS;
	mark_mine(rq);
	n = kb_srv_node_get(&rq->sess->nodes, q->node);
	if (!n)
		return -ESTALE;
	ret = names_op(q->op) ? kb_srv_confined(rq, n) : 0;
	if (!ret)
		ret = dispatch_node(rq, n);
	kb_srv_node_put(n);
	return ret;
}
