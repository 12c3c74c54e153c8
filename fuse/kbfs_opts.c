/* kbfs_opts.c - command line: HOST:/PATH MOUNTPOINT [-f] [-d] [-o OPTIONS].
 *
 * Our options are parsed from a fuse_opt table into struct kbfs_opts; the
 * rest (allow_other, default_permissions, fsname, mount(8)'s rw/dev/suid...)
 * stays in `args` for fuse_session_new. Options only mount(8) or systemd
 * understand (_netdev, nofail, noauto, x-systemd.*...) are dropped.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compress.h"
#include "kbfs.h"
#include "util.h"
#include "mdns.h"
#include "proxy.h"

enum {
	KEY_HELP,
	KEY_VERSION,
	KEY_FG,
	KEY_DEBUG,
	KEY_RO,
	KEY_DROP,
	KEY_ALLOW_OTHER
};

#define OPT(t, f, v)                                \
	{                                           \
		t, offsetof(struct kbfs_opts, f), v \
	}
static const struct fuse_opt kbfs_opt_table[] = {
	OPT("port=%s", port, 0),
	OPT("identity=%s", identity, 0),
	OPT("peer=%s", peer, 0),
	OPT("known_peers=%s", known_peers, 0),
	OPT("psk=%s", psk, 0),
	OPT("conns=%u", conns, 0),
	OPT("block_size=%s", block_size_s, 0),
	OPT("cache_size=%s", cache_size_s, 0),
	OPT("attr_timeout=%lf", attr_timeout, 0),
	OPT("entry_timeout=%lf", entry_timeout, 0),
	OPT("negative_timeout=%lf", negative_timeout, 0),
	OPT("timeout=%d", timeout, 0),
	OPT("crypto=%s", crypto, 0),
	OPT("log=%s", log, 0),
	OPT("writeback_cache", writeback, 1),
	OPT("no_writeback_cache", writeback, 0),
	OPT("sync_meta", sync_meta, 1),
	OPT("write_behind", sync_meta, 0),
	OPT("noreconnect", noreconnect, 1),
	OPT("reconnect", noreconnect, 0),
	OPT("owners=preserve", owners, 1),
	OPT("owners=map", owners, 0),
	/* mount.fuse3 adds dev,suid to every mount: decided in kbfs_opts_parse */
	OPT("suid", suid, 1),
	OPT("nosuid", suid, 0),
	OPT("dev", dev, 1),
	OPT("nodev", dev, 0),
	FUSE_OPT_KEY("allow_other", KEY_ALLOW_OTHER),
	OPT("proxy_command=%s", proxy_command, 0),
	OPT("compress=%s", compress_s, 0),
	FUSE_OPT_KEY("ro", KEY_RO),
	FUSE_OPT_KEY("-h", KEY_HELP),
	FUSE_OPT_KEY("--help", KEY_HELP),
	FUSE_OPT_KEY("-V", KEY_VERSION),
	FUSE_OPT_KEY("--version", KEY_VERSION),
	FUSE_OPT_KEY("-f", KEY_FG),
	FUSE_OPT_KEY("-d", KEY_DEBUG),
	FUSE_OPT_KEY("debug", KEY_DEBUG),
	FUSE_OPT_KEY("_netdev", KEY_DROP),
	FUSE_OPT_KEY("nofail", KEY_DROP),
	FUSE_OPT_KEY("noauto", KEY_DROP),
	FUSE_OPT_KEY("auto", KEY_DROP),
	FUSE_OPT_KEY("user", KEY_DROP),
	FUSE_OPT_KEY("users", KEY_DROP),
	FUSE_OPT_KEY("nouser", KEY_DROP),
	FUSE_OPT_KEY("owner", KEY_DROP),
	FUSE_OPT_KEY("group", KEY_DROP),
	FUSE_OPT_KEY("defaults", KEY_DROP),
	FUSE_OPT_KEY("comment=", KEY_DROP),
	FUSE_OPT_KEY("-s", KEY_DROP), /* single-threaded: not offered */
	FUSE_OPT_END,
};

/* Options passed through to FUSE (libfuse 3's session and mount options)
 * and mount(8)'s own: accepted by name; a name in neither this list nor
 * kbfs_opt_table is refused before anything connects. "=" ends a name that
 * takes a value. */
static const char *const fuse_names[] = {
	"allow_other",  "allow_root", "auto_unmount", "default_permissions",
	"fsname=",      "subtype=",   "max_read=",    "blkdev",
	"blksize=",     "rw",         "suid",         "nosuid",
	"dev",          "nodev",      "exec",         "noexec",
	"async",        "sync",       "atime",        "noatime",
	"diratime",     "nodiratime", "lazytime",     "nolazytime",
	"relatime",     "norelatime", "strictatime",  "nostrictatime",
	"dirsync",      "context=",   "fscontext=",   "defcontext=",
	"rootcontext=", "user=",      "clone_fd",     "max_idle_threads=",
	"max_threads=", NULL,
};

/* Edit distance, for "did you mean" (short names only). */
static unsigned distance(const char *a, size_t la, const char *b, size_t lb)
{
	unsigned row[64];

	if (la >= 63 || lb >= 63)
		return 99;
	for (size_t j = 0; j <= lb; j++)
		row[j] = (unsigned)j;
	for (size_t i = 1; i <= la; i++) {
		unsigned diag = row[0];

		row[0] = (unsigned)i;
		for (size_t j = 1; j <= lb; j++) {
			unsigned up = row[j];
			unsigned best = diag + (a[i - 1] != b[j - 1]);

			best = KB_MIN(best, up + 1);
			best = KB_MIN(best, row[j - 1] + 1);
			row[j] = best;
			diag = up;
		}
	}
	return row[lb];
}

/* Length of an option template's name: up to '=' (or the whole). */
static size_t name_len(const char *t)
{
	return strcspn(t, "=");
}

static void suggest(const char *name, size_t nlen, const char **best, size_t *blen, unsigned *bd,
		    const char *cand)
{
	size_t cl = name_len(cand);
	unsigned d;

	if (cand[0] == '-' || cand[0] == '_')
		return;
	d = distance(name, nlen, cand, cl);
	if (d < *bd) {
		*bd = d;
		*best = cand;
		*blen = cl;
	}
}

static int unknown_opt(const char *opt, size_t nlen, char *err, size_t errlen)
{
	const char *best = NULL;
	size_t blen = 0;
	unsigned bd = 99;

	for (const struct fuse_opt *t = kbfs_opt_table; t->templ; t++)
		suggest(opt, nlen, &best, &blen, &bd, t->templ);
	for (const char *const *f = fuse_names; *f; f++)
		suggest(opt, nlen, &best, &blen, &bd, *f);
	if (best && bd <= (nlen > 4 ? 2u : 1u))
		snprintf(err, errlen, "unknown option '%.*s': did you mean '%.*s'?", (int)nlen, opt,
			 (int)blen, best);
	else
		snprintf(err, errlen, "unknown option '%.*s' (see keibifs --help)", (int)nlen, opt);
	return -EINVAL;
}

/* The value of a "%u"/"%d"/"%lf" template must be all number. */
static bool is_number(const char *v, char conv)
{
	char *end;

	if (!*v)
		return false;
	errno = 0;
	if (conv == 'u' || conv == 'd') {
		if (conv == 'u' && *v == '-')
			return false;
		(void)strtoll(v, &end, 10);
	} else {
		(void)strtod(v, &end);
	}
	return !errno && !*end;
}

/* One "name[=value]" from -o, against kbfs_opt_table and fuse_names. */
static int check_one(const char *opt, size_t len, char *err, size_t errlen)
{
	size_t nlen = KB_MIN(name_len(opt), len);
	bool has_val = nlen < len, named = false;
	char buf[512];

	if (len >= sizeof(buf))
		len = sizeof(buf) - 1;
	memcpy(buf, opt, len);
	buf[len] = '\0';
	if (!len || !strncmp(buf, "x-", 2))
		return 0;
	for (const struct fuse_opt *t = kbfs_opt_table; t->templ; t++) {
		const char *pct = strchr(t->templ, '%');
		size_t tl = name_len(t->templ);

		if (tl != nlen || strncmp(t->templ, buf, nlen))
			continue;
		named = true;
		if (!strcmp(t->templ, buf) || (t->templ[tl] == '=' && !t->templ[tl + 1] && has_val))
			return 0; /* exact, or a FUSE_OPT_KEY("name=") prefix */
		if (pct && has_val) {
			char conv = pct[strspn(pct + 1, "l") + 1];

			if (conv == 's' || is_number(buf + nlen + 1, conv))
				return 0;
			snprintf(err, errlen, "%s: not a number", buf);
			return -EINVAL;
		}
	}
	for (const char *const *f = fuse_names; *f; f++) {
		size_t fl = name_len(*f);

		if (fl == nlen && !strncmp(*f, buf, nlen) && has_val == ((*f)[fl] == '='))
			return 0;
	}
	if (named) {
		char alts[160] = "";
		size_t n = 0;

		for (const struct fuse_opt *t = kbfs_opt_table; t->templ; t++)
			if (name_len(t->templ) == nlen && !strncmp(t->templ, buf, nlen) &&
			    n < sizeof(alts))
				n += (size_t)snprintf(alts + n, sizeof(alts) - n, "%s%s",
						      n ? " or " : "", t->templ);
		snprintf(err, errlen, "%s: %s", buf, alts);
		return -EINVAL;
	}
	return unknown_opt(buf, nlen, err, errlen);
}

/* Every -o option checked before fuse_opt_parse (whose own complaints are
 * two lines without a hint), so a typo fails at once, offline. */
static int check_opts(int argc, char *argv[], char *err, size_t errlen)
{
	for (int i = 1; i < argc; i++) {
		const char *list;

		if (!strcmp(argv[i], "-o") && i + 1 < argc)
			list = argv[++i];
		else if (!strncmp(argv[i], "-o", 2) && argv[i][2])
			list = argv[i] + 2;
		else
			continue;
		while (*list) {
			size_t n = strcspn(list, ",");

			if (check_one(list, n, err, errlen) < 0)
				return -EINVAL;
			list += n + (list[n] == ',');
		}
	}
	return 0;
}

int kbfs_parse_size(const char *s, size_t unit, size_t *out)
{
	char *end;
	unsigned long long v;

	if (!s || !*s || *s == '-')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -EINVAL;
	switch (*end) {
	case '\0': break;
	case 'k':
	case 'K':
		unit = 1ull << 10;
		end++;
		break;
	case 'm':
	case 'M':
		unit = 1ull << 20;
		end++;
		break;
	case 'g':
	case 'G':
		unit = 1ull << 30;
		end++;
		break;
	default: return -EINVAL;
	}
	if (*end == 'i')
		end++;
	if (*end == 'B' || *end == 'b')
		end++;
	if (*end || (v && unit > SIZE_MAX / v))
		return -EINVAL;
	*out = (size_t)(v * unit);
	return 0;
}

int kbfs_parse_remote(const char *spec, char **host, char **path)
{
	const char *colon, *h = spec;
	size_t hlen;

	if (!strncmp(spec, KB_MDNS_PREFIX, strlen(KB_MDNS_PREFIX))) {
		/* mdns:NAME:/PATH: NAME (a service name) may hold anything but ':' */
		colon = strchr(spec + strlen(KB_MDNS_PREFIX), ':');
		if (!colon || colon == spec + strlen(KB_MDNS_PREFIX))
			return -EINVAL;
		hlen = (size_t)(colon - spec);
	} else if (spec[0] == '[') {
		const char *close = strchr(spec, ']');

		if (!close || close[1] != ':')
			return -EINVAL;
		h = spec + 1;
		hlen = (size_t)(close - h);
		colon = close + 1;
	} else {
		colon = strchr(spec, ':');
		if (!colon)
			return -EINVAL;
		hlen = (size_t)(colon - spec);
	}
	if (hlen == 0 || hlen > 253)
		return -EINVAL;
	*host = strndup(h, hlen);
	*path = strdup(colon[1] ? colon + 1 : "/");
	if (!*host || !*path) {
		free(*host);
		free(*path);
		*host = *path = NULL;
		return -ENOMEM;
	}
	return 0;
}

static int opt_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	struct kbfs_opts *o = data;

	(void)outargs;
	switch (key) {
	case KEY_HELP: o->show_help = 1; return 0;
	case KEY_VERSION: o->show_version = 1; return 0;
	case KEY_FG: o->foreground = 1; return 0;
	case KEY_DEBUG: o->debug = o->foreground = 1; return 1; /* libfuse prints requests too */
	case KEY_RO: o->ro = 1; return 1;                       /* mount read-only as well */
	case KEY_DROP: return 0;
	case KEY_ALLOW_OTHER: o->allow_other = 1; return 1;
	case FUSE_OPT_KEY_OPT: return strncmp(arg, "x-", 2) ? 1 : 0; /* x-systemd.*, x-gvfs-* */
	case FUSE_OPT_KEY_NONOPT:
		if (!o->host && !o->bad_arg) {
			if (kbfs_parse_remote(arg, &o->host, &o->path) < 0)
				o->bad_arg = strdup(arg);
			return 0;
		}
		if (!o->mountpoint) {
			o->mountpoint = strdup(arg);
			return o->mountpoint ? 0 : -1;
		}
		if (!o->extra_arg)
			o->extra_arg = strdup(arg);
		return 0;
	default: return 1;
	}
}

/* Sizes, bounds and defaults once the table is parsed. */
static int opts_finish(struct kbfs_opts *o, char *err, size_t errlen)
{
	if (o->block_size_s && kbfs_parse_size(o->block_size_s, 1024, &o->block_size)) {
		snprintf(err, errlen, "block_size=%s: not a size (KiB, or with a K or M suffix)",
			 o->block_size_s);
		return -EINVAL;
	}
	if (kbfs_parse_size(o->block_size_s ? o->block_size_s : "1M", 1024, &o->block_size) ||
	    o->block_size < 4096 || o->block_size > (4u << 20) ||
	    (o->block_size & (o->block_size - 1))) {
		snprintf(err, errlen, "block_size must be a power of two from 4K to 4M");
		return -EINVAL;
	}
	if (kbfs_parse_size(o->cache_size_s ? o->cache_size_s : "256", 1u << 20, &o->cache_size)) {
		snprintf(err, errlen, "cache_size=%s: not a size (MiB, or with a K, M or G suffix)",
			 o->cache_size_s);
		return -EINVAL;
	}
	if (o->cache_size < o->block_size * 4) {
		snprintf(err, errlen,
			 "cache_size must be at least 4 blocks (in MiB, or with a suffix)");
		return -EINVAL;
	}
	if (!o->conns || o->conns > 64) {
		snprintf(err, errlen, "conns must be 1 to 64");
		return -EINVAL;
	}
	if (o->attr_timeout < 0 || o->entry_timeout < 0 || o->negative_timeout < 0 ||
	    o->timeout <= 0 || o->timeout > 86400) {
		snprintf(err, errlen, "timeouts must not be negative (timeout: 1 to 86400 s)");
		return -EINVAL;
	}
	if (o->proxy_command) {
		char line[4096];

		if (kb_proxy_expand(line, sizeof(line), o->proxy_command, o->host, o->port, err,
				    errlen) < 0)
			return -EINVAL;
		if (!kb_proxy_host_ok(o->host)) {
			snprintf(err, errlen,
				 "proxy_command: host %s may only have letters, "
				 "digits and . - _ :",
				 o->host);
			return -EINVAL;
		}
	}
	if (!o->compress_s || !strcmp(o->compress_s, "auto"))
		o->compress = KB_Z_AUTO;
	else if (!strcmp(o->compress_s, "on"))
		o->compress = KB_Z_ON;
	else if (!strcmp(o->compress_s, "off"))
		o->compress = KB_Z_OFF;
	else {
		snprintf(err, errlen, "compress must be auto, on or off");
		return -EINVAL;
	}
	o->backend = KB_AEAD_DEFAULT;
	if (o->crypto && !strcmp(o->crypto, "mbedtls"))
		o->backend = KB_AEAD_MBEDTLS;
	else if (o->crypto && !strcmp(o->crypto, "openssl"))
		o->backend = KB_AEAD_OPENSSL;
	else if (o->crypto) {
		snprintf(err, errlen, "crypto must be openssl or mbedtls");
		return -EINVAL;
	}
	return 0;
}

/* What the kernel enforces for us (man keibifs, SECURITY):
 * - owners=preserve: the kernel checks modes against the real ids;
 * - allow_other in the default owners=map mode: every local user would
 *   otherwise act with the server user's rights on the share; the kernel
 *   checks the modes as shown (files of the share's owner appear as the
 *   mounting user's) instead;
 * - nosuid,nodev unless owners=preserve asked for suid/dev: a setuid file
 *   of the server user must not run as the mounting user (root, from
 *   fstab). mount.fuse3 passes dev,suid whenever nodev/nosuid are absent,
 *   so they count only with owners=preserve. */
static int kbfs_opts_safety(const struct kbfs_opts *o, struct fuse_args *args)
{
	char flags[32];

	if ((o->owners || o->allow_other) && fuse_opt_add_arg(args, "-odefault_permissions") < 0)
		return -ENOMEM;
	snprintf(flags, sizeof(flags), "-o%s,%s", o->owners && o->suid ? "suid" : "nosuid",
		 o->owners && o->dev ? "dev" : "nodev");
	return fuse_opt_add_arg(args, flags) < 0 ? -ENOMEM : 0;
}

int kbfs_opts_parse(int argc, char *argv[], struct kbfs_opts *o, struct fuse_args *args, char *err,
		    size_t errlen)
{
	char extra[128];

	memset(o, 0, sizeof(*o));
	o->conns = 4;
	o->writeback = 1;
	o->attr_timeout = o->entry_timeout = o->negative_timeout = 1.0;
	o->timeout = 15;
	*args = (struct fuse_args)FUSE_ARGS_INIT(argc, argv);
	if (check_opts(argc, argv, err, errlen) < 0)
		return -EINVAL;
	if (fuse_opt_parse(args, o, kbfs_opt_table, opt_proc) == -1) {
		snprintf(err, errlen, "bad arguments (see --help)");
		return -EINVAL;
	}
	if (o->show_help || o->show_version)
		return 0;
	if (o->bad_arg) {
		if (strchr(o->bad_arg, ':') != strrchr(o->bad_arg, ':') && o->bad_arg[0] != '[') {
			const char *last = strrchr(o->bad_arg, ':');

			snprintf(err, errlen, "'%s': write an IPv6 address in brackets: [%.*s]:%s",
				 o->bad_arg, (int)(last - o->bad_arg), o->bad_arg, last + 1);
		} else {
			snprintf(err, errlen,
				 "'%s' is not HOST:PATH (e.g. server.example:/ or "
				 "[::1]:/; PATH is inside the share)",
				 o->bad_arg);
		}
		return -EINVAL;
	}
	if (o->extra_arg) {
		snprintf(err, errlen,
			 "unexpected argument '%s' (usage: keibifs HOST:PATH "
			 "MOUNTPOINT [-f] [-o OPTIONS])",
			 o->extra_arg);
		return -EINVAL;
	}
	if (!o->host || !o->mountpoint) {
		snprintf(err, errlen, "usage: %s HOST:/PATH MOUNTPOINT [-f] [-d] [-o OPTIONS]",
			 argc > 0 ? argv[0] : "keibifs");
		return -EINVAL;
	}
	if (!o->port)
		o->port = strdup("26431");
	if (opts_finish(o, err, errlen) < 0)
		return -EINVAL;
	/* Defaults first so that a user's fsname=/subtype= given later wins;
	 * max_read must match what init() asks for, or libfuse refuses
	 * the mount ("different maximum read size"). */
	snprintf(extra, sizeof(extra), "-omax_read=%zu,subtype=keibifs", o->block_size);
	if (fuse_opt_insert_arg(args, 1, extra) < 0)
		return -ENOMEM;
	{
		char *fsname = NULL;
		int r = asprintf(&fsname,
				 strchr(o->host, ':') ? "-ofsname=[%s]:%s" : "-ofsname=%s:%s",
				 o->host, o->path);

		if (r < 0)
			return -ENOMEM;
		/* commas would split the option: libfuse expects them escaped */
		for (char *p = fsname; *p; p++)
			if (*p == ',')
				*p = '_';
		r = fuse_opt_insert_arg(args, 1, fsname);
		free(fsname);
		if (r < 0)
			return -ENOMEM;
	}
	return kbfs_opts_safety(o, args);
}

void kbfs_opts_free(struct kbfs_opts *o)
{
	char **strs[] = {&o->host,     &o->path,         &o->mountpoint,    &o->port,
			 &o->identity, &o->peer,         &o->known_peers,   &o->psk,
			 &o->crypto,   &o->block_size_s, &o->cache_size_s,  &o->log,
			 &o->bad_arg,  &o->extra_arg,    &o->proxy_command, &o->compress_s};

	for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
		free(*strs[i]);
		*strs[i] = NULL;
	}
}

void kbfs_usage(FILE *f, const char *prog)
{
	fprintf(f,
		"usage: %s HOST:/PATH MOUNTPOINT [-f] [-d] [-o OPTIONS]\n"
		"Mount directory PATH of a keibifsd server (HOST: name, IPv4 or [IPv6], or\n"
		"mdns:NAME for a server announced on the LAN, keibifsd --announce).\n\n"
		"  -f                     stay in the foreground\n"
		"  -d, -o debug           foreground, print every FUSE request\n"
		"  -h, --help             this text\n"
		"  -V, --version          version and AEAD backend\n"
		"  --status PATH          peer, connections, round trip, throughput, cache,\n"
		"                         latency by op and last error of the mount holding PATH\n"
		"  --sync MOUNTPOINT      return once every change queued by write-behind is\n"
		"                         on the server's disk; exit 1 with the error if one\n"
		"                         failed since the last --sync\n"
		"  --browse [-o known_peers=FILE]  keibifs servers announced on the LAN\n"
		"                         (mDNS, avahi-daemon): name, address, port, key, and\n"
		"                         whether known_peers trusts it\n\n"
		"keibifs options (-o name=value, comma separated):\n"
		"  port=N                 server port (26431)\n"
		"  identity=FILE          client private key (~/.config/keibifs/id_x25519,\n"
		"                         then /etc/keibifs/id_x25519)\n"
		"  peer=FINGERPRINT       trust the server key with this SHA256: fingerprint\n"
		"  known_peers=FILE       trusted server keys (~/.config/keibifs/known_peers):\n"
		"                         [HOSTS] keibifs-x25519 KEY lines, as ssh's known_hosts\n"
		"  psk=FILE               32-byte pre-shared key (base64 or hex) (none)\n"
		"  conns=N                parallel connections (4)\n"
		"  block_size=N           block size, KiB or with K/M suffix, power of two,\n"
		"                         4K..4M (1M)\n"
		"  cache_size=N           block cache, MiB or with K/M/G suffix (256)\n"
		"  attr_timeout=S         attribute cache seconds (1)\n"
		"  entry_timeout=S        name cache seconds (1)\n"
		"  negative_timeout=S     cache of missing names, seconds (1)\n"
		"  timeout=S              connect and request timeout, seconds (15): a\n"
		"                         silent server is given up after it (EIO, no hang)\n"
		"  reconnect              re-establish lost connections and sessions (on)\n"
		"  noreconnect            fail requests once a connection is lost\n"
		"  ro                     mount read-only\n"
		"  owners=map|preserve    map: files of the server's user show as yours\n"
		"                         (default); preserve: real uids/gids, kernel\n"
		"                         permission checks, requests made as the caller\n"
		"                         (root mount; keibifsd --allow-owners)\n"
		"  no_writeback_cache     write through: no kernel write-back of pages\n"
		"                         (use when others change the files on the server)\n"
		"  sync_meta              every create, rename, remove and attribute change\n"
		"                         waits for the server (default: write_behind, they\n"
		"                         are answered here in directories we hold a lease\n"
		"                         on and sent in order; errors come at fsync/close)\n"
		"  crypto=openssl|mbedtls AEAD backend for bulk frames (openssl when built)\n"
		"  log=FILE|stderr|syslog where the mount's log lines go once detached\n"
		"                         (syslog; -f: stderr)\n"
		"  allow_other            every local user may use the mount (owners=map:\n"
		"                         adds default_permissions, the kernel checks modes)\n"
		"  suid, dev              honoured only with owners=preserve; every other\n"
		"                         mount is nosuid,nodev (mount.fuse3 adds dev,suid)\n"
		"  proxy_command=CMD      connect through CMD (sh -c; %%h host, %%p port,\n"
		"                         %%%% a %%), e.g. 'ssh -W %%h:%%p jumphost': each\n"
		"                         connection runs it and talks over its stdin/stdout\n"
		"  compress=auto|on|off   zstd on file data (auto): auto while the link is\n"
		"                         slower than 64 MB/s and the data compresses\n\n"
		"FUSE options such as default_permissions, fsname=, subtype= are passed\n"
		"through; mount(8)'s _netdev, nofail, noauto, x-systemd.* are accepted and\n"
		"ignored.\n",
		prog);
}
