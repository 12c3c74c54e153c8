/* srv_ops.h - the operations, split over srv_ops.c (metadata, namespace),
 * srv_io.c (handles, data, xattrs) and srv_dir.c (directory listing), and
 * routed by srv_dispatch.c. Each
 * takes the request and its node (referenced by the caller) and returns 0
 * or -errno; replies are built in rq->r (and rq->data for bulk). */
#ifndef KB_SRV_OPS_H
#define KB_SRV_OPS_H

#include <sys/stat.h>

#include "srv_impl.h"

int kb_srv_stat(const struct kb_srv_node *n, struct stat *st);
int kb_srv_lookup(struct kb_srv_sess *s, struct kb_srv_node *p, const char *name, kb_Entry *e);
/* The same, the new node under want_id (a client's id, 0: ours). */
int kb_srv_lookup_id(struct kb_srv_sess *s, struct kb_srv_node *p, const char *name,
		     uint64_t want_id, kb_Entry *e);
/* Request.want_lease: lease directory `node` to the session if it may. */
void kb_srv_maybe_lease(struct kb_srv_req *rq, uint64_t node);
int kb_srv_op_lease_return(struct kb_srv_req *rq, struct kb_srv_node *n);
int kb_srv_op_syncfs(struct kb_srv_req *rq, struct kb_srv_node *n);
/* The directory a name is created, removed or renamed in must still be in
 * the share (srv_path.c): 0, or ESTALE when it was moved out on the server. */
int kb_srv_confined(struct kb_srv_req *rq, const struct kb_srv_node *dir);

/* srv_ops.c */
int kb_srv_op_lookup(struct kb_srv_req *rq, struct kb_srv_node *n);
int kb_srv_op_getattr(struct kb_srv_req *rq, struct kb_srv_node *n);
int kb_srv_op_setattr(struct kb_srv_req *rq, struct kb_srv_node *n);
int kb_srv_op_mkdir(struct kb_srv_req *rq, struct kb_srv_node *n);
int kb_srv_op_mknod(struct kb_srv_req *rq, struct kb_srv_node *n);
int kb_srv_op_unlink(struct kb_srv_req *rq, struct kb_srv_node *n, int flags);
int kb_srv_op_rename(struct kb_srv_req *rq, struct kb_srv_node *n);
int kb_srv_op_link(struct kb_srv_req *rq, struct kb_srv_node *n);
int kb_srv_op_symlink(struct kb_srv_req *rq, struct kb_srv_node *n);
int kb_srv_op_readlink(struct kb_srv_req *rq, struct kb_srv_node *n);
int kb_srv_op_statfs(struct kb_srv_req *rq, struct kb_srv_node *n);
int kb_srv_op_access(struct kb_srv_req *rq, struct kb_srv_node *n);

/* srv_io.c, srv_dir.c */
int kb_srv_op_opendir(struct kb_srv_req *rq, struct kb_srv_node *n);
int kb_srv_op_readdir(struct kb_srv_req *rq, struct kb_srv_node *n);
int kb_srv_op_open(struct kb_srv_req *rq, struct kb_srv_node *n);
int kb_srv_op_create(struct kb_srv_req *rq, struct kb_srv_node *p);
int kb_srv_op_read(struct kb_srv_req *rq, struct kb_srv_node *n);
int kb_srv_op_write(struct kb_srv_req *rq, struct kb_srv_node *n);
int kb_srv_op_flush(struct kb_srv_req *rq, struct kb_srv_node *n);
int kb_srv_op_fsync(struct kb_srv_req *rq, struct kb_srv_node *n);
int kb_srv_op_getxattr(struct kb_srv_req *rq, struct kb_srv_node *n);
int kb_srv_op_setxattr(struct kb_srv_req *rq, struct kb_srv_node *n);
int kb_srv_op_fallocate(struct kb_srv_req *rq, struct kb_srv_node *n);
int kb_srv_op_copy(struct kb_srv_req *rq, struct kb_srv_node *n);
int kb_srv_op_lseek(struct kb_srv_req *rq, struct kb_srv_node *n);

#endif
