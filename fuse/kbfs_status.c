/* kbfs_status.c - `keibifs --status`: what a user of the mount can see of
 * it (its log lines are kbfs_log.c's).
 * the virtual xattr KBFS_STATUS_XATTR on the mount root (answered
 * here, never sent to the server, not listed by listxattr) holds a text
 * with the peer, connection state, round-trip time (a PING made for the
 * request), bytes moved, throughput over the last seconds (sampled by the
 * rpc timer) and the block cache's hit rate
 * and size. `keibifs --status MOUNTPOINT` prints it.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <time.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>
#include <syslog.h>

#include "compress.h"
#include "kbfs.h"
#include "log.h"
#include "err.h"
#include "kbfs_list.h"
#include "kbfs_wb.h"
#include "rpc_api.h"
#include "util.h"

struct kbfs_status {
	time_t mounted_at; /* set once at mount, before requests */
};

int kbfs_status_new(struct kbfs *fs)
{
	struct kbfs_status *st = calloc(1, sizeof(*st));

	if (!st)
		return -ENOMEM;
	fs->status = st;
	return 0;
}

void kbfs_status_free(struct kbfs *fs)
{
	if (!fs->status)
		return;
	free(fs->status);
	fs->status = NULL;
}

void kbfs_status_mounted(struct kbfs *fs)
{
	if (fs->status)
		fs->status->mounted_at = time(NULL);
}

#define MIB(x) ((double)(x) / 1048576.0)

/* "lease: held (30 s) ...; listings: ..." (kbfs_list.h) into buf. */
static int lease_line(struct kbfs *fs, char *buf, size_t cap)
{
	uint64_t fetched = 0, answered = 0, big = 0;
	uint32_t ms = kb_rpc_lease_ms(fs->rpc);
	bool held = kb_rpc_lease(fs->rpc, kb_now_ns()) != 0;
	int w;

	if (fs->list)
		kbfs_list_counts(fs->list, &fetched, &answered, &big);
	w = snprintf(buf, cap,
		     "lease: %s (%u s); listings: %llu fetched, %llu answers, %llu too big\n",
		     held ? "held"
		     : ms ? "lapsed: short timeouts"
			  : "none: short timeouts",
		     ms / 1000, (unsigned long long)fetched, (unsigned long long)answered,
		     (unsigned long long)big);
	return w < 0 ? 0 : (int)KB_MIN((size_t)w, cap - 1);
}

/* "requests by op: LOOKUP 12, ..." (the ops sent at least once) into buf;
 * its length (truncated to cap). */
/* "compress: auto, zstd in use; in 10.0 -> 40.0 MiB, out ...". */
static int compress_line(const struct kbfs *fs, const struct kb_rpc_stats *rs, char *buf,
			 size_t cap)
{
	static const char *const mode[] = {"off", "auto", "on"};
	struct kb_z_stats z;
	int w;

	kb_z_stats(&z);
	w = snprintf(buf, cap,
		     "compress: %s, %s; received %.1f MiB of zstd for %.1f MiB of data, "
		     "sent %.1f MiB of data as %.1f MiB, %llu blocks sent raw "
		     "(incompressible)\n",
		     mode[fs->o->compress % 3],
		     fs->o->compress == KB_Z_OFF ? "not offered"
		     : rs->zstd                  ? "zstd negotiated"
						 : "refused by the server",
		     MIB(z.inflated_in), MIB(z.inflated_out), MIB(z.deflated_in),
		     MIB(z.deflated_out), (unsigned long long)z.skipped);
	return w < 0 ? 0 : (int)KB_MIN((size_t)w, cap - 1);
}

static int by_op_line(const struct kb_rpc_stats *rs, char *buf, size_t cap)
{
	size_t n = 0;
	int w = snprintf(buf, cap, "requests by op:");

	for (unsigned op = 0; w >= 0 && op < KB_RPC_NOPS; op++) {
		n += (size_t)w;
		if (n >= cap)
			return (int)cap - 1;
		w = rs->by_op[op] ? snprintf(buf + n, cap - n, " %s %llu", kb_rpc_op_name(op),
					     (unsigned long long)rs->by_op[op])
				  : 0;
	}
	if (w >= 0)
		n += (size_t)w;
	if (n + 1 < cap)
		buf[n++] = '\n', buf[n] = '\0';
	return (int)KB_MIN(n, cap - 1);
}

/* "latency by op (mean/max ms): LOOKUP 0.21/1.30, ..." into buf. */
static int latency_line(const struct kb_rpc_stats *rs, char *buf, size_t cap)
{
	size_t n = 0;
	int w = snprintf(buf, cap, "latency by op (mean/max ms):");

	for (unsigned op = 0; w >= 0 && op < KB_RPC_NOPS; op++) {
		n += (size_t)w;
		if (n >= cap)
			return (int)cap - 1;
		w = rs->lat_n[op]
			    ? snprintf(buf + n, cap - n, " %s %.2f/%.2f", kb_rpc_op_name(op),
				       (double)rs->lat_sum_us[op] / (double)rs->lat_n[op] / 1e3,
				       (double)rs->lat_max_us[op] / 1e3)
			    : 0;
	}
	if (w >= 0)
		n += (size_t)w;
	if (n + 1 < cap)
		buf[n++] = '\n', buf[n] = '\0';
	return (int)KB_MIN(n, cap - 1);
}

/* Mount time, requests in flight and the last error. */
static int state_lines(struct kbfs *fs, const struct kb_rpc_stats *rs, char *buf, size_t cap)
{
	char when[64] = "?", errwhen[64] = "";
	time_t now = time(NULL), at = fs->status->mounted_at;
	struct tm tm;
	long up = at ? (long)(now - at) : 0;
	int n;

	if (at && gmtime_r(&at, &tm))
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tm);
	if (rs->last_err) {
		time_t t = (time_t)rs->last_err_time;

		if (gmtime_r(&t, &tm))
			strftime(errwhen, sizeof(errwhen), "%H:%M:%S UTC", &tm);
	}
	n = snprintf(buf, cap,
		     "mounted: %s (up %ldd %02ld:%02ld:%02ld)\nin flight: %llu requests\n", when,
		     up / 86400, up / 3600 % 24, up / 60 % 60, up % 60,
		     (unsigned long long)rs->inflight);
	if (n < 0 || (size_t)n >= cap)
		return n < 0 ? 0 : (int)cap - 1;
	if (rs->last_err)
		n += snprintf(buf + n, cap - (size_t)n, "last error: %s: %s at %s (%lld s ago)\n",
			      kb_rpc_op_name(rs->last_err_op), kb_strerror(rs->last_err), errwhen,
			      (long long)(now - (time_t)rs->last_err_time));
	else
		n += snprintf(buf + n, cap - (size_t)n, "last error: none\n");
	return (int)KB_MIN((size_t)n, cap - 1);
}

/* The status text into buf; its length (truncated to cap). */
size_t kbfs_status_text(struct kbfs *fs, char *buf, size_t cap)
{
	struct kb_rpc_stats rs;
	struct kb_cache_stats cs;
	uint64_t rtt = 0, delivered, dropped, own;
	double lookups;
	int ping = kb_rpc_ping(fs->rpc, &rtt);
	unsigned conns = kb_rpc_conns(fs->rpc);
	int n;

	kb_rpc_stats(fs->rpc, &rs);
	kb_cache_stats(fs->cache, &cs);
	kbfs_notify_counts(fs, &delivered, &dropped, &own);
	lookups = (double)(cs.hits + cs.misses + cs.waits); /* prefetches not counted */
	n = snprintf(
		buf, cap,
		"peer: %s%s%s:%s %s\n"
		"share: %s%s\n"
		"state: %s, connections %u/%u up, session generation %llu, reconnects %llu\n"
		"rtt: %s%.3f ms\n"
		"bytes: sent %llu (%.1f MiB), received %llu (%.1f MiB)\n"
		"requests: %llu, errors %llu\n"
		"throughput: in %.2f MiB/s, out %.2f MiB/s (last %.0f s)\n"
		"cache: hit rate %.1f%% (%llu hits, %llu misses, %llu waits on a pull), %.1f of "
		"%.1f MiB, %u blocks\n"
		"notify: %llu delivered, %llu dropped, %llu own changes ignored\n",
		strchr(fs->o->host, ':') ? "[" : "", fs->o->host,
		strchr(fs->o->host, ':') ? "]" : "", fs->o->port, rs.peer_fpr, fs->o->path,
		fs->read_only ? " (read-only)" : "",
		rs.conns_up == conns ? "connected"
		: rs.conns_up        ? "degraded"
				     : "disconnected",
		rs.conns_up, conns, (unsigned long long)rs.session_gen,
		(unsigned long long)rs.reconnects, ping < 0 ? "no answer, last " : "",
		(double)(ping < 0 ? rs.rtt_us : rtt) / 1000.0, (unsigned long long)rs.bytes_sent,
		MIB(rs.bytes_sent), (unsigned long long)rs.bytes_recv, MIB(rs.bytes_recv),
		(unsigned long long)rs.requests, (unsigned long long)rs.errors, MIB(rs.rx_rate),
		MIB(rs.tx_rate), rs.rate_secs,
		lookups > 0 ? 100.0 * (double)cs.hits / lookups : 0.0, (unsigned long long)cs.hits,
		(unsigned long long)cs.misses, (unsigned long long)cs.waits, MIB(cs.bytes),
		MIB(cs.capacity), cs.entries, (unsigned long long)delivered,
		(unsigned long long)dropped, (unsigned long long)own);
	if (n < 0)
		return 0;
	if ((size_t)n < cap)
		n += state_lines(fs, &rs, buf + n, cap - (size_t)n);
	if ((size_t)n < cap)
		n += compress_line(fs, &rs, buf + n, cap - (size_t)n);
	if ((size_t)n < cap)
		n += lease_line(fs, buf + n, cap - (size_t)n);
	if ((size_t)n < cap) {
		kbfs_wb_status(fs, buf + n, cap - (size_t)n);
		n += (int)strlen(buf + n);
	}
	if ((size_t)n < cap)
		n += by_op_line(&rs, buf + n, cap - (size_t)n);
	if ((size_t)n < cap)
		n += latency_line(&rs, buf + n, cap - (size_t)n);
	return (size_t)n < cap ? (size_t)n : cap - 1;
}

bool kbfs_status_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct kbfs *fs = FS(req);
	char buf[KBFS_STATUS_MAX]; /* the text; bounded */
	size_t len;

	if (ino != FUSE_ROOT_ID || strcmp(name, KBFS_STATUS_XATTR))
		return false;
	len = kbfs_status_text(fs, buf, sizeof(buf));
	if (size == 0)
		fuse_reply_xattr(req, len);
	else if (size < len)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, buf, len);
	return true;
}

/* The mount point holding path: the longest mount point in mountinfo that
 * is path or one of its parents; its file system type in type. */
static int find_mount(const char *path, char *mnt, size_t mcap, char *type, size_t tcap)
{
	char line[8192], mp[PATH_MAX + 1], fst[64];
	size_t best = 0;
	FILE *f = fopen("/proc/self/mountinfo", "re");

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		const char *dash = strstr(line, " - ");
		size_t l;

		if (!dash || sscanf(line, "%*u %*u %*u:%*u %*s %4096s", mp) != 1 ||
		    sscanf(dash + 3, "%63s", fst) != 1)
			continue;
		kbfs_mountinfo_unescape(mp);
		l = strlen(mp);
		if (strcmp(mp, "/") && (strncmp(path, mp, l) || (path[l] && path[l] != '/')))
			continue;
		if (l >= best) { /* later lines are mounted on top */
			best = l;
			snprintf(mnt, mcap, "%s", mp);
			snprintf(type, tcap, "%s", fst);
		}
	}
	fclose(f);
	return best ? 0 : -ENOENT;
}

/* keibifs --sync MOUNTPOINT: the mount's keibifs.sync attribute drains
 * its write-behind stream and syncs the share's filesystem (kbfs_wb.c). */
int kbfs_sync_print(const char *path)
{
	char real[PATH_MAX], mnt[PATH_MAX + 1] = "?", type[64] = "?", b[8];

	if (!realpath(path, real)) {
		fprintf(stderr, "keibifs: %s: %s\n", path, strerror(errno));
		return 1;
	}
	if (find_mount(real, mnt, sizeof(mnt), type, sizeof(type)) < 0 ||
	    strcmp(type, "fuse.keibifs")) {
		fprintf(stderr, "keibifs: %s: not a keibifs mount (it is on %s, %s)\n", path, mnt,
			type);
		return 1;
	}
	if (getxattr(mnt, KBFS_WB_SYNC_XATTR, b, sizeof(b)) < 0) {
		int e = errno;

		fprintf(stderr, "keibifs: %s: %s\n", mnt,
			e == EOPNOTSUPP || e == ENODATA
				? "this keibifs mount cannot drain (an older version)"
				: strerror(e));
		if (e != EOPNOTSUPP && e != ENODATA)
			fprintf(stderr,
				"keibifs: %s: a change queued since the last --sync failed "
				"on the server; the mount's log names it\n",
				mnt);
		return 1;
	}
	return 0;
}

int kbfs_status_print(const char *path)
{
	char buf[KBFS_STATUS_MAX + 1], real[PATH_MAX], mnt[PATH_MAX + 1] = "?", type[64] = "?";
	ssize_t n;

	if (!realpath(path, real)) {
		fprintf(stderr, "keibifs: %s: %s\n", path, strerror(errno));
		return 1;
	}
	if (find_mount(real, mnt, sizeof(mnt), type, sizeof(type)) < 0 ||
	    strcmp(type, "fuse.keibifs")) {
		fprintf(stderr, "keibifs: %s: not a keibifs mount (it is on %s, %s)\n", path, mnt,
			type);
		return 1;
	}
	n = getxattr(mnt, KBFS_STATUS_XATTR, buf, sizeof(buf) - 1);
	if (n < 0) {
		int e = errno;

		fprintf(stderr, "keibifs: %s: %s\n", mnt,
			e == EOPNOTSUPP || e == ENODATA ? "not a keibifs mount" : strerror(e));
		return 1;
	}
	buf[n] = '\0';
	fputs(buf, stdout);
	return 0;
}

const char *kbfs_peer_fpr(struct kbfs *fs, char *buf, size_t len)
{
	struct kb_rpc_stats rs;

	kb_rpc_stats(fs->rpc, &rs);
	snprintf(buf, len, "%s", rs.peer_fpr);
	return buf;
}
