/* kbfs_list.h - whole directories: one listing answers every LOOKUP and
 * GETATTR in a directory.
 *
 * Across a slow link every round trip counts, and `git status`, `find |
 * xargs stat`, `make`, `ls -l` and file managers ask about file after file
 * of one directory, each a LOOKUP or GETATTR the kernel no longer has
 * cached. The first such miss in a directory this client does not hold
 * fetches the directory's names and attributes in one READDIR (fh 0, plus,
 * up to KBFS_LIST_MAX entries: one round trip); the LOOKUPs and GETATTRs
 * that follow in it are answered from here, a name it does not list as
 * missing. A directory with more entries is not held (per-name LOOKUPs, as
 * before) and is not listed again for KBFS_LIST_BIG_NS.
 *
 * What a listing claims, and for how long: what the server had when it
 * listed. It is used for entry_timeout after it was fetched, and past that
 * while the server's promise (kb_rpc_lease) it was fetched under holds; a
 * push naming an entry of the directory, a change of ours in it (a name
 * made or removed, a child's data or attributes changed), or a new session
 * drops it (kids_gen, kbfs_list_drop). Names are compared exactly; a name
 * that is not listed is answered missing only under the lease (without it
 * that would claim more than the short timeouts did: a name made on the
 * server, never looked up here, is asked), when it is ASCII and no listed
 * name equals it without ASCII case (a case-insensitive share finds "A"
 * when "a" is listed: that goes to the server).
 *
 * Each listed entry holds the server's lookup count that READDIR plus
 * counted for it (`held`) until the kernel takes the entry (LOOKUP), or it
 * is forgotten (a FORGET of 1) when the listing is dropped. Bounded:
 * KBFS_LIST_DIRS directories, KBFS_LIST_TOTAL entries in all (the least
 * recently used directory goes first). Thread-safe; the fetch itself is
 * made by one caller per directory while the others wait for it.
 */
#ifndef KBFS_LIST_H
#define KBFS_LIST_H

#include <stdbool.h>
#include <stdint.h>

#include "kbfs.h"
#include "keibifs.pb.h"

#define KBFS_LIST_MAX 4096 /* entries; bigger: not held */
#define KBFS_LIST_DIRS 256
#define KBFS_LIST_TOTAL 32768
#define KBFS_LIST_BIG_NS 60000000000ull /* a big directory is not listed again */
#define KBFS_LIST_AHEAD 32              /* sibling directories listed ahead */
#define KBFS_LIST_AHEAD_MAX 64          /* such listings in flight at most */

struct kbfs;
struct kbfs_list;
struct kb_rpc_result;

/* forget(arg, node, 1) gives back a held entry's lookup (never called with
 * the list's lock held). */
typedef void (*kbfs_list_forget_fn)(void *arg, uint64_t node);
int kbfs_list_new(struct kbfs_list **out, kbfs_list_forget_fn forget, void *arg);
void kbfs_list_free(struct kbfs_list *l); /* NULL-safe; forgets nothing */

enum kbfs_list_res {
	KBFS_LIST_NONE,    /* no usable listing of dir (or it cannot say) */
	KBFS_LIST_MISSING, /* listed, and the name is not there */
	KBFS_LIST_FOUND,   /* listed: *e */
};

/* Where a lookup stands, for the caller:
 * sess: rpc session generation; kids: kbfs_node_kids_gen of the dir now;
 * lease: kb_rpc_lease now. */
struct kbfs_list_key {
	uint64_t dir; /* server node id */
	uint64_t sess, kids, lease, now_ns;
	uint64_t ttl_ns; /* entry_timeout */
};

/* Look name up in dir's listing. FOUND: *e, *held (true: the caller now
 * owns the server lookup the listing held for it, and must hand it to a
 * node or forget it), *leased (the listing is backed by the lease: the
 * attributes may be stored as such), *left_ns (how long it would be valid
 * without the lease). */
enum kbfs_list_res kbfs_list_find(struct kbfs_list *l, const struct kbfs_list_key *k,
				  const char *name, bool take, kb_Entry *e, bool *held,
				  bool *leased, uint64_t *left_ns);
/* Fetch dir's listing unless one is valid, another caller's fetch is in
 * flight (waits for it) or dir is big: one READDIR round trip. dir_ino is
 * its FUSE ino (kids_gen). 0, or -errno (the caller asks per name). */
int kbfs_list_fetch(struct kbfs *fs, uint64_t dir_ino, uint64_t dir);
/* dir changed (a push naming one of its entries; its node forgotten, so
 * the server no longer watches it): its listing is dropped (the held
 * lookups are given back by the next caller: never blocks, safe on the
 * receiver thread). */
void kbfs_list_drop(struct kbfs_list *l, uint64_t dir);
/* We are about to make or remove dir/name: that name is asked from now on
 * (the others still answered); past KBFS_LIST_TOUCHED such names the
 * listing is dropped and dir not listed again for 2 ttl (a writer, not a
 * browser). */
void kbfs_list_touch(struct kbfs_list *l, uint64_t dir, const char *name, uint64_t now_ns,
		     uint64_t ttl_ns);
/* The key for dir (FUSE ino dir_ino) now. */
void kbfs_list_key_now(struct kbfs *fs, uint64_t dir_ino, uint64_t dir, struct kbfs_list_key *k);
/* A READDIR batch from cookie 0 that the kernel's readdir fetched with
 * plus: when it holds the whole directory, it becomes dir's listing (its
 * entries' lookups went to the kernel: none held). k: taken before the
 * request was sent. */
void kbfs_list_adopt(struct kbfs *fs, const struct kbfs_list_key *k,
		     const struct kb_rpc_result *res);
/* The kernel's readdir(plus) from dir's listing, if one is valid: true and
 * *used bytes in buf (0: the end); false: ask the server. */
bool kbfs_list_readdir(struct kbfs *fs, fuse_req_t req, uint64_t dir_ino, uint64_t dir,
		       uint64_t off, bool plus, char *buf, size_t size, size_t *used);
/* dir's listing is in use: list the next sibling directories after it
 * (its parent's listing order, up to KBFS_LIST_AHEAD) in parallel, before
 * they are asked for: a walk (git status, du, find, make) then waits
 * about one round trip per KBFS_LIST_AHEAD directories, not one each.
 * Once per listing. */
void kbfs_list_walk(struct kbfs *fs, uint64_t dir_ino, uint64_t dir);
/* Counters for --status: listings fetched, answers given from them. */
void kbfs_list_counts(struct kbfs_list *l, uint64_t *fetched, uint64_t *answered, uint64_t *big);

/* kbfs_attr.c: name in directory dir_ino from its listing, fetched first
 * if we hold none. take: hand the listing's server lookup over to the
 * caller (*held). FOUND/MISSING as kbfs_list_find; NONE: ask per name. */
enum kbfs_list_res kbfs_listed(struct kbfs *fs, fuse_ino_t dir_ino, uint64_t dir, const char *name,
			       bool take, kb_Entry *e, bool *held, bool *leased);
/* kbfs_attr.c: ino's attributes from its directory's listing: true and *a,
 * stored in the node. */
bool kbfs_attr_listed(struct kbfs *fs, fuse_ino_t ino, kb_Attr *a, uint64_t *version);

#endif
