/* kbfs_setup.c - keys, connection, shared state, bdi readahead. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kbfs.h"
#include "kbfs_newdirs.h"
#include "kbfs_list.h"
#include "kbfs_nameset.h"
#include "kbfs_siblings.h"
#include "kbfs_node.h"
#include "err.h"
#include "keys.h"
#include "mdns.h"
#include "rpc_api.h"
#include "util.h"

#define KBFS_MDNS_MS 5000 /* resolving mdns:NAME */

/* The user's home: $HOME, else the passwd entry of our uid (mount(8)
 * clears the environment for a fstab `user` mount; ssh does the same). */
static const char *home_dir(void)
{
	const char *home = getenv("HOME");
	struct passwd *pw;

	if (home && *home)
		return home;
	pw = getpwuid(getuid());
	return pw && pw->pw_dir && *pw->pw_dir ? pw->pw_dir : NULL;
}

/* Default file under ~/.config/keibifs, then /etc/keibifs, if it exists. */
const char *kbfs_default_file(char *buf, size_t len, const char *name)
{
	const char *home = home_dir();

	if (home) {
		snprintf(buf, len, "%s/.config/keibifs/%s", home, name);
		if (access(buf, F_OK) == 0)
			return buf;
	}
	snprintf(buf, len, "/etc/keibifs/%s", name);
	return access(buf, F_OK) == 0 ? buf : NULL;
}

static int load_trust(struct kbfs *fs, const struct kbfs_opts *o, char *err, size_t errlen)
{
	char path[PATH_MAX];
	const char *kp = o->known_peers;
	int ret;

	if (!kp)
		kp = kbfs_default_file(path, sizeof(path), "known_peers");
	ret = kp ? kb_keyset_load_peers(&fs->trust, kp, err, errlen) : kb_keyset_new(&fs->trust);
	if (ret < 0) {
		if (!*err)
			snprintf(err, errlen, "known_peers %s: %s", kp, kb_strerror(ret));
		return ret;
	}
	if (o->peer && (ret = kb_keyset_add_fingerprint(fs->trust, o->peer)) < 0) {
		snprintf(err, errlen,
			 "peer=%s: not a SHA256: fingerprint (as keibifsd prints it "
			 "and keibifs-keygen -l shows it)",
			 o->peer);
		return ret;
	}
	return 0;
}

/* A "keibifs-x25519 ..." line: a .pub file (readable by anyone). */
static bool is_public_file(const char *path)
{
	char line[32] = "";
	FILE *f = fopen(path, "re");

	if (!f)
		return false;
	if (!fgets(line, sizeof(line), f))
		line[0] = '\0';
	fclose(f);
	return !strncmp(line, "keibifs-x25519 ", 15);
}

int kbfs_connect(struct kbfs *fs, const struct kbfs_opts *o, kb_Entry *root, char *err,
		 size_t errlen)
{
	uint8_t pub[KB_KEY_LEN];
	char path[PATH_MAX];
	const char *id = o->identity;
	struct kb_rpc_cfg cfg = {0};
	struct kb_mdns_peer mp; /* mdns:NAME resolved */
	char mport[8];
	bool ro = false;
	int ret;

	err[0] = '\0';
	if (!id)
		id = kbfs_default_file(path, sizeof(path), "id_x25519");
	if (!id) {
		snprintf(err, errlen,
			 "no client key: create one with keibifs-keygen (it writes "
			 "~/.config/keibifs/id_x25519) or pass -o identity=FILE");
		return -ENOENT;
	}
	if (kb_key_load_public(id, pub, NULL, 0) == 0 && is_public_file(id)) {
		snprintf(err, errlen,
			 "identity %s is a public key: give the private key (the "
			 "file without .pub)",
			 id);
		return -EINVAL;
	}
	ret = kb_key_load_private(id, fs->identity, pub, err, errlen);
	if (ret < 0) {
		if (!*err)
			snprintf(err, errlen, "identity %s: %s", id, kb_strerror(ret));
		return ret;
	}
	if ((ret = load_trust(fs, o, err, errlen)) < 0)
		return ret;
	if (o->psk && (ret = kb_psk_load(o->psk, fs->psk, err, errlen)) < 0)
		return ret;
	fs->have_psk = o->psk != NULL;
	cfg.host = o->host;
	cfg.port = o->port;
	if (!strncmp(o->host, KB_MDNS_PREFIX, strlen(KB_MDNS_PREFIX))) {
		/* the announced address and port; trust is still ours to give */
		ret = kb_mdns_resolve(o->host + strlen(KB_MDNS_PREFIX), KBFS_MDNS_MS, &mp, err,
				      errlen);
		if (ret < 0)
			return ret;
		snprintf(mport, sizeof(mport), "%u", mp.port);
		cfg.host = mp.addr;
		cfg.port = mport;
		kbfs_logf(fs, "%s is %s port %s (%s)", o->host, mp.addr, mport, mp.host);
	}
	cfg.path = o->path;
	cfg.conns = o->conns;
	cfg.identity = fs->identity;
	cfg.trust = fs->trust;
	cfg.psk = fs->have_psk ? fs->psk : NULL;
	cfg.backend = o->backend;
	cfg.timeout_ms = o->timeout * 1000;
	cfg.noreconnect = o->noreconnect;
	cfg.proxy_command = o->proxy_command;
	cfg.compress = o->compress;
	cfg.max_frame = o->block_size + kb_rpc_frame_headroom() + 4096;
	ret = kb_rpc_new(&fs->rpc, &cfg, root, &ro, err, errlen);
	if (ret < 0) {
		if (!*err)
			snprintf(err, errlen, "%s: %s", o->host, kb_strerror(ret));
		return ret;
	}
	if (o->owners && !kb_rpc_owners(fs->rpc)) {
		snprintf(err, errlen,
			 "owners=preserve: %s does not act as its callers "
			 "(start keibifsd as root with --allow-owners, or give this key the "
			 "`owners` option in its authorized file)",
			 o->host);
		return -EPERM;
	}
	fs->read_only = ro || o->ro;
	fs->remote_uid = root->attr.uid;
	fs->remote_gid = root->attr.gid;
	if (o->owners) { /* owners=preserve: no mapping (identity) */
		fs->uid = fs->remote_uid;
		fs->gid = fs->remote_gid;
	}
	return 0;
}

/* A listed entry's lookup given back (kbfs_list.h). */
static void list_forget(void *arg, uint64_t node)
{
	struct kbfs *fs = arg;

	kb_rpc_forget(fs->rpc, node, 1);
}

int kbfs_init_state(struct kbfs *fs, const struct kbfs_opts *o)
{
	int ret;

	fs->o = o;
	fs->uid = getuid();
	fs->gid = getgid();
	fs->block_shift = (unsigned)__builtin_ctzll(o->block_size);
	fs->sub_shift = fs->block_shift > KBFS_SUB_SHIFT ? KBFS_SUB_SHIFT : fs->block_shift;
	fs->conns = o->conns;
	/* Readahead: up to 16 blocks, at most a quarter of the cache. */
	fs->ra_max = (unsigned)KB_MIN((size_t)16, o->cache_size / o->block_size / 4);
	if (fs->ra_max < 1)
		fs->ra_max = 1;
	pthread_mutex_init(&fs->rd_lock, NULL);
	ret = kb_cache_new(&fs->cache, o->cache_size, (size_t)1 << fs->sub_shift);
	if (!ret)
		ret = kbfs_nameset_new(&fs->missing);
	if (!ret)
		ret = kbfs_nameset_new(&fs->quiet);
	if (!ret)
		ret = kbfs_siblings_new(&fs->siblings);
	if (!ret)
		ret = kbfs_newdirs_new(&fs->newdirs);
	if (!ret)
		ret = kbfs_list_new(&fs->list, list_forget, fs);
	return ret;
}

void kbfs_fini_state(struct kbfs *fs)
{
	kb_rpc_free(fs->rpc); /* completes every pull before the cache goes */
	fs->rpc = NULL;
	kb_cache_free(fs->cache);
	fs->cache = NULL;
	kbfs_nameset_free(fs->missing);
	fs->missing = NULL;
	kbfs_nameset_free(fs->quiet);
	fs->quiet = NULL;
	kbfs_siblings_free(fs->siblings);
	fs->siblings = NULL;
	kbfs_newdirs_free(fs->newdirs);
	fs->newdirs = NULL;
	kbfs_list_free(fs->list); /* the session is gone: nothing to forget */
	fs->list = NULL;
	kbfs_rd_pool_free(fs);
	kbfs_nodes_free(fs->nodes);
	fs->nodes = NULL;
	kb_keyset_free(fs->trust);
	fs->trust = NULL;
	kb_memzero(fs->identity, sizeof(fs->identity));
	kb_memzero(fs->psk, sizeof(fs->psk));
	pthread_mutex_destroy(&fs->rd_lock);
}

void kbfs_mountinfo_unescape(char *s)
{
	char *d = s;

	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] && s[3]) {
			*d++ = (char)((s[1] - '0') << 6 | (s[2] - '0') << 3 | (s[3] - '0'));
			s += 3;
		} else {
			*d++ = *s;
		}
	}
	*d = '\0';
}

int kbfs_raise_readahead(const char *realmnt, size_t kib)
{
	char line[8192], mnt[PATH_MAX + 1], sys[128];
	unsigned maj = 0, min = 0;
	bool found = false;
	FILE *f = fopen("/proc/self/mountinfo", "r");
	int fd, ret = -ENOENT;

	if (!f)
		return -errno;
	/* Never stat() the mountpoint here: the session loop is not running
	 * yet, so the kernel's request would wait for us forever. */
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%*u %*u %u:%u %*s %4096s", &maj, &min, mnt) == 3) {
			kbfs_mountinfo_unescape(mnt);
			if (!strcmp(mnt, realmnt))
				found = true; /* the last match is the top mount */
			if (found && !strcmp(mnt, realmnt))
				snprintf(sys, sizeof(sys), "/sys/class/bdi/%u:%u/read_ahead_kb",
					 maj, min);
		}
	fclose(f);
	if (!found)
		return ret;
	fd = open(sys, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	snprintf(line, sizeof(line), "%zu\n", kib);
	ret = write(fd, line, strlen(line)) < 0 ? -errno : 0;
	close(fd);
	return ret;
}

void kbfs_raise_readahead_once(struct kbfs *fs)
{
	int r;

	if (!atomic_load_explicit(&fs->ra_pending, memory_order_relaxed) ||
	    !atomic_exchange(&fs->ra_pending, 0) || !fs->realmnt)
		return;
	r = kbfs_raise_readahead(fs->realmnt, fs->o->block_size / 1024);
	if (r < 0 && fs->o->debug)
		fprintf(stderr, "keibifs: read_ahead_kb not raised: %s\n", strerror(-r));
}
