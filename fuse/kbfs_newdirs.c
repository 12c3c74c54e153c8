/* kbfs_newdirs.c - directories we created and the names we put there
 * (kbfs_newdirs.h). */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "kbfs_newdirs.h"
#include "util.h"

#define BLOOM_BITS 65536u /* 8 KiB per directory: ~1.4% false "maybe" at 6,000 names */
#define BLOOM_K 3

struct new_dir {
	uint64_t dir; /* server id; 0: empty slot */
	uint64_t gen; /* session generation */
	uint64_t born_ns, expiry_ns;
	unsigned names; /* names added */
	uint64_t bits[BLOOM_BITS / 64];
};

struct kbfs_newdirs {
	pthread_mutex_t lock;
	struct new_dir *d; /* owned, KBFS_NEWDIRS_DIRS of them (lock); 2 MiB
				   * calloc'd: pages are touched only as dirs are made */
};

int kbfs_newdirs_new(struct kbfs_newdirs **out)
{
	struct kbfs_newdirs *fr = calloc(1, sizeof(*fr));

	if (!fr || !(fr->d = calloc(KBFS_NEWDIRS_DIRS, sizeof(*fr->d)))) {
		free(fr);
		return -ENOMEM;
	}
	pthread_mutex_init(&fr->lock, NULL);
	*out = fr;
	return 0;
}

void kbfs_newdirs_free(struct kbfs_newdirs *fr)
{
	if (!fr)
		return;
	pthread_mutex_destroy(&fr->lock);
	free(fr->d);
	free(fr);
}

static struct new_dir *slot(struct kbfs_newdirs *fr, uint64_t dir)
{
	uint64_t h = dir * 0x9e3779b97f4a7c15ull;

	return &fr->d[(h >> 32) % KBFS_NEWDIRS_DIRS];
}

/* The live entry for dir, or NULL. Lock held. */
static struct new_dir *find_locked(struct kbfs_newdirs *fr, uint64_t dir, uint64_t now_ns)
{
	struct new_dir *d = slot(fr, dir);

	if (d->dir != dir)
		return NULL;
	if (d->expiry_ns <= now_ns) {
		d->dir = 0;
		return NULL;
	}
	return d;
}

/* Names are compared without ASCII case, and a name with any other byte
 * is never answered from here (and makes its directory forgotten when we
 * create it): a share on a case-insensitive filesystem (vfat, ext4
 * casefold) finds "a" when we made "A", and folds some non-ASCII letters
 * onto ASCII ones (KELVIN SIGN onto k). Into fold[], false if not ASCII. */
static bool fold_ascii(const char *name, char fold[256])
{
	size_t i;

	for (i = 0; name[i] && i < 255; i++) {
		unsigned char ch = (unsigned char)name[i];

		if (ch >= 0x80)
			return false;
		fold[i] = (char)(ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch);
	}
	fold[i] = '\0';
	return !name[i];
}

/* The filter's bit positions for name, case folded (double hashing). */
static void bloom_pos(uint64_t dir, const char *fold, uint32_t pos[BLOOM_K])
{
	uint64_t h = kb_hash_key_name(dir, fold);
	uint32_t a = (uint32_t)h, b = (uint32_t)(h >> 32) | 1;

	for (unsigned i = 0; i < BLOOM_K; i++)
		pos[i] = (a + i * b) % BLOOM_BITS;
}

void kbfs_newdirs_born(struct kbfs_newdirs *fr, uint64_t dir, uint64_t gen, uint64_t now_ns,
		       uint64_t ttl_ns)
{
	struct new_dir *d;

	if (!fr || !dir || !ttl_ns)
		return;
	pthread_mutex_lock(&fr->lock);
	d = slot(fr, dir);
	memset(d, 0, sizeof(*d));
	d->dir = dir;
	d->gen = gen;
	d->born_ns = now_ns;
	d->expiry_ns = now_ns + KB_MIN(ttl_ns, KBFS_NEWDIRS_MAX_NS);
	pthread_mutex_unlock(&fr->lock);
}

void kbfs_newdirs_add(struct kbfs_newdirs *fr, uint64_t dir, const char *name, uint64_t now_ns,
		      uint64_t ttl_ns)
{
	struct new_dir *d;
	uint32_t pos[BLOOM_K];
	char fold[256];
	bool ascii;

	if (!fr || !dir)
		return;
	ascii = fold_ascii(name, fold);
	if (ascii)
		bloom_pos(dir, fold, pos);
	pthread_mutex_lock(&fr->lock);
	d = find_locked(fr, dir, now_ns);
	if (d && (!ascii || ++d->names > KBFS_NEWDIRS_NAMES)) {
		d->dir = 0; /* it may match names we cannot tell; or "maybe" too often */
	} else if (d) {
		for (unsigned i = 0; i < BLOOM_K; i++)
			d->bits[pos[i] / 64] |= 1ull << (pos[i] % 64);
		d->expiry_ns = KB_MIN(now_ns + ttl_ns, d->born_ns + KBFS_NEWDIRS_MAX_NS);
	}
	pthread_mutex_unlock(&fr->lock);
}

uint64_t kbfs_newdirs_missing(struct kbfs_newdirs *fr, uint64_t dir, const char *name, uint64_t gen,
			      uint64_t now_ns)
{
	struct new_dir *d;
	uint32_t pos[BLOOM_K];
	uint64_t left = 0;
	bool maybe = true;
	char fold[256];

	if (!fr || !dir || !fold_ascii(name, fold))
		return 0;
	bloom_pos(dir, fold, pos);
	pthread_mutex_lock(&fr->lock);
	d = find_locked(fr, dir, now_ns);
	if (d && d->gen == gen) {
		/* "maybe there" only if every one of its bits is set */
		for (unsigned i = 0; i < BLOOM_K && maybe; i++)
			maybe = d->bits[pos[i] / 64] & (1ull << (pos[i] % 64));
		if (!maybe)
			left = d->expiry_ns - now_ns;
	}
	pthread_mutex_unlock(&fr->lock);
	return left;
}

void kbfs_newdirs_drop(struct kbfs_newdirs *fr, uint64_t dir)
{
	struct new_dir *d;

	if (!fr || !dir)
		return;
	pthread_mutex_lock(&fr->lock);
	d = slot(fr, dir);
	if (d->dir == dir)
		d->dir = 0;
	pthread_mutex_unlock(&fr->lock);
}
