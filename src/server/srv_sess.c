/* srv_sess.c - sessions (HELLO / ATTACH) and the per-frame entry point.
 *
 * kb_srv_handle_frame() turns one decrypted frame plaintext into one reply
 * frame inside the worker's transmit buffer:
 *
 *   w->tx: [4 frame len][u32 H][Response]...............[tag room]   no bulk
 *   w->tx: [....free....][4][u32 H][Response][bulk data][tag room]   bulk
 *                         ^ reply              ^ tx + 4 + KB_WIRE_HEADROOM
 *
 * Bulk replies (READ, GETXATTR, LISTXATTR) are produced straight at
 * tx + KB_FRAME_HEAD + KB_WIRE_HEADROOM; the small header is then encoded
 * on the stack and copied just before the data, so the frame starts a few
 * bytes into the buffer and kb_chan_send() encrypts it in place.
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <pb_decode.h>

#include "chan.h"
#include "compress.h"
#include "err.h"
#include "noise.h"
#include "op.h"
#include "srv_impl.h"
#include "srv_ops.h"
#include "util.h"
#include "wire.h"

#define DENTS_CAP (32u << 10)

int kb_srv_worker_new(struct kb_srv_worker **out, size_t max_frame)
{
	struct kb_srv_worker *w = calloc(1, sizeof(*w));

	if (!w)
		return -ENOMEM;
	w->max_plain = max_frame;
	w->tx = malloc(KB_FRAME_HEAD + max_frame + KB_FRAME_TAG);
	w->dents_cap = DENTS_CAP;
	w->dents = malloc(w->dents_cap);
	if (!w->tx || !w->dents) {
		kb_srv_worker_free(w);
		return -ENOMEM;
	}
	*out = w;
	return 0;
}

void kb_srv_worker_free(struct kb_srv_worker *w)
{
	if (!w)
		return;
	free(w->tx);
	free(w->ztx);
	free(w->part_q);
	free(w->part_r);
	free(w->dents);
	free(w);
}

static void sess_free(struct kb_srv_sess *s)
{
	kb_srv_notify_forget(s->srv->notifier, s);
	kb_srv_replay_destroy(&s->replay);
	kb_srv_stream_destroy(&s->stream);
	kb_srv_fhtab_destroy(&s->fhs);
	kb_srv_nodetab_destroy(&s->nodes);
	kb_srv_keyuse_put(s->srv, s->fds.ku);
	kb_memzero(s->token, sizeof(s->token));
	free(s);
}

static int root_entry(struct kb_srv_sess *s, kb_Entry *e)
{
	struct kb_srv_node *n = kb_srv_node_get(&s->nodes, s->root);
	struct stat st;
	int ret = n ? kb_srv_stat(n, &st) : -ESTALE;

	if (!ret) {
		e->node = n->id;
		e->has_attr = true;
		kb_srv_attr_fill(&e->attr, &st);
	}
	kb_srv_node_put(n);
	return ret;
}

/* Node ids and handles start at a random point per session: after a
 * server restart the ids a client still holds name nothing (ESTALE,
 * EBADF) instead of another session's files. */
static int random_bases(struct kb_srv_sess *s)
{
	uint64_t b[2];
	int ret = kb_noise_rng_bytes(s->srv->rng, (uint8_t *)b, sizeof(b));

	if (ret)
		return ret;
	s->nodes.next_id = (b[0] >> 4 & ~0xfffffull) | 1u << 30 | 1;
	s->fhs.next_id = (b[1] >> 4 & ~0xfffffull) | 1u << 30 | 1;
	return 0;
}

/* srv lock held: make room for one more session of `key` by evicting the
 * oldest idle one (of that key when its own limit is what is reached);
 * the victim is unlinked and returned for the caller to free. */
static int sess_room(struct kb_srv *srv, const uint8_t *key, struct kb_srv_sess **victim)
{
	struct kb_srv_sess *s, **pp, **best = NULL;
	unsigned mine = 0;

	*victim = NULL;
	for (s = srv->sessions; s; s = s->next)
		mine += !kb_memcmp_ct(s->key, key, KB_KEY_LEN);
	if (srv->nsess < srv->max_sess && mine < srv->max_sess_key)
		return 0;
	for (pp = &srv->sessions; *pp; pp = &(*pp)->next) {
		s = *pp;
		if (s->conns ||
		    (mine >= srv->max_sess_key && kb_memcmp_ct(s->key, key, KB_KEY_LEN)))
			continue;
		if (!best || s->idle_since_ns < (*best)->idle_since_ns)
			best = pp;
	}
	if (!best)
		return -EMFILE;
	*victim = *best;
	*best = (*best)->next;
	srv->nsess--;
	return 0;
}

static int sess_insert(struct kb_srv *srv, struct kb_srv_sess *s)
{
	struct kb_srv_sess *victim;
	int ret;

	pthread_mutex_lock(&srv->lock);
	ret = sess_room(srv, s->key, &victim);
	if (!ret) {
		s->conns = 1;
		s->next = srv->sessions;
		srv->sessions = s;
		srv->nsess++;
	}
	pthread_mutex_unlock(&srv->lock);
	if (victim) {
		kb_srv_logf(srv, KB_SRV_LOG_INFO, "session limit: dropped an idle session");
		sess_free(victim);
	}
	if (ret)
		kb_srv_logf(srv, KB_SRV_LOG_INFO, "session limit reached: HELLO refused");
	return ret;
}

/* The ids requests without honoured creds are checked as (ACCESS answered
 * by the client from attributes); left out when the groups do not fit. */
static void server_ids(kb_Response *r)
{
	gid_t groups[64];
	int n = getgroups(64, groups);

	if (n < 0 || (size_t)n > KB_ARRAY_SIZE(r->server_ids.groups))
		return;
	r->has_server_ids = true;
	r->server_ids.uid = geteuid();
	r->server_ids.gid = getegid();
	r->server_ids.groups_count = (pb_size_t)n;
	for (int i = 0; i < n; i++)
		r->server_ids.groups[i] = groups[i];
}

static int hello(struct kb_srv_conn *c, const kb_Request *q, kb_Response *r)
{
	struct kb_srv *srv = c->srv;
	struct kb_srv_sess *s;
	struct kb_srv_node *root = NULL;
	struct stat st;
	int fd = -1, ret;

	if (q->version > KB_PROTO_VERSION)
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->srv = srv;
	s->ro = srv->read_only || (c->flags & KB_KEYF_RO);
	s->owners = srv->can_owners && (srv->allow_owners || (c->flags & KB_KEYF_OWNERS));
	s->kflags = c->flags;
	if (!srv->can_owners && (c->flags & KB_KEYF_OWNERS))
		kb_srv_logf(srv, KB_SRV_LOG_INFO, "%s: owners key option ignored (server not root)",
			    c->fpr);
	memcpy(s->key, c->key, KB_KEY_LEN);
	s->fds.srv = srv;
	atomic_init(&s->fds.fds, 0);
	s->fds.ku = kb_srv_keyuse_get(srv, c->key);
	ret = s->fds.ku ? kb_srv_nodetab_init(&s->nodes, KB_SRV_MAX_NODES) : -ENOMEM;
	if (ret) {
		kb_srv_keyuse_put(srv, s->fds.ku);
		free(s);
		return ret;
	}
	ret = kb_srv_fhtab_init(&s->fhs, KB_SRV_MAX_HANDLES);
	if (ret) {
		kb_srv_nodetab_destroy(&s->nodes);
		kb_srv_keyuse_put(srv, s->fds.ku);
		free(s);
		return ret;
	}
	s->nodes.acct = &s->fds;
	s->nodes.sess = s;
	s->fhs.acct = &s->fds;
	kb_srv_replay_init(&s->replay);
	kb_srv_stream_init(&s->stream);
	ret = kb_noise_rng_bytes(srv->rng, s->token, sizeof(s->token));
	if (!ret)
		ret = random_bases(s);
	if (!ret)
		ret = kb_srv_walk(srv->rootfd, q->path, &fd);
	if (!ret && fstatat(fd, "", &st, AT_EMPTY_PATH))
		ret = -errno;
	if (!ret) {
		ret = kb_srv_node_add(&s->nodes, fd, &st, &root);
		fd = -1;
	}
	if (ret)
		goto out;
	s->root = root->id;
	ret = root_entry(s, &r->entry);
	if (ret)
		goto out;
	r->has_entry = true;
	r->read_only = s->ro;
	r->owners = s->owners;
	server_ids(r);
	r->lease_ms = srv->notifier ? KB_SRV_LEASE_MS : 0;
	r->features = kb_Features_FEATURE_READDIR_NOFH | kb_Features_FEATURE_COMPOUND |
		      (srv->notifier ? kb_Features_FEATURE_WRITE_BEHIND : 0);
	r->token.size = sizeof(s->token);
	memcpy(r->token.bytes, s->token, sizeof(s->token));
	ret = sess_insert(srv, s);
	if (ret)
		goto out;
	c->sess = s;
	if (root) /* watch the mounted directory itself */
		kb_srv_notify_watch(srv->notifier, s, root);
	kb_srv_node_put(root);
	root = NULL;
	s = NULL;
out:
	kb_srv_node_put(root);
	if (fd >= 0)
		close(fd);
	if (s)
		sess_free(s);
	return ret;
}

static int attach(struct kb_srv_conn *c, const kb_Request *q, kb_Response *r)
{
	struct kb_srv *srv = c->srv;
	struct kb_srv_sess *s;

	if (q->token.size != KB_SRV_TOKEN)
		return -EINVAL;
	pthread_mutex_lock(&srv->lock);
	for (s = srv->sessions; s; s = s->next)
		if (!kb_memcmp_ct(s->token, q->token.bytes, KB_SRV_TOKEN))
			break;
	/* A session is joined only with the key that opened it, with the same
	 * options, and not once it is ending (a reload revoked it). */
	if (s && (kb_memcmp_ct(s->key, c->key, KB_KEY_LEN) || s->kflags != c->flags || s->bye))
		s = NULL;
	if (s)
		s->conns++;
	pthread_mutex_unlock(&srv->lock);
	if (!s)
		return -EACCES; /* unknown or expired: the client says HELLO again */
	c->sess = s;
	r->read_only = s->ro;
	r->owners = s->owners;
	r->token.size = KB_SRV_TOKEN;
	memcpy(r->token.bytes, s->token, KB_SRV_TOKEN);
	r->has_entry = !root_entry(s, &r->entry);
	return 0;
}

/* The last connection leaving keeps the session for the grace period
 * (kb_srv_sess_expire frees it later), or ends it now without one. */
void kb_srv_sess_detach(struct kb_srv_conn *c)
{
	struct kb_srv *srv = c->srv;
	struct kb_srv_sess *s = c->sess, **pp;

	if (!s)
		return;
	pthread_mutex_lock(&srv->lock);
	c->sess = NULL; /* under the lock: the notifier looks for conns of s */
	if (--s->conns == 0 && (!srv->grace_ns || s->bye)) {
		for (pp = &srv->sessions; *pp != s; pp = &(*pp)->next)
			;
		*pp = s->next;
		srv->nsess--;
	} else {
		s->idle_since_ns = kb_now_ns();
		s = NULL;
	}
	pthread_mutex_unlock(&srv->lock);
	if (s)
		sess_free(s);
}

void kb_srv_sess_bye(struct kb_srv_sess *s)
{
	pthread_mutex_lock(&s->srv->lock);
	s->bye = true;
	pthread_mutex_unlock(&s->srv->lock);
}

void kb_srv_sess_cut(struct kb_srv_sess *s)
{
	struct kb_srv *srv = s->srv;

	pthread_mutex_lock(&srv->lock);
	s->bye = true;
	for (struct kb_srv_conn *c = srv->conns; c; c = c->next) {
		pthread_mutex_lock(&c->lock);
		if (c->sess == s && c->chan)
			kb_chan_shutdown(c->chan);
		pthread_mutex_unlock(&c->lock);
	}
	pthread_mutex_unlock(&srv->lock);
}

void kb_srv_sess_expire(struct kb_srv *srv, bool all)
{
	struct kb_srv_sess *dead = NULL, *s, **pp;
	uint64_t now = kb_now_ns();

	pthread_mutex_lock(&srv->lock);
	for (pp = &srv->sessions; (s = *pp);) {
		if (!s->conns && (all || s->bye || now - s->idle_since_ns >= srv->grace_ns)) {
			*pp = s->next;
			s->next = dead;
			dead = s;
			srv->nsess--;
		} else {
			pp = &s->next;
		}
	}
	pthread_mutex_unlock(&srv->lock);
	for (; dead; dead = s) {
		s = dead->next;
		kb_srv_logf(srv, KB_SRV_LOG_INFO, "session expired");
		sess_free(dead);
	}
}

/* A READ reply's data compressed behind the worker's second buffer's header
 * room, when the client asked, the link calls for it and the data
 * compresses; false: send it raw. */
static bool deflate_reply(struct kb_srv_conn *c, struct kb_srv_worker *w, uint8_t **data,
			  size_t *data_len)
{
	size_t cap = KB_MIN(w->max_plain, (size_t)c->max_send);
	ssize_t n;

	if (!c->zstd || w->req.op != kb_Op_READ || *data_len < KB_Z_MIN || !w->req.compress ||
	    w->req.compress > KB_Z_ON || cap <= KB_WIRE_HEADROOM)
		return false;
	if (w->req.compress == KB_Z_AUTO && !kb_z_link_slow(kb_chan_fd(c->chan), &c->zlink))
		return false;
	if (!w->ztx && !(w->ztx = malloc(KB_FRAME_HEAD + w->max_plain + KB_FRAME_TAG)))
		return false;
	n = kb_z_deflate(w->ztx + KB_FRAME_HEAD + KB_WIRE_HEADROOM, cap - KB_WIRE_HEADROOM, *data,
			 *data_len);
	if (n <= 0)
		return false;
	*data = w->ztx + KB_FRAME_HEAD + KB_WIRE_HEADROOM;
	*data_len = (size_t)n;
	return true;
}

/* Encode w->resp (+ data_len bulk bytes at data) into a frame. */
static int finish(struct kb_srv_conn *c, struct kb_srv_worker *w, uint8_t *data, size_t data_len,
		  uint8_t **reply, size_t *rlen)
{
	uint8_t hdr[KB_WIRE_HEADROOM];
	size_t hlen;
	size_t cap = KB_MIN(w->max_plain, (size_t)c->max_send);
	bool z;
	int ret;

	if (!data_len) {
		ret = kb_wire_encode_resp(w->tx + KB_FRAME_HEAD, cap, &w->resp, &hlen);
		if (ret)
			return ret;
		*reply = w->tx;
		*rlen = hlen;
		return 0;
	}
	z = deflate_reply(c, w, &data, &data_len);
	ret = kb_wire_encode_resp(hdr, sizeof(hdr) - KB_FRAME_HEAD, &w->resp, &hlen);
	if (ret)
		return ret;
	if (z)
		kb_z_mark(hdr);
	memcpy(data - hlen, hdr, hlen);
	*reply = data - hlen - KB_FRAME_HEAD;
	*rlen = hlen + data_len;
	return 0;
}

/* Ops that are one or two system calls on names or attributes: served on
 * the receiver thread (one thread handoff less per round trip). Whatever
 * moves file data,
 * lists a directory or may take long (truncation, fsync, allocation,
 * copies, opens that may truncate) goes to the workers, and so does every
 * reply with a bulk (GETXATTR, LISTXATTR): the receiver's own reply buffer
 * is KB_SRV_SMALL_FRAME, short of the largest xattr value. */
static bool quick(uint64_t op, uint64_t set_mask, uint64_t flags, size_t bulk)
{
	if (op > UINT32_MAX || !kb_op_is((uint32_t)op, KB_OP_QUICK)) /* src/core/op.c */
		return false;
	switch (op) {
	case kb_Op_WRITE: /* a small file's data: one pwrite into the page cache */
		return bulk <= KB_SRV_QUICK_WRITE;
	case kb_Op_SETATTR: return !(set_mask & kb_SetMask_SET_SIZE);
	case kb_Op_CREATE: return !(flags & O_TRUNC);
	default: return true;
	}
}

static bool peek_quick(const uint8_t *pt, size_t len, bool compound);

/* A COMPOUND is quick when every part is (a malformed one: the worker
 * refuses it). */
static bool parts_quick(const uint8_t *p, size_t left)
{
	const uint8_t *part;
	size_t len;
	int r;

	while ((r = kb_wire_part_next(&p, &left, &part, &len)) > 0)
		if (!peek_quick(part, len, false))
			return false;
	return r == 0;
}

bool kb_srv_quick_op(const uint8_t *pt, size_t len)
{
	return peek_quick(pt, len, true);
}

static bool peek_quick(const uint8_t *pt, size_t len, bool compound)
{
	pb_istream_t is;
	pb_wire_type_t wt;
	uint32_t tag, h;
	uint64_t op = 0, set_mask = 0, flags = 0, v;
	bool eof, have_op = false;

	if (len < KB_WIRE_LEN || (h = kb_get_be32(pt)) > len - KB_WIRE_LEN || h > 1024)
		return false;
	is = pb_istream_from_buffer(pt + KB_WIRE_LEN, h);
	while (pb_decode_tag(&is, &wt, &tag, &eof)) {
		bool want = tag == kb_Request_op_tag || tag == kb_Request_set_mask_tag ||
			    tag == kb_Request_flags_tag;

		if (!want || wt != PB_WT_VARINT) {
			if (!pb_skip_field(&is, wt))
				return false;
			continue;
		}
		if (!pb_decode_varint(&is, &v))
			return false;
		if (tag == kb_Request_op_tag) {
			op = v;
			have_op = true;
		} else if (tag == kb_Request_set_mask_tag) {
			set_mask = v;
		} else {
			flags = v;
		}
	}
	/* the whole header parsed: the last value of a field wins, as in nanopb */
	if (!eof || is.bytes_left || !have_op)
		return false;
	if (op == kb_Op_COMPOUND)
		return compound && parts_quick(pt + KB_WIRE_LEN + h, len - KB_WIRE_LEN - h);
	return quick(op, set_mask, flags, len - KB_WIRE_LEN - h);
}

static void resp_reset(kb_Response *r, uint64_t id)
{
	memset(r, 0, sizeof(*r));
	r->id = id;
}

/* One request of an established session, as the caller when it sent its
 * credentials and the session may use them (srv_creds.c). */
static int serve(struct kb_srv_req *rq)
{
	const struct kb_srv_ids *self = &rq->conn->srv->ids;
	bool as = rq->q->has_creds && rq->sess->owners;
	int ret;

	if (rq->q->op == kb_Op_BYE) { /* the session's own: ends it at detach */
		kb_srv_sess_bye(rq->sess);
		return 0;
	}
	if (as && (ret = kb_srv_creds_enter(self, &rq->q->creds)))
		return ret;
	ret = kb_srv_dispatch(rq);
	if (as)
		kb_srv_creds_leave(self);
	return ret;
}

/* A request in the write-behind stream runs in its turn (srv_stream.c). */
static int serve_ordered(struct kb_srv_req *rq)
{
	struct kb_srv_stream *st = &rq->sess->stream;
	uint64_t seq = rq->q->seq, value = 0;
	int status = 0, ret;

	if (!seq)
		return serve(rq);
	ret = kb_srv_stream_begin(st, seq, rq->q->op, &status, &value);
	if (ret == 3) {
		kb_srv_logf(
			rq->conn->srv, KB_SRV_LOG_INFO,
			"%s: write-behind stream: positions before %llu never came within %d ms: "
			"given up (answered ETIMEDOUT)",
			rq->conn->fpr, (unsigned long long)seq, KB_SRV_STREAM_WAIT_MS);
		ret = 0;
	}
	if (ret == 1) { /* it ran before: its answer again */
		rq->r->value = value;
		return status;
	}
	if (ret < 0)
		return ret;
	status = serve(rq);
	if (ret == 0)
		kb_srv_stream_done(st, seq, status, status ? 0 : rq->r->value);
	return status;
}

/* What a COMPOUND may carry: stream requests whose reply has no bulk. */
static bool part_ok(const kb_Request *q)
{
	uint32_t p = kb_op_props(q->op);

	return q->seq && (p & KB_OP_KNOWN) && q->op != kb_Op_COMPOUND && q->op != kb_Op_BYE &&
	       !(p & (KB_OP_FIRST | KB_OP_PUSH | KB_OP_BULK_OUT));
}

/* One part of a COMPOUND (plaintext pt, checked), answered as the frame
 * of its own would be (reply cache, stream order, credentials): its
 * reply's plaintext at out (cap bytes, room for any reply), *rlen long. */
static void serve_part(const struct kb_srv_req *top, const uint8_t *pt, size_t len, uint8_t *out,
		       size_t cap, size_t *rlen)
{
	struct kb_srv_worker *w = top->w;
	struct kb_srv_req rq = {
		.conn = top->conn, .sess = top->sess, .q = w->part_q, .r = w->part_r, .w = w};
	bool replay;
	int status;

	kb_wire_decode_req(pt, len, w->part_q, &rq.bulk, &rq.bulk_len);
	status = kb_srv_strings_ok(pt + KB_WIRE_LEN, kb_get_be32(pt));
	replay = !status && kb_srv_replay_op(rq.q->op);
	if (replay && kb_srv_replay_begin(&rq.sess->replay, rq.q->id, out, cap, rlen))
		return; /* answered before: the same reply again */
	resp_reset(rq.r, rq.q->id);
	if (!status)
		status = serve_ordered(&rq);
	if (status) {
		resp_reset(rq.r, rq.q->id);
		rq.r->err = kb_wire_err_from_errno(status);
	}
	if (kb_wire_encode_resp(out, cap, rq.r, rlen)) { /* cannot happen: cap holds any */
		resp_reset(rq.r, rq.q->id);
		rq.r->err = kb_Err_E_IO;
		kb_wire_encode_resp(out, cap, rq.r, rlen);
	}
	if (replay) /* always, so that a waiting duplicate is released */
		kb_srv_replay_store(&rq.sess->replay, rq.q->id, out, *rlen);
}

/* The parts of a COMPOUND, each [u32 len][plaintext]: how many, or
 * -EINVAL when one is malformed, not allowed (part_ok) or over the
 * count; then none runs. */
static int compound_parts(struct kb_srv_worker *w, const uint8_t *p, size_t left)
{
	const uint8_t *part, *bulk;
	size_t len, blen;
	int n = 0, r;

	while ((r = kb_wire_part_next(&p, &left, &part, &len)) > 0)
		if (++n > KB_WIRE_COMPOUND_MAX ||
		    kb_wire_decode_req(part, len, w->part_q, &bulk, &blen) || !part_ok(w->part_q) ||
		    kb_srv_strings_ok(part + KB_WIRE_LEN, kb_get_be32(part)) == -KB_EPROTO)
			return -EINVAL;
	return r < 0 ? -EINVAL : n;
}

_Static_assert(KB_WIRE_COMPOUND_MAX *(2 * KB_WIRE_LEN + kb_Response_size) <=
		       KB_SRV_SMALL_FRAME - KB_WIRE_HEADROOM,
	       "a COMPOUND's replies fit the receiver's reply buffer");

/* COMPOUND (PROTOCOL.md): its parts in order; their replies, each
 * [u32 len][plaintext], are this reply's bulk, and value counts them.
 * A COMPOUND with a bad part is refused whole (EINVAL), none run. */
static int serve_compound(struct kb_srv_req *rq)
{
	struct kb_srv_worker *w = rq->w;
	const uint8_t *p = rq->bulk, *part;
	size_t left = rq->bulk_len, used = 0, len, rlen;
	int n;

	if (!w->part_q && !(w->part_q = malloc(sizeof(*w->part_q))))
		return -ENOMEM;
	if (!w->part_r && !(w->part_r = malloc(sizeof(*w->part_r))))
		return -ENOMEM;
	n = compound_parts(w, p, rq->bulk_len);
	if (n < 0)
		return n;
	if ((size_t)n * (KB_WIRE_LEN + kb_Response_size + KB_WIRE_LEN) > rq->data_max)
		return -E2BIG;                                  /* the replies might not fit */
	while (kb_wire_part_next(&p, &left, &part, &len) > 0) { /* checked above */
		serve_part(rq, part, len, rq->data + used + KB_WIRE_LEN,
			   rq->data_max - used - KB_WIRE_LEN, &rlen);
		kb_put_be32(rq->data + used, (uint32_t)rlen);
		used += KB_WIRE_LEN + rlen;
	}
	rq->r->value = (uint64_t)n;
	rq->data_len = used;
	return 0;
}

int kb_srv_handle_frame(struct kb_srv_conn *c, struct kb_srv_worker *w, const uint8_t *pt,
			size_t len, uint8_t **reply, size_t *rlen)
{
	size_t room = KB_MIN(w->max_plain, (size_t)c->max_send);
	struct kb_srv_req rq = {
		.conn = c,
		.sess = c->sess,
		.q = &w->req,
		.r = &w->resp,
		.w = w,
		.data = w->tx + KB_FRAME_HEAD + KB_WIRE_HEADROOM,
		.data_max = room > KB_WIRE_HEADROOM ? room - KB_WIRE_HEADROOM : 0,
	};
	bool replay = false;
	int ret, status;

	*reply = NULL;
	*rlen = 0;
	ret = kb_wire_decode_req(pt, len, &w->req, &rq.bulk, &rq.bulk_len);
	if (ret)
		return ret; /* no id to answer to: close the connection */
	resp_reset(&w->resp, w->req.id);
	status = kb_srv_strings_ok(pt + KB_WIRE_LEN, kb_get_be32(pt));
	if (status == -KB_EPROTO)
		return status;
	if (!status && !c->sess) {
		if (w->req.op == kb_Op_HELLO)
			status = hello(c, &w->req, &w->resp);
		else if (w->req.op == kb_Op_ATTACH)
			status = attach(c, &w->req, &w->resp);
		else
			return -KB_EPROTO;
	} else if (!status) {
		replay = kb_srv_replay_op(w->req.op);
		if (replay && kb_srv_replay_begin(&c->sess->replay, w->req.id,
						  w->tx + KB_FRAME_HEAD, room, rlen)) {
			*reply = w->tx; /* answered before: the same reply again */
			return 0;
		}
		status = w->req.op == kb_Op_COMPOUND ? serve_compound(&rq) : serve_ordered(&rq);
	}
	if (status) {
		resp_reset(&w->resp, w->req.id);
		w->resp.err = kb_wire_err_from_errno(status);
		rq.data_len = 0;
	}
	ret = finish(c, w, rq.data, rq.data_len, reply, rlen);
	if (ret) { /* cannot happen with bounded replies; answer EIO */
		resp_reset(&w->resp, w->req.id);
		w->resp.err = kb_Err_E_IO;
		ret = finish(c, w, NULL, 0, reply, rlen);
	}
	if (replay) /* always, so that a waiting duplicate is released */
		kb_srv_replay_store(&c->sess->replay, w->req.id,
				    *reply ? *reply + KB_FRAME_HEAD : NULL, *reply ? *rlen : 0);
	return ret;
}
