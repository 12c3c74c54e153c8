/* kbfs_remap.c - carrying nodes over to a new session (server restart, or
 * a session expired while the network was down).
 *
 * The rpc layer re-HELLOs by itself and tells us the new root
 * (kbfs_session_cb); every other server node id we hold is then from the
 * old session and the server answers ESTALE for it. We remap lazily: a
 * call that gets ESTALE for a node (kbfs_call.c decides) calls
 * kbfs_remap_resolve(), which LOOKUPs the node's name in its parent (re-resolving the parent the same
 * way first when that is stale too, up to the new root), checks that the
 * server's inode number and file type are still the ones we knew (else the
 * file was replaced: ESTALE stays), remaps the node and lets the caller try
 * once more. Concurrent resolvers of one node are harmless: the first remap
 * wins and the others forget their extra lookup. An entry of the new
 * session that names an old node (a listing, a LOOKUP) re-uses that node
 * when it is the same file (kbfs_nodes_session).
 *
 * Open files (kbfs_file_handle in kbfs_call.c) reopen their server handle
 * on the re-resolved node the first time they are used in the new session.
 */
#include <errno.h>
#include <sys/stat.h>

#include "err.h"
#include "kbfs.h"
#include "kbfs_node.h"
#include "kbfs_wb.h"
#include "rpc.h"

#define KBFS_REMAP_DEPTH 128 /* deepest path re-resolved */

void kbfs_session_cb(void *arg, uint64_t gen, const kb_Entry *root)
{
	struct kbfs *fs = arg;

	/* Runs on an rpc keeper thread under its session lock: no calls, just
	 * the root's new id (and the other nodes marked as of an old session). */
	kbfs_nodes_session(fs->nodes, gen, root->node);
	kbfs_wb_session(fs); /* its directory leases died with the old session */
}

static bool same_file(const kb_Attr *known, const kb_Attr *now)
{
	return known->ino == now->ino && (known->mode & S_IFMT) == (now->mode & S_IFMT);
}

/* Resolve ino, known by server id `bad` that got ESTALE; *out: its id now. */
static int resolve(struct kbfs *fs, uint64_t ino, uint64_t bad, unsigned depth, uint64_t *out)
{
	struct kbfs_node_where w;
	kb_Entry e;
	int ret = kbfs_node_where(fs->nodes, ino, &w);

	if (w.remote && w.remote != bad) { /* remapped meanwhile (or the root) */
		*out = w.remote;
		return 0;
	}
	if (ret < 0 || depth >= KBFS_REMAP_DEPTH)
		return -ESTALE;
	ret = kb_rpc_lookup(fs->rpc, w.parent_remote, w.name, &e);
	if (ret == -ESTALE) {
		uint64_t parent;

		ret = resolve(fs, w.parent_ino, w.parent_remote, depth + 1, &parent);
		if (ret < 0)
			return ret;
		ret = kb_rpc_lookup(fs->rpc, parent, w.name, &e);
	}
	if (ret == -ENOENT)
		return -ESTALE; /* gone while we were away */
	if (ret < 0)
		return ret;
	if (!e.node)
		return -ESTALE;
	if (!same_file(&w.attr, &e.attr)) {
		kb_rpc_forget(fs->rpc, e.node, 1);
		return -ESTALE;
	}
	if (!kbfs_node_remap(fs->nodes, ino, bad, e.node)) {
		kb_rpc_forget(fs->rpc, e.node, 1); /* another resolver won */
		*out = kbfs_node_remote(fs->nodes, ino);
		return *out && *out != bad ? 0 : -ESTALE;
	}
	*out = e.node;
	return 0;
}

#define KBFS_REMAP_TRIES 8 /* sessions one re-resolution follows */

int kbfs_remap_resolve(struct kbfs *fs, uint64_t ino, uint64_t bad, uint64_t *remote)
{
	int ret;

	/* ESTALE is the verdict only if no other session began meanwhile: a
	 * server restarting again answers ESTALE for the ids just resolved. */
	for (int tries = 0;; tries++) {
		uint64_t gen = kb_rpc_gen(fs->rpc);

		ret = resolve(fs, ino, bad, 0, remote);
		if (ret != -ESTALE || kb_rpc_gen(fs->rpc) == gen || tries + 1 >= KBFS_REMAP_TRIES)
			break;
		bad = kbfs_node_remote(fs->nodes, ino); /* what the node has now */
	}

	if (ret < 0 && fs->o->debug)
		fprintf(stderr, "keibifs: node %#llx not re-resolved: %s\n",
			(unsigned long long)ino, kb_strerror(ret));
	return ret;
}
