/* kbfs_reply.c - replies shared by every operation: errors (collapsed
 * from -errno or -KB_E* to errno only here, at the FUSE boundary), EROFS,
 * attributes as the kernel sees them, and entries (a node entered in the
 * table, its lookup undone when the kernel never gets it).
 */
#include <errno.h>
#include <string.h>

#include "err.h"
#include "kbfs.h"
#include "kbfs_node.h"
#include "rpc.h"
#include "util.h"
void kbfs_reply_err(fuse_req_t req, int err)
{
	fuse_reply_err(req, -kb_err_to_errno(err));
}

bool kbfs_rofs(fuse_req_t req)
{
	if (!FS(req)->read_only)
		return false;
	fuse_reply_err(req, EROFS);
	return true;
}

void kbfs_attr_to_stat(const struct kbfs *fs, const kb_Attr *a, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = kbfs_nodes_shown_ino(fs->nodes, a->ino);
	st->st_mode = a->mode;
	st->st_nlink = a->nlink;
	/* idmap=user: the share owner's ids appear as the mounting user's */
	st->st_uid = a->uid == fs->remote_uid ? fs->uid : a->uid;
	st->st_gid = a->gid == fs->remote_gid ? fs->gid : a->gid;
	st->st_rdev = a->rdev;
	st->st_size = (off_t)a->size;
	st->st_blocks = (blkcnt_t)a->blocks;
	st->st_blksize = a->blksize ? (blksize_t)a->blksize : 4096;
	st->st_atim.tv_sec = a->atime;
	st->st_atim.tv_nsec = a->atime_ns;
	st->st_mtim.tv_sec = a->mtime;
	st->st_mtim.tv_nsec = a->mtime_ns;
	st->st_ctim.tv_sec = a->ctime;
	st->st_ctim.tv_nsec = a->ctime_ns;
}

void kbfs_reply_entry_gen(fuse_req_t req, fuse_ino_t parent, const char *name, const kb_Entry *e,
			  uint64_t gen)
{
	kbfs_reply_entry_hook(req, parent, name, e, gen, NULL);
}

void kbfs_reply_entry_hook(fuse_req_t req, fuse_ino_t parent, const char *name, const kb_Entry *e,
			   uint64_t gen, void (*before)(struct kbfs *fs, fuse_ino_t ino))
{
	struct kbfs *fs = FS(req);
	struct fuse_entry_param ep = {0};

	ep.ino = kbfs_node_enter(fs->nodes, parent, name, e, NS(fs->o->attr_timeout), gen);
	if (!ep.ino) {
		kb_rpc_forget(fs->rpc, e->node, 1);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	if (before)
		before(fs, ep.ino);
	ep.generation = e->generation;
	ep.attr_timeout = fs->o->attr_timeout;
	ep.entry_timeout = fs->o->entry_timeout;
	kbfs_attr_to_stat(fs, &e->attr, &ep.attr);
	if (fuse_reply_entry(req, &ep) != 0)
		kbfs_forget_node(fs, ep.ino, 1);
}

void kbfs_reply_entry(fuse_req_t req, fuse_ino_t parent, const char *name, const kb_Entry *e)
{
	kbfs_reply_entry_gen(req, parent, name, e, UINT64_MAX);
}
