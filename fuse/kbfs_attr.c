/* kbfs_attr.c - a node's attributes, and a name's entry, as fresh as the
 * mount allows: from the node table while current or under the server's
 * lease, from its directory's listing (fetched whole once, kbfs_list.c),
 * else by a GETATTR.
 */
#include <errno.h>

#include "kbfs.h"
#include "kbfs_call.h"
#include "kbfs_list.h"
#include "kbfs_node.h"
#include "rpc.h"
#include "util.h"
/* name in directory dir_ino from its listing, fetched first if we hold
 * none (kbfs_list.h). take: hand the listing's server lookup over to the
 * caller (*held). FOUND/MISSING as kbfs_list_find; NONE: ask per name. */
enum kbfs_list_res kbfs_listed(struct kbfs *fs, fuse_ino_t dir_ino, uint64_t dir, const char *name,
			       bool take, kb_Entry *e, bool *held, bool *leased)
{
	enum kbfs_list_res res = KBFS_LIST_NONE;
	struct kbfs_list_key k;
	uint64_t left;

	for (int pass = 0; pass < 2; pass++) {
		kbfs_list_key_now(fs, dir_ino, dir, &k);
		res = kbfs_list_find(fs->list, &k, name, take, e, held, leased, &left);
		if (res != KBFS_LIST_NONE) {
			kbfs_list_walk(fs, dir_ino, dir);
			break;
		}
		if (pass || kbfs_list_fetch(fs, dir_ino, dir) < 0)
			break;
	}
	return res;
}

static int getattr_send(struct kbfs *fs, const struct kbfs_call *c, void *arg)
{
	return kb_rpc_getattr(fs->rpc, c->node, arg);
}

int kbfs_fetch_attr(struct kbfs *fs, fuse_ino_t ino, kb_Attr *a, uint64_t *version)
{
	struct kbfs_call c = KBFS_CALL_NODE(ino);
	uint64_t gen = kbfs_nodes_gen(fs->nodes); /* before asking: kbfs_node.h */
	int ret = kbfs_call(fs, &c, getattr_send, a);

	if (ret < 0)
		return ret;
	if (kbfs_node_set_attr_gen(fs->nodes, ino, a, NS(fs->o->attr_timeout), version, gen))
		kb_cache_invalidate(fs->cache, ino, *version);
	return 0;
}

/* ino's attributes from its directory's listing (fetched first if we
 * hold none): true and *a, stored in the node. */
bool kbfs_attr_listed(struct kbfs *fs, fuse_ino_t ino, kb_Attr *a, uint64_t *version)
{
	struct kbfs_node_where w;
	bool held = false, leased = false;
	uint64_t gen = kbfs_nodes_gen(fs->nodes);
	kb_Entry e;

	if (!kbfs_node_listable(fs->nodes, ino) || kbfs_node_where(fs->nodes, ino, &w) < 0 ||
	    kbfs_listed(fs, w.parent_ino, w.parent_remote, w.name, false, &e, &held, &leased) !=
		    KBFS_LIST_FOUND ||
	    e.node != w.remote)
		return false;
	*a = e.attr;
	if (kbfs_node_set_attr_gen(fs->nodes, ino, a, NS(fs->o->attr_timeout), version,
				   leased ? gen : UINT64_MAX))
		kb_cache_invalidate(fs->cache, ino, *version);
	return true;
}

int kbfs_attr_now(struct kbfs *fs, fuse_ino_t ino, kb_Attr *a, uint64_t *version)
{
	if (kbfs_node_wb_attr(fs->nodes, ino, a) || kbfs_node_attr_unexpired(fs->nodes, ino, a)) {
		*version = kbfs_attr_version(a);
		return 0;
	}
	if (kbfs_attr_listed(fs, ino, a, version))
		return 0;
	return kbfs_fetch_attr(fs, ino, a, version);
}
