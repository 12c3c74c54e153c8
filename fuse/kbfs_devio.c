/* kbfs_devio.c - our own read/writev on /dev/fuse (fuse_session_custom_io),
 * for what libfuse 3.14 cannot ask for or pass on.
 *
 * Without FUSE_HANDLE_KILLPRIV_V2 the kernel asks the filesystem for
 * security.capability before EVERY write(2) (file_remove_privs), one FUSE
 * round trip per call (262,144 GETXATTRs for 1 GiB written 4 KiB at a
 * time). With it the kernel marks the superblock SB_NOSEC, asks once per
 * inode, and tells the filesystem when a write, a truncation or an open
 * with O_TRUNC must clear the setuid/setgid bits (FUSE_WRITE_KILL_SUIDGID,
 * FATTR_KILL_SUIDGID, FUSE_OPEN_KILL_SUIDGID). libfuse 3.14 knows neither
 * the flag nor those bits, so:
 * - writev: the INIT reply gains FUSE_HANDLE_KILLPRIV_V2 when the kernel
 *   offered it (its INIT request, seen by read, said so);
 * - read: for a WRITE, SETATTR or OPEN, whether the kernel asked to kill
 *   suid/sgid is kept for the thread that handles that request (libfuse's
 *   loop reads and handles a request on the same thread):
 *   kbfs_devio_kill_suidgid(). The server then clears them (SET_KILL_SUIDGID).
 */
#include <errno.h>
#include <linux/fuse.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "kbfs.h"

static atomic_int init_offer = -1;   /* the kernel offered KILLPRIV_V2: 1/0; -1 unknown */
static _Atomic uint64_t init_unique; /* INIT's request id */
static __thread bool kill_suidgid;   /* the request this thread read last asked for it */

static void saw_request(const uint8_t *buf, size_t n)
{
	const struct fuse_in_header *h = (const void *)buf;
	const uint8_t *arg = buf + sizeof(*h);
	size_t alen = n - sizeof(*h);

	kill_suidgid = false;
	if (h->opcode == FUSE_WRITE && alen >= sizeof(struct fuse_write_in)) {
		const struct fuse_write_in *w = (const void *)arg;

		kill_suidgid = w->write_flags & FUSE_WRITE_KILL_SUIDGID;
	} else if (h->opcode == FUSE_SETATTR && alen >= sizeof(struct fuse_setattr_in)) {
		const struct fuse_setattr_in *s = (const void *)arg;

		kill_suidgid = s->valid & FATTR_KILL_SUIDGID;
	} else if (h->opcode == FUSE_OPEN && alen >= sizeof(struct fuse_open_in)) {
		const struct fuse_open_in *o = (const void *)arg;

		kill_suidgid = o->open_flags & FUSE_OPEN_KILL_SUIDGID;
	} else if (h->opcode == FUSE_INIT && alen >= 16) { /* major, minor, ra, flags */
		uint32_t flags;

		memcpy(&flags, arg + 12, sizeof(flags));
		atomic_store(&init_unique, h->unique);
		atomic_store(&init_offer, (flags & FUSE_HANDLE_KILLPRIV_V2) ? 1 : 0);
	}
}

static ssize_t dev_read(int fd, void *buf, size_t len, void *userdata)
{
	ssize_t n = read(fd, buf, len);

	(void)userdata;
	if (n >= (ssize_t)sizeof(struct fuse_in_header))
		saw_request(buf, (size_t)n);
	return n;
}

static ssize_t dev_writev(int fd, struct iovec *iov, int count, void *userdata)
{
	(void)userdata;
	/* The INIT reply: header, then fuse_init_out (flags at offset 12). */
	if (atomic_load_explicit(&init_offer, memory_order_relaxed) == 1 && count >= 2 &&
	    iov[0].iov_len >= sizeof(struct fuse_out_header) && iov[1].iov_len >= 16) {
		struct fuse_out_header *h = iov[0].iov_base;

		if (h->unique == atomic_load(&init_unique) && h->error == 0) {
			uint8_t *out = iov[1].iov_base;
			uint32_t flags;

			memcpy(&flags, out + 12, sizeof(flags));
			flags |= FUSE_HANDLE_KILLPRIV_V2;
			memcpy(out + 12, &flags, sizeof(flags));
			atomic_store(&init_offer, 2); /* done */
		}
	}
	return writev(fd, iov, count);
}

bool kbfs_devio_kill_suidgid(void)
{
	return kill_suidgid;
}

int kbfs_devio_hook(struct fuse_session *se)
{
	static const struct fuse_custom_io io = {.read = dev_read, .writev = dev_writev};

	return fuse_session_custom_io(se, &io, fuse_session_fd(se)) == 0 ? 0 : -EIO;
}
