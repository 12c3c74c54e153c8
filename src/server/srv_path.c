/* srv_path.c - names from the wire and confinement to the share.
 *
 * The server never resolves a path string given by a client with the
 * kernel's path walk. Every name is one validated component, opened with
 * openat(parent_fd, name, O_PATH | O_NOFOLLOW) relative to a node's fd, and
 * every node is reached that way from the share root, so no name can climb
 * out ("..", "/"), and a symlink is opened as itself, never followed (a
 * symlink swapped in during a lookup yields a symlink node, on which every
 * directory operation fails with ENOTDIR). /proc/self/fd/N is used only to
 * reopen regular files and directories, whose magic link names the inode
 * itself.
 *
 * A node keeps naming its inode wherever it goes, also out of the share
 * when someone on the server moves its directory away (mv share/d /tmp).
 * Operations that create, remove or rename names through a directory node
 * first check that it is still beneath the share root (kb_srv_beneath):
 * otherwise ESTALE, as NFS answers for a handle outside its export. The
 * check compares the paths the kernel gives for the node and the root
 * (/proc/self/fd, two readlinks at any depth); only when that fails does
 * it walk ".." from the node, which decides.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <pb_decode.h>

#include "err.h"
#include "srv_impl.h"

int kb_srv_name_ok(const char *name)
{
	size_t len = strnlen(name, NAME_MAX + 1);

	if (len == 0)
		return -EINVAL;
	if (len > NAME_MAX)
		return -ENAMETOOLONG;
	if (memchr(name, '/', len) || !strcmp(name, ".") || !strcmp(name, ".."))
		return -EINVAL;
	return 0;
}

/* String fields of kb.Request (name, name2, path): nanopb copies them into
 * char arrays and adds a NUL, so "a\0b" would silently become "a". */
static bool is_string_field(uint32_t tag)
{
	return tag == kb_Request_name_tag || tag == kb_Request_name2_tag ||
	       tag == kb_Request_path_tag;
}

int kb_srv_strings_ok(const uint8_t *hdr, size_t len)
{
	pb_istream_t is = pb_istream_from_buffer(hdr, len);
	pb_wire_type_t wt;
	uint32_t tag, slen;
	bool eof;
	uint8_t tmp[256];

	while (pb_decode_tag(&is, &wt, &tag, &eof)) {
		if (!(wt == PB_WT_STRING && is_string_field(tag))) {
			if (!pb_skip_field(&is, wt))
				return -KB_EPROTO;
			continue;
		}
		if (!pb_decode_varint32(&is, &slen) || slen > is.bytes_left)
			return -KB_EPROTO;
		while (slen > 0) {
			uint32_t n = slen < sizeof(tmp) ? slen : sizeof(tmp);

			if (!pb_read(&is, tmp, n))
				return -KB_EPROTO;
			if (memchr(tmp, '\0', n))
				return -EINVAL;
			slen -= n;
		}
	}
	return eof ? 0 : -KB_EPROTO;
}

int kb_srv_walk(int dirfd, const char *path, int *out)
{
	char comp[NAME_MAX + 1];
	int cur = -1, ret = 0;
	const char *p = path;

	cur = openat(dirfd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (cur < 0)
		return -errno;
	while (*p) {
		size_t len = strcspn(p, "/");
		int next;

		if (len == 0 || (len == 1 && p[0] == '.')) {
			p += len + (p[len] == '/');
			continue;
		}
		if (len > NAME_MAX) {
			ret = -ENAMETOOLONG;
			goto out;
		}
		memcpy(comp, p, len);
		comp[len] = '\0';
		ret = kb_srv_name_ok(comp);
		if (ret)
			goto out;
		next = openat(cur, comp, O_PATH | O_NOFOLLOW | O_DIRECTORY | O_CLOEXEC);
		if (next < 0) {
			ret = errno == ELOOP ? -ENOTDIR : -errno;
			goto out;
		}
		close(cur);
		cur = next;
		p += len + (p[len] == '/');
	}
	*out = cur;
	cur = -1;
out:
	if (cur >= 0)
		close(cur);
	return ret;
}

int kb_srv_proc_path(const struct kb_srv_node *n, char *buf, size_t cap)
{
	if (n->fmt == S_IFLNK)
		return -ELOOP;
	snprintf(buf, cap, "/proc/self/fd/%d", n->fd);
	return 0;
}

int kb_srv_reopen(const struct kb_srv_node *n, int flags)
{
	char path[64];
	int fd;

	if (n->fmt == S_IFLNK)
		return -ELOOP;
	if (n->fmt != S_IFREG && n->fmt != S_IFDIR)
		return -EPERM;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", n->fd);
	fd = open(path, (flags & ~(O_CREAT | O_EXCL | O_NOFOLLOW | O_PATH)) | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

/* Where the kernel says fd is now (d_path: no permission needed on the
 * way); 0 or -errno (ENAMETOOLONG past a page). */
static int fd_path(int fd, char *buf, size_t cap, size_t *len)
{
	char proc[64];
	ssize_t n;

	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	n = readlink(proc, buf, cap);
	if (n < 0)
		return -errno;
	if ((size_t)n >= cap)
		return -ENAMETOOLONG;
	*len = (size_t)n;
	return 0;
}

/* Fast path: the node's current path starts with the share root's current
 * path and a '/'. Two readlinks, whatever the depth. */
static bool beneath_by_path(const struct kb_srv *srv, const struct kb_srv_node *n)
{
	char root[PATH_MAX], dir[PATH_MAX];
	size_t rlen = 0, dlen = 0;

	if (fd_path(srv->rootfd, root, sizeof(root), &rlen) ||
	    fd_path(n->fd, dir, sizeof(dir), &dlen) || root[0] != '/')
		return false;
	if (rlen == 1) /* the share is "/" */
		return true;
	return dlen > rlen && dir[rlen] == '/' && !memcmp(dir, root, rlen);
}

int kb_srv_beneath(const struct kb_srv *srv, const struct kb_srv_node *n)
{
	struct stat st, up;
	int cur, next, ret = -ESTALE;

	if (n->fmt != S_IFDIR || (n->dev == srv->root_dev && n->ino == srv->root_ino))
		return 0; /* a non-directory fails the operation itself */
	if (beneath_by_path(srv, n))
		return 0;
	/* Slow path (moved out, or a path longer than a page): walk "..". */
	cur = openat(n->fd, "..", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (cur < 0)
		return -errno;
	for (unsigned depth = 0; depth < KB_SRV_BENEATH_DEPTH; depth++) {
		if (fstat(cur, &st)) {
			ret = -errno;
			break;
		}
		if (st.st_dev == srv->root_dev && st.st_ino == srv->root_ino) {
			ret = 0;
			break;
		}
		next = openat(cur, "..", O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (next < 0) {
			ret = -errno;
			break;
		}
		close(cur);
		cur = next;
		if (!fstat(cur, &up) && up.st_dev == st.st_dev && up.st_ino == st.st_ino)
			break; /* "/": its own parent, and the share root was not on the way */
	}
	close(cur);
	return ret;
}
