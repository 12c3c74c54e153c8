/* kbfs_table.c - the FUSE low-level operations table and INIT: which
 * request goes to which module, and what the mount asks of the kernel.
 * Every request gets exactly one reply, from the module that handles it.
 */
#include <errno.h>

#include "kbfs.h"
#include "kbfs_node.h"
#include "rpc.h"
#include "util.h"
static void kbfs_init(void *userdata, struct fuse_conn_info *conn)
{
	struct kbfs *fs = userdata;
	/* READDIRPLUS always (not _AUTO): a batch costs one round trip either
	 * way, and it spares a LOOKUP per file to cp -r, find, du. */
	unsigned want = FUSE_CAP_ASYNC_READ | FUSE_CAP_READDIRPLUS | FUSE_CAP_PARALLEL_DIROPS |
			FUSE_CAP_AUTO_INVAL_DATA | FUSE_CAP_CACHE_SYMLINKS;

	/* Must equal the -o max_read we passed (kbfs_opts_parse). */
	conn->max_read = (unsigned)fs->o->block_size;
	if (conn->max_readahead > fs->o->block_size)
		conn->max_readahead = (unsigned)fs->o->block_size;
	conn->want |= want & conn->capable;
	conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;
	/* Writes: the kernel gathers pages and sends WRITEs of max_write in
	 * parallel (writeback cache); it then owns size and mtime of files
	 * with dirty pages and tells us the mtime by SETATTR. Never on a
	 * read-only mount (nothing to write back), and only when asked not
	 * to skip it: a writeback cache trusts the kernel's size over the
	 * server's, so files changed on the server by others are seen only
	 * when their inode is dropped. */
	conn->max_write = (unsigned)KB_MIN(fs->o->block_size, kb_rpc_max_write(fs->rpc));
	if (!fs->read_only && fs->o->writeback && (conn->capable & FUSE_CAP_WRITEBACK_CACHE))
		conn->want |= FUSE_CAP_WRITEBACK_CACHE;
	else
		conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
	fs->writeback = conn->want & FUSE_CAP_WRITEBACK_CACHE;
	/* Replies come from memory buffers: splice would only add a pipe. */
	conn->want &= ~(FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE);
}

const struct fuse_lowlevel_ops kbfs_ops = {
	.init = kbfs_init,
	.lookup = kbfs_lookup,
	.forget = kbfs_forget,
	.forget_multi = kbfs_forget_multi,
	.getattr = kbfs_getattr,
	.readlink = kbfs_readlink,
	.open = kbfs_open,
	.read = kbfs_read,
	.release = kbfs_release,
	.opendir = kbfs_opendir,
	.readdir = kbfs_readdir,
	.readdirplus = kbfs_readdirplus,
	.releasedir = kbfs_releasedir,
	.statfs = kbfs_statfs,
	.getxattr = kbfs_getxattr,
	.listxattr = kbfs_listxattr,
	.access = kbfs_access,
	.setattr = kbfs_setattr,
	.mknod = kbfs_mknod,
	.mkdir = kbfs_mkdir,
	.unlink = kbfs_unlink,
	.rmdir = kbfs_rmdir,
	.symlink = kbfs_symlink,
	.rename = kbfs_rename,
	.link = kbfs_link,
	.create = kbfs_create,
	.write = kbfs_write,
	.flush = kbfs_flush,
	.fsync = kbfs_fsync,
	.fsyncdir = kbfs_fsyncdir,
	.fallocate = kbfs_fallocate,
	.copy_file_range = kbfs_copy_file_range,
	.lseek = kbfs_lseek,
	.setxattr = kbfs_setxattr,
	.removexattr = kbfs_removexattr,
};
