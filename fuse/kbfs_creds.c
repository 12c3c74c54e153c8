/* kbfs_creds.c - owners=preserve: the caller's credentials in requests.
 *
 * With -o owners=preserve the kernel checks permissions itself
 * (default_permissions, against the real server uids/gids we show), and
 * the requests that change the share carry the calling process's uid, gid
 * and supplementary groups in Request.creds, so that a server that allows
 * it (keibifsd --allow-owners or an `owners` key) performs them as that
 * user: owners of new files, setgid directories, sticky directories,
 * suid clearing (PROTOCOL.md).
 */
#include <sys/types.h>

#include "kbfs.h"
#include "op.h"

void kbfs_creds(fuse_req_t req, kb_Request *r)
{
	const struct fuse_ctx *ctx;
	gid_t groups[sizeof(r->creds.groups) / sizeof(r->creds.groups[0])];
	int n, i;

	if (!FS(req)->o->owners || !kb_op_is(r->op, KB_OP_CREDS)) /* src/core/op.c */
		return;
	ctx = fuse_req_ctx(req);
	r->has_creds = true;
	r->creds.uid = ctx->uid;
	r->creds.gid = ctx->gid;
	r->creds.groups_count = 0;
	/* Reads /proc/PID/task/TID/status; fails for kernel-made requests
	 * (pid 0, e.g. write-back): then no supplementary groups. A caller
	 * with more groups than fit sends the first ones. */
	n = fuse_req_getgroups(req, (int)(sizeof(groups) / sizeof(groups[0])), groups);
	if (n > (int)(sizeof(groups) / sizeof(groups[0])))
		n = (int)(sizeof(groups) / sizeof(groups[0]));
	for (i = 0; i < n; i++)
		r->creds.groups[r->creds.groups_count++] = groups[i];
}
