/* fuse-null.c - the FUSE ceiling for `make bench`: a low-level filesystem
 * with one file, /zero, whose reads are answered from a static zero buffer.
 * Run: fuse-null MNT -f [-o max_read=...]; reading MNT/zero measures what
 * the kernel <-> userspace FUSE path alone can do on this machine. */
#define FUSE_USE_VERSION 34
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
	st->st_mode = ino == 1 ? S_IFDIR | 0755 : S_IFREG | 0444;
	st->st_nlink = 1;
	st->st_size = ino == 1 ? 0 : NULL_SIZE;
}

static void n_init(void *ud, struct fuse_conn_info *c)
{
	(void)ud;
	c->max_readahead = 1 << 20;
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

static const struct fuse_lowlevel_ops ops = {
	.init = n_init, .lookup = n_lookup, .getattr = n_getattr,
	.open = n_open, .read = n_read,
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
		ret = fuse_session_loop(se);
		fuse_session_unmount(se);
	}
	if (se)
		fuse_session_destroy(se);
	free(o.mountpoint);
	fuse_opt_free_args(&args);
	return ret ? 1 : 0;
}
