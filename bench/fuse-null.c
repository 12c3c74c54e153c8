/* fuse-null.c - the FUSE ceilings for `make bench`: a low-level filesystem
 * with one file, /zero, whose reads are answered from a static zero buffer
 * and whose writes are thrown away (with the kernel's writeback cache and
 * 1 MiB writes, as keibifs asks for). Run: fuse-null MNT -f; reading or
 * writing MNT/zero measures what the kernel <-> userspace FUSE path alone
 * can do on this machine (threads as keibifs's loop). */
#define FUSE_USE_VERSION 312
#include <errno.h>
#include <fuse_lowlevel.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define NULL_SIZE (1ull << 30)
static char zeros[4 << 20];

static void fill(fuse_ino_t ino, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_mode = ino == 1 ? S_IFDIR | 0755 : S_IFREG | 0644;
	st->st_nlink = 1;
	st->st_size = ino == 1 ? 0 : NULL_SIZE;
}

static void n_init(void *ud, struct fuse_conn_info *c)
{
	(void)ud;
	c->max_readahead = 1 << 20;
	c->max_write = 1 << 20;
	if (c->capable & FUSE_CAP_WRITEBACK_CACHE)
		c->want |= FUSE_CAP_WRITEBACK_CACHE;
}

static void n_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fuse_entry_param e = {.ino = 2, .attr_timeout = 60, .entry_timeout = 60};

	if (parent != 1 || strcmp(name, "zero")) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	fill(2, &e.attr);
	fuse_reply_entry(req, &e);
}

static void n_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct stat st;

	(void)fi;
	fill(ino, &st);
	fuse_reply_attr(req, &st, 60);
}

static void n_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	fuse_reply_open(req, fi);
}

static void n_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		   struct fuse_file_info *fi)
{
	(void)ino;
	(void)fi;
	if ((unsigned long long)off >= NULL_SIZE)
		size = 0;
	else if (off + size > NULL_SIZE)
		size = NULL_SIZE - off;
	fuse_reply_buf(req, zeros, size < sizeof(zeros) ? size : sizeof(zeros));
}

static void n_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	(void)ino, (void)buf, (void)off, (void)fi;
	fuse_reply_write(req, size);
}

static void n_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		      struct fuse_file_info *fi)
{
	struct stat st;

	(void)attr, (void)to_set, (void)fi;
	fill(ino, &st);
	fuse_reply_attr(req, &st, 60);
}

static void n_ok(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino, (void)fi;
	fuse_reply_err(req, 0);
}

static void n_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	(void)datasync;
	n_ok(req, ino, fi);
}

static const struct fuse_lowlevel_ops ops = {
	.init = n_init,
	.lookup = n_lookup,
	.getattr = n_getattr,
	.setattr = n_setattr,
	.open = n_open,
	.read = n_read,
	.write = n_write,
	.flush = n_ok,
	.release = n_ok,
	.fsync = n_fsync,
};

int main(int argc, char **argv)
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct fuse_cmdline_opts o;
	struct fuse_session *se;
	int ret = 1;

	if (fuse_parse_cmdline(&args, &o) || !o.mountpoint)
		return 1;
	se = fuse_session_new(&args, &ops, sizeof(ops), NULL);
	if (se && !fuse_session_mount(se, o.mountpoint)) {
		struct fuse_loop_config *cfg = fuse_loop_cfg_create();

		if (cfg) {
			fuse_loop_cfg_set_max_threads(cfg, 32);
			fuse_loop_cfg_set_idle_threads(cfg, 8);
			ret = fuse_session_loop_mt(se, cfg);
			fuse_loop_cfg_destroy(cfg);
		}
		fuse_session_unmount(se);
	}
	if (se)
		fuse_session_destroy(se);
	free(o.mountpoint);
	fuse_opt_free_args(&args);
	return ret ? 1 : 0;
}
