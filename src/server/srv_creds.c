/* srv_creds.c - owners=preserve: serve a request as the caller.
 *
 * A session allowed to (keibifsd --allow-owners, or an `owners` key; and
 * a server running as root) may send its caller's uid, gid and groups in
 * Request.creds. The worker thread then takes them for the one request:
 * supplementary groups, fsgid and fsuid, so that the kernel's permission
 * checks, sticky and setgid directories and the owner of new files are
 * what a local disk gives that user. Afterwards the server's own ids come
 * back. Everything here is per thread: setfsuid/setfsgid are, and so is
 * the raw setgroups system call (glibc's setgroups() would change every
 * thread of the process). A non-zero fsuid drops the filesystem
 * capabilities (CAP_DAC_OVERRIDE, CAP_FOWNER, CAP_CHOWN, CAP_FSETID...)
 * of the thread for the request, and fsuid 0 gets them back.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/fsuid.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "srv_impl.h"
#include "util.h"

int kb_srv_ids_init(struct kb_srv_ids *ids)
{
	int n;

	ids->uid = geteuid();
	ids->gid = getegid();
	n = getgroups(KB_SRV_MAX_GROUPS, ids->groups);
	if (n < 0)
		return -errno; /* EINVAL: more groups than we keep */
	ids->ngroups = n;
	return 0;
}

/* setfsuid/setfsgid return the previous id whatever happens; asking again
 * with an invalid id (-1) tells what is now in force. */
static int set_ids(uid_t uid, gid_t gid, const gid_t *groups, size_t ngroups)
{
	if (syscall(SYS_setgroups, ngroups, groups))
		return -errno;
	setfsgid(gid);
	if ((gid_t)setfsgid((gid_t)-1) != gid)
		return -EPERM;
	setfsuid(uid);
	if ((uid_t)setfsuid((uid_t)-1) != uid)
		return -EPERM;
	return 0;
}

int kb_srv_creds_enter(const struct kb_srv_ids *self, const kb_Creds *c)
{
	gid_t groups[KB_SRV_MAX_GROUPS];
	size_t i, n = KB_MIN((size_t)c->groups_count, (size_t)KB_SRV_MAX_GROUPS);
	int ret;

	if (c->uid == (uint32_t)-1 || c->gid == (uint32_t)-1)
		return -EINVAL;
	for (i = 0; i < n; i++)
		groups[i] = c->groups[i];
	ret = set_ids(c->uid, c->gid, groups, n);
	if (ret)
		kb_srv_creds_leave(self);
	return ret;
}

void kb_srv_creds_leave(const struct kb_srv_ids *self)
{
	/* Root setting ids cannot fail; if it ever did, this thread would
	 * serve later requests as someone else: stop instead. */
	if (set_ids(self->uid, self->gid, self->groups, (size_t)self->ngroups)) {
		fprintf(stderr, "keibifsd: cannot restore the server's credentials\n");
		abort();
	}
}

/* ---- outside owners mode: no setuid/setgid, no chown to others ------ *
 *
 * A session that may not act as its callers (no --allow-owners, no
 * `owners` key: the default, owners=map) is served as the server's own
 * user, often root. Like NFS's root_squash it then gets no more than an
 * ordinary user of that uid could hand out: setuid and setgid bits never
 * come from it (new files, chmod) and survive none of its data changes,
 * and a file changes hands only to the server's own ids. In owners mode
 * the caller's credentials (and the client kernel's checks) decide. */

bool kb_srv_squash(const struct kb_srv_sess *s)
{
	return !s->owners;
}

mode_t kb_srv_mode_new(const struct kb_srv_sess *s, uint32_t mode, uint32_t umask)
{
	mode_t m = (mode_t)(mode & 07777 & ~umask);

	return kb_srv_squash(s) ? m & ~(mode_t)(S_ISUID | S_ISGID) : m;
}

mode_t kb_srv_mode_chmod(const struct kb_srv_sess *s, const struct kb_srv_node *n, uint32_t mode)
{
	mode_t m = (mode_t)(mode & 07777);
	struct stat st;

	if (!kb_srv_squash(s))
		return m;
	/* A directory keeps the setgid bit it already has (group inheritance
	 * set up on the server, no privilege): GNU chmod sends it back. */
	if ((m & S_ISGID) && n->fmt == S_IFDIR &&
	    !fstatat(n->fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) && (st.st_mode & S_ISGID))
		return m & ~(mode_t)S_ISUID;
	return m & ~(mode_t)(S_ISUID | S_ISGID);
}

int kb_srv_chown_ok(const struct kb_srv_sess *s, const struct kb_srv_node *n, uid_t uid, gid_t gid)
{
	const struct kb_srv_ids *self = &s->srv->ids;
	struct stat st;

	if (!kb_srv_squash(s))
		return 0;
	if (uid == (uid_t)-1 && gid == (gid_t)-1)
		return 0;
	/* The file's current ids are a no-op (cp -p, rsync -a of what we made:
	 * it is the server's already). A change is never given away: not to
	 * another user, and not to the server's own uid either (a root server
	 * would take a server-side user's file for root). A non-root server
	 * may still chgrp to its own group, which the kernel allows it. */
	if (fstatat(n->fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW))
		return -errno;
	if (uid != (uid_t)-1 && uid != st.st_uid)
		return -EPERM;
	if (gid != (gid_t)-1 && gid != st.st_gid && (self->uid == 0 || gid != self->gid))
		return -EPERM;
	return 0;
}

void kb_srv_kill_suidgid(const struct kb_srv_node *n, struct stat *st)
{
	mode_t kill = S_ISUID;
	char path[64];

	if ((st->st_mode & (S_ISGID | S_IXGRP)) == (S_ISGID | S_IXGRP))
		kill |= S_ISGID;
	kill = S_ISREG(st->st_mode) ? st->st_mode & kill : 0;
	/* best effort: the write or truncation itself is done */
	if (kill && !kb_srv_proc_path(n, path, sizeof(path)) &&
	    !chmod(path, st->st_mode & 07777 & ~kill))
		st->st_mode &= ~kill;
}
