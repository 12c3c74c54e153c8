/* kbfs.h - the mount client's shared state and module interfaces.
 *
 * Modules: kbfs_opts.c (command line), kbfs_setup.c (keys, connect, mount
 * helpers), kbfs_node.c (inode table), kbfs_ops.c (FUSE operations),
 * kbfs_dir.c (readdir), kbfs_read.c (read path: block pulls + readahead),
 * kbfs_write.c (open for write, create, pipelined writes, flush, fsync,
 * release, fallocate, copy_file_range, lseek), kbfs_meta.c (setattr and
 * the namespace: mknod, mkdir, unlink, rmdir, rename, link, symlink,
 * xattrs, fsyncdir), kbfs_call.c (every server call naming a node or a
 * handle: typed calls of src/client/rpc_api.h, sent again after a new
 * session), main.c (main only).
 *
 * Threads: libfuse workers run the operations; rpc receiver threads run
 * pull completions and reply to reads from there, and WRITE completions
 * (which reply to the write). Locks: nodes->lock (inode table and node
 * fields), file->lock (readahead and write state), the cache's own lock;
 * never nested.
 */
#ifndef KBFS_H
#define KBFS_H

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdbool.h>
#include <stdint.h>

#include "aead.h"
#include "cache.h"
#include "keibifs.pb.h"

#define KBFS_DEFAULT_PORT 26431
#define KBFS_SUB_SHIFT 16 /* 64 KiB sub-blocks for random reads */

struct kb_rpc;
struct kbfs_nodes;

/* Parsed command line. Strings are owned (freed by kbfs_opts_free). */
struct kbfs_opts {
	char *host, *path, *mountpoint;
	char *port, *identity, *peer, *known_peers, *psk, *crypto;
	char *block_size_s, *cache_size_s;
	char *log;                 /* log=FILE|stderr|syslog (NULL: syslog once detached) */
	char *bad_arg, *extra_arg; /* a HOST:PATH that did not parse / a 3rd argument */
	unsigned conns;
	double attr_timeout, entry_timeout, negative_timeout;
	int timeout; /* seconds */
	int ro, foreground, debug, show_help, show_version;
	int writeback;     /* writeback_cache (default) / no_writeback_cache */
	int noreconnect;   /* a lost connection stays lost (rpc cfg.noreconnect) */
	int sync_meta;     /* sync_meta: no write-behind (kbfs_wb.c) */
	size_t block_size; /* bytes, power of two */
	size_t cache_size; /* bytes */
	enum kb_aead_backend backend;
	int owners;          /* owners=preserve: real ids, creds sent */
	int allow_other;     /* FUSE allow_other given (passed on) */
	int suid, dev;       /* suid / dev asked (honoured only with owners) */
	char *proxy_command; /* proxy_command=CMD: connections through CMD */
	char *compress_s;    /* compress=auto|on|off */
	int compress;        /* enum kb_z_mode, from compress_s (auto) */
};

/* Seconds (an option's double) to nanoseconds. */
#define NS(sec) ((uint64_t)((sec)*1e9))

struct kbfs {
	const struct kbfs_opts *o;
	struct kb_rpc *rpc;       /* owned by main */
	struct kbfs_nodes *nodes; /* owned by main */
	struct kb_cache *cache;   /* owned by main */
	struct kb_keyset *trust;  /* owned; the rpc keeps pointing at it */
	uint8_t identity[32];     /* client private key; wiped at fini */
	uint8_t psk[32];          /* wiped at fini */
	bool have_psk;
	struct fuse_session *se;
	uid_t uid; /* mounting user (idmap=user) */
	gid_t gid;
	uint32_t remote_uid, remote_gid; /* owner of the share root on the server */
	bool read_only;
	bool writeback; /* FUSE writeback cache granted (init) */
	unsigned block_shift;
	unsigned sub_shift; /* == block_shift: no sub-blocks */
	unsigned ra_max;    /* readahead window limit, in blocks */
	unsigned conns;
	const char *realmnt;     /* canonical mountpoint (main's) */
	atomic_int ra_pending;   /* read_ahead_kb still to be raised */
	struct kbfs_rd *rd_free; /* read request pool (rd_lock) */
	pthread_mutex_t rd_lock;
	struct kbfs_nq *nq;             /* owned: NOTIFY queue + its thread (kbfs_notify.c) */
	struct kbfs_status *status;     /* owned: mount time (kbfs_status.c) */
	atomic_bool log_detached;       /* kbfs_log.c: set once the daemon detached */
	struct kbfs_nameset *missing;   /* owned: names the server said are missing */
	struct kbfs_nameset *quiet;     /* owned: what we changed lately (kbfs_notify.c) */
	struct kbfs_siblings *siblings; /* owned: small files in listing order (kbfs_siblings.c) */
	struct kbfs_newdirs *newdirs;   /* owned: dirs we made, names we put there */
	struct kbfs_list *list;         /* owned: whole directories (kbfs_list.c) */
	struct kb_stream *stream;       /* owned: write-behind stream; NULL: off */
	struct kbfs_wb *wb;             /* owned: leased directories' names (kbfs_wb.c) */
};

/* The filesystem a FUSE request belongs to (its session userdata). */
#define FS(req) ((struct kbfs *)fuse_req_userdata(req))

/* kbfs_browse.c: keibifs --browse; the exit status. */
int kbfs_browse_print(const char *known_peers);

/* kbfs_opts.c */
/* Parses argv; `args` gets what is left for fuse_session_new (+ defaults).
 * Returns 0, or -EINVAL with a message in err. */
int kbfs_opts_parse(int argc, char *argv[], struct kbfs_opts *o, struct fuse_args *args, char *err,
		    size_t errlen);
void kbfs_opts_free(struct kbfs_opts *o);
void kbfs_usage(FILE *f, const char *prog);
/* "1M", "512k", "4096" (unit when no suffix) -> bytes; -EINVAL. */
int kbfs_parse_size(const char *s, size_t unit, size_t *out);
/* "host:/path", "[v6]:/path", "mdns:NAME:/path" -> owned host ("mdns:NAME"
 * for the last) and path. */
int kbfs_parse_remote(const char *spec, char **host, char **path);

/* kbfs_setup.c */
/* FILE under ~/.config/keibifs, else /etc/keibifs, if it exists; NULL. */
const char *kbfs_default_file(char *buf, size_t len, const char *name);
/* Loads keys, connects (an mdns:NAME host resolved through avahi first),
 * authenticates, checks PATH. */
int kbfs_connect(struct kbfs *fs, const struct kbfs_opts *o, kb_Entry *root, char *err,
		 size_t errlen);
/* mountinfo's \ooo escapes (space, tab, newline, backslash), in place. */
void kbfs_mountinfo_unescape(char *s);
/* Raise the mount's bdi read_ahead_kb (needs the device from mountinfo). */
int kbfs_raise_readahead(const char *realmnt, size_t kib);
/* Once, from the first request after INIT: the kernel lowers read_ahead_kb
 * to max_readahead when it processes the INIT reply, so raising it earlier
 * does not stick; any later request proves INIT is done. */
void kbfs_raise_readahead_once(struct kbfs *fs);
/* Allocate shared state (cache, read pool); kbfs_fini_state frees it and
 * everything kbfs_connect made. */
int kbfs_init_state(struct kbfs *fs, const struct kbfs_opts *o);
void kbfs_fini_state(struct kbfs *fs);

/* kbfs_creds.c: with owners=preserve, the caller's uid/gid/groups in *buf
 * and buf; else NULL (the rpc sends them only with the operations the
 * server performs as the caller). */
const kb_Creds *kbfs_creds(fuse_req_t req, kb_Creds *buf);

/* kbfs_table.c: the operations table (and INIT) */
extern const struct fuse_lowlevel_ops kbfs_ops;

/* kbfs_reply.c */
void kbfs_attr_to_stat(const struct kbfs *fs, const kb_Attr *a, struct stat *st);
/* Reply with an error: 0, -errno or -KB_E* (collapsed here). */
void kbfs_reply_err(fuse_req_t req, int err);
/* Reply with an entry the server counted one lookup for (undone when the
 * kernel never gets it). */
void kbfs_reply_entry(fuse_req_t req, fuse_ino_t parent, const char *name, const kb_Entry *e);
/* ...whose attributes are current if nothing changed since gen (kbfs_node.h). */
void kbfs_reply_entry_gen(fuse_req_t req, fuse_ino_t parent, const char *name, const kb_Entry *e,
			  uint64_t gen);
/* The same; before(fs, ino) runs once the node is entered, before the
 * kernel hears of it (mkdir: the new directory's lease, kbfs_wb.h). */
void kbfs_reply_entry_hook(fuse_req_t req, fuse_ino_t parent, const char *name, const kb_Entry *e,
			   uint64_t gen, void (*before)(struct kbfs *fs, fuse_ino_t ino));
/* EROFS for a read-only mount or share: true when it replied. */
bool kbfs_rofs(fuse_req_t req);

/* kbfs_attr.c (kbfs_listed, kbfs_attr_listed: kbfs_list.h) */
/* GETATTR; a changed version drops the file's cached blocks. */
int kbfs_fetch_attr(struct kbfs *fs, fuse_ino_t ino, kb_Attr *a, uint64_t *version);
/* Attributes as fresh as attr_timeout allows (cached or fetched). */
int kbfs_attr_now(struct kbfs *fs, fuse_ino_t ino, kb_Attr *a, uint64_t *version);

/* kbfs_list.c: the server's promise now (kbfs_nodes_set_lease's
 * callback; arg: fs). */
uint64_t kbfs_lease(void *arg, uint64_t now_ns);

/* kbfs_ops.c: names and attributes */
void kbfs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name);
void kbfs_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup);
void kbfs_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *f);
/* Drop n lookups of ino (the kernel's FORGET, or an entry it never got);
 * the server's count goes back with them, behind the write-behind queue
 * when queued requests may name the node. */
void kbfs_forget_node(struct kbfs *fs, fuse_ino_t ino, uint64_t n);
void kbfs_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void kbfs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void kbfs_readlink(fuse_req_t req, fuse_ino_t ino);
void kbfs_statfs(fuse_req_t req, fuse_ino_t ino);
void kbfs_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size);
void kbfs_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size);
void kbfs_access(fuse_req_t req, fuse_ino_t ino, int mask);

/* kbfs_notify.c: a server push (rpc notify callback; arg: the kbfs) */
void kbfs_notify(void *arg, const kb_Response *n);

/* kbfs_dir.c */
void kbfs_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void kbfs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		  struct fuse_file_info *fi);
void kbfs_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		      struct fuse_file_info *fi);
void kbfs_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);

/* kbfs_read.c: one open file (fi->fh). */
struct kbfs_file {
	uint64_t remote_fh; /* 0: no server handle (read-only opens); (lock) once
			     * published, set lazily by copy_file_range */
	uint64_t ino;
	uint64_t remote;  /* server node id at open */
	uint64_t version; /* file version at open: the cache key */
	uint64_t size;    /* size at open: bounds readahead */
	pthread_mutex_t lock;
	uint64_t next_off;           /* end of the furthest recent read (lock) */
	uint64_t ra_next;            /* first block not yet prefetched (lock) */
	unsigned win;                /* readahead window in blocks, 0 = random (lock) */
	unsigned inflight;           /* WRITEs submitted and not completed (lock) */
	int err;                     /* first write error not yet reported (lock) */
	bool err_guess;              /* err is -EIO for a short write: a real one wins (lock) */
	bool writer;                 /* counted in the node's writers (open for writing) */
	pthread_cond_t idle;         /* inflight dropped to 0 */
	uint64_t sgen;               /* rpc session generation remote_fh is from (lock) */
	uint32_t oflags;             /* flags remote_fh is reopened with in a new session
			    * (no O_TRUNC, O_EXCL: already applied) */
	int lost;                    /* could not be reopened in a new session (deleted or
			    * replaced on the server): every later write, fsync
			    * and flush fails with it (lock) */
	pthread_mutex_t reopen_lock; /* one reopen at a time; held across
				      * synchronous calls, never by a callback */
	bool wb;                     /* its node is in the write-behind stream (kbfs_wb.h):
			* writes answered early, close does not wait */
	bool released; /* wb: RELEASE seen; the last write's completion frees it (lock) */
};

/* Wait until no WRITE of f is in flight; returns the error stored for it
 * (cleared if take_err). */
int kbfs_file_drain(struct kbfs_file *f, bool take_err);
void kbfs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi);
void kbfs_rd_pool_free(struct kbfs *fs);
/* Start pulls of blocks [from, to) of a file version that are not cached. */
void kbfs_prefetch(struct kbfs *fs, uint64_t ino, uint64_t remote, uint64_t version, uint64_t from,
		   uint64_t to);

/* kbfs_call.c (the rest of it: kbfs_call.h) */
/* The server node id and handle to use for f now, and the session
 * generation the handle is from (sgen may be NULL). A handle of an older
 * session (the server restarted, or our session expired) is first
 * reopened on f's node, re-resolved by parent and name when its id is
 * stale. 0; f->lost once the file cannot be reopened (it was deleted or
 * replaced on the server); or the transport error. Read-only files have no
 * handle (*fh 0: by node). Makes synchronous calls: not from a callback. */
int kbfs_file_handle(struct kbfs *fs, struct kbfs_file *f, uint64_t *node, uint64_t *fh,
		     uint64_t *sgen);

/* kbfs_write.c */
struct kbfs_file *kbfs_file_new(uint64_t ino, uint64_t remote, uint64_t version, uint64_t size);
void kbfs_file_free(struct kbfs_file *f);
/* Our own change of a file's data: drop its cached blocks (every version:
 * the cache key does not know yet) and let the node adopt the next version
 * as the kernel cache's (that cache already holds what we wrote). */
void kbfs_file_own_change(struct kbfs *fs, fuse_ino_t ino, bool data);
void kbfs_open_rw(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void kbfs_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		 struct fuse_file_info *fi);
void kbfs_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		struct fuse_file_info *fi);
void kbfs_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void kbfs_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi);
void kbfs_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void kbfs_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len,
		    struct fuse_file_info *fi);
void kbfs_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in,
			  struct fuse_file_info *fi_in, fuse_ino_t ino_out, off_t off_out,
			  struct fuse_file_info *fi_out, size_t len, int flags);
void kbfs_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence, struct fuse_file_info *fi);

/* kbfs_meta.c */
void kbfs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		  struct fuse_file_info *fi);
void kbfs_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev);
void kbfs_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode);
void kbfs_unlink(fuse_req_t req, fuse_ino_t parent, const char *name);
void kbfs_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name);
void kbfs_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		 const char *newname, unsigned int flags);
void kbfs_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname);
void kbfs_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name);
void kbfs_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value, size_t size,
		   int flags);
void kbfs_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name);
void kbfs_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi);

/* kbfs_remap.c: nodes across a new session (server restart). Callers go
 * through kbfs_call (kbfs_call.h), which decides when to re-resolve. */
/* rpc session callback: the root's new server id. */
void kbfs_session_cb(void *arg, uint64_t gen, const kb_Entry *root);
/* ino's server id `bad` got ESTALE: LOOKUP it again from its parent chain,
 * check the file is the same (inode number, type), remap; *remote gets the
 * new id. 0, -ESTALE, or the transport error. Makes synchronous calls. */
int kbfs_remap_resolve(struct kbfs *fs, uint64_t ino, uint64_t bad, uint64_t *remote);

/* kbfs_notify.c: NOTIFY pushes to the kernel from a thread of our own
 * (kbfs_notify, declared above, is the rpc callback), which also ticks the
 * status sampler every second. */
int kbfs_notify_start(struct kbfs *fs);
/* Stop the thread (pushes are dropped from then on) / free the queue once
 * the rpc is gone (no more callbacks). */
void kbfs_notify_stop(struct kbfs *fs);
void kbfs_notify_free(struct kbfs *fs);
void kbfs_notify_counts(struct kbfs *fs, uint64_t *delivered, uint64_t *dropped, uint64_t *own);
/* End our write-behind answers in directory `dir` from that thread
 * (kbfs_wb_foreign; callers such as an rpc receiver must not wait). */
void kbfs_notify_lease_end(struct kbfs *fs, uint64_t dir);
/* We change node/name (name "": the node itself): for KBFS_QUIET_MS the
 * server's pushes about it are taken as our own change coming back and
 * ignored (a change by someone else in that moment is then seen after the
 * attribute timeout, as without pushes). kbfs_quiet_node: a node and its
 * name in its parent. */
#define KBFS_QUIET_MS 300
void kbfs_quiet(struct kbfs *fs, uint64_t node, const char *name);
void kbfs_quiet_node(struct kbfs *fs, uint64_t ino);
/* We are about to create, link, rename or remove dir/name: it is no longer
 * known missing (kbfs_nameset; kbfs_newdirs when it `appears`: a create, link
 * or rename target), and its push is our own. */
void kbfs_name_touched(struct kbfs *fs, uint64_t dir, const char *name, bool appears);

/* kbfs_devio.c: our own read/writev on /dev/fuse, installed right after the
 * mount: asks for FUSE_HANDLE_KILLPRIV_V2 (libfuse 3.14 cannot) and keeps,
 * for the thread handling a WRITE or OPEN, whether the kernel asked to
 * clear setuid/setgid. */
int kbfs_devio_hook(struct fuse_session *se);
bool kbfs_devio_kill_suidgid(void);

/* kbfs_log.c: log lines */
/* The daemon detached: log lines no longer also go to the terminal. */
void kbfs_log_detach(struct kbfs *fs);
/* rpc log callback (arg: the kbfs); kbfs_logf for our own lines. */
void kbfs_log(void *arg, const char *line);
void kbfs_logf(struct kbfs *fs, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* kbfs_status.c: `keibifs --status`. */
#define KBFS_STATUS_XATTR "keibifs.status"
#define KBFS_STATUS_MAX 8192 /* bound of the status text */
int kbfs_status_new(struct kbfs *fs);
void kbfs_status_free(struct kbfs *fs);
/* The mount is up (its time is shown). */
void kbfs_status_mounted(struct kbfs *fs);
size_t kbfs_status_text(struct kbfs *fs, char *buf, size_t cap);
/* getxattr of the status on the root: true when it replied. */
bool kbfs_status_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size);
/* keibifs --status PATH (the mount point or anything inside the mount):
 * prints the text; exit status. */
int kbfs_status_print(const char *mountpoint);
/* keibifs --sync MOUNTPOINT: drain the write-behind stream; exit status. */
int kbfs_sync_print(const char *mountpoint);
/* The peer's SHA256: fingerprint into buf. */
const char *kbfs_peer_fpr(struct kbfs *fs, char *buf, size_t len);

#endif
