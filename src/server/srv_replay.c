/* srv_replay.c - per-session reply cache for non-idempotent requests.
 *
 * A client that loses a connection re-sends what was in flight on a new
 * connection of the same session, with the same request id (ids are unique
 * per session: the client puts its connection index in them). For
 * operations that must not run twice (KB_OP_REPLAY in src/core/op.c:
 * CREATE, MKDIR, UNLINK, RENAME, FALLOCATE, COPY_FILE_RANGE, FORGET, ...)
 * the first copy records its reply here under its id; a second copy gets
 * that reply without running again, or waits while the first still runs
 * (on a worker of the dead connection). KB_SRV_REPLAY entries per session,
 * the oldest finished one is reused; replies are small (no bulk).
 */
#include <stdlib.h>
#include <string.h>

#include "op.h"
#include "srv_impl.h"

bool kb_srv_replay_op(uint32_t op)
{
	return kb_op_is(op, KB_OP_REPLAY); /* the table in src/core/op.c */
}

void kb_srv_replay_init(struct kb_srv_replay *rp)
{
	pthread_mutex_init(&rp->lock, NULL);
	pthread_cond_init(&rp->cond, NULL);
	rp->ents = NULL;
	rp->seq = 0;
}

void kb_srv_replay_destroy(struct kb_srv_replay *rp)
{
	free(rp->ents);
	rp->ents = NULL;
	pthread_cond_destroy(&rp->cond);
	pthread_mutex_destroy(&rp->lock);
}

/* Lock held. */
static struct kb_srv_replay_ent *find(struct kb_srv_replay *rp, uint64_t id)
{
	for (unsigned i = 0; rp->ents && i < KB_SRV_REPLAY; i++)
		if (rp->ents[i].id == id)
			return &rp->ents[i];
	return NULL;
}

/* Lock held: the oldest finished (or unused) entry; NULL if all run. */
static struct kb_srv_replay_ent *victim(struct kb_srv_replay *rp)
{
	struct kb_srv_replay_ent *v = NULL;

	if (!rp->ents)
		rp->ents = calloc(KB_SRV_REPLAY, sizeof(*rp->ents));
	for (unsigned i = 0; rp->ents && i < KB_SRV_REPLAY; i++) {
		struct kb_srv_replay_ent *e = &rp->ents[i];

		if (!e->id)
			return e;
		if (e->done && (!v || e->seq < v->seq))
			v = e;
	}
	return v;
}

bool kb_srv_replay_begin(struct kb_srv_replay *rp, uint64_t id, uint8_t *out, size_t cap,
			 size_t *len)
{
	struct kb_srv_replay_ent *e;
	bool hit = false;

	if (!id)
		return false;
	pthread_mutex_lock(&rp->lock);
	while ((e = find(rp, id)) && !e->done)
		pthread_cond_wait(&rp->cond, &rp->lock);
	if (e && e->len && e->len <= cap) {
		memcpy(out, e->reply, e->len);
		*len = e->len;
		hit = true;
	} else if (!e) {
		e = victim(rp);
		if (e) {
			e->id = id;
			e->done = false;
			e->len = 0;
			e->seq = ++rp->seq;
		}
	}
	/* e && !e->len: the first reply was too large to keep: run again. */
	pthread_mutex_unlock(&rp->lock);
	return hit;
}

void kb_srv_replay_store(struct kb_srv_replay *rp, uint64_t id, const uint8_t *reply, size_t len)
{
	struct kb_srv_replay_ent *e;

	pthread_mutex_lock(&rp->lock);
	e = id ? find(rp, id) : NULL;
	if (e && !e->done) {
		e->len = len <= KB_SRV_REPLAY_MAX ? len : 0;
		if (e->len)
			memcpy(e->reply, reply, len);
		e->done = true;
		pthread_cond_broadcast(&rp->cond);
	}
	pthread_mutex_unlock(&rp->lock);
}
