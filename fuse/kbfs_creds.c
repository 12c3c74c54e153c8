/* kbfs_creds.c - owners=preserve: the caller's credentials in requests.
 *
 * With -o owners=preserve the kernel checks permissions itself
 * (default_permissions, against the real server uids/gids we show), and
 * the requests that change the share carry the calling process's uid, gid
 * and supplementary groups in Request.creds, so that a server that allows
 * it (keibifsd --allow-owners or an `owners` key) performs them as that
 * user: owners of new files, setgid directories, sticky directories,
 * suid clearing (PROTOCOL.md). Which requests carry them is the rpc's
 * business (src/client/rpc_api.h: kb_op_is KB_OP_CREDS).
 */
#include <string.h>
#include <sys/types.h>

#include "kbfs.h"

const kb_Creds *kbfs_creds(fuse_req_t req, kb_Creds *buf)
{
	const struct fuse_ctx *ctx;
	gid_t groups[sizeof(buf->groups) / sizeof(buf->groups[0])];
	int n, i;

	if (!FS(req)->o->owners)
		return NULL;
	memset(buf, 0, sizeof(*buf));
	ctx = fuse_req_ctx(req);
	buf->uid = ctx->uid;
	buf->gid = ctx->gid;
	buf->groups_count = 0;
	/* Reads /proc/PID/task/TID/status; fails for kernel-made requests
	 * (pid 0, e.g. write-back): then no supplementary groups. A caller
	 * with more groups than fit sends the first ones. */
	n = fuse_req_getgroups(req, (int)(sizeof(groups) / sizeof(groups[0])), groups);
	if (n > (int)(sizeof(groups) / sizeof(groups[0])))
		n = (int)(sizeof(groups) / sizeof(groups[0]));
	for (i = 0; i < n; i++)
		buf->groups[buf->groups_count++] = groups[i];
	return buf;
}
